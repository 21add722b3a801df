// Launch geometry and block reductions shared by every CUDA kernel of the extension.
#pragma once

#include <ATen/cuda/CUDAContext.h>

#include <algorithm>
#include <cstdint>

#include "common/indexing.h"

namespace pytexsynth {
namespace cuda {

// Streaming multiprocessors of the current device.
inline int64_t sm_count() { return at::cuda::getCurrentDeviceProperties()->multiProcessorCount; }

// Blocks of `threads` threads for one thread per item (no grid-stride loop).
inline unsigned int blocks_for(int64_t items, int threads) {
  const int64_t blocks = ceil_div(items, threads);
  TORCH_CHECK(blocks <= INT32_MAX, "pytexsynth: ", items, " items need ", blocks,
              " blocks, beyond CUDA's grid limit of 2^31 - 1");
  return static_cast<unsigned int>(blocks);
}

// Blocks for a grid-stride loop over `items`: one thread per item up to 16 blocks per SM (enough
// resident blocks to fill every SM several times; the loop strides over the rest), at least one.
inline unsigned int grid_size(int64_t items, int threads) {
  const int64_t max_blocks = sm_count() * 16;
  return static_cast<unsigned int>(std::max<int64_t>(1, std::min<int64_t>(ceil_div(items, threads), max_blocks)));
}

// Reduction of one value per thread over a block of Threads threads (a multiple of 32, at most
// 1024), in a fixed tree order: warp shuffles, then the warps' results in warp 0. Deterministic
// (no atomics), NaN handling is op's. The result is valid in thread 0 only. Every thread of the
// block must call it; the trailing barrier lets a caller reduce again right away (the shared
// buffer is one per instantiation and kernel).
template <int Threads, typename T, typename Op>
__device__ inline T block_reduce(T v, T identity, Op op) {
  static_assert(Threads % 32 == 0 && Threads <= 1024, "block_reduce: Threads must be a multiple of 32, <= 1024");
  constexpr int kWarps = Threads / 32;
  __shared__ T shared[kWarps];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_down_sync(0xffffffffu, v, o));
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < kWarps ? shared[lane] : identity;
    for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_down_sync(0xffffffffu, v, o));
  }
  __syncthreads();
  return v;
}

template <typename T>
struct Plus {
  __device__ T operator()(T a, T b) const { return a + b; }
};

// The block's sum, valid in thread 0 (see block_reduce).
template <int Threads, typename T>
__device__ inline T block_sum(T v) {
  return block_reduce<Threads>(v, T(0), Plus<T>());
}

}  // namespace cuda
}  // namespace pytexsynth
