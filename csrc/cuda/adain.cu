// adain on CUDA: one block per (n, c) plane. The block accumulates Welford moments per thread,
// merges them in a fixed tree (warp shuffles, then warp 0; Chan's formula, adain_math.h), and,
// in the same launch, applies the plane's fused affine map: content is read twice and written
// once, the floor of kernels.md. The style's statistics come from one small launch before.
// No atomics: deterministic.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/cuda/CUDAContext.h>
#include <torch/library.h>

#include "common/adain.h"
#include "cuda/launch.cuh"

namespace pytexsynth {
namespace adain {
namespace {

constexpr int kThreads = 256;

// Offset of element i of a plane: linear where the plane is dense (H, W) rows.
template <bool Dense>
__device__ inline int64_t elem(const Planes& g, int64_t i) {
  return Dense ? i : g.offset(i);
}

template <typename acc_t>
__device__ inline Moments<acc_t> shfl_down(const Moments<acc_t>& m, int o) {
  Moments<acc_t> r;
  r.n = __shfl_down_sync(0xffffffffu, m.n, o);
  r.mean = __shfl_down_sync(0xffffffffu, m.mean, o);
  r.m2 = __shfl_down_sync(0xffffffffu, m.m2, o);
  return r;
}

// The moments of the whole block, in a fixed order; every thread gets them.
template <typename acc_t>
__device__ Moments<acc_t> block_moments(Moments<acc_t> m) {
  constexpr int kWarps = kThreads / 32;
  __shared__ Moments<acc_t> shared[kWarps];
  __shared__ Moments<acc_t> result;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int o = 16; o > 0; o >>= 1) m = merge(m, shfl_down(m, o));
  if (lane == 0) shared[warp] = m;
  __syncthreads();
  if (warp == 0) {
    m = lane < kWarps ? shared[lane] : empty_moments<acc_t>();
    for (int o = 16; o > 0; o >>= 1) m = merge(m, shfl_down(m, o));
    if (lane == 0) result = m;
  }
  __syncthreads();
  return result;
}

template <typename acc_t, bool Dense, typename scalar_t>
__device__ Stats<acc_t> plane_stats(const scalar_t* plane, const Planes& g, acc_t eps) {
  Moments<acc_t> m = empty_moments<acc_t>();
  for (int64_t i = threadIdx.x; i < g.numel(); i += kThreads) add_value(m, static_cast<acc_t>(plane[elem<Dense>(g, i)]));
  return stats_of(block_moments(m), eps);
}

template <typename scalar_t, bool Dense, typename acc_t = at::opmath_type<scalar_t>>
__global__ void __launch_bounds__(kThreads) stats_kernel(const scalar_t* __restrict__ s, const Planes g, acc_t eps,
                                                         Stats<acc_t>* __restrict__ out) {
  const int64_t p = blockIdx.x;
  const auto st = plane_stats<acc_t, Dense>(s + g.base(p), g, eps);
  if (threadIdx.x == 0) out[p] = st;
}

template <typename scalar_t, bool Dense, typename acc_t = at::opmath_type<scalar_t>>
__global__ void __launch_bounds__(kThreads) forward_kernel(const scalar_t* __restrict__ x, const Planes gx,
                                                           const Stats<acc_t>* __restrict__ s_stats, acc_t alpha,
                                                           acc_t eps, scalar_t* __restrict__ out, const Planes go) {
  const int64_t p = blockIdx.x;
  const scalar_t* xp = x + gx.base(p);
  const auto f = forward_coefs(plane_stats<acc_t, Dense>(xp, gx, eps), s_stats[p], alpha);
  scalar_t* op = out + go.base(p);
  for (int64_t i = threadIdx.x; i < gx.numel(); i += kThreads) {
    op[elem<Dense>(go, i)] = static_cast<scalar_t>(forward_value(static_cast<acc_t>(xp[elem<Dense>(gx, i)]), f));
  }
}

// Content planes: dL/dx, and each plane's dL/dmu_s and dL/dsigma_s for the style launch.
template <typename scalar_t, bool Dense, typename acc_t = at::opmath_type<scalar_t>>
__global__ void __launch_bounds__(kThreads)
content_grad_kernel(const scalar_t* __restrict__ g, const Planes gg, const scalar_t* __restrict__ x, const Planes gx,
                    const Stats<acc_t>* __restrict__ s_stats, acc_t alpha, acc_t eps, scalar_t* __restrict__ dx,
                    const Planes gd, acc_t* __restrict__ style_terms) {
  __shared__ acc_t sums[2];
  const int64_t p = blockIdx.x;
  const scalar_t *xp = x + gx.base(p), *gp = g + gg.base(p);
  const auto st = plane_stats<acc_t, Dense>(xp, gx, eps);
  acc_t sg = 0, sgd = 0;
  for (int64_t i = threadIdx.x; i < gx.numel(); i += kThreads) {
    const acc_t gv = static_cast<acc_t>(gp[elem<Dense>(gg, i)]);
    sg += gv;
    sgd += gv * (static_cast<acc_t>(xp[elem<Dense>(gx, i)]) - st.mean);
  }
  sg = cuda::block_sum<kThreads>(sg);
  sgd = cuda::block_sum<kThreads>(sgd);
  if (threadIdx.x == 0) {
    sums[0] = sg;
    sums[1] = sgd;
  }
  __syncthreads();
  const auto c = content_grad_coefs(st, s_stats[p], alpha, sums[0], sums[1], gx.numel());
  if (threadIdx.x == 0) {
    style_terms[2 * p] = c.dmu_s;
    style_terms[2 * p + 1] = c.dsigma_s;
  }
  scalar_t* dp = dx + gd.base(p);
  for (int64_t i = threadIdx.x; i < gx.numel(); i += kThreads) {
    const acc_t v = content_grad_value(static_cast<acc_t>(gp[elem<Dense>(gg, i)]),
                                       static_cast<acc_t>(xp[elem<Dense>(gx, i)]), c);
    dp[elem<Dense>(gd, i)] = static_cast<scalar_t>(v);
  }
}

template <typename scalar_t, bool Dense, typename acc_t = at::opmath_type<scalar_t>>
__global__ void __launch_bounds__(kThreads)
style_grad_kernel(const scalar_t* __restrict__ s, const Planes gs, const Stats<acc_t>* __restrict__ s_stats,
                  const acc_t* __restrict__ style_terms, scalar_t* __restrict__ ds, const Planes gd) {
  const int64_t p = blockIdx.x;
  const auto st = s_stats[p];
  const auto q = style_grad_coefs(st, style_terms[2 * p], style_terms[2 * p + 1], gs.numel());
  const scalar_t* sp = s + gs.base(p);
  scalar_t* dp = ds + gd.base(p);
  for (int64_t i = threadIdx.x; i < gs.numel(); i += kThreads) {
    dp[elem<Dense>(gd, i)] = static_cast<scalar_t>(style_grad_value(static_cast<acc_t>(sp[elem<Dense>(gs, i)]), st.mean, q));
  }
}

// Whether every plane of these tensors is a dense row-major (H, W) block.
inline bool dense_planes(std::initializer_list<Planes> gs) {
  for (const auto& g : gs) {
    if (!((g.W == 1 || g.sW == 1) && (g.H == 1 || g.sH == g.W))) return false;
  }
  return true;
}

inline unsigned int plane_grid(const Planes& g) {
  TORCH_CHECK(g.count() <= INT32_MAX, "adain: ", g.count(), " planes exceed CUDA's grid limit of 2^31 - 1");
  return static_cast<unsigned int>(g.count());
}

template <typename scalar_t, bool Dense, typename acc_t = at::opmath_type<scalar_t>>
at::Tensor style_stats(const at::Tensor& style, double eps) {
  const Planes gs = make_planes(style);
  // Stats<acc_t> is two acc_t: scratch from the caching allocator, as acc_t pairs.
  at::Tensor st = at::empty({gs.count(), 2}, style.options().dtype(c10::CppTypeToScalarType<acc_t>::value));
  stats_kernel<scalar_t, Dense><<<plane_grid(gs), kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
      style.const_data_ptr<scalar_t>(), gs, static_cast<acc_t>(eps), reinterpret_cast<Stats<acc_t>*>(st.mutable_data_ptr<acc_t>()));
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return st;
}

template <typename acc_t>
const Stats<acc_t>* as_stats(const at::Tensor& t) {
  return reinterpret_cast<const Stats<acc_t>*>(t.const_data_ptr<acc_t>());
}

template <typename scalar_t, bool Dense, typename acc_t = at::opmath_type<scalar_t>>
void launch_forward(const at::Tensor& content, const at::Tensor& style, at::Tensor& out, double alpha, double eps) {
  const at::Tensor st = style_stats<scalar_t, Dense>(style, eps);
  const Planes gx = make_planes(content);
  forward_kernel<scalar_t, Dense><<<plane_grid(gx), kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
      content.const_data_ptr<scalar_t>(), gx, as_stats<acc_t>(st), static_cast<acc_t>(alpha), static_cast<acc_t>(eps),
      out.mutable_data_ptr<scalar_t>(), make_planes(out));
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template <typename scalar_t, bool Dense, typename acc_t = at::opmath_type<scalar_t>>
void launch_backward(const at::Tensor& grad, const at::Tensor& content, const at::Tensor& style, at::Tensor& gc,
                     at::Tensor& gs, double alpha, double eps) {
  const at::Tensor st = style_stats<scalar_t, Dense>(style, eps);
  const Planes gx = make_planes(content), gst = make_planes(style);
  at::Tensor terms = at::empty({gx.count(), 2}, st.options());
  const auto stream = at::cuda::getCurrentCUDAStream();
  content_grad_kernel<scalar_t, Dense><<<plane_grid(gx), kThreads, 0, stream>>>(
      grad.const_data_ptr<scalar_t>(), make_planes(grad), content.const_data_ptr<scalar_t>(), gx, as_stats<acc_t>(st),
      static_cast<acc_t>(alpha), static_cast<acc_t>(eps), gc.mutable_data_ptr<scalar_t>(), make_planes(gc),
      terms.mutable_data_ptr<acc_t>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  style_grad_kernel<scalar_t, Dense><<<plane_grid(gst), kThreads, 0, stream>>>(
      style.const_data_ptr<scalar_t>(), gst, as_stats<acc_t>(st), terms.const_data_ptr<acc_t>(),
      gs.mutable_data_ptr<scalar_t>(), make_planes(gs));
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

struct CudaBackend {
  static void forward(const at::Tensor& content, const at::Tensor& style, at::Tensor& out, double alpha, double eps) {
    const bool dense = dense_planes({make_planes(content), make_planes(style), make_planes(out)});
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, content.scalar_type(), "adain_cuda", [&] {
      dense ? launch_forward<scalar_t, true>(content, style, out, alpha, eps)
            : launch_forward<scalar_t, false>(content, style, out, alpha, eps);
    });
  }
  static void backward(const at::Tensor& grad, const at::Tensor& content, const at::Tensor& style, at::Tensor& gc,
                       at::Tensor& gs, double alpha, double eps) {
    const bool dense = dense_planes({make_planes(grad), make_planes(content), make_planes(style), make_planes(gc),
                                     make_planes(gs)});
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, content.scalar_type(), "adain_backward_cuda", [&] {
      dense ? launch_backward<scalar_t, true>(grad, content, style, gc, gs, alpha, eps)
            : launch_backward<scalar_t, false>(grad, content, style, gc, gs, alpha, eps);
    });
  }
};

}  // namespace

TORCH_LIBRARY_IMPL(pytexsynth, CUDA, m) { register_kernels<CudaBackend>(m); }

}  // namespace adain
}  // namespace pytexsynth
