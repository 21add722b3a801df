// gram / gram_loss / gram_loss_multi on the CPU. The forward runs the tile schedule of
// gram_math.h: one ATen GEMM (MKL/OpenBLAS) per upper-triangle tile pair and H*W chunk, all items
// of all layers in one at::parallel_for, into a workspace of partial products; then the fused
// epilogue (chunk sums in order, mirror, D = G - T, squared error) in at::parallel_for over rows.
// Backward is one GEMM S F per layer.
//
// The loss is reduced per row (b, i) in a fixed order, then over rows in order, then over layers
// in order: the same bits on every run. Against bmm + mse_loss autograd this saves
// one of the three GEMMs (the reference's backward multiplies twice), the lower-triangle tiles of
// the forward, and the elementwise passes.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/ThreadLocalState.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <vector>

#include "common/gram.h"
#include "common/no_autocast.h"

namespace pytexsynth {
namespace gram {
namespace {

// One layer's forward state: F in the accumulation dtype (dense in its layout), its schedule and
// the workspace of partial products.
struct Layer {
  Features f;
  at::Tensor F;
  Schedule s;
  at::Tensor work;
};

Layer prepare(const at::Tensor& x, Precision p) {
  Layer L;
  L.f = features(x, operand_type(x.scalar_type(), p));
  const at::ScalarType acc = acc_type(x);
  // Detached: the GEMMs run on worker threads, below autograd.
  L.F = (L.f.data.scalar_type() == acc ? L.f.data : L.f.data.to(acc)).detach();
  L.s = cpu_schedule(L.f.B, L.f.C, L.f.n);
  const auto opts = x.options().dtype(acc);
  L.work = L.f.n == 0 ? at::zeros({L.s.workspace()}, opts) : at::empty({L.s.workspace()}, opts);
  return L;
}

// Item w of L's schedule: the (rows x klen) and (cols x klen) blocks of F, read in place through
// the offsets and strides of gram_math.h, multiplied into the item's workspace slot.
void run_item(const Layer& L, int64_t w) {
  const Schedule& s = L.s;
  const TileItem it = s.item(w);
  const bool cl = L.f.channels_last;
  const int64_t base = L.F.storage_offset() + it.b * s.C * s.n;
  const std::vector<int64_t> strides = cl ? std::vector<int64_t>{1, s.C} : std::vector<int64_t>{s.n, 1};
  const at::Tensor a =
      L.F.as_strided({it.rows, it.klen}, strides, base + feature_offset(cl, s.C, s.n, it.row0, it.k0));
  const at::Tensor b =
      L.F.as_strided({it.cols, it.klen}, strides, base + feature_offset(cl, s.C, s.n, it.col0, it.k0));
  at::Tensor out = L.work.as_strided({it.rows, it.cols}, {s.tile, 1}, L.work.storage_offset() + w * s.slot());
  at::mm_out(out, a, b.t());
}

// Every GEMM item of every layer, in one parallel loop. Items are independent and each writes
// only its own slot, so the result does not depend on how they are spread over threads. Threads
// take the next item from a shared counter rather than a fixed range: on a machine shared with
// other jobs a descheduled thread then delays the others by at most one item.
void run_products(std::vector<Layer>& layers) {
  std::vector<std::pair<size_t, int64_t>> items;
  for (size_t l = 0; l < layers.size(); ++l) {
    if (layers[l].f.n == 0) continue;  // workspace already zero
    for (int64_t w = 0; w < layers[l].s.items(); ++w) items.emplace_back(l, w);
  }
  const int64_t count = static_cast<int64_t>(items.size());
  const int64_t workers = std::min<int64_t>(at::get_num_threads(), count);
  std::atomic<int64_t> next{0};
  const at::ThreadLocalState tls;  // grad / inference mode of the caller, on the worker threads
  at::parallel_for(0, workers, 1, [&](int64_t, int64_t) {
    at::ThreadLocalStateGuard guard(tls);
    for (int64_t k = next++; k < count; k = next++) run_item(layers[items[k].first], items[k].second);
  });
}

int64_t row_grain(int64_t C) { return std::max<int64_t>(1, 4096 / std::max<int64_t>(C, 1)); }

// S[b, i, j] = symmetric_grad(M[b, i, j], M[b, j, i], scale), M read through strides; rounded
// to the GEMM operand dtype (as the GPU's GEMM reads it) and kept in acc.
template <typename m_t, typename acc_t>
at::Tensor symmetric_rows(const m_t* M, int64_t sb, int64_t si, int64_t sj, int64_t B, int64_t C, acc_t scale,
                          const at::TensorOptions& opts, at::ScalarType operand) {
  at::Tensor S = at::empty({B, C, C}, opts);
  acc_t* s = S.mutable_data_ptr<acc_t>();
  at::parallel_for(0, B * C, row_grain(C), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t b = r / C, i = r % C;
      const m_t* Mb = M + b * sb;
      for (int64_t j = 0; j < C; ++j) {
        s[r * C + j] = symmetric_grad(static_cast<acc_t>(Mb[i * si + j * sj]),
                                            static_cast<acc_t>(Mb[j * si + i * sj]), scale);
      }
    }
  });
  return operand == S.scalar_type() ? S : S.to(operand).to(S.scalar_type());
}

// The squared error of row r = (b, i) of one layer's loss: its upper entries tile by tile
// (contiguous partials within each tile), each writing D at (i, j) and (j, i).
template <typename scalar_t, typename acc_t>
acc_t loss_row(const acc_t* work, const Schedule& s, int64_t r, acc_t norm, const scalar_t* target, int64_t tb,
               int64_t ti, int64_t tj, acc_t* diff) {
  const int64_t C = s.C, b = r / C, i = r % C;
  acc_t sq = acc_t(0);
  for (int64_t j0 = i; j0 < C; j0 = s.tile_end(j0)) {
    const acc_t* p = work + s.entry_offset(b, i, j0);
    for (int64_t j = j0, end = s.tile_end(j0); j < end; ++j, ++p) {
      sq += loss_pair_at<acc_t, scalar_t>(p, s, i, j, norm, target + b * tb, ti, tj, diff + b * C * C);
    }
  }
  return sq;
}

struct CpuBackend {
  static void gram(const at::Tensor& x, Precision p, double norm, at::Tensor& out) {
    std::vector<Layer> layers{prepare(x, p)};
    run_products(layers);
    const Schedule& s = layers[0].s;
    const int64_t B = s.B, C = s.C;
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "gram_cpu", [&] {
      using acc_t = at::opmath_type<scalar_t>;
      const acc_t* work = layers[0].work.const_data_ptr<acc_t>();
      scalar_t* o = out.mutable_data_ptr<scalar_t>();
      at::parallel_for(0, B * C, row_grain(C), [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end; ++r) {
          const int64_t b = r / C, i = r % C;
          // Row i's upper entries tile by tile: contiguous partials within each tile.
          for (int64_t j0 = i; j0 < C; j0 = s.tile_end(j0)) {
            const acc_t* pp = work + s.entry_offset(b, i, j0);
            for (int64_t j = j0, end = s.tile_end(j0); j < end; ++j, ++pp) {
              gram_pair_at<scalar_t, acc_t>(pp, s, i, j, static_cast<acc_t>(norm), o + b * C * C);
            }
          }
        }
      });
    });
  }

  // Rows in parallel, then the rows' sums in order, then the layers in order.
  static void loss_layers(at::TensorList xs, at::TensorList targets, const LossArgs& a,
                          std::vector<at::Tensor>& diffs, at::Tensor& loss) {
    std::vector<Layer> layers;
    for (const auto& x : xs) layers.push_back(prepare(x, a.precision));
    run_products(layers);
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, xs[0].scalar_type(), "gram_loss_cpu", [&] {
      using acc_t = at::opmath_type<scalar_t>;
      acc_t total = acc_t(0);
      for (size_t l = 0; l < layers.size(); ++l) {
        const Schedule& s = layers[l].s;
        const acc_t* work = layers[l].work.const_data_ptr<acc_t>();
        acc_t* d = diffs[l].mutable_data_ptr<acc_t>();
        const scalar_t* t = targets[l].const_data_ptr<scalar_t>();
        const int64_t ti = targets[l].stride(-2), tj = targets[l].stride(-1), tb = a.target_sb[l];
        const acc_t norm = static_cast<acc_t>(a.norms[l]);
        std::vector<acc_t> row_sq(s.B * s.C);
        at::parallel_for(0, s.B * s.C, row_grain(s.C), [&](int64_t begin, int64_t end) {
          for (int64_t r = begin; r < end; ++r) row_sq[r] = loss_row(work, s, r, norm, t, tb, ti, tj, d);
        });
        acc_t layer_sq = acc_t(0);
        for (const acc_t v : row_sq) layer_sq += v;
        total += finish_loss(layer_sq, static_cast<acc_t>(s.B * s.C * s.C), static_cast<acc_t>(a.weights[l]));
      }
      *loss.mutable_data_ptr<scalar_t>() = static_cast<scalar_t>(total);
    });
  }

  static at::Tensor symmetric(const at::Tensor& M, const at::Tensor& grad, double coef, at::ScalarType operand) {
    at::Tensor S;
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, M.scalar_type(), "gram_symmetric_cpu", [&] {
      using acc_t = at::opmath_type<scalar_t>;
      const acc_t scale = grad.defined() ? static_cast<acc_t>(coef) * grad.const_data_ptr<acc_t>()[0]
                                         : static_cast<acc_t>(coef);
      S = symmetric_rows<scalar_t, acc_t>(M.const_data_ptr<scalar_t>(), M.stride(0), M.stride(1), M.stride(2),
                                          M.size(0), M.size(1), scale,
                                          M.options().dtype(c10::CppTypeToScalarType<acc_t>::value), operand);
    });
    return S;
  }

  // grad_x = S F, in x's layout; S (B, C, C) symmetric in acc. No TF32 on the CPU: the precision
  // is already in the operands (bf16-rounded F and S).
  static at::Tensor apply_grad(const Features& f, const at::Tensor& S, const at::Tensor& x, Precision) {
    const NoAutocast no_autocast;  // at::bmm in S's dtype
    const at::ScalarType acc = S.scalar_type();
    const at::Tensor t = f.data.scalar_type() == acc ? f.data : f.data.to(acc);
    const at::Tensor m =
        f.channels_last ? t.permute({0, 2, 3, 1}).reshape({f.B, f.n, f.C}) : t.reshape({f.B, f.C, f.n});
    const int64_t H = x.size(2), W = x.size(3);
    at::Tensor g = f.channels_last ? at::bmm(m, S).view({f.B, H, W, f.C}).permute({0, 3, 1, 2})
                                   : at::bmm(S, m).view({f.B, f.C, H, W});
    return g.scalar_type() == x.scalar_type() ? g : g.to(x.scalar_type());
  }
};

}  // namespace

TORCH_LIBRARY_IMPL(pytexsynth, CPU, m) { register_kernels<CpuBackend>(m); }

}  // namespace gram
}  // namespace pytexsynth
