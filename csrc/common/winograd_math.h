// Per-tile arithmetic of the Winograd F(4x4, 3x3) convolution (Lavin & Gray 2016), shared by the
// CPU and CUDA kernels so the CPU tests exercise the arithmetic the GPU runs.
//
// A 3x3 convolution of a 6x6 input tile d gives a 4x4 output tile
//     y = A^T [ (G g G^T) .* (B^T d B) ] A,
// so after transforming the weights once (U = G g G^T, pytexsynth.ops.winograd_weight) the
// convolution is 36 independent matrix products over channels, V_k (tiles x C) @ U_k (C x C'),
// with 36 multiplications per 16 outputs instead of 144: 4x fewer than a direct convolution.
// Interpolation points 0, +-1, +-2 and infinity, the usual choice for float32.
//
// Every function works on L lanes at once (element i, lane l at p[i * stride + l]): the CPU
// kernels use L = 16 channels so each line is one vector instruction, the CUDA kernels L = 1.
// The adjoints (transposes) give the backward pass: it is the exact gradient of the forward.
#pragma once

#include <c10/macros/Macros.h>

// Full unrolling of the short fixed loops below (nvcc and clang read "unroll", GCC its own).
#if defined(__CUDACC__) || defined(__clang__)
#define PYTEXSYNTH_UNROLL _Pragma("unroll")
#elif defined(__GNUC__)
#define PYTEXSYNTH_UNROLL _Pragma("GCC unroll 16")
#else
#define PYTEXSYNTH_UNROLL
#endif

// Forced inlining, so the CPU's per-ISA clones (cpu/winograd.cpp) compile every transform with
// their own vector width instead of calling one baseline copy.
#if defined(__CUDACC__)
#define PYTEXSYNTH_WINO_INLINE C10_HOST_DEVICE __forceinline__
#else
#define PYTEXSYNTH_WINO_INLINE C10_ALWAYS_INLINE
#endif

namespace pytexsynth {
namespace winograd {

constexpr int kOut = 4;     // output tile side
constexpr int kIn = 6;      // input tile side (kOut + 3 - 1)
constexpr int kPlanes = 36; // kIn * kIn transformed elements per tile

// o = B^T d (6 -> 6).
template <int L, typename T>
PYTEXSYNTH_WINO_INLINE void bt6(const T* d, int ds, T* o, int os) {
PYTEXSYNTH_UNROLL
  for (int l = 0; l < L; ++l) {
    const T d0 = d[l], d1 = d[ds + l], d2 = d[2 * ds + l], d3 = d[3 * ds + l], d4 = d[4 * ds + l],
            d5 = d[5 * ds + l];
    o[l] = T(4) * d0 - T(5) * d2 + d4;
    o[os + l] = d3 + d4 - T(4) * (d1 + d2);
    o[2 * os + l] = d4 - d3 + T(4) * (d1 - d2);
    o[3 * os + l] = d4 - d2 - T(2) * (d1 - d3);
    o[4 * os + l] = d4 - d2 + T(2) * (d1 - d3);
    o[5 * os + l] = T(4) * d1 - T(5) * d3 + d5;
  }
}

// o = B v (6 -> 6), the adjoint of bt6.
template <int L, typename T>
PYTEXSYNTH_WINO_INLINE void b6(const T* v, int vs, T* o, int os) {
PYTEXSYNTH_UNROLL
  for (int l = 0; l < L; ++l) {
    const T v0 = v[l], v1 = v[vs + l], v2 = v[2 * vs + l], v3 = v[3 * vs + l], v4 = v[4 * vs + l],
            v5 = v[5 * vs + l];
    o[l] = T(4) * v0;
    o[os + l] = T(4) * (v2 - v1 + v5) + T(2) * (v4 - v3);
    o[2 * os + l] = -T(5) * v0 - T(4) * (v1 + v2) - v3 - v4;
    o[3 * os + l] = v1 - v2 + T(2) * (v3 - v4) - T(5) * v5;
    o[4 * os + l] = v0 + v1 + v2 + v3 + v4;
    o[5 * os + l] = v5;
  }
}

// y = A^T m (6 -> 4).
template <int L, typename T>
PYTEXSYNTH_WINO_INLINE void at6(const T* m, int ms, T* y, int ys) {
PYTEXSYNTH_UNROLL
  for (int l = 0; l < L; ++l) {
    const T m0 = m[l], m1 = m[ms + l], m2 = m[2 * ms + l], m3 = m[3 * ms + l], m4 = m[4 * ms + l],
            m5 = m[5 * ms + l];
    const T s12 = m1 + m2, d12 = m1 - m2, s34 = m3 + m4, d34 = m3 - m4;
    y[l] = m0 + s12 + s34;
    y[ys + l] = d12 + T(2) * d34;
    y[2 * ys + l] = s12 + T(4) * s34;
    y[3 * ys + l] = d12 + T(8) * d34 + m5;
  }
}

// m = A y (4 -> 6), the adjoint of at6.
template <int L, typename T>
PYTEXSYNTH_WINO_INLINE void a6(const T* y, int ys, T* m, int ms) {
PYTEXSYNTH_UNROLL
  for (int l = 0; l < L; ++l) {
    const T y0 = y[l], y1 = y[ys + l], y2 = y[2 * ys + l], y3 = y[3 * ys + l];
    const T e = y0 + y2, o = y1 + y3, e4 = y0 + T(4) * y2, o8 = T(2) * y1 + T(8) * y3;
    m[l] = y0;
    m[ms + l] = e + o;
    m[2 * ms + l] = e - o;
    m[3 * ms + l] = e4 + o8;
    m[4 * ms + l] = e4 - o8;
    m[5 * ms + l] = y3;
  }
}

// Tiles are row-major, element (i, j) of lane l at [(i * side + j) * L + l].

// v = B^T d B: a 6x6 input tile to its 36 transformed values. tmp: 36 * L scratch.
template <int L, typename T>
PYTEXSYNTH_WINO_INLINE void input_tile(const T* d, T* tmp, T* v) {
PYTEXSYNTH_UNROLL
  for (int j = 0; j < kIn; ++j) bt6<L>(d + j * L, kIn * L, tmp + j * L, kIn * L);  // columns
PYTEXSYNTH_UNROLL
  for (int i = 0; i < kIn; ++i) bt6<L>(tmp + i * kIn * L, L, v + i * kIn * L, L);  // rows
}

// d = B v B^T, the adjoint of input_tile.
template <int L, typename T>
PYTEXSYNTH_WINO_INLINE void input_tile_adjoint(const T* v, T* tmp, T* d) {
PYTEXSYNTH_UNROLL
  for (int j = 0; j < kIn; ++j) b6<L>(v + j * L, kIn * L, tmp + j * L, kIn * L);
PYTEXSYNTH_UNROLL
  for (int i = 0; i < kIn; ++i) b6<L>(tmp + i * kIn * L, L, d + i * kIn * L, L);
}

// y = A^T m A: 36 products to a 4x4 output tile. tmp: 24 * L scratch.
template <int L, typename T>
PYTEXSYNTH_WINO_INLINE void output_tile(const T* m, T* tmp, T* y) {
PYTEXSYNTH_UNROLL
  for (int j = 0; j < kIn; ++j) at6<L>(m + j * L, kIn * L, tmp + j * L, kIn * L);      // (4 x 6)
PYTEXSYNTH_UNROLL
  for (int i = 0; i < kOut; ++i) at6<L>(tmp + i * kIn * L, L, y + i * kOut * L, L);    // (4 x 4)
}

// m = A y A^T, the adjoint of output_tile.
template <int L, typename T>
PYTEXSYNTH_WINO_INLINE void output_tile_adjoint(const T* y, T* tmp, T* m) {
PYTEXSYNTH_UNROLL
  for (int j = 0; j < kOut; ++j) a6<L>(y + j * L, kOut * L, tmp + j * L, kOut * L);    // (6 x 4)
PYTEXSYNTH_UNROLL
  for (int i = 0; i < kIn; ++i) a6<L>(tmp + i * kOut * L, L, m + i * kIn * L, L);      // (6 x 6)
}

// Sizes of one convolution. Tiles of 4x4 outputs are numbered by tile row r = n * TH + ty of
// the whole batch and column tx; tensors of pixels are NHWC, planes (36, tiles, channels).
struct Geometry {
  int64_t N, C, H, W;  // input
  int64_t Cout, Ho, Wo;
  int64_t pad;         // 0 or 1, zeros
  int64_t TH, TW;      // tiles per column and per row of one image
  C10_HOST_DEVICE int64_t rows() const { return N * TH; }
};

// The four transforms; each backend implements transform<Step>(src, dst, planes, bias, ...).
enum class Step { kInput, kOutput, kOutputAdjoint, kInputAdjoint };

// Which input row (or column) position i of tile t reads: 4 t + i - pad, or -1 outside [0, n).
PYTEXSYNTH_WINO_INLINE int64_t source(int64_t t, int i, int64_t pad, int64_t n) {
  const int64_t s = kOut * t + i - pad;
  return (s >= 0 && s < n) ? s : -1;
}

// Output row (or column) position i of tile t, or -1 past the end (the last tile may overhang).
PYTEXSYNTH_WINO_INLINE int64_t target(int64_t t, int i, int64_t n) {
  const int64_t s = kOut * t + i;
  return s < n ? s : -1;
}

// Offset of input pixel (i, j) of tile (n, ty, tx) in the NHWC input, or -1 in the padding.
PYTEXSYNTH_WINO_INLINE int64_t input_pixel(const Geometry& g, int64_t n, int64_t ty, int64_t tx, int i, int j) {
  const int64_t h = source(ty, i, g.pad, g.H), w = source(tx, j, g.pad, g.W);
  return (h >= 0 && w >= 0) ? ((n * g.H + h) * g.W + w) * g.C : -1;
}

// Offset of output pixel (i, j) of tile (n, ty, tx) in the NHWC output, or -1 past its edge.
PYTEXSYNTH_WINO_INLINE int64_t output_pixel(const Geometry& g, int64_t n, int64_t ty, int64_t tx, int i, int j) {
  const int64_t h = target(ty, i, g.Ho), w = target(tx, j, g.Wo);
  return (h >= 0 && w >= 0) ? ((n * g.Ho + h) * g.Wo + w) * g.Cout : -1;
}

}  // namespace winograd
}  // namespace pytexsynth
