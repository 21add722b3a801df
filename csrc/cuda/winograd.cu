// winograd_conv3x3 on CUDA: one thread per (tile, channel) for each transform, channel fastest
// so NHWC pixel reads and plane writes coalesce; the 36 plane GEMMs as one strided batched
// cuBLAS call (cuda/blas.cuh). cuDNN's own convolutions are the better choice on a GPU
// (pytexsynth's VGG uses them); these kernels make the op run anywhere with the CPU's arithmetic.
//
// Precision: the op has no precision argument; its policy (common/precision.h) is "ieee", full
// fp32 GEMMs that never use TF32, whatever torch.backends.cuda.matmul.allow_tf32 says: the
// transforms amplify rounding (coefficients up to 8 and 25), so with TF32 the error would grow
// far beyond float32's 1e-6.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/cuda/CUDAContext.h>
#include <torch/library.h>

#include "common/winograd.h"
#include "cuda/blas.cuh"
#include "cuda/launch.cuh"

namespace pytexsynth {
namespace winograd {
namespace {

constexpr int kThreads = 256;

// Thread l handles channel l % C of tile l / C of the chunk starting at tile row r0. src/dst as
// in the CPU kernels: pixels (NHWC) on one side, planes (stride `plane`) on the other.
template <Step S, typename T>
__global__ void __launch_bounds__(kThreads)
transform_kernel(const T* __restrict__ src, T* __restrict__ dst, const T* __restrict__ bias, const Geometry g,
                 const int64_t r0, const int64_t plane, const int64_t C, const int64_t total, const int parity) {
  const int64_t step = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t l = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; l < total; l += step) {
    const int64_t c = l % C, t = l / C;
    const int64_t r = r0 + t / g.TW;
    const int64_t n = r / g.TH, ty = r % g.TH, tx = t % g.TW;
    T a[kPlanes], tmp[kPlanes], b[kPlanes];
    if constexpr (S == Step::kInput) {
#pragma unroll
      for (int k = 0; k < kPlanes; ++k) {
        const int64_t p = input_pixel(g, n, ty, tx, k / kIn, k % kIn);
        a[k] = p >= 0 ? src[p + c] : T(0);
      }
      input_tile<1>(a, tmp, b);
#pragma unroll
      for (int k = 0; k < kPlanes; ++k) dst[k * plane + l] = b[k];
    } else if constexpr (S == Step::kOutput) {
#pragma unroll
      for (int k = 0; k < kPlanes; ++k) a[k] = src[k * plane + l];
      output_tile<1>(a, tmp, b);
      const T bc = bias != nullptr ? bias[c] : T(0);
#pragma unroll
      for (int k = 0; k < kOut * kOut; ++k) {
        const int64_t p = output_pixel(g, n, ty, tx, k / kOut, k % kOut);
        if (p >= 0) dst[p + c] = b[k] + bc;
      }
    } else if constexpr (S == Step::kOutputAdjoint) {
#pragma unroll
      for (int k = 0; k < kOut * kOut; ++k) {
        const int64_t p = output_pixel(g, n, ty, tx, k / kOut, k % kOut);
        a[k] = p >= 0 ? src[p + c] : T(0);
      }
      output_tile_adjoint<1>(a, tmp, b);
#pragma unroll
      for (int k = 0; k < kPlanes; ++k) dst[k * plane + l] = b[k];
    } else {
      // Only this launch's class: tiles whose row and column parities both match never share
      // a pixel, so the four classes, launched one after the other, need no atomics.
      if ((((ty & 1) << 1) | (tx & 1)) != parity) continue;
#pragma unroll
      for (int k = 0; k < kPlanes; ++k) a[k] = src[k * plane + l];
      input_tile_adjoint<1>(a, tmp, b);
#pragma unroll
      for (int k = 0; k < kPlanes; ++k) {
        const int64_t p = input_pixel(g, n, ty, tx, k / kIn, k % kIn);
        if (p >= 0) dst[p + c] += b[k];
      }
    }
  }
}

struct CudaBackend {
  static int64_t default_chunk_bytes() { return int64_t(256) << 20; }

  template <Step S>
  static void transform(const at::Tensor& src, at::Tensor& dst, const at::Tensor& planes, const at::Tensor& bias,
                        const Geometry& g, int64_t r0, int64_t r1) {
    const int64_t C = S == Step::kInput || S == Step::kInputAdjoint ? g.C : g.Cout;
    const int64_t total = (r1 - r0) * g.TW * C;
    AT_DISPATCH_FLOATING_TYPES(src.scalar_type(), "winograd_transform_cuda", [&] {
      for (int parity = 0; parity < (S == Step::kInputAdjoint ? 4 : 1); ++parity) {
        transform_kernel<S, scalar_t><<<cuda::grid_size(total, kThreads), kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
            src.const_data_ptr<scalar_t>(), dst.mutable_data_ptr<scalar_t>(),
            bias.defined() ? bias.const_data_ptr<scalar_t>() : nullptr, g, r0, planes.stride(0), C, total, parity);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      }
    });
  }
  static void gemm(const at::Tensor& a, const at::Tensor& b, at::Tensor& out, bool accumulate) {
    blas::bmm(a, b, out, accumulate, Precision::kIEEE, "winograd_conv3x3");
  }
};

}  // namespace

TORCH_LIBRARY_IMPL(pytexsynth, CUDA, m) { register_kernels<CudaBackend>(m); }

}  // namespace winograd
}  // namespace pytexsynth
