// Host side of style_swap, shared by the CPU and CUDA kernels: argument checks, the band
// plan that bounds memory, the matching driver (a backend's GEMM per band + its running-argmax
// kernel), the inverted matches (CSR) the style gradient gathers from, and the three entry
// points over a backend.
//
// Memory: the driver never holds more than one band of scores (or of the pixel-level product)
// at a time, chosen to fit `budget_bytes`, plus one unfolded band of content and style
// patches, the style-patch norms and the running (max, argmax) of every content patch.
#pragma once

#include <ATen/ATen.h>
#include <c10/core/DeviceGuard.h>
#include <torch/library.h>

#include <algorithm>
#include <limits>
#include <string>
#include <tuple>

#include "common/checks.h"
#include "common/no_autocast.h"
#include "common/precision.h"
#include "common/style_swap_math.h"

namespace pytexsynth {
namespace style_swap {

enum class Method { Auto, Patch, Pixel };

inline Method parse_method(c10::string_view m) {
  if (m == "auto") return Method::Auto;
  if (m == "patch") return Method::Patch;
  if (m == "pixel") return Method::Pixel;
  TORCH_CHECK(false, "style_swap: method must be 'auto', 'patch' or 'pixel', got '", std::string(m), "'");
}

inline void check_patch_args(int64_t patch_size, int64_t stride, const char* op) {
  TORCH_CHECK(patch_size >= 1, op, ": patch_size must be >= 1, got ", patch_size);
  TORCH_CHECK(stride >= 1, op, ": stride must be >= 1, got ", stride);
}

inline void check_fits(int64_t h, int64_t w, int64_t k, const char* op, const char* what) {
  TORCH_CHECK(k <= h && k <= w, op, ": patch_size=", k, " is larger than the ", what, " map (", h, "x", w, ")");
}

inline Geometry make_geometry(int64_t C, int64_t H, int64_t W, int64_t Hs, int64_t Ws, int64_t k, int64_t s) {
  Geometry g;
  g.C = C; g.H = H; g.W = W; g.Hs = Hs; g.Ws = Ws; g.k = k; g.s = s;
  g.nH = (H - k) / s + 1; g.nW = (W - k) / s + 1;
  g.nHs = (Hs - k) / s + 1; g.nWs = (Ws - k) / s + 1;
  return g;
}

inline Geometry check_args(const at::Tensor& content, const at::Tensor& style, int64_t k, int64_t s) {
  const char* op = "style_swap";
  check_dim_in(content, {4}, op, "content", "4-D (B, C, H, W)");
  check_dim_in(style, {4}, op, "style", "4-D (B, C, H, W)");
  check_floating(content, op, "content");
  check_floating(style, op, "style");
  TORCH_CHECK(content.scalar_type() == style.scalar_type(), op, ": content and style must have the same dtype, got ",
              content.scalar_type(), " and ", style.scalar_type());
  check_same_device(content, style, op, "content", "style");
  TORCH_CHECK(style.size(0) == 1 || style.size(0) == content.size(0), op,
              ": style must have batch size 1 or the content's batch size ", content.size(0), ", got ", style.size(0));
  TORCH_CHECK(content.size(1) == style.size(1), op, ": content has ", content.size(1), " channels but style has ",
              style.size(1), "; they must match");
  TORCH_CHECK(content.size(1) >= 1, op, ": content and style need at least one channel");
  check_patch_args(k, s, op);
  check_fits(content.size(2), content.size(3), k, op, "content");
  check_fits(style.size(2), style.size(3), k, op, "style");
  return make_geometry(content.size(1), content.size(2), content.size(3), style.size(2), style.size(3), k, s);
}

// Checks (indices, sizes) of the decode and backward ops against one another.
inline Geometry check_indices(const at::Tensor& indices, int64_t B, int64_t C, int64_t H, int64_t W, int64_t Bs,
                              int64_t Hs, int64_t Ws, int64_t k, int64_t s, const char* op) {
  check_patch_args(k, s, op);
  check_fits(H, W, k, op, "content");
  check_fits(Hs, Ws, k, op, "style");
  TORCH_CHECK(indices.scalar_type() == at::kLong, op, ": indices must be int64, got ", indices.scalar_type());
  TORCH_CHECK(Bs == 1 || Bs == B, op, ": style batch ", Bs, " must be 1 or the content batch ", B);
  const Geometry g = make_geometry(C, H, W, Hs, Ws, k, s);
  TORCH_CHECK(indices.dim() == 3 && indices.size(0) == B && indices.size(1) == g.nH && indices.size(2) == g.nW, op,
              ": indices must have shape [", B, ", ", g.nH, ", ", g.nW, "], got ", shape_str(indices));
  if (indices.numel() > 0) {
    // Every index is read as an offset into the style: one out of range would read (or, in the
    // backward, gather from) memory outside it. One small reduction and a host read per call;
    // the style_swap op itself decodes the indices it made without this check.
    const auto range = at::aminmax(indices);
    const int64_t lo = std::get<0>(range).item<int64_t>(), hi = std::get<1>(range).item<int64_t>();
    TORCH_CHECK(lo >= 0 && hi < g.ns(), op, ": indices must be in [0, ", g.ns(), ") (the style's ", g.nHs, "x",
                g.nWs, " patches), got values from ", lo, " to ", hi);
  }
  return g;
}

// ---- band plan --------------------------------------------------------------------------

// The arguments of the style_swap op, checked the same way on every device.
struct Request {
  Geometry g;
  Precision precision;
  Method method;
  int64_t band_bytes;  // score-band budget; 0 asks for the device's default
};

inline Request check_request(const at::Tensor& content, const at::Tensor& style, int64_t patch_size, int64_t stride,
                             c10::string_view precision, c10::string_view method, int64_t band_bytes,
                             int64_t default_band_bytes) {
  Request r;
  r.g = check_args(content, style, patch_size, stride);
  r.precision = parse_precision(precision, "style_swap");
  r.method = parse_method(method);
  TORCH_CHECK(band_bytes >= 0, "style_swap: band_bytes must be >= 0 (0: default), got ", band_bytes);
  r.band_bytes = band_bytes > 0 ? band_bytes : default_band_bytes;
  return r;
}

// style_swap's result for an empty batch: nothing to match.
inline std::tuple<at::Tensor, at::Tensor> empty_result(const at::Tensor& content, const Geometry& g) {
  return {at::empty({0, g.C, g.H, g.W}, content.options().memory_format(output_memory_format(content))),
          at::empty({0, g.nH, g.nW}, content.options().dtype(at::kLong))};
}

inline Geometry check_decode_args(const at::Tensor& style, const at::Tensor& indices, int64_t height, int64_t width,
                                  int64_t patch_size, int64_t stride, const char* op) {
  check_dim_in(style, {4}, op, "style", "4-D (B, C, H, W)");
  check_floating(style, op, "style");
  check_same_device(style, indices, op, "style", "indices");
  const int64_t B = indices.dim() > 0 ? indices.size(0) : 0;
  return check_indices(indices, B, style.size(1), height, width, style.size(0), style.size(2), style.size(3),
                       patch_size, stride, op);
}

inline Geometry check_backward_args(const at::Tensor& grad_output, const at::Tensor& indices,
                                    at::IntArrayRef style_size, int64_t patch_size, int64_t stride, const char* op) {
  check_dim_in(grad_output, {4}, op, "grad_output", "4-D (B, C, H, W)");
  check_floating(grad_output, op, "grad_output");
  check_same_device(grad_output, indices, op, "grad_output", "indices");
  TORCH_CHECK(style_size.size() == 4, op, ": style_size must have 4 entries, got ", style_size);
  TORCH_CHECK(style_size[1] == grad_output.size(1), op, ": style_size ", style_size, " has ", style_size[1],
              " channels but grad_output has ", grad_output.size(1));
  return check_indices(indices, grad_output.size(0), grad_output.size(1), grad_output.size(2), grad_output.size(3),
                       style_size[0], style_size[2], style_size[3], patch_size, stride, op);
}

// Rows of content patches and of style patches handled per GEMM. pixel: the GEMM is over
// pixels (a band of bi patch rows spans (bi - 1) * s + k pixel rows); patch: over unfolded
// patches (C*k*k rows each). Bands are as large as the budget allows.
struct Plan {
  bool pixel;
  int64_t content_rows;  // patch rows per content band
  int64_t style_rows;    // patch rows per style band
};

inline Plan make_plan(const Geometry& g, Method method, int64_t budget_elems) {
  // Cost per (content patch, style patch) pair, in multiply-adds: the unfolded GEMM does
  // C*k*k of them; the pixel GEMM C per pixel pair, (H*W / nc) * (Hs*Ws / ns) pixel pairs per
  // patch pair, plus k*k loads to assemble each score (weighted like ~4 multiply-adds each).
  const double D = double(g.C) * g.k * g.k;
  const double pix_pairs = (double(g.H) * g.W / g.nc()) * (double(g.Hs) * g.Ws / g.ns());
  const double pixel_cost = pix_pairs * g.C + 4.0 * g.k * g.k;
  Plan plan;
  plan.pixel = method == Method::Pixel || (method == Method::Auto && pixel_cost < D);
  auto rows = [&](int64_t bi) { return plan.pixel ? ((bi - 1) * g.s + g.k) * g.W : bi * g.nW; };
  auto cols = [&](int64_t bp) { return plan.pixel ? ((bp - 1) * g.s + g.k) * g.Ws : bp * g.nWs; };
  // The unfolded patch bands (C*k*k x rows or cols) count against the budget too.
  const int64_t depth = plan.pixel ? 0 : int64_t(D);
  auto cost = [&](int64_t bi, int64_t bp) { return rows(bi) * std::max(cols(bp), depth) + cols(bp) * depth; };
  const int64_t min_rows = std::min<int64_t>(g.nH, 8);
  int64_t bp = g.nHs;
  while (bp > 1 && cost(min_rows, bp) > budget_elems) bp = (bp + 1) / 2;
  int64_t bi = g.nH;
  while (bi > 1 && cost(bi, bp) > budget_elems) bi = std::max<int64_t>(1, bi * 3 / 4);
  plan.content_rows = bi;
  plan.style_rows = bp;
  return plan;
}

// ---- matching driver ----------------------------------------------------------------------

// Backend must provide:
//   static int64_t default_band_bytes(): the score-band budget when band_bytes is 0;
//   at::Tensor gemm(const at::Tensor& a, const at::Tensor& b, Precision p): a @ b in the
//       working dtype (float or double), under the policy of precision.h;
//   void combine_scores(const at::Tensor& scores, const at::Tensor& inv_norm, at::Tensor& best,
//       at::Tensor& best_index, int64_t row0, int64_t col0): running argmax over the columns
//       of a (rows x cols) block of raw patch dot products times inv_norm[col0 + c], for
//       content patches row0.. and style patches col0..;
// Both normalise after the GEMM (raw dot * 1 / norm), so equal style patches give bitwise
// equal scores whenever their dot products are exact, and exact ties reach the tie rule.
//   void combine_pixels(const at::Tensor& M, const at::Tensor& inv_norm, at::Tensor& best,
//       at::Tensor& best_index, const Geometry& g, int64_t b, int64_t i0, int64_t i1,
//       int64_t p0, int64_t p1): the same from a block of the pixel-level product;
//   void decode_patches(const at::Tensor& style, const at::Tensor& indices, const Geometry& g,
//       at::Tensor& out): out[b, c, h, w] = decode_value(...) (out non-empty, indices contiguous);
//   void style_grad(const at::Tensor& grad, const InvertedMatches& inv, const Geometry& g,
//       at::Tensor& out): out[bs, c, y, x] = style_grad_value(...) (out and grad non-empty).
template <class Backend>
at::Tensor match(const at::Tensor& content_in, const at::Tensor& style_in, const Geometry& g, Precision precision,
                 Method method, int64_t budget_bytes) {
  const NoAutocast no_autocast;  // the GEMMs below run in the working dtype
  const auto work = content_in.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  if (work == at::kDouble) precision = Precision::kIEEE;  // float64 runs in float64 (precision.h)
  const at::Tensor content = content_in.to(work).contiguous();
  const at::Tensor style = style_in.to(work).contiguous();
  const int64_t B = content.size(0), Bs = style.size(0), k = g.k, s = g.s;
  const int64_t nc = g.nc();

  // 1 / (||style patch|| + 1e-8) for every style patch: the box sum of the squared pixels.
  const at::Tensor sq = style.square().sum(1, /*keepdim=*/true);
  const at::Tensor inv_norm =
      at::im2col(sq, {k, k}, {1, 1}, {0, 0}, {s, s}).sum(1).sqrt_().add_(1e-8).reciprocal_();  // (Bs, ns)

  at::Tensor best = at::full({B * nc}, -std::numeric_limits<double>::infinity(), content.options());
  at::Tensor best_index = at::zeros({B * nc}, content.options().dtype(at::kLong));

  const int64_t elem = work == at::kDouble ? 8 : 4;
  const Plan plan = make_plan(g, method, std::max<int64_t>(budget_bytes / elem, 1));

  for (int64_t bs = 0; bs < Bs; ++bs) {
    // Style bands in increasing index order: the strict update keeps the first maximum.
    for (int64_t p0 = 0; p0 < g.nHs; p0 += plan.style_rows) {
      const int64_t p1 = std::min(p0 + plan.style_rows, g.nHs);
      const at::Tensor style_rows = style.select(0, bs).narrow(1, p0 * s, (p1 - 1) * s + k - p0 * s);
      at::Tensor bank;  // (depth, cols)
      if (plan.pixel) {
        bank = style_rows.reshape({g.C, -1});
      } else {
        bank = at::im2col(style_rows.unsqueeze(0), {k, k}, {1, 1}, {0, 0}, {s, s}).squeeze(0);
      }
      for (int64_t b = 0; b < B; ++b) {
        if (Bs != 1 && b != bs) continue;
        for (int64_t i0 = 0; i0 < g.nH; i0 += plan.content_rows) {
          const int64_t i1 = std::min(i0 + plan.content_rows, g.nH);
          const at::Tensor content_rows = content.select(0, b).narrow(1, i0 * s, (i1 - 1) * s + k - i0 * s);
          if (plan.pixel) {
            const at::Tensor M = Backend::gemm(content_rows.reshape({g.C, -1}).t(), bank, precision);
            Backend::combine_pixels(M, inv_norm.select(0, bs), best, best_index, g, b, i0, i1, p0, p1);
          } else {
            const at::Tensor patches =
                at::im2col(content_rows.unsqueeze(0), {k, k}, {1, 1}, {0, 0}, {s, s}).squeeze(0);
            const at::Tensor scores = Backend::gemm(patches.t(), bank, precision);
            Backend::combine_scores(scores, inv_norm.select(0, bs), best, best_index, b * nc + i0 * g.nW,
                                    p0 * g.nWs);
          }
        }
      }
    }
  }
  return best_index.view({B, g.nH, g.nW});
}

// The matches inverted: for style patch m of style image bs (bank id bs * ns + m), the content
// patches that chose it are members[offsets[id] : offsets[id + 1]], in increasing order (a
// stable sort of integer keys: deterministic, no float atomics).
struct InvertedMatches {
  at::Tensor offsets;  // (Bs * ns + 1,) int64
  at::Tensor members;  // (B * nc,) int64 linear content-patch ids
};

inline InvertedMatches invert_matches(const at::Tensor& indices, int64_t Bs, int64_t ns) {
  const int64_t B = indices.size(0);
  at::Tensor keys = indices.reshape({B, -1});
  if (Bs != 1) keys = keys + at::arange(B, keys.options()).mul_(ns).unsqueeze(1);
  keys = keys.reshape({-1});
  auto [sorted, order] = at::sort(keys, /*stable=*/true, /*dim=*/0, /*descending=*/false);
  InvertedMatches inv;
  inv.offsets = at::searchsorted(sorted, at::arange(Bs * ns + 1, keys.options()));
  inv.members = order;
  return inv;
}

// ---- entry points ---------------------------------------------------------------------------

// The decode into a new (B, C, H, W) tensor of the given layout.
template <class Backend>
at::Tensor decoded(const at::Tensor& style, const at::Tensor& indices, const Geometry& g, int64_t B,
                   at::MemoryFormat format) {
  at::Tensor out = at::empty({B, g.C, g.H, g.W}, style.options().memory_format(format));
  if (out.numel() == 0) return out;
  Backend::decode_patches(style, indices.contiguous(), g, out);
  return out;
}

template <class Backend>
std::tuple<at::Tensor, at::Tensor> forward(const at::Tensor& content, const at::Tensor& style, int64_t patch_size,
                                           int64_t stride, c10::string_view precision, c10::string_view method,
                                           int64_t band_bytes) {
  const Request r = check_request(content, style, patch_size, stride, precision, method, band_bytes,
                                  Backend::default_band_bytes());
  const c10::DeviceGuard guard(content.device());
  const int64_t B = content.size(0);
  if (B == 0) return empty_result(content, r.g);
  const at::Tensor indices = match<Backend>(content, style, r.g, r.precision, r.method, r.band_bytes);
  return {decoded<Backend>(style, indices, r.g, B, output_memory_format(content)), indices};
}

template <class Backend>
at::Tensor decode(const at::Tensor& style, const at::Tensor& indices, int64_t height, int64_t width,
                  int64_t patch_size, int64_t stride) {
  const Geometry g = check_decode_args(style, indices, height, width, patch_size, stride, "_style_swap_decode");
  const c10::DeviceGuard guard(style.device());
  return decoded<Backend>(style, indices, g, indices.size(0), output_memory_format(style));
}

template <class Backend>
at::Tensor backward(const at::Tensor& grad_output, const at::Tensor& indices, at::IntArrayRef style_size,
                    int64_t patch_size, int64_t stride) {
  const Geometry g =
      check_backward_args(grad_output, indices, style_size, patch_size, stride, "_style_swap_backward");
  const c10::DeviceGuard guard(grad_output.device());
  const int64_t Bs = style_size[0];
  at::Tensor out = at::empty({Bs, g.C, g.Hs, g.Ws},
                             grad_output.options().memory_format(output_memory_format(grad_output)));
  if (out.numel() == 0) return out;
  if (grad_output.size(0) == 0) return out.zero_();
  Backend::style_grad(grad_output, invert_matches(indices, Bs, g.ns()), g, out);
  return out;
}

template <class Backend>
void register_kernels(torch::Library& m) {
  m.impl("style_swap", &forward<Backend>);
  m.impl("_style_swap_decode", &decode<Backend>);
  m.impl("_style_swap_backward", &backward<Backend>);
}

}  // namespace style_swap
}  // namespace pytexsynth
