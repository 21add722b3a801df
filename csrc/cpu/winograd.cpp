// winograd_conv3x3 on the CPU: tile transforms with at::parallel_for over the tiles of a chunk,
// 16 float (8 double) channels per step so each line of winograd_math.h is one 512-bit vector
// operation; the 36 plane GEMMs through at::mm (MKL / oneDNN), one call per plane (faster here
// than at::bmm for the tall, narrow planes of the first layers).
//
// The wheel is built for baseline x86-64, so the transform loops are compiled three times
// (AVX-512, AVX2, baseline) with GCC's target_clones and the loader picks the one this CPU
// runs: without it they would use 128-bit SSE and cost more than the GEMMs they feed.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <type_traits>
#include <vector>

#include "common/winograd.h"

#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__)
#define PYTEXSYNTH_SIMD_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define PYTEXSYNTH_SIMD_CLONES
#endif

namespace pytexsynth {
namespace winograd {
namespace {

// One transform over tiles [begin, end) of a chunk that starts at tile row r0. `src` and `dst`
// are the pixel tensor (x, y, dy or dx: NHWC) and the plane tensor (V, M, dM or dV: plane
// stride `plane`, one row of `channels` per tile), in the direction of the step.
template <typename T>
struct Job {
  Geometry g;
  int64_t r0;
  int64_t plane;
  const T* src;
  T* dst;
  const T* bias;   // kOutput only, may be null
  const T* zeros;  // max(C, Cout) zeros: the reads of padding and of overhanging tiles
  int parity;      // kInputAdjoint only: the parity of the tile rows to scatter
};

template <typename T>
constexpr int lanes() {
  return 64 / static_cast<int>(sizeof(T));  // one 512-bit vector
}

// f(full, c, count) over the channels in blocks of L; the last block may be short (count < L,
// `full` false), and then copies through zero-padded L-lane buffers.
template <int L, typename F>
C10_ALWAYS_INLINE void for_channel_blocks(int64_t C, F&& f) {
  int64_t c = 0;
  for (; c + L <= C; c += L) f(std::true_type{}, c, int64_t(L));
  if (c < C) f(std::false_type{}, c, C - c);
}

template <int L, bool Full, typename T>
C10_ALWAYS_INLINE void load(T* dst, const T* src, int64_t count) {
  for (int l = 0; l < L; ++l) dst[l] = (Full || l < count) ? src[l] : T(0);
}

template <int L, bool Full, bool Add, typename T>
C10_ALWAYS_INLINE void store(T* dst, const T* src, int64_t count) {
  const int64_t n = Full ? L : count;
  for (int64_t l = 0; l < n; ++l) dst[l] = Add ? dst[l] + src[l] : src[l];
}

template <Step S, typename T>
C10_ALWAYS_INLINE void run_tiles(const Job<T>& j, int64_t begin, int64_t end) {
  constexpr int L = lanes<T>();
  constexpr bool kPixelsIn = S == Step::kInput || S == Step::kInputAdjoint;  // 6x6 pixel side
  const Geometry& g = j.g;
  const int64_t C = S == Step::kInput || S == Step::kInputAdjoint ? g.C : g.Cout;
  const int64_t side = kPixelsIn ? kIn : kOut;
  alignas(64) T a[kPlanes * L], tmp[kPlanes * L], b[kPlanes * L], bias[L];
  constexpr bool kReadsPixels = S == Step::kInput || S == Step::kOutputAdjoint;
  const T* pix_in[kPlanes];  // reading steps, per tile position: the pixel read, or zeros
  T* pix_out[kPlanes];       // writing steps, per tile position: the pixel written, or null
  for (int64_t t = begin; t < end; ++t) {
    const int64_t r = j.r0 + t / g.TW;
    const int64_t n = r / g.TH, ty = r % g.TH, tx = t % g.TW;
    if (S == Step::kInputAdjoint && (ty & 1) != j.parity) continue;
    for (int i = 0; i < side; ++i) {
      for (int jj = 0; jj < side; ++jj) {
        const int64_t offset = kPixelsIn ? input_pixel(g, n, ty, tx, i, jj)
                                         : output_pixel(g, n, ty, tx, i, jj);
        if constexpr (kReadsPixels) {
          pix_in[i * side + jj] = offset >= 0 ? j.src + offset : j.zeros;
        } else {
          pix_out[i * side + jj] = offset >= 0 ? j.dst + offset : nullptr;
        }
      }
    }
    const int64_t row = t * C;  // this tile's row in every plane
    // always_inline: the short last block must get this clone's vector width too
    for_channel_blocks<L>(C, [&](auto full, int64_t c, int64_t count) C10_ALWAYS_INLINE_ATTRIBUTE {
      constexpr bool Full = decltype(full)::value;
      if constexpr (S == Step::kInput) {
        for (int k = 0; k < kPlanes; ++k) load<L, Full>(a + k * L, pix_in[k] + c, count);
        input_tile<L>(a, tmp, b);
        for (int k = 0; k < kPlanes; ++k) store<L, Full, false>(j.dst + k * j.plane + row + c, b + k * L, count);
      } else if constexpr (S == Step::kOutput) {
        for (int k = 0; k < kPlanes; ++k) load<L, Full>(a + k * L, j.src + k * j.plane + row + c, count);
        output_tile<L>(a, tmp, b);
        if (j.bias != nullptr) {
          load<L, Full>(bias, j.bias + c, count);
          for (int k = 0; k < kOut * kOut; ++k) {
            for (int l = 0; l < L; ++l) b[k * L + l] += bias[l];
          }
        }
        for (int k = 0; k < kOut * kOut; ++k) {
          if (pix_out[k] != nullptr) store<L, Full, false>(pix_out[k] + c, b + k * L, count);
        }
      } else if constexpr (S == Step::kOutputAdjoint) {
        for (int k = 0; k < kOut * kOut; ++k) load<L, Full>(a + k * L, pix_in[k] + c, count);
        output_tile_adjoint<L>(a, tmp, b);
        for (int k = 0; k < kPlanes; ++k) store<L, Full, false>(j.dst + k * j.plane + row + c, b + k * L, count);
      } else {
        for (int k = 0; k < kPlanes; ++k) load<L, Full>(a + k * L, j.src + k * j.plane + row + c, count);
        input_tile_adjoint<L>(a, tmp, b);
        for (int k = 0; k < kPlanes; ++k) {
          if (pix_out[k] != nullptr) store<L, Full, true>(pix_out[k] + c, b + k * L, count);
        }
      }
    });
  }
}

// The per-ISA entry points (target_clones needs plain functions, not templates).
#define PYTEXSYNTH_WINOGRAD_RANGE(NAME, STEP, T) \
  PYTEXSYNTH_SIMD_CLONES void NAME(const Job<T>& j, int64_t begin, int64_t end) { run_tiles<STEP, T>(j, begin, end); }
PYTEXSYNTH_WINOGRAD_RANGE(input_f, Step::kInput, float)
PYTEXSYNTH_WINOGRAD_RANGE(input_d, Step::kInput, double)
PYTEXSYNTH_WINOGRAD_RANGE(output_f, Step::kOutput, float)
PYTEXSYNTH_WINOGRAD_RANGE(output_d, Step::kOutput, double)
PYTEXSYNTH_WINOGRAD_RANGE(output_adjoint_f, Step::kOutputAdjoint, float)
PYTEXSYNTH_WINOGRAD_RANGE(output_adjoint_d, Step::kOutputAdjoint, double)
PYTEXSYNTH_WINOGRAD_RANGE(input_adjoint_f, Step::kInputAdjoint, float)
PYTEXSYNTH_WINOGRAD_RANGE(input_adjoint_d, Step::kInputAdjoint, double)
#undef PYTEXSYNTH_WINOGRAD_RANGE

template <typename T>
using RangeFn = void (*)(const Job<T>&, int64_t, int64_t);
template <typename T>
struct Ranges;  // the clones above, indexed by Step
template <>
struct Ranges<float> {
  static constexpr RangeFn<float> fn[4] = {input_f, output_f, output_adjoint_f, input_adjoint_f};
};
template <>
struct Ranges<double> {
  static constexpr RangeFn<double> fn[4] = {input_d, output_d, output_adjoint_d, input_adjoint_d};
};

template <Step S, typename T>
void range(const Job<T>& j, int64_t b, int64_t e) {
  Ranges<T>::fn[static_cast<int>(S)](j, b, e);
}

struct CpuBackend {
  // V and M of a chunk: measured fastest at 8-16 MiB on the AVX-512 Xeon (L3-resident; smaller
  // chunks make GEMMs too short, larger ones spill to memory).
  static int64_t default_chunk_bytes() { return int64_t(16) << 20; }

  template <Step S>
  static void transform(const at::Tensor& src, at::Tensor& dst, const at::Tensor& planes, const at::Tensor& bias,
                        const Geometry& g, int64_t r0, int64_t r1) {
    const int64_t tiles = (r1 - r0) * g.TW;
    const int64_t C = S == Step::kInput || S == Step::kInputAdjoint ? g.C : g.Cout;
    AT_DISPATCH_FLOATING_TYPES(src.scalar_type(), "winograd_transform_cpu", [&] {
      const std::vector<scalar_t> zeros(std::max(g.C, g.Cout), scalar_t(0));
      Job<scalar_t> j{g, r0, planes.stride(0), src.const_data_ptr<scalar_t>(), dst.mutable_data_ptr<scalar_t>(),
                      bias.defined() ? bias.const_data_ptr<scalar_t>() : nullptr, zeros.data(), 0};
      if constexpr (S == Step::kInputAdjoint) {
        // Whole tile rows per task, left to right (a tile's overlap with its left neighbour is
        // still in cache); rows of one parity never share a pixel, so the even rows run in
        // parallel, then the odd ones.
        for (int parity = 0; parity < 2; ++parity) {
          j.parity = parity;
          at::parallel_for(0, r1 - r0, 1, [&](int64_t b, int64_t e) { range<S>(j, b * g.TW, e * g.TW); });
        }
      } else {
        const int64_t grain = std::max<int64_t>(1, 4096 / std::max<int64_t>(1, C));
        at::parallel_for(0, tiles, grain, [&](int64_t b, int64_t e) { range<S>(j, b, e); });
      }
    });
  }

  // out[k] (+)= a[k] @ b[k] for the 36 planes.
  static void gemm(const at::Tensor& a, const at::Tensor& b, at::Tensor& out, bool accumulate) {
    for (int64_t k = 0; k < kPlanes; ++k) {
      auto o = out.select(0, k);
      if (accumulate) {
        o.addmm_(a.select(0, k), b.select(0, k));
      } else {
        at::mm_out(o, a.select(0, k), b.select(0, k));
      }
    }
  }
};

}  // namespace

TORCH_LIBRARY_IMPL(pytexsynth, CPU, m) { register_kernels<CpuBackend>(m); }

}  // namespace winograd
}  // namespace pytexsynth
