// Ops written purely with ATen calls, identical on every device: registered once, under
// CompositeExplicitAutograd (which serves CPU, CUDA and any other backend key), instead of a
// twin per backend. Their autograd formulas and fake kernels are Python's (pytexsynth/ops/<op>.py,
// registered through pytexsynth.ops._ext.register); the fake kernel takes the Meta key, which
// this registration would otherwise also serve.
#include <torch/library.h>

#include "common/histogram.h"

TORCH_LIBRARY_IMPL(pytexsynth, CompositeExplicitAutograd, m) {
  m.impl("_histogram_loss_backward", &pytexsynth::histogram::loss_backward);
}
