// Histogram matching and the histogram loss on CUDA. Per (n, c) plane, split over gridDim.x
// blocks (so 64 large planes still fill the GPU):
//   1. minmax_kernel: per-block partial min/max of the plane's finite values;
//   2. histogram_kernel: every block folds the partials (same order: same result), builds an
//      int32 histogram of its share in shared memory (lanes holding the same bin, like the many
//      ReLU zeros, are merged with __match_any_sync before one atomicAdd), then adds it to the
//      plane's global int32 counts (integer atomics: deterministic);
//   3. remap_kernel: block prefix sum of the counts and the style CDF in shared memory, then
//      remap_value per value (the CPU's functions), writing R or D = x - R and a
//      per-block partial sum of D^2;
//   4. loss_kernel: one block sums the partials in a fixed order, in double.
// No float atomics anywhere: the same bits on every run.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/cuda/CUDAContext.h>
#include <torch/library.h>

#include <limits>

#include "common/histogram.h"
#include "cuda/launch.cuh"

namespace pytexsynth {
namespace histogram {
namespace {

constexpr int kThreads = 256;
constexpr int kMaxSplits = 1024;

// Plane geometry; element i of a plane (row-major h, w) is read at x_plane + h * sH + w * sW.
struct Geom {
  int64_t planes;
  int32_t C, W, M;  // M = H * W < 2^31
  int64_t sN, sC, sH, sW;
  int64_t oN, oC, oH, oW;
  int32_t nb;
};

// Offsets of a plane's first element in x and in the output, computed once per plane.
struct PlaneBase {
  int64_t x, out;
};

__device__ inline PlaneBase plane_base(const Geom& g, int64_t plane) {
  const int64_t n = plane / g.C, c = plane % g.C;
  return {n * g.sN + c * g.sC, n * g.oN + c * g.oC};
}

// i < M < 2^31: the row/column split runs in int32 (loops count in int64 so i + step cannot wrap).
__device__ inline int64_t x_offset(const Geom& g, const PlaneBase& pb, int64_t i64) {
  const int32_t i = static_cast<int32_t>(i64);
  const int32_t h = i / g.W, w = i - h * g.W;
  return pb.x + h * g.sH + w * g.sW;
}

__device__ inline int64_t out_offset(const Geom& g, const PlaneBase& pb, int64_t i64) {
  const int32_t i = static_cast<int32_t>(i64);
  const int32_t h = i / g.W, w = i - h * g.W;
  return pb.out + h * g.oH + w * g.oW;
}

template <typename T>
__device__ inline T min_ignore_nan(T a, T b) { return b < a ? b : a; }
template <typename T>
__device__ inline T max_ignore_nan(T a, T b) { return b > a ? b : a; }

template <typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(kThreads)
minmax_kernel(const scalar_t* __restrict__ x, const Geom g, acc_t* __restrict__ part_lo, acc_t* __restrict__ part_hi) {
  const int64_t step = int64_t(kThreads) * gridDim.x;
  for (int64_t plane = blockIdx.y; plane < g.planes; plane += gridDim.y) {
    const PlaneBase pb = plane_base(g, plane);
    acc_t lo = std::numeric_limits<acc_t>::infinity(), hi = -std::numeric_limits<acc_t>::infinity();
    for (int64_t i = int64_t(blockIdx.x) * kThreads + threadIdx.x; i < g.M; i += step) {
      const acc_t v = static_cast<acc_t>(x[x_offset(g, pb, i)]);
      if (is_finite_value(v)) {  // NaN and +-inf are left out of the range (histogram_math.h)
        lo = min_ignore_nan(lo, v);
        hi = max_ignore_nan(hi, v);
      }
    }
    constexpr acc_t inf = std::numeric_limits<acc_t>::infinity();
    lo = cuda::block_reduce<kThreads>(lo, inf, [](acc_t a, acc_t b) { return min_ignore_nan(a, b); });
    hi = cuda::block_reduce<kThreads>(hi, -inf, [](acc_t a, acc_t b) { return max_ignore_nan(a, b); });
    if (threadIdx.x == 0) {
      part_lo[plane * gridDim.x + blockIdx.x] = lo;
      part_hi[plane * gridDim.x + blockIdx.x] = hi;
    }
  }
}

// The plane's range from the per-block partials, folded in index order by thread 0.
template <typename acc_t>
__device__ inline void plane_range(const acc_t* part_lo, const acc_t* part_hi, int64_t plane, int splits, acc_t* range) {
  if (threadIdx.x == 0) {
    acc_t lo = std::numeric_limits<acc_t>::infinity(), hi = -std::numeric_limits<acc_t>::infinity();
    for (int s = 0; s < splits; ++s) {
      lo = min_ignore_nan(lo, part_lo[plane * splits + s]);
      hi = max_ignore_nan(hi, part_hi[plane * splits + s]);
    }
    range[0] = lo;
    range[1] = hi;
  }
  __syncthreads();
}

template <typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(kThreads)
histogram_kernel(const scalar_t* __restrict__ x, const Geom g, const acc_t* __restrict__ part_lo,
                 const acc_t* __restrict__ part_hi, acc_t* __restrict__ ranges, int32_t* __restrict__ counts) {
  extern __shared__ int32_t hist[];  // nb
  __shared__ acc_t range[2];
  const int lane = threadIdx.x & 31;
  const int64_t step = int64_t(kThreads) * gridDim.x;
  for (int64_t plane = blockIdx.y; plane < g.planes; plane += gridDim.y) {
    plane_range(part_lo, part_hi, plane, gridDim.x, range);
    const acc_t lo = range[0], hi = range[1];
    if (blockIdx.x == 0 && threadIdx.x == 0) {
      ranges[2 * plane] = lo;
      ranges[2 * plane + 1] = hi;
    }
    if (hi > lo) {  // a constant plane has no histogram (u = 0.5)
      const PlaneBase pb = plane_base(g, plane);
      for (int b = threadIdx.x; b < g.nb; b += kThreads) hist[b] = 0;
      __syncthreads();
      // Warp-uniform loop so every lane reaches __match_any_sync.
      for (int64_t base = int64_t(blockIdx.x) * kThreads + (threadIdx.x - lane); base < g.M; base += step) {
        const int64_t i = base + lane;
        int key = -1;
        if (i < g.M) {
          const acc_t v = static_cast<acc_t>(x[x_offset(g, pb, i)]);
          if (is_finite_value(v)) key = bin_position(v, lo, hi, g.nb).bin;
        }
        const unsigned peers = __match_any_sync(0xffffffffu, key);
        if (key >= 0 && lane == __ffs(peers) - 1) atomicAdd(&hist[key], __popc(peers));
      }
      __syncthreads();
      for (int b = threadIdx.x; b < g.nb; b += kThreads) {
        if (hist[b] != 0) atomicAdd(&counts[plane * g.nb + b], hist[b]);
      }
    }
    __syncthreads();
  }
}

// cum[0..nb] = exclusive prefix sums of counts[0..nb-1] (cum[nb] = total), by the whole block.
__device__ inline void block_prefix_sum(const int32_t* __restrict__ counts, int32_t nb, int32_t* cum, int32_t* scratch) {
  const int32_t per = static_cast<int32_t>(ceil_div(nb, kThreads));
  const int32_t b0 = min(nb, static_cast<int32_t>(threadIdx.x) * per), b1 = min(nb, b0 + per);
  int32_t local = 0;
  for (int32_t b = b0; b < b1; ++b) local += counts[b];
  scratch[threadIdx.x] = local;
  __syncthreads();
  for (int o = 1; o < kThreads; o <<= 1) {  // Hillis-Steele inclusive scan of the thread sums
    const int32_t add = threadIdx.x >= o ? scratch[threadIdx.x - o] : 0;
    __syncthreads();
    scratch[threadIdx.x] += add;
    __syncthreads();
  }
  int32_t run = scratch[threadIdx.x] - local;
  if (threadIdx.x == 0) cum[0] = 0;
  for (int32_t b = b0; b < b1; ++b) {
    run += counts[b];
    cum[b + 1] = run;
  }
  __syncthreads();
}

template <bool WriteDiff, typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(kThreads)
remap_kernel(const scalar_t* __restrict__ x, scalar_t* __restrict__ out, const Geom g, const acc_t* __restrict__ ranges,
             const int32_t* __restrict__ counts, const acc_t* __restrict__ style_lo, const acc_t* __restrict__ style_step,
             const acc_t* __restrict__ style_cdf, double* __restrict__ partials) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  acc_t* cdf = reinterpret_cast<acc_t*>(smem_raw);                 // nb + 1
  int32_t* cum = reinterpret_cast<int32_t*>(cdf + (g.nb + 1));     // nb + 1
  int32_t* scratch = cum + (g.nb + 1);                             // kThreads
  const int64_t step = int64_t(kThreads) * gridDim.x;
  for (int64_t plane = blockIdx.y; plane < g.planes; plane += gridDim.y) {
    const int64_t c = plane % g.C;
    const PlaneBase pb = plane_base(g, plane);
    for (int b = threadIdx.x; b <= g.nb; b += kThreads) cdf[b] = style_cdf[c * (g.nb + 1) + b];
    block_prefix_sum(counts + plane * g.nb, g.nb, cum, scratch);
    const InputPlane<acc_t, int32_t> in{ranges[2 * plane], ranges[2 * plane + 1], cum, static_cast<acc_t>(cum[g.nb]), g.nb};
    const StyleChannel<acc_t> st{cdf, style_lo[c], style_step[c], g.nb};
    double sum_sq = 0.0;
    for (int64_t i = int64_t(blockIdx.x) * kThreads + threadIdx.x; i < g.M; i += step) {
      const acc_t v = static_cast<acc_t>(x[x_offset(g, pb, i)]);
      const acc_t r = remap_value(v, in, st);
      if (WriteDiff) {
        const acc_t d = sub_rn(v, r);
        out[out_offset(g, pb, i)] = static_cast<scalar_t>(d);
        sum_sq += static_cast<double>(d) * static_cast<double>(d);
      } else {
        out[out_offset(g, pb, i)] = static_cast<scalar_t>(r);
      }
    }
    if (WriteDiff) {
      sum_sq = cuda::block_sum<kThreads>(sum_sq);
      if (threadIdx.x == 0) partials[plane * gridDim.x + blockIdx.x] = sum_sq;
    }
    __syncthreads();  // before the next plane overwrites cdf and cum
  }
}

template <typename scalar_t>
__global__ void __launch_bounds__(kThreads)
loss_kernel(const double* __restrict__ partials, int64_t count, double scale, scalar_t* __restrict__ loss) {
  double s = 0.0;
  for (int64_t i = threadIdx.x; i < count; i += kThreads) s += partials[i];
  s = cuda::block_sum<kThreads>(s);
  if (threadIdx.x == 0) *loss = static_cast<scalar_t>(s * scale);
}

Geom make_geom(const at::Tensor& x, const at::Tensor& out, int32_t nb) {
  const auto p = make_problem(x, out, nb);
  // The kernels index channels and columns in int32 (check_args bounds H * W below 2^31).
  TORCH_CHECK(p.C < (int64_t(1) << 31) && p.W < (int64_t(1) << 31), "histogram: x of shape ", shape_str(x),
              " has more than 2^31 - 1 channels or columns, beyond the CUDA kernels' int32 indexing");
  Geom g;
  g.planes = p.planes();
  g.C = static_cast<int32_t>(p.C);
  g.W = static_cast<int32_t>(p.W);
  g.M = static_cast<int32_t>(p.plane_numel());
  g.sN = p.sN; g.sC = p.sC; g.sH = p.sH; g.sW = p.sW;
  g.oN = p.oN; g.oC = p.oC; g.oH = p.oH; g.oW = p.oW;
  g.nb = nb;
  return g;
}

// Runs kernels 1-3; returns the per-block partial sums of D^2 (undefined unless WriteDiff).
template <bool WriteDiff>
at::Tensor run(const at::Tensor& x, const at::Tensor& lo, const at::Tensor& hi, const at::Tensor& cdf, at::Tensor& out,
               int32_t nb) {
  const Geom g = make_geom(x, out, nb);
  const int64_t max_splits = std::max<int64_t>(1, ceil_div(g.M, kThreads));
  const int64_t want = std::max<int64_t>(1, ceil_div(cuda::sm_count() * 8, g.planes));
  const int splits = static_cast<int>(std::min<int64_t>({want, max_splits, kMaxSplits}));
  const dim3 grid(splits, static_cast<unsigned>(std::min<int64_t>(g.planes, 65535)));
  const auto stream = at::cuda::getCurrentCUDAStream();
  at::Tensor partials;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "histogram_match_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const auto acc_opts = x.options().dtype(c10::CppTypeToScalarType<acc_t>::value);
    const auto style = style_tensors(lo, hi, cdf, c10::CppTypeToScalarType<acc_t>::value, nb);
    at::Tensor part_lo = at::empty({g.planes * splits}, acc_opts);
    at::Tensor part_hi = at::empty({g.planes * splits}, acc_opts);
    at::Tensor ranges = at::empty({g.planes, 2}, acc_opts);
    at::Tensor counts = at::zeros({g.planes, nb}, x.options().dtype(at::kInt));
    partials = at::empty({WriteDiff ? g.planes * splits : 0}, x.options().dtype(at::kDouble));
    const scalar_t* xp = x.const_data_ptr<scalar_t>();

    minmax_kernel<scalar_t, acc_t><<<grid, kThreads, 0, stream>>>(xp, g, part_lo.mutable_data_ptr<acc_t>(),
                                                                  part_hi.mutable_data_ptr<acc_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    histogram_kernel<scalar_t, acc_t><<<grid, kThreads, nb * sizeof(int32_t), stream>>>(
        xp, g, part_lo.const_data_ptr<acc_t>(), part_hi.const_data_ptr<acc_t>(), ranges.mutable_data_ptr<acc_t>(),
        counts.mutable_data_ptr<int32_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    const size_t smem = (nb + 1) * sizeof(acc_t) + (nb + 1) * sizeof(int32_t) + kThreads * sizeof(int32_t);
    auto kernel = remap_kernel<WriteDiff, scalar_t, acc_t>;
    if (smem > 48 * 1024) {  // float64 with the largest bin counts: opt in to more shared memory
      C10_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
    }
    kernel<<<grid, kThreads, smem, stream>>>(xp, out.mutable_data_ptr<scalar_t>(), g, ranges.const_data_ptr<acc_t>(),
                                             counts.const_data_ptr<int32_t>(), style.lo.const_data_ptr<acc_t>(),
                                             style.step.const_data_ptr<acc_t>(), style.cdf.const_data_ptr<acc_t>(),
                                             WriteDiff ? partials.mutable_data_ptr<double>() : nullptr);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return partials;
}

struct CudaBackend {
  static void match(const at::Tensor& x, const at::Tensor& lo, const at::Tensor& hi, const at::Tensor& cdf,
                    at::Tensor& out, int32_t nb) {
    run<false>(x, lo, hi, cdf, out, nb);
  }

  static at::Tensor loss(const at::Tensor& x, const at::Tensor& lo, const at::Tensor& hi, const at::Tensor& cdf,
                         double weight, at::Tensor& diff, int32_t nb) {
    const at::Tensor partials = run<true>(x, lo, hi, cdf, diff, nb);
    at::Tensor loss = at::empty({}, x.options());
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "histogram_loss_cuda", [&] {
      loss_kernel<scalar_t><<<1, kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
          partials.const_data_ptr<double>(), partials.numel(), weight / static_cast<double>(x.numel()),
          loss.mutable_data_ptr<scalar_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
    return loss;
  }
};

}  // namespace

TORCH_LIBRARY_IMPL(pytexsynth, CUDA, m) { register_kernels<CudaBackend>(m); }

}  // namespace histogram
}  // namespace pytexsynth
