// gram / gram_loss / gram_loss_multi on CUDA: the GEMMs are cuBLAS through cuda/blas.cuh
// (precision per call, common/precision.h), the epilogues are small kernels around gram_math.h.
//
// Forward: the tile schedule of gram_math.h, the same as the CPU kernel's (only upper-triangle
// tile pairs ti <= tj, each split over chunks of H*W so a small C still fills every SM). The
// host lists every (layer, image, tile pair, chunk) GEMM, groups them by operand shape, and
// issues one cublasGemmBatchedEx per shape from pointer arrays copied to the device in one
// transfer (so all layers of gram_loss_multi share a handful of cuBLAS calls). The epilogue
// kernel sums the chunk partials of each upper entry in chunk order, mirrors it (G exactly
// symmetric), and for the loss writes D = G - T and one partial sum of squares per block, all
// layers in one launch; a one-block kernel adds those in a fixed order, layer by layer. No float
// atomics.
// Backward: S = scale (D + D^T) with scale = coef * grad_loss read on the device (no .item()),
// then one GEMM S F per layer.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/cuda/CUDAContext.h>
#include <cublas_v2.h>
#include <torch/library.h>

#include <climits>
#include <cstdint>
#include <cstring>
#include <map>
#include <tuple>
#include <vector>

#include "common/gram.h"
#include "cuda/blas.cuh"
#include "cuda/launch.cuh"

namespace pytexsynth {
namespace gram {
namespace {

constexpr int kThreads = 256;
// Epilogue blocks are small so that a small C (64 x 64 entries) still spreads over 32+ SMs.
constexpr int kEpilogueThreads = 128;

// ---- forward products: the tile schedule as grouped cuBLAS calls ---------------------------

// One layer's forward state: F in the operand dtype (dense in its layout), its schedule and the
// workspace of partial products (acc dtype).
struct Layer {
  Features f;
  Schedule s;
  at::Tensor work;
};

// Enough GEMMs per layer to cover twice the SMs (a 128 x 128 output tile per CTA), chunks of at
// least 2048 pixels, workspace at most 64 MB of float32. Depends only on shapes and the device,
// so gram() and gram_loss() of the same x use the same schedule (D = 0 exactly at own target).
Schedule gpu_schedule(int64_t B, int64_t C, int64_t n) {
  return make_schedule(B, C, n, 2 * cuda::sm_count(), /*min_chunk=*/2048, /*max_workspace=*/int64_t(1) << 24);
}

Layer prepare(const at::Tensor& x, Precision p) {
  Layer L;
  L.f = features(x, operand_type(x.scalar_type(), p));
  L.s = gpu_schedule(L.f.B, L.f.C, L.f.n);
  const auto opts = x.options().dtype(acc_type(x));
  // H*W = 0: G = 0 and no GEMM runs.
  L.work = L.f.n == 0 ? at::zeros({L.s.workspace()}, opts) : at::empty({L.s.workspace()}, opts);
  return L;
}

// GEMMs that one cublasGemmBatchedEx call can take: same transposes, sizes and leading dims.
using ShapeKey = std::tuple<int, int, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t>;

struct GemmList {
  std::vector<const void*> a, b;
  std::vector<void*> c;
  bool aligned = true;  // every pointer and leading dimension 16-byte aligned
};

bool aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

using Groups = std::map<ShapeKey, GemmList>;

// Every item of every layer, grouped by operand shape: P[item] (cols x rows column-major, ld tile
// = rows x cols row-major) = op(A) op(B) with A the (cols x klen) block of tile tj and B the
// (rows x klen) block of tile ti, both read in place through gram_math.h's feature_offset.
//   NCHW: image b is the column-major (n x C) matrix, ld n: C = A^T B (ta = T, tb = N).
//   NHWC: image b is the column-major (C x n) matrix, ld C: C = A B^T (ta = N, tb = T).
Groups group_items(std::vector<Layer>& layers, at::ScalarType acc) {
  const int64_t es = layers[0].f.data.element_size(), as = c10::elementSize(acc);
  Groups groups;
  for (Layer& L : layers) {
    const Schedule& s = L.s;
    if (s.n == 0 || s.items() == 0) continue;
    const bool cl = L.f.channels_last;
    const char* F = static_cast<const char*>(L.f.data.const_data_ptr());
    char* work = static_cast<char*>(L.work.mutable_data_ptr());
    const int64_t ld = cl ? s.C : s.n;
    for (int64_t w = 0; w < s.items(); ++w) {
      const TileItem it = s.item(w);
      const int64_t img = it.b * s.C * s.n;
      const ShapeKey key{cl ? CUBLAS_OP_N : CUBLAS_OP_T, cl ? CUBLAS_OP_T : CUBLAS_OP_N, it.cols, it.rows, it.klen,
                         ld, ld, s.tile};
      GemmList& g = groups[key];
      const void* a = F + (img + feature_offset(cl, s.C, s.n, it.col0, it.k0)) * es;
      const void* b = F + (img + feature_offset(cl, s.C, s.n, it.row0, it.k0)) * es;
      void* c = work + w * s.slot() * as;
      g.a.push_back(a);
      g.b.push_back(b);
      g.c.push_back(c);
      g.aligned = g.aligned && aligned16(a) && aligned16(b) && aligned16(c) && (ld * es) % 16 == 0 &&
                  (s.tile * as) % 16 == 0;
    }
  }
  return groups;
}

// Pointer arrays of the batched groups, [A..., B..., C...] per group, in one host-to-device
// copy from pinned memory (the caching host allocator keeps it alive until the copy is done).
// Undefined when no group is batched.
at::Tensor device_pointers(const Groups& groups, const at::Device& device) {
  int64_t total = 0;
  for (const auto& kv : groups) {
    if (kv.second.aligned) total += 3 * static_cast<int64_t>(kv.second.a.size());
  }
  if (total == 0) return at::Tensor();
  at::Tensor host = at::empty({total}, at::TensorOptions().dtype(at::kLong).pinned_memory(true));
  int64_t* h = host.mutable_data_ptr<int64_t>();
  int64_t off = 0;
  for (const auto& kv : groups) {
    const GemmList& g = kv.second;
    if (!g.aligned) continue;
    const int64_t nb = static_cast<int64_t>(g.a.size());
    for (int64_t q = 0; q < nb; ++q) {
      h[off + q] = reinterpret_cast<int64_t>(g.a[q]);
      h[off + nb + q] = reinterpret_cast<int64_t>(g.b[q]);
      h[off + 2 * nb + q] = reinterpret_cast<int64_t>(g.c[q]);
    }
    off += 3 * nb;
  }
  return host.to(device, at::kLong, /*non_blocking=*/true);
}

// The forward GEMMs of every layer: one batched cuBLAS call per aligned group.
void run_products(std::vector<Layer>& layers, at::ScalarType acc, Precision p) {
  if (layers.empty()) return;
  const Groups groups = group_items(layers, acc);
  if (groups.empty()) return;
  const at::Tensor dev_ptrs = device_pointers(groups, layers[0].work.device());  // alive until the calls are queued
  const blas::Gemm gemm(layers[0].f.data.scalar_type(), acc, p, "gram");
  const int64_t* d = dev_ptrs.defined() ? dev_ptrs.const_data_ptr<int64_t>() : nullptr;
  int64_t off = 0;
  for (const auto& kv : groups) {
    const auto [ta_, tb_, m, n, k, lda, ldb, ldc] = kv.first;
    const auto ta = static_cast<cublasOperation_t>(ta_), tb = static_cast<cublasOperation_t>(tb_);
    const GemmList& g = kv.second;
    const int64_t nb = static_cast<int64_t>(g.a.size());
    if (g.aligned) {
      // Batched GEMM from device pointer arrays: cuBLAS cannot see these pointers, so only
      // groups whose every pointer is 16-byte aligned go here.
      gemm.batched(ta, tb, m, n, k, reinterpret_cast<const void* const*>(d + off), lda,
                   reinterpret_cast<const void* const*>(d + off + nb), ldb,
                   reinterpret_cast<void* const*>(d + off + 2 * nb), ldc, nb);
      off += 3 * nb;
    } else {
      // Odd H*W or C (misaligned operands): one GEMM per item, which cuBLAS checks itself.
      for (int64_t q = 0; q < nb; ++q) gemm.single(ta, tb, m, n, k, g.a[q], lda, g.b[q], ldb, g.c[q], ldc);
    }
  }
}

// ---- epilogue kernels -----------------------------------------------------------------------

struct Entry {
  int64_t b, i, j;
};

// Entry l of a (B, C, C) stack in row-major order.
__device__ inline Entry decode_entry(int64_t l, int64_t C) {
  Entry e;
  e.j = l % C;
  l /= C;
  e.i = l % C;
  e.b = l / C;
  return e;
}

template <typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(kEpilogueThreads)
gram_epilogue_kernel(const acc_t* __restrict__ work, Schedule s, acc_t norm, scalar_t* __restrict__ out,
                     int64_t total) {
  const int64_t l = static_cast<int64_t>(blockIdx.x) * kEpilogueThreads + threadIdx.x;
  if (l >= total) return;
  const Entry e = decode_entry(l, s.C);
  if (e.i > e.j) return;  // the upper entry's thread writes the mirror
  gram_pair(work, s, e.b, e.i, e.j, norm, out + e.b * s.C * s.C);
}

// One layer of the loss epilogue: its workspace, target, diff, and its blocks in the grid.
template <typename scalar_t, typename acc_t>
struct LossLayer {
  const acc_t* work;
  Schedule s;
  acc_t norm, count, weight;
  const scalar_t* target;
  int64_t tb, ti, tj;
  acc_t* diff;
  int64_t block0, blocks;
};

template <typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(kEpilogueThreads)
gram_loss_epilogue_kernel(const LossLayer<scalar_t, acc_t>* __restrict__ layers, int64_t nlayers,
                          acc_t* __restrict__ block_sq) {
  int64_t l = 0;  // this block's layer: the last whose first block is at or before it
  while (l + 1 < nlayers && layers[l + 1].block0 <= static_cast<int64_t>(blockIdx.x)) ++l;
  const LossLayer<scalar_t, acc_t>& L = layers[l];
  const int64_t C = L.s.C;
  const int64_t e = (static_cast<int64_t>(blockIdx.x) - L.block0) * kEpilogueThreads + threadIdx.x;
  acc_t sq = acc_t(0);
  if (e < L.s.B * C * C) {
    const Entry en = decode_entry(e, C);
    if (en.i <= en.j) {
      sq = loss_pair(L.work, L.s, en.b, en.i, en.j, L.norm, L.target + en.b * L.tb, L.ti, L.tj,
                           L.diff + en.b * C * C);
    }
  }
  const acc_t sum = cuda::block_sum<kEpilogueThreads>(sq);
  if (threadIdx.x == 0) block_sq[blockIdx.x] = sum;
}

// Per layer, the sum of its blocks' partials in a fixed order, then weight * mean; the layers
// added in list order.
template <typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(kThreads)
gram_loss_finish_kernel(const LossLayer<scalar_t, acc_t>* __restrict__ layers, int64_t nlayers,
                        const acc_t* __restrict__ block_sq, scalar_t* __restrict__ loss) {
  acc_t total = acc_t(0);
  for (int64_t l = 0; l < nlayers; ++l) {
    acc_t s = acc_t(0);
    for (int64_t k = threadIdx.x; k < layers[l].blocks; k += kThreads) s += block_sq[layers[l].block0 + k];
    const acc_t sum = cuda::block_sum<kThreads>(s);  // valid in thread 0, which writes the loss
    total += finish_loss(sum, layers[l].count, layers[l].weight);
  }
  if (threadIdx.x == 0) *loss = static_cast<scalar_t>(total);
}

// S[b, i, j] = symmetric_grad(M[b, i, j], M[b, j, i], coef * grad) in the GEMM operand dtype;
// grad is null for gram's backward (scale = coef).
template <typename m_t, typename g_t, typename s_t, typename acc_t>
__global__ void __launch_bounds__(kThreads)
symmetric_grad_kernel(const m_t* __restrict__ M, int64_t sb, int64_t si, int64_t sj, int64_t C,
                      const g_t* __restrict__ grad, acc_t coef, s_t* __restrict__ S, int64_t total) {
  const int64_t l = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (l >= total) return;
  const Entry e = decode_entry(l, C);
  const acc_t scale = grad != nullptr ? coef * static_cast<acc_t>(*grad) : coef;
  const m_t* Mb = M + e.b * sb;
  S[l] = static_cast<s_t>(symmetric_grad(static_cast<acc_t>(Mb[e.i * si + e.j * sj]),
                                               static_cast<acc_t>(Mb[e.j * si + e.i * sj]), scale));
}

// The loss epilogue's per-layer table, in the grid's block order.
template <typename scalar_t, typename acc_t>
std::vector<LossLayer<scalar_t, acc_t>> loss_table(const std::vector<Layer>& layers, at::TensorList targets,
                                                   const LossArgs& a, std::vector<at::Tensor>& diffs) {
  std::vector<LossLayer<scalar_t, acc_t>> desc(layers.size());
  int64_t blocks = 0;
  for (size_t l = 0; l < layers.size(); ++l) {
    const Schedule& s = layers[l].s;
    const int64_t entries = s.B * s.C * s.C;
    LossLayer<scalar_t, acc_t>& D = desc[l];
    D.work = layers[l].work.const_data_ptr<acc_t>();
    D.s = s;
    D.norm = static_cast<acc_t>(a.norms[l]);
    D.count = static_cast<acc_t>(entries);
    D.weight = static_cast<acc_t>(a.weights[l]);
    D.target = targets[l].const_data_ptr<scalar_t>();
    D.tb = a.target_sb[l];
    D.ti = targets[l].stride(-2);
    D.tj = targets[l].stride(-1);
    D.diff = diffs[l].mutable_data_ptr<acc_t>();
    D.block0 = blocks;
    D.blocks = ceil_div(entries, kEpilogueThreads);
    blocks += D.blocks;
  }
  return desc;
}

struct CudaBackend {
  static void gram(const at::Tensor& x, Precision p, double norm, at::Tensor& out) {
    std::vector<Layer> layers{prepare(x, p)};
    run_products(layers, acc_type(x), p);
    const Layer& L = layers[0];
    const int64_t total = out.numel();
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "gram_cuda", [&] {
      using acc_t = at::opmath_type<scalar_t>;
      gram_epilogue_kernel<scalar_t, acc_t>
          <<<cuda::blocks_for(total, kEpilogueThreads), kEpilogueThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
          L.work.const_data_ptr<acc_t>(), L.s, static_cast<acc_t>(norm), out.mutable_data_ptr<scalar_t>(), total);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  }

  // Every layer's epilogue in one launch, then one block adds the block partials in order.
  static void loss_layers(at::TensorList xs, at::TensorList targets, const LossArgs& a,
                          std::vector<at::Tensor>& diffs, at::Tensor& loss) {
    const at::ScalarType acc = acc_type(xs[0]);
    std::vector<Layer> layers;
    for (const auto& x : xs) layers.push_back(prepare(x, a.precision));  // an empty x has no items
    run_products(layers, acc, a.precision);
    const auto stream = at::cuda::getCurrentCUDAStream();
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, xs[0].scalar_type(), "gram_loss_cuda", [&] {
      using acc_t = at::opmath_type<scalar_t>;
      using Desc = LossLayer<scalar_t, acc_t>;
      const std::vector<Desc> desc = loss_table<scalar_t, acc_t>(layers, targets, a, diffs);
      const int64_t blocks = desc.back().block0 + desc.back().blocks;
      // The layer table, in one copy from pinned memory.
      const int64_t bytes = static_cast<int64_t>(desc.size() * sizeof(Desc));
      at::Tensor host = at::empty({bytes}, at::TensorOptions().dtype(at::kByte).pinned_memory(true));
      std::memcpy(host.mutable_data_ptr(), desc.data(), bytes);
      const at::Tensor table = host.to(xs[0].device(), at::kByte, /*non_blocking=*/true);
      const Desc* d_table = reinterpret_cast<const Desc*>(table.const_data_ptr());
      at::Tensor block_sq = at::empty({std::max<int64_t>(blocks, 1)}, xs[0].options().dtype(acc));
      const int64_t nl = static_cast<int64_t>(desc.size());
      if (blocks > 0) {
        TORCH_CHECK(blocks <= INT_MAX, a.op, ": ", blocks, " epilogue blocks exceed the grid limit");
        gram_loss_epilogue_kernel<scalar_t, acc_t><<<static_cast<unsigned int>(blocks), kEpilogueThreads, 0, stream>>>(
            d_table, nl, block_sq.mutable_data_ptr<acc_t>());
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      }
      gram_loss_finish_kernel<scalar_t, acc_t><<<1, kThreads, 0, stream>>>(
          d_table, nl, block_sq.const_data_ptr<acc_t>(), loss.mutable_data_ptr<scalar_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  }

  // S in the GEMM operand dtype; grad (if defined) is read on the device (no .item(), no sync).
  static at::Tensor symmetric(const at::Tensor& M, const at::Tensor& grad, double coef, at::ScalarType operand) {
    const int64_t B = M.size(0), C = M.size(1);
    at::Tensor S = at::empty({B, C, C}, M.options().dtype(operand));
    const int64_t total = S.numel();
    const auto stream = at::cuda::getCurrentCUDAStream();
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, M.scalar_type(), "gram_symmetric_grad_cuda", [&] {
      using m_t = scalar_t;
      using acc_t = at::opmath_type<m_t>;
      const acc_t* g = grad.defined() ? grad.const_data_ptr<acc_t>() : nullptr;
      AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, operand, "gram_symmetric_grad_cuda", [&] {
        symmetric_grad_kernel<m_t, acc_t, scalar_t, acc_t><<<cuda::blocks_for(total, kThreads), kThreads, 0, stream>>>(
            M.const_data_ptr<m_t>(), M.stride(0), M.stride(1), M.stride(2), C, g, static_cast<acc_t>(coef),
            S.mutable_data_ptr<scalar_t>(), total);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
    });
    return S;
  }

  // grad_x = S F (S symmetric, operand dtype): one strided batched GEMM, in x's layout and dtype.
  static at::Tensor apply_grad(const Features& f, const at::Tensor& S, const at::Tensor& x, Precision p) {
    const at::ScalarType acc = acc_type(x);
    const int64_t B = f.B, C = f.C, n = f.n;
    at::Tensor out = grad_like(f, x.size(2), x.size(3), acc, x);
    const blas::Gemm gemm(f.data.scalar_type(), acc, p, "gram");
    if (f.channels_last) {
      // Column-major (C x n) per image: Out = S A.
      gemm.strided(CUBLAS_OP_N, CUBLAS_OP_N, C, n, C, S.const_data_ptr(), C, C * C, f.data.const_data_ptr(), C,
                   n * C, out.mutable_data_ptr(), C, n * C, B);
    } else {
      // Column-major (n x C) per image: Out = A S^T = A S.
      gemm.strided(CUBLAS_OP_N, CUBLAS_OP_N, n, C, C, f.data.const_data_ptr(), n, C * n, S.const_data_ptr(), C,
                   C * C, out.mutable_data_ptr(), n, C * n, B);
    }
    return out.scalar_type() == x.scalar_type() ? out : out.to(x.scalar_type());
  }
};

}  // namespace

TORCH_LIBRARY_IMPL(pytexsynth, CUDA, m) { register_kernels<CudaBackend>(m); }

}  // namespace gram
}  // namespace pytexsynth
