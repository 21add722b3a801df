// Per-element arithmetic of circular padding, shared by the CPU and CUDA kernels so that the
// CPU tests exercise exactly the index math the GPU runs.
#pragma once

#include <c10/macros/Macros.h>

#include "common/indexing.h"

namespace pytexsynth {
namespace circular_pad {

// Sizes and pads of one padding problem, plus the strides of the tensor being read
// (x in the forward, grad_output in the backward; any strides, broadcast zeros included).
template <typename index_t>
struct Geometry {
  index_t N, C, H, W;    // unpadded sizes
  index_t Ho, Wo;        // padded sizes
  index_t left, top;     // leading pads (trailing ones are implied by Ho, Wo)
  index_t sN, sC, sH, sW;
};

// Position in the unpadded axis that padded position o reads. Pads never exceed the size,
// so one compare-and-select per side replaces a modulo.
template <typename index_t>
C10_HOST_DEVICE inline index_t source_index(index_t o, index_t before, index_t size) {
  index_t i = o - before;
  i = i < 0 ? i + size : i;
  i = i >= size ? i - size : i;
  return i;
}

// Padded positions that read unpadded position i, ascending: i + before, and its copies one
// period earlier and later when they fall inside the padded axis (all three exist only when
// a pad equals the size). Returns how many were written to taps.
template <typename index_t>
C10_HOST_DEVICE inline int output_taps(index_t i, index_t before, index_t size, index_t out_size,
                                       index_t taps[3]) {
  int n = 0;
  const index_t o = i + before;
  if (o - size >= 0) taps[n++] = o - size;
  taps[n++] = o;
  if (o + size < out_size) taps[n++] = o + size;
  return n;
}

// Forward: padded element (n, c, oh, ow) is a copy of x at the wrapped position.
template <typename scalar_t, typename index_t>
C10_HOST_DEVICE inline scalar_t forward_value(const scalar_t* x, const Geometry<index_t>& g,
                                              const Coord<index_t>& p) {
  const index_t ih = source_index(p.h, g.top, g.H);
  const index_t iw = source_index(p.w, g.left, g.W);
  return x[p.n * g.sN + p.c * g.sC + ih * g.sH + iw * g.sW];
}

// Backward: the gradient of unpadded element (n, c, ih, iw) is the sum of the padded
// gradients that copied it (at most 3 x 3), gathered in a fixed order: no atomics, and the
// same bits on every device.
template <typename acc_t, typename scalar_t, typename index_t>
C10_HOST_DEVICE inline acc_t backward_value(const scalar_t* grad, const Geometry<index_t>& g,
                                            const Coord<index_t>& p) {
  index_t th[3], tw[3];
  const int nh = output_taps(p.h, g.top, g.H, g.Ho, th);
  const int nw = output_taps(p.w, g.left, g.W, g.Wo, tw);
  const scalar_t* base = grad + p.n * g.sN + p.c * g.sC;
  acc_t sum = acc_t(0);
  for (int a = 0; a < nh; ++a) {
    for (int b = 0; b < nw; ++b) {
      sum += static_cast<acc_t>(base[th[a] * g.sH + tw[b] * g.sW]);
    }
  }
  return sum;
}

// One thread's work in the CUDA kernel, also the CPU's path for inputs whose innermost
// dimension is strided: l is the linear position in the dense output (memory order) of a
// padded element (forward, src = x) or an unpadded one (Backward, src = grad_output).
template <bool Backward, bool ChannelsLast, typename acc_t, typename scalar_t, typename index_t>
C10_HOST_DEVICE inline void write_element(const scalar_t* src, scalar_t* out, const Geometry<index_t>& g, index_t l) {
  if constexpr (Backward) {
    out[l] = static_cast<scalar_t>(backward_value<acc_t>(src, g, coord_of<ChannelsLast>(l, g.C, g.H, g.W)));
  } else {
    out[l] = forward_value(src, g, coord_of<ChannelsLast>(l, g.C, g.Ho, g.Wo));
  }
}

}  // namespace circular_pad
}  // namespace pytexsynth
