// Every op of the pytexsynth namespace is declared here, once. Kernels are registered per
// backend in cpu/<op>.cpp and cuda/<op>.cu; autograd and fake kernels in
// pytexsynth/_registrations.py. Backward passes are ops of their own (leading underscore), so
// autograd formulas call registered ops that also have fake kernels.
#include <torch/library.h>

#include <string>

#ifdef PYTEXSYNTH_WITH_CUDA
#include <cuda_runtime_api.h>
#define PYTEXSYNTH_STR_(...) #__VA_ARGS__
#define PYTEXSYNTH_STR(...) PYTEXSYNTH_STR_(__VA_ARGS__)
#endif

namespace pytexsynth {

// CUDA runtime version the kernels were compiled with, -1 for a CPU-only build.
int64_t cuda_version() {
#ifdef PYTEXSYNTH_WITH_CUDA
  return CUDART_VERSION;
#else
  return -1;
#endif
}

// TORCH_CUDA_ARCH_LIST the kernels were compiled for, ';'-separated; empty for a CPU build.
std::string cuda_archs() {
#ifdef PYTEXSYNTH_WITH_CUDA
  std::string archs = PYTEXSYNTH_STR(PYTEXSYNTH_CUDA_ARCHS);
  for (auto& ch : archs) {
    if (ch == ',') ch = ';';
  }
  return archs;
#else
  return "";
#endif
}

}  // namespace pytexsynth

TORCH_LIBRARY(pytexsynth, m) {
  m.set_python_module("pytexsynth._registrations");

  m.def("_cuda_version() -> int", &pytexsynth::cuda_version);
  m.def("_cuda_archs() -> str", &pytexsynth::cuda_archs);

  // pad = (left, right, top, bottom); x is (C, H, W) or (N, C, H, W).
  m.def("circular_pad2d(Tensor x, int[] pad) -> Tensor");
  m.def("_circular_pad2d_backward(Tensor grad_output, int[] pad) -> Tensor");

  // ---- gram ----
  // x is (B, C, H, W); normalize in {hw, chw, none}; precision in {ieee, tf32, bf16}.
  // gram_loss returns (loss, diff): diff = G - T, (B, C, C) in float32 (float64 for float64 x),
  // the only thing its backward needs besides x.
  m.def("gram(Tensor x, str normalize=\"hw\", str precision=\"ieee\") -> Tensor");
  m.def("_gram_backward(Tensor grad_output, Tensor x, str normalize, str precision) -> Tensor");
  m.def("gram_loss(Tensor x, Tensor target, float weight=1.0, str normalize=\"hw\", str precision=\"ieee\") -> (Tensor, Tensor)");
  m.def("_gram_loss_backward(Tensor grad_loss, Tensor diff, Tensor x, float weight, str normalize, str precision) -> Tensor");

  // ---- histogram matching (Risser et al. 2017) ----
  // x is (C, H, W) or (B, C, H, W); lo, hi (C,) and cdf (C, bins + 1) are the style statistics
  // of pytexsynth.ops.histogram_stats. histogram_loss returns (loss, D = x - R(x)); D is what
  // the backward needs: grad = 2 * weight / x.numel() * D * grad_output.
  m.def("histogram_match(Tensor x, Tensor lo, Tensor hi, Tensor cdf) -> Tensor");
  m.def("histogram_loss(Tensor x, Tensor lo, Tensor hi, Tensor cdf, float weight) -> (Tensor, Tensor)");
  m.def("_histogram_loss_backward(Tensor grad_output, Tensor diff, float weight) -> Tensor");
}
