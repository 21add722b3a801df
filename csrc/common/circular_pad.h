// circular_pad2d and its backward: argument checks, geometry and the entry points shared by the
// CPU and CUDA backends, so both reject the same inputs with the same messages.
//
// A backend supplies one member:
//   template <bool Backward> static void run(const at::Tensor& src, at::Tensor& out,
//                                            const std::array<int64_t, 4>& pads)
// which writes the padded copy of src = x (forward) or the gathered gradient of the padded
// src = grad_output (Backward) into out: non-empty, in output_memory_format(src), on src's
// device (the current one).
#pragma once

#include <c10/core/DeviceGuard.h>
#include <torch/library.h>

#include "common/checks.h"
#include "common/circular_pad_math.h"

namespace pytexsynth {
namespace circular_pad {

// Validates (tensor, pad) and returns {left, right, top, bottom}. `padded` says whether t is
// the padded tensor (the backward's grad_output) or the unpadded input.
inline std::array<int64_t, 4> check_args(const at::Tensor& t, at::IntArrayRef pad, const char* op,
                                         const char* arg, bool padded) {
  check_dim_in(t, {3, 4}, op, arg, "3-D (C, H, W) or 4-D (N, C, H, W)");
  check_floating(t, op, arg);
  TORCH_CHECK(pad.size() == 4, op, ": pad must have 4 entries (left, right, top, bottom), got ",
              pad.size(), ": ", pad);
  static const char* names[4] = {"left", "right", "top", "bottom"};
  for (int i = 0; i < 4; ++i) {
    TORCH_CHECK(pad[i] >= 0, op, ": pad[", i, "] (", names[i], ") = ", pad[i],
                " is negative; circular padding takes pads >= 0");
  }
  const int64_t H = t.size(-2) - (padded ? pad[2] + pad[3] : 0);
  const int64_t W = t.size(-1) - (padded ? pad[0] + pad[1] : 0);
  TORCH_CHECK(H >= 0 && W >= 0, op, ": ", arg, " of shape ", shape_str(t),
              " is smaller than the pads ", pad, " it should contain");
  for (int i = 0; i < 4; ++i) {
    const bool horizontal = i < 2;
    const int64_t size = horizontal ? W : H;
    TORCH_CHECK(pad[i] <= size, op, ": pad[", i, "] (", names[i], ") = ", pad[i],
                " exceeds the input ", (horizontal ? "width " : "height "), size,
                "; circular padding wraps at most once");
  }
  return {pad[0], pad[1], pad[2], pad[3]};
}

// Geometry for reading `src` (x, or grad_output) with its own strides; a 3-D tensor is
// a batch of one.
template <typename index_t>
inline Geometry<index_t> make_geometry(const at::Tensor& src, const std::array<int64_t, 4>& pad,
                                       bool src_is_padded) {
  const bool batched = src.dim() == 4;
  Geometry<index_t> g;
  g.N = batched ? src.size(0) : 1;
  g.C = src.size(-3);
  const int64_t hs = src.size(-2), ws = src.size(-1);
  g.H = src_is_padded ? hs - pad[2] - pad[3] : hs;
  g.W = src_is_padded ? ws - pad[0] - pad[1] : ws;
  g.Ho = g.H + pad[2] + pad[3];
  g.Wo = g.W + pad[0] + pad[1];
  g.left = pad[0];
  g.top = pad[2];
  g.sN = batched ? src.stride(0) : 0;
  g.sC = src.stride(-3);
  g.sH = src.stride(-2);
  g.sW = src.stride(-1);
  return g;
}

// The padded (forward) or unpadded (backward) shape, in the layout the kernels write.
inline at::Tensor empty_like_padded(const at::Tensor& src, int64_t H, int64_t W) {
  auto sizes = src.sizes().vec();
  sizes[sizes.size() - 2] = H;
  sizes[sizes.size() - 1] = W;
  return at::empty(sizes, src.options().memory_format(output_memory_format(src)));
}

// The op (Backward = false: circular_pad2d) or its backward (_circular_pad2d_backward, which
// reads the padded tensor); the schemas' signature.
template <class Backend, bool Backward>
at::Tensor entry(const at::Tensor& src, at::IntArrayRef pad) {
  const auto pads = check_args(src, pad, Backward ? "_circular_pad2d_backward" : "circular_pad2d",
                               Backward ? "grad_output" : "x", /*padded=*/Backward);
  const c10::DeviceGuard guard(src.device());
  const int64_t dh = pads[2] + pads[3], dw = pads[0] + pads[1];
  at::Tensor out = Backward ? empty_like_padded(src, src.size(-2) - dh, src.size(-1) - dw)
                            : empty_like_padded(src, src.size(-2) + dh, src.size(-1) + dw);
  if (out.numel() == 0) return out;
  Backend::template run<Backward>(src, out, pads);
  return out;
}

template <class Backend>
void register_kernels(torch::Library& m) {
  m.impl("circular_pad2d", &entry<Backend, false>);
  m.impl("_circular_pad2d_backward", &entry<Backend, true>);
}

}  // namespace circular_pad
}  // namespace pytexsynth
