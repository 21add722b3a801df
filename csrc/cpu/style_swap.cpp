// style_swap on the CPU: band GEMMs through ATen (MKL/oneDNN), then the running argmax of
// style_swap_math.h over each band with at::parallel_for over content patches; decode and
// style gradient as gathers over output elements. Same functions as the CUDA kernels.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <type_traits>
#include <vector>

#include "common/style_swap.h"

namespace pytexsynth {
namespace style_swap {
namespace {

// Interleaved argmax lanes per scan (independent compare-select chains).
constexpr int kLanes = 8;

struct CpuBackend {
  // Score blocks of 32 MB stay in the last-level cache's neighbourhood and keep the GEMMs large.
  static int64_t default_band_bytes() { return int64_t(32) << 20; }

  // No tensor cores here: "tf32" runs the exact fp32 GEMM; "bf16" rounds the operands to
  // bfloat16 and multiplies them in fp32 (what a bf16 GEMM with fp32 accumulation computes).
  static at::Tensor gemm(const at::Tensor& a, const at::Tensor& b, Precision p) {
    if (p == Precision::kBF16) {
      return at::mm(a.to(at::kBFloat16).to(at::kFloat), b.to(at::kBFloat16).to(at::kFloat));
    }
    return at::mm(a, b);
  }

  static void combine_scores(const at::Tensor& scores, const at::Tensor& inv_norm, at::Tensor& best,
                             at::Tensor& best_index, int64_t row0, int64_t col0) {
    const int64_t rows = scores.size(0), cols = scores.size(1), ld = scores.stride(0);
    // Rows are read as contiguous runs: the GEMM's output must have unit column stride.
    TORCH_CHECK(cols <= 1 || scores.stride(1) == 1, "style_swap: the score band has column stride ", scores.stride(1),
                "; expected 1");
    AT_DISPATCH_FLOATING_TYPES(scores.scalar_type(), "style_swap_combine_scores_cpu", [&] {
      const scalar_t* S = scores.const_data_ptr<scalar_t>();
      const scalar_t* inv = inv_norm.const_data_ptr<scalar_t>() + col0;
      scalar_t* bv = best.mutable_data_ptr<scalar_t>() + row0;
      int64_t* bi = best_index.mutable_data_ptr<int64_t>() + row0;
      at::parallel_for(0, rows, std::max<int64_t>(1, 65536 / std::max<int64_t>(cols, 1)), [&](int64_t r0, int64_t r1) {
        std::vector<scalar_t> buf(cols);
        for (int64_t r = r0; r < r1; ++r) {
          const scalar_t* row = S + r * ld;
          for (int64_t c = 0; c < cols; ++c) buf[c] = normalized_score(row[c], inv[c]);
          scan_best<kLanes>(buf.data(), cols, col0, bv[r], bi[r]);
        }
      });
    });
  }

  static void combine_pixels(const at::Tensor& M, const at::Tensor& inv_norm, at::Tensor& best,
                             at::Tensor& best_index, const Geometry& g, int64_t b, int64_t i0, int64_t i1, int64_t p0,
                             int64_t p1) {
    const int64_t ld = M.stride(0);
    TORCH_CHECK(M.size(1) <= 1 || M.stride(1) == 1, "style_swap: the pixel product has column stride ", M.stride(1),
                "; expected 1");
    const int64_t n_rows = (i1 - i0) * g.nW;
    AT_DISPATCH_FLOATING_TYPES(M.scalar_type(), "style_swap_combine_pixels_cpu", [&] {
      const scalar_t* Mp = M.const_data_ptr<scalar_t>();
      const scalar_t* inv = inv_norm.const_data_ptr<scalar_t>();
      scalar_t* bv = best.mutable_data_ptr<scalar_t>() + b * g.nc() + i0 * g.nW;
      int64_t* bi = best_index.mutable_data_ptr<int64_t>() + b * g.nc() + i0 * g.nW;
      const int64_t work_per_row = (p1 - p0) * g.nWs * g.k * g.k;
      // Scores of one style row into a buffer (a loop the compiler vectorises when k and s are
      // fixed), then the sequential argmax scan: the same sums in the same order as the GPU.
      auto run = [&](auto k_tag, auto s_tag) {
        constexpr int K = decltype(k_tag)::value;
        constexpr int S = decltype(s_tag)::value;
        const int64_t s = S > 0 ? S : g.s;
        at::parallel_for(0, n_rows, std::max<int64_t>(1, 65536 / std::max<int64_t>(work_per_row, 1)),
                         [&](int64_t r0, int64_t r1) {
          std::vector<scalar_t> buf(g.nWs);
          for (int64_t r = r0; r < r1; ++r) {
            const int64_t i = r / g.nW, j = r - i * g.nW;  // i relative to i0
            const int64_t row = i * s * g.W + j * s;
            scalar_t v = bv[r];
            int64_t ix = bi[r];
            for (int64_t p = p0; p < p1; ++p) {
              const int64_t col_p = (p - p0) * s * g.Ws;
              const scalar_t* inv_p = inv + p * g.nWs;
              for (int64_t q = 0; q < g.nWs; ++q) {
                buf[q] = normalized_score(
                    pixel_block_score<K>(Mp, ld, row, col_p + q * s, g.W, g.Ws, g.k), inv_p[q]);
              }
              scan_best<kLanes>(buf.data(), g.nWs, p * g.nWs, v, ix);
            }
            bv[r] = v;
            bi[r] = ix;
          }
        });
      };
      using I0 = std::integral_constant<int, 0>;
      if (g.k == 3 && g.s == 1) {
        run(std::integral_constant<int, 3>{}, std::integral_constant<int, 1>{});
      } else {
        run(I0{}, I0{});
      }
    });
  }

  // out[b, c, h, w] = decode_value(...) for every element, parallel over (b, c) planes.
  static void decode_patches(const at::Tensor& style, const at::Tensor& idx, const Geometry& g, at::Tensor& out) {
    const int64_t B = out.size(0), Bs = style.size(0);
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, style.scalar_type(), "style_swap_decode_cpu", [&] {
      using acc_t = at::opmath_type<scalar_t>;
      const scalar_t* S = style.const_data_ptr<scalar_t>();
      const int64_t* I = idx.const_data_ptr<int64_t>();
      scalar_t* O = out.mutable_data_ptr<scalar_t>();
      const int64_t sSb = Bs == 1 ? 0 : style.stride(0), sSc = style.stride(1), sSh = style.stride(2),
                    sSw = style.stride(3);
      const int64_t sOb = out.stride(0), sOc = out.stride(1), sOh = out.stride(2), sOw = out.stride(3);
      at::parallel_for(0, B * g.C, std::max<int64_t>(1, 16384 / (g.H * g.W)), [&](int64_t l0, int64_t l1) {
        for (int64_t l = l0; l < l1; ++l) {
          const int64_t b = l / g.C, c = l - b * g.C;
          const scalar_t* s_plane = S + b * sSb + c * sSc;
          const int64_t* i_plane = I + b * g.nc();
          scalar_t* o_plane = O + b * sOb + c * sOc;
          for (int64_t h = 0; h < g.H; ++h) {
            for (int64_t w = 0; w < g.W; ++w) {
              o_plane[h * sOh + w * sOw] = static_cast<scalar_t>(
                  decode_value<acc_t>(s_plane, sSh, sSw, i_plane, g.nW, 1, h, w, g));
            }
          }
        }
      });
    });
  }

  // grad_style[bs, c, y, x] = style_grad_value(...), parallel over (bs, c) planes.
  static void style_grad(const at::Tensor& grad, const InvertedMatches& inv, const Geometry& g,
                         at::Tensor& out) {
    const int64_t Bs = out.size(0);
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad.scalar_type(), "style_swap_backward_cpu", [&] {
      using acc_t = at::opmath_type<scalar_t>;
      const scalar_t* G = grad.const_data_ptr<scalar_t>();
      const int64_t* off = inv.offsets.const_data_ptr<int64_t>();
      const int64_t* mem = inv.members.const_data_ptr<int64_t>();
      scalar_t* O = out.mutable_data_ptr<scalar_t>();
      const int64_t sGb = grad.stride(0), sGc = grad.stride(1), sGh = grad.stride(2), sGw = grad.stride(3);
      const int64_t sOb = out.stride(0), sOc = out.stride(1), sOh = out.stride(2), sOw = out.stride(3);
      at::parallel_for(0, Bs * g.C, 1, [&](int64_t l0, int64_t l1) {
        for (int64_t l = l0; l < l1; ++l) {
          const int64_t bs = l / g.C, c = l - bs * g.C;
          scalar_t* o_plane = O + bs * sOb + c * sOc;
          for (int64_t y = 0; y < g.Hs; ++y) {
            for (int64_t x = 0; x < g.Ws; ++x) {
              o_plane[y * sOh + x * sOw] = static_cast<scalar_t>(style_grad_value<acc_t>(
                  G + c * sGc, sGb, sGh, sGw, off, mem, bs * g.ns(), y, x, g));
            }
          }
        }
      });
    });
  }
};

}  // namespace

TORCH_LIBRARY_IMPL(pytexsynth, CPU, m) { register_kernels<CpuBackend>(m); }

}  // namespace style_swap
}  // namespace pytexsynth
