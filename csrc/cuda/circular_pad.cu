// circular_pad2d on CUDA: one thread per written element, in the output's memory order (so
// writes coalesce, NCHW or NHWC), reading through the input's strides. Backward is a gather
// of at most 3 x 3 wrapped gradients per input element: no atomics, deterministic.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <ATen/ATen.h>
#include <torch/library.h>

#include "common/circular_pad.h"
#include "cuda/launch.cuh"

namespace pytexsynth {
namespace {

using circular_pad::Geometry;

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
    if constexpr (Backward) {
      circular_pad::backward_element<ChannelsLast, acc_t>(src, out, g, l);
    } else {
      circular_pad::forward_element<ChannelsLast>(src, out, g, l);
    }
  }
}

template <bool Backward, typename scalar_t, typename index_t, bool ChannelsLast>
void run(const at::Tensor& src, at::Tensor& out, const Geometry<index_t>& g) {
  const index_t numel = static_cast<index_t>(out.numel());
  circular_pad_kernel<Backward, scalar_t, index_t, ChannelsLast>
      <<<cuda::grid_size(numel, kThreads), kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
          src.const_data_ptr<scalar_t>(), out.mutable_data_ptr<scalar_t>(), g, numel);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

// Picks dtype, index width and layout, and launches on the current stream. The backward reads
// the padded tensor.
template <bool Backward>
void launch(const at::Tensor& src, at::Tensor& out, const std::array<int64_t, 4>& pads) {
  const bool cl = output_memory_format(src) == at::MemoryFormat::ChannelsLast;
  const bool small = fits_int32({src, out});
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, src.scalar_type(), "circular_pad2d_cuda", [&] {
    if (small) {
      const auto g = circular_pad::make_geometry<int32_t>(src, pads, /*src_is_padded=*/Backward);
      cl ? run<Backward, scalar_t, int32_t, true>(src, out, g) : run<Backward, scalar_t, int32_t, false>(src, out, g);
    } else {
      const auto g = circular_pad::make_geometry<int64_t>(src, pads, /*src_is_padded=*/Backward);
      cl ? run<Backward, scalar_t, int64_t, true>(src, out, g) : run<Backward, scalar_t, int64_t, false>(src, out, g);
    }
  });
}

at::Tensor circular_pad2d_cuda(const at::Tensor& x, at::IntArrayRef pad) {
  const auto pads = circular_pad::check_args(x, pad, "circular_pad2d", "x", /*padded=*/false);
  const c10::cuda::CUDAGuard guard(x.device());
  at::Tensor out = circular_pad::empty_like_padded(x, x.size(-2) + pads[2] + pads[3], x.size(-1) + pads[0] + pads[1]);
  if (out.numel() == 0) return out;
  launch</*Backward=*/false>(x, out, pads);
  return out;
}

at::Tensor circular_pad2d_backward_cuda(const at::Tensor& grad_output, at::IntArrayRef pad) {
  const auto pads = circular_pad::check_args(grad_output, pad, "_circular_pad2d_backward",
                                             "grad_output", /*padded=*/true);
  const c10::cuda::CUDAGuard guard(grad_output.device());
  at::Tensor out = circular_pad::empty_like_padded(grad_output, grad_output.size(-2) - pads[2] - pads[3],
                                                   grad_output.size(-1) - pads[0] - pads[1]);
  if (out.numel() == 0) return out;
  launch</*Backward=*/true>(grad_output, out, pads);
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(pytexsynth, CUDA, m) {
  m.impl("circular_pad2d", &circular_pad2d_cuda);
  m.impl("_circular_pad2d_backward", &circular_pad2d_backward_cuda);
}

}  // namespace pytexsynth
