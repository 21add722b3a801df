// circular_pad2d on CUDA: one thread per written element, in the output's memory order (so
// writes coalesce, NCHW or NHWC), reading through the input's strides. Backward is a gather
// of at most 3 x 3 wrapped gradients per input element: no atomics, deterministic.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/cuda/CUDAContext.h>
#include <torch/library.h>

#include "common/circular_pad.h"
#include "cuda/launch.cuh"

namespace pytexsynth {
namespace circular_pad {
namespace {

constexpr int kThreads = 256;

// One thread per written element: a padded element (forward, src = x) or an unpadded one
// (backward, src = grad_output), in the output's memory order.
template <bool Backward, typename scalar_t, typename index_t, bool ChannelsLast>
__global__ void __launch_bounds__(kThreads)
circular_pad_kernel(const scalar_t* __restrict__ src, scalar_t* __restrict__ out, const Geometry<index_t> g,
                    const index_t numel) {
  using acc_t = at::opmath_type<scalar_t>;
  const index_t step = static_cast<index_t>(blockDim.x) * gridDim.x;
  for (index_t l = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x; l < numel; l += step) {
    write_element<Backward, ChannelsLast, acc_t>(src, out, g, l);
  }
}

template <bool Backward, typename scalar_t, typename index_t>
void launch(const at::Tensor& src, at::Tensor& out, const std::array<int64_t, 4>& pads, bool channels_last) {
  const auto g = make_geometry<index_t>(src, pads, /*src_is_padded=*/Backward);
  const index_t numel = static_cast<index_t>(out.numel());
  auto kernel = channels_last ? circular_pad_kernel<Backward, scalar_t, index_t, true>
                              : circular_pad_kernel<Backward, scalar_t, index_t, false>;
  kernel<<<cuda::grid_size(numel, kThreads), kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
      src.const_data_ptr<scalar_t>(), out.mutable_data_ptr<scalar_t>(), g, numel);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

struct CudaBackend {
  // Picks dtype, index width (int32 where every offset fits) and layout.
  template <bool Backward>
  static void run(const at::Tensor& src, at::Tensor& out, const std::array<int64_t, 4>& pads) {
    const bool cl = output_memory_format(src) == at::MemoryFormat::ChannelsLast;
    const bool small = fits_int32({src, out});
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, src.scalar_type(), "circular_pad2d_cuda", [&] {
      small ? launch<Backward, scalar_t, int32_t>(src, out, pads, cl)
            : launch<Backward, scalar_t, int64_t>(src, out, pads, cl);
    });
  }
};

}  // namespace

TORCH_LIBRARY_IMPL(pytexsynth, CUDA, m) { register_kernels<CudaBackend>(m); }

}  // namespace circular_pad
}  // namespace pytexsynth
