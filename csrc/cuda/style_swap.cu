// style_swap on CUDA: band GEMMs through cuBLAS (cuda/blas.cuh, precision chosen per call), then a
// warp per content patch keeps the running (max, argmax) over the band: the lanes scan
// interleaved columns in increasing order, a shuffle merge (merge_best: ties to the smaller
// index) gives the band's best, and one lane folds it into the running best. Bands run in
// increasing style order on one stream, so the result is torch.argmax's, deterministically.
// Decode and style gradient: one thread per written element, gathers without atomics.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/cuda/CUDAContext.h>
#include <torch/library.h>

#include <limits>

#include "common/style_swap.h"
#include "cuda/blas.cuh"
#include "cuda/launch.cuh"

namespace pytexsynth {
namespace style_swap {
namespace {

constexpr int kThreads = 256;
constexpr int kWarpsPerBlock = kThreads / 32;

template <typename scalar_t>
__device__ inline void warp_merge(scalar_t& v, int64_t& ix) {
  for (int offset = 16; offset > 0; offset /= 2) {
    const scalar_t ov = __shfl_down_sync(0xffffffffu, v, offset);
    const int64_t oi = __shfl_down_sync(0xffffffffu, ix, offset);
    merge_best(v, ix, ov, oi);
  }
}

template <typename scalar_t>
__global__ void __launch_bounds__(kThreads)
combine_scores_kernel(const scalar_t* __restrict__ S, int64_t ld, const scalar_t* __restrict__ inv, int64_t rows, int64_t cols,
                      scalar_t* __restrict__ best, int64_t* __restrict__ best_index, int64_t col0) {
  const int64_t r = int64_t(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (r >= rows) return;  // uniform per warp
  scalar_t v = -std::numeric_limits<scalar_t>::infinity();
  int64_t ix = -1;
  const scalar_t* row = S + r * ld;
  for (int64_t c = lane; c < cols; c += 32) update_best(v, ix, normalized_score(row[c], inv[c]), col0 + c);
  warp_merge(v, ix);
  if (lane == 0 && ix >= 0) update_best(best[r], best_index[r], v, ix);
}

template <typename scalar_t, int K>
__global__ void __launch_bounds__(kThreads)
combine_pixels_kernel(const scalar_t* __restrict__ M, int64_t ld, const scalar_t* __restrict__ inv,
                      scalar_t* __restrict__ best, int64_t* __restrict__ best_index, const Geometry g,
                      int64_t rows, int64_t p0, int64_t p1) {
  const int64_t r = int64_t(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (r >= rows) return;  // uniform per warp
  const int64_t i = r / g.nW, j = r - i * g.nW;  // i relative to the band's first row
  const int64_t row = i * g.s * g.W + j * g.s;
  const int64_t n = (p1 - p0) * g.nWs;
  scalar_t v = -std::numeric_limits<scalar_t>::infinity();
  int64_t ix = -1;
  for (int64_t t = lane; t < n; t += 32) {
    const int64_t pr = t / g.nWs, q = t - pr * g.nWs;
    const int64_t m = p0 * g.nWs + t;
    const scalar_t score = normalized_score(
        pixel_block_score<K>(M, ld, row, pr * g.s * g.Ws + q * g.s, g.W, g.Ws, g.k), inv[m]);
    update_best(v, ix, score, m);
  }
  warp_merge(v, ix);
  if (lane == 0 && ix >= 0) update_best(best[r], best_index[r], v, ix);
}

// Strides of a 4-D tensor (batch stride 0 for a shared style image).
struct Strides4 {
  int64_t b, c, h, w;
};

inline Strides4 strides_of(const at::Tensor& t, bool broadcast_batch = false) {
  return {broadcast_batch ? 0 : t.stride(0), t.stride(1), t.stride(2), t.stride(3)};
}

template <typename scalar_t, bool ChannelsLast>
__global__ void __launch_bounds__(kThreads)
decode_kernel(const scalar_t* __restrict__ style, Strides4 ss, const int64_t* __restrict__ idx, scalar_t* out,
              Strides4 so, const Geometry g, int64_t numel) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t step = int64_t(blockDim.x) * gridDim.x;
  for (int64_t l = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; l < numel; l += step) {
    const Coord<int64_t> p = coord_of<ChannelsLast>(l, g.C, g.H, g.W);
    const acc_t v = decode_value<acc_t>(style + p.n * ss.b + p.c * ss.c, ss.h, ss.w, idx + p.n * g.nc(),
                                                    g.nW, 1, p.h, p.w, g);
    out[p.n * so.b + p.c * so.c + p.h * so.h + p.w * so.w] = static_cast<scalar_t>(v);
  }
}

template <typename scalar_t, bool ChannelsLast>
__global__ void __launch_bounds__(kThreads)
style_grad_kernel(const scalar_t* __restrict__ grad, Strides4 sg, const int64_t* __restrict__ offsets,
                  const int64_t* __restrict__ members, scalar_t* out, Strides4 so, const Geometry g, int64_t numel) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t step = int64_t(blockDim.x) * gridDim.x;
  for (int64_t l = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; l < numel; l += step) {
    const Coord<int64_t> p = coord_of<ChannelsLast>(l, g.C, g.Hs, g.Ws);  // (style image, c, y, x)
    const acc_t v = style_grad_value<acc_t>(grad + p.c * sg.c, sg.b, sg.h, sg.w, offsets, members,
                                                        p.n * g.ns(), p.h, p.w, g);
    out[p.n * so.b + p.c * so.c + p.h * so.h + p.w * so.w] = static_cast<scalar_t>(v);
  }
}

struct CudaBackend {
  // One band of scores (or of the pixel product) of at most 256 MB: at 2048 px relu3_1 the whole
  // call stays well under 1 GB besides its inputs.
  static int64_t default_band_bytes() { return int64_t(256) << 20; }

  static at::Tensor gemm(const at::Tensor& a, const at::Tensor& b, Precision p) {
    return blas::mm(a, b, p, "style_swap");
  }

  static void combine_scores(const at::Tensor& scores, const at::Tensor& inv_norm, at::Tensor& best,
                             at::Tensor& best_index, int64_t row0, int64_t col0) {
    const int64_t rows = scores.size(0), cols = scores.size(1);
    if (rows == 0 || cols == 0) return;
    AT_DISPATCH_FLOATING_TYPES(scores.scalar_type(), "style_swap_combine_scores_cuda", [&] {
      combine_scores_kernel<scalar_t><<<cuda::blocks_for(rows, kWarpsPerBlock), kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
          scores.const_data_ptr<scalar_t>(), scores.stride(0), inv_norm.const_data_ptr<scalar_t>() + col0, rows, cols, best.mutable_data_ptr<scalar_t>() + row0,
          best_index.mutable_data_ptr<int64_t>() + row0, col0);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  }

  static void combine_pixels(const at::Tensor& M, const at::Tensor& inv_norm, at::Tensor& best,
                             at::Tensor& best_index, const Geometry& g, int64_t b, int64_t i0, int64_t i1, int64_t p0,
                             int64_t p1) {
    const int64_t rows = (i1 - i0) * g.nW;
    const int64_t off = b * g.nc() + i0 * g.nW;
    AT_DISPATCH_FLOATING_TYPES(M.scalar_type(), "style_swap_combine_pixels_cuda", [&] {
      auto kernel = g.k == 3 ? combine_pixels_kernel<scalar_t, 3> : combine_pixels_kernel<scalar_t, 0>;
      kernel<<<cuda::blocks_for(rows, kWarpsPerBlock), kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
          M.const_data_ptr<scalar_t>(), M.stride(0), inv_norm.const_data_ptr<scalar_t>(),
          best.mutable_data_ptr<scalar_t>() + off, best_index.mutable_data_ptr<int64_t>() + off, g, rows, p0, p1);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  }

  static void decode_patches(const at::Tensor& style, const at::Tensor& idx, const Geometry& g, at::Tensor& out) {
    const bool cl = output_memory_format(out) == at::MemoryFormat::ChannelsLast;  // the order of out's memory
    const Strides4 ss = strides_of(style, style.size(0) == 1), so = strides_of(out);
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, style.scalar_type(), "style_swap_decode_cuda", [&] {
      auto kernel = cl ? decode_kernel<scalar_t, true> : decode_kernel<scalar_t, false>;
      kernel<<<cuda::grid_size(out.numel(), kThreads), kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
          style.const_data_ptr<scalar_t>(), ss, idx.const_data_ptr<int64_t>(), out.mutable_data_ptr<scalar_t>(), so,
          g, out.numel());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  }

  static void style_grad(const at::Tensor& grad, const InvertedMatches& inv, const Geometry& g,
                         at::Tensor& out) {
    const bool cl = output_memory_format(out) == at::MemoryFormat::ChannelsLast;  // the order of out's memory
    const Strides4 sg = strides_of(grad), so = strides_of(out);
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad.scalar_type(), "style_swap_backward_cuda", [&] {
      auto kernel = cl ? style_grad_kernel<scalar_t, true> : style_grad_kernel<scalar_t, false>;
      kernel<<<cuda::grid_size(out.numel(), kThreads), kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
          grad.const_data_ptr<scalar_t>(), sg, inv.offsets.const_data_ptr<int64_t>(),
          inv.members.const_data_ptr<int64_t>(), out.mutable_data_ptr<scalar_t>(), so, g, out.numel());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  }
};

}  // namespace

TORCH_LIBRARY_IMPL(pytexsynth, CUDA, m) { register_kernels<CudaBackend>(m); }

}  // namespace style_swap
}  // namespace pytexsynth
