// winograd_conv3x3: argument checks and the chunked driver shared by the CPU and CUDA kernels.
//
// The image is cut into rows of 4x4 output tiles; a chunk of tile rows is transformed into
// V (36, tiles, C), multiplied plane by plane with U (36, C, C') into M (36, tiles, C'), and
// transformed back into output rows. Chunks bound the scratch memory (V and M are 2.25x the
// input and output of the chunk) and keep it in cache on the CPU. The backward runs the
// adjoint of each step in reverse: dM = adjoint output transform of dy, dV = dM U^T, and the
// adjoint input transform accumulates into dx (neighbouring tiles overlap by two pixels, so the
// backends scatter in passes of tiles that cannot overlap: even then odd tile rows on the CPU,
// four row/column parity classes on CUDA; no atomics, deterministic);
// dU = sum over chunks of V^T dM, in chunk order.
//
// A backend supplies the tile transforms of tile rows [r0, r1), the plane-batched GEMMs and
// its chunk size:
//   transform<Step::kInput>(x, V, V, -, g, r0, r1)            V <- B^T d B
//   transform<Step::kOutput>(M, y, M, bias, g, r0, r1)        y <- A^T m A (+ bias)
//   transform<Step::kOutputAdjoint>(dy, dM, dM, -, g, r0, r1) dM <- A dy A^T
//   transform<Step::kInputAdjoint>(dV, dx, dV, -, g, r0, r1)  dx += B dv B^T
//   gemm(a, b, out, accumulate)                               out[k] (+)= a[k] @ b[k], 36 planes,
//                                                             full fp32 (no precision argument:
//                                                             policy "ieee" of precision.h)
//   default_chunk_bytes()
#pragma once

#include <ATen/ATen.h>
#include <c10/core/DeviceGuard.h>
#include <torch/library.h>

#include <algorithm>
#include <array>

#include "common/checks.h"
#include "common/winograd_math.h"

namespace pytexsynth {
namespace winograd {

inline int64_t tiles_along(int64_t n) { return (n + kOut - 1) / kOut; }

inline void check_dtype(const at::Tensor& t, const char* arg) {
  // F(4x4, 3x3) multiplies by up to 8 and 25 before cancelling: fine in float32, too lossy in
  // half precision (use F.conv2d there, as pytexsynth's VGG does on the GPU).
  TORCH_CHECK(t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble, "winograd_conv3x3: ", arg,
              " must be float32 or float64 (Winograd F(4x4, 3x3) is too inexact in half precision), got ",
              t.scalar_type());
}

inline Geometry check_forward_args(const at::Tensor& x, const at::Tensor& U, const c10::optional<at::Tensor>& bias,
                                   int64_t padding, int64_t chunk_bytes) {
  TORCH_CHECK(x.dim() == 4, "winograd_conv3x3: x must be an (N, C, H, W) tensor, got shape ", shape_str(x));
  TORCH_CHECK(U.dim() == 3 && U.size(0) == kPlanes,
              "winograd_conv3x3: U must be (36, C_in, C_out), the output of pytexsynth.ops.winograd_weight, got shape ",
              shape_str(U));
  TORCH_CHECK(U.size(1) == x.size(1), "winograd_conv3x3: U is for ", U.size(1), " input channels but x has ",
              x.size(1), " (x shape ", shape_str(x), ", U shape ", shape_str(U), ")");
  check_dtype(x, "x");
  TORCH_CHECK(U.scalar_type() == x.scalar_type(), "winograd_conv3x3: U must have x's dtype ", x.scalar_type(),
              ", got ", U.scalar_type());
  check_same_device(x, U, "winograd_conv3x3", "x", "U");
  if (bias.has_value() && bias->defined()) {
    TORCH_CHECK(bias->dim() == 1 && bias->size(0) == U.size(2), "winograd_conv3x3: bias must be (", U.size(2),
                ",), one value per output channel, got shape ", shape_str(*bias));
    TORCH_CHECK(bias->scalar_type() == x.scalar_type(), "winograd_conv3x3: bias must have x's dtype ",
                x.scalar_type(), ", got ", bias->scalar_type());
    check_same_device(x, *bias, "winograd_conv3x3", "x", "bias");
  }
  TORCH_CHECK(padding == 0 || padding == 1, "winograd_conv3x3: padding must be 0 or 1, got ", padding);
  TORCH_CHECK(chunk_bytes >= 0, "winograd_conv3x3: chunk_bytes must be >= 0 (0: the default), got ", chunk_bytes);
  Geometry g;
  g.N = x.size(0); g.C = x.size(1); g.H = x.size(2); g.W = x.size(3);
  g.Cout = U.size(2);
  g.pad = padding;
  g.Ho = g.H + 2 * padding - 2;
  g.Wo = g.W + 2 * padding - 2;
  TORCH_CHECK(g.Ho >= 1 && g.Wo >= 1, "winograd_conv3x3: x of height and width ", g.H, "x", g.W,
              " is smaller than the 3x3 kernel with padding ", padding);
  g.TH = tiles_along(g.Ho);
  g.TW = tiles_along(g.Wo);
  return g;
}

// Tile rows per chunk: V and M of one chunk in about chunk_bytes.
inline int64_t rows_per_chunk(const Geometry& g, int64_t chunk_bytes, int64_t elem_size) {
  const int64_t row_bytes = g.TW * kPlanes * (g.C + g.Cout) * elem_size;
  return std::max<int64_t>(1, std::min<int64_t>(g.rows(), chunk_bytes / std::max<int64_t>(1, row_bytes)));
}

template <class Backend>
at::Tensor forward(const at::Tensor& x_in, const at::Tensor& U_in, const c10::optional<at::Tensor>& bias_in,
                   int64_t padding, int64_t chunk_bytes) {
  const Geometry g = check_forward_args(x_in, U_in, bias_in, padding, chunk_bytes);
  const c10::DeviceGuard guard(x_in.device());  // kernels launch on x's GPU
  const auto x = x_in.contiguous(at::MemoryFormat::ChannelsLast);
  const auto U = U_in.contiguous();
  at::Tensor bias;
  if (bias_in.has_value() && bias_in->defined()) bias = bias_in->contiguous();
  auto y = at::empty({g.N, g.Cout, g.Ho, g.Wo}, x.options().memory_format(at::MemoryFormat::ChannelsLast));
  if (y.numel() == 0) return y;
  if (g.C == 0) {  // an empty sum: the bias alone
    if (bias.defined()) y.copy_(bias.view({1, g.Cout, 1, 1}).expand_as(y));
    else y.zero_();
    return y;
  }
  const int64_t rpc = rows_per_chunk(g, chunk_bytes > 0 ? chunk_bytes : Backend::default_chunk_bytes(), x.element_size());
  auto V = at::empty({kPlanes, rpc * g.TW, g.C}, x.options());
  auto M = at::empty({kPlanes, rpc * g.TW, g.Cout}, x.options());
  for (int64_t r0 = 0; r0 < g.rows(); r0 += rpc) {
    const int64_t r1 = std::min(g.rows(), r0 + rpc);
    auto v = V.narrow(1, 0, (r1 - r0) * g.TW);
    auto m = M.narrow(1, 0, (r1 - r0) * g.TW);
    Backend::template transform<Step::kInput>(x, v, v, at::Tensor(), g, r0, r1);
    Backend::gemm(v, U, m, /*accumulate=*/false);
    Backend::template transform<Step::kOutput>(m, y, m, bias, g, r0, r1);
  }
  return y;
}

// The forward and backward have the schemas' signatures (register_kernels). backward returns
// (grad_x, grad_U); an entry whose output_mask is false is an empty (0,) tensor.
template <class Backend>
std::tuple<at::Tensor, at::Tensor> backward(const at::Tensor& grad_out, const at::Tensor& x_in, const at::Tensor& U_in,
                                            int64_t padding, int64_t chunk_bytes, std::array<bool, 2> output_mask) {
  const Geometry g = check_forward_args(x_in, U_in, c10::nullopt, padding, chunk_bytes);
  TORCH_CHECK(grad_out.dim() == 4 && grad_out.size(0) == g.N && grad_out.size(1) == g.Cout &&
                  grad_out.size(2) == g.Ho && grad_out.size(3) == g.Wo,
              "winograd_conv3x3 backward: grad_output must be (", g.N, ", ", g.Cout, ", ", g.Ho, ", ", g.Wo,
              "), got shape ", shape_str(grad_out));
  TORCH_CHECK(grad_out.scalar_type() == x_in.scalar_type(), "winograd_conv3x3 backward: grad_output must have x's dtype ",
              x_in.scalar_type(), ", got ", grad_out.scalar_type());
  check_same_device(grad_out, x_in, "winograd_conv3x3 backward", "grad_output", "x");
  const c10::DeviceGuard guard(x_in.device());
  const auto x = x_in.contiguous(at::MemoryFormat::ChannelsLast);
  const auto U = U_in.contiguous();
  const auto dy = grad_out.contiguous(at::MemoryFormat::ChannelsLast);
  auto dx = output_mask[0] ? at::empty({g.N, g.C, g.H, g.W}, x.options().memory_format(at::MemoryFormat::ChannelsLast)).zero_()
                           : at::empty({0}, x.options());
  auto dU = output_mask[1] ? at::zeros_like(U) : at::empty({0}, x.options());
  if ((!output_mask[0] && !output_mask[1]) || dy.numel() == 0 || g.C == 0) return {dx, dU};
  const int64_t rpc = rows_per_chunk(g, chunk_bytes > 0 ? chunk_bytes : Backend::default_chunk_bytes(), x.element_size());
  auto V = at::empty({kPlanes, rpc * g.TW, g.C}, x.options());
  auto M = at::empty({kPlanes, rpc * g.TW, g.Cout}, x.options());
  const auto Ut = U.transpose(1, 2);
  for (int64_t r0 = 0; r0 < g.rows(); r0 += rpc) {
    const int64_t r1 = std::min(g.rows(), r0 + rpc);
    auto v = V.narrow(1, 0, (r1 - r0) * g.TW);
    auto dm = M.narrow(1, 0, (r1 - r0) * g.TW);
    Backend::template transform<Step::kOutputAdjoint>(dy, dm, dm, at::Tensor(), g, r0, r1);
    if (output_mask[1]) {
      Backend::template transform<Step::kInput>(x, v, v, at::Tensor(), g, r0, r1);
      Backend::gemm(v.transpose(1, 2), dm, dU, /*accumulate=*/true);
    }
    if (output_mask[0]) {
      Backend::gemm(dm, Ut, v, /*accumulate=*/false);  // v now holds dV
      Backend::template transform<Step::kInputAdjoint>(v, dx, v, at::Tensor(), g, r0, r1);
    }
  }
  return {dx, dU};
}

template <class Backend>
void register_kernels(torch::Library& m) {
  m.impl("winograd_conv3x3", &forward<Backend>);
  m.impl("_winograd_conv3x3_backward", &backward<Backend>);
}

}  // namespace winograd
}  // namespace pytexsynth
