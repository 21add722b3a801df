// Per-element arithmetic of style-swap (Chen & Schmidt 2016), shared by the CPU and CUDA
// kernels so that the CPU tests exercise exactly the arithmetic the GPU runs: the running
// (max, argmax) update and its tie rule, the two ways of turning a GEMM block into patch
// scores, the closed-form overlap counts, the decode gather and the style-gradient gather.
#pragma once

#include <c10/macros/Macros.h>

#include <cstdint>
#include <limits>

namespace pytexsynth {
namespace style_swap {

// Sizes of one problem. Content patches: (nH, nW) grid at stride s over (H, W); style patches
// likewise over (Hs, Ws); patch k x k. ns = nHs * nWs style patches per style image.
struct Geometry {
  int64_t C, H, W, Hs, Ws;
  int64_t k, s;
  int64_t nH, nW, nHs, nWs;
  C10_HOST_DEVICE int64_t ns() const { return nHs * nWs; }
  C10_HOST_DEVICE int64_t nc() const { return nH * nW; }
};

// ---- matching ---------------------------------------------------------------------------

// Running best of one content patch. Candidates arrive in increasing style index, so a strict
// comparison keeps the smallest index among equal scores (torch.argmax's rule). NaN never wins.
template <typename acc_t>
C10_HOST_DEVICE inline void update_best(acc_t& best, int64_t& best_index, acc_t score, int64_t index) {
  if (score > best) {  // (not >=: the first of equal scores stays)
    best = score;
    best_index = index;
  }
}

// A patch score: the raw dot product times 1 / (||style patch|| + 1e-8), normalised after the
// GEMM so equal style patches give bitwise equal scores whenever their dot products are exact.
template <typename acc_t>
C10_HOST_DEVICE inline acc_t normalized_score(acc_t dot, acc_t inv_norm) {
  return dot * inv_norm;
}

// Merging two partial bests whose candidates interleave (the lanes of a CUDA warp): the higher
// score wins, an equal score goes to the smaller index, so the result equals the sequential scan.
template <typename acc_t>
C10_HOST_DEVICE inline void merge_best(acc_t& best, int64_t& best_index, acc_t other, int64_t other_index) {
  if (other > best || (other == best && other_index < best_index)) {
    best = other;
    best_index = other_index;
  }
}

// Running best over scores[0..n) (style indices index0..index0+n-1, all above those seen so
// far) in L interleaved lanes, merged like the lanes of a CUDA warp. The lanes break the
// compare-select dependency chain (the CPU scan's ILP); the result equals a sequential scan.
template <int L, typename acc_t>
C10_HOST_DEVICE inline void scan_best(const acc_t* scores, int64_t n, int64_t index0, acc_t& best,
                                      int64_t& best_index) {
  acc_t v[L];
  int64_t ix[L];
  for (int l = 0; l < L; ++l) {
    v[l] = -std::numeric_limits<acc_t>::infinity();
    ix[l] = -1;  // no candidate yet
  }
  int64_t c = 0;
  for (; c + L <= n; c += L) {
    for (int l = 0; l < L; ++l) update_best(v[l], ix[l], scores[c + l], index0 + c + l);
  }
  for (int l = 0; c + l < n; ++l) update_best(v[l], ix[l], scores[c + l], index0 + c + l);
  for (int l = 1; l < L; ++l) {
    if (ix[l] >= 0) merge_best(v[0], ix[0], v[l], ix[l]);
  }
  if (ix[0] >= 0) update_best(best, best_index, v[0], ix[0]);
}

// Score of a content patch against a style patch from a block of the pixel-level product
// M = content_pixels^T style_pixels (rows: content pixels of a band of W-wide rows, columns:
// style pixels of a band of Ws-wide rows, leading dimension ldm). row / col: the position of
// the patches' top-left pixels in the block. The patch score is the sum of the k*k aligned
// pixel products, taken in (dy, dx) order: k*k fewer GEMM FLOPs than the unfolded patch GEMM.
// K > 0 fixes the patch size at compile time (unrolled loops; the CPU vectorises across
// neighbouring style patches), K = 0 takes k at run time; both sum in the same order.
template <int K = 0, typename acc_t>
C10_HOST_DEVICE inline acc_t pixel_block_score(const acc_t* M, int64_t ldm, int64_t row, int64_t col,
                                               int64_t W, int64_t Ws, int64_t k_runtime) {
  const int64_t k = K > 0 ? K : k_runtime;
  acc_t sum = acc_t(0);
  for (int64_t dy = 0; dy < k; ++dy) {
    const acc_t* m = M + (row + dy * W) * ldm + col + dy * Ws;
    for (int64_t dx = 0; dx < k; ++dx) sum += m[dx * ldm + dx];
  }
  return sum;
}

// ---- decode (overlap averaging) and its adjoint ----------------------------------------

// Patches i (0 <= i < n) of a stride-s, size-k grid that cover position x: lo..hi inclusive
// (empty when hi < lo: the trailing positions a stride leaves uncovered).
C10_HOST_DEVICE inline void covering_patches(int64_t x, int64_t k, int64_t s, int64_t n, int64_t& lo, int64_t& hi) {
  lo = x < k ? 0 : (x - k) / s + 1;
  hi = x / s;
  if (hi > n - 1) hi = n - 1;
}

// How many content patches cover pixel (h, w): the divisor of the overlap average.
C10_HOST_DEVICE inline int64_t overlap_count(int64_t h, int64_t w, const Geometry& g) {
  int64_t i0, i1, j0, j1;
  covering_patches(h, g.k, g.s, g.nH, i0, i1);
  covering_patches(w, g.k, g.s, g.nW, j0, j1);
  const int64_t ni = i1 - i0 + 1, nj = j1 - j0 + 1;
  return (ni > 0 && nj > 0) ? ni * nj : 0;
}

// Output pixel (h, w) of one channel: the mean, over the content patches covering it, of the
// value their chosen style patch holds at that position. style points at (bs, c, 0, 0) with
// strides (sHs, sWs); idx at (b, 0, 0) of the (nH, nW) indices with strides (siH, siW).
// Pixels no patch covers (a stride's leftover rows/columns) are 0.
template <typename acc_t, typename scalar_t>
C10_HOST_DEVICE inline acc_t decode_value(const scalar_t* style, int64_t sHs, int64_t sWs, const int64_t* idx,
                                          int64_t siH, int64_t siW, int64_t h, int64_t w, const Geometry& g) {
  int64_t i0, i1, j0, j1;
  covering_patches(h, g.k, g.s, g.nH, i0, i1);
  covering_patches(w, g.k, g.s, g.nW, j0, j1);
  if (i1 < i0 || j1 < j0) return acc_t(0);
  acc_t sum = acc_t(0);
  for (int64_t i = i0; i <= i1; ++i) {
    for (int64_t j = j0; j <= j1; ++j) {
      const int64_t m = idx[i * siH + j * siW];
      const int64_t p = m / g.nWs, q = m - p * g.nWs;
      sum += static_cast<acc_t>(style[(p * g.s + h - i * g.s) * sHs + (q * g.s + w - j * g.s) * sWs]);
    }
  }
  return sum / static_cast<acc_t>((i1 - i0 + 1) * (j1 - j0 + 1));
}

// Gradient of style pixel (y, x) of one channel: the adjoint of decode_value. For every style
// patch (p, q) covering (y, x), in increasing patch order, and every content patch that chose
// it, in increasing content order (the CSR `offsets`/`members` of the inverted matches), add
// that content pixel's grad / overlap count. A gather in a fixed order: no atomics, same bits
// on every device. grad points at (0, c, 0, 0) with strides (sgB, sgH, sgW); members are
// linear content-patch ids b * nc + i * nW + j; bank = bs * ns.
template <typename acc_t, typename scalar_t>
C10_HOST_DEVICE inline acc_t style_grad_value(const scalar_t* grad, int64_t sgB, int64_t sgH, int64_t sgW,
                                              const int64_t* offsets, const int64_t* members, int64_t bank,
                                              int64_t y, int64_t x, const Geometry& g) {
  int64_t p0, p1, q0, q1;
  covering_patches(y, g.k, g.s, g.nHs, p0, p1);
  covering_patches(x, g.k, g.s, g.nWs, q0, q1);
  const int64_t nc = g.nc();
  acc_t sum = acc_t(0);
  for (int64_t p = p0; p <= p1; ++p) {
    for (int64_t q = q0; q <= q1; ++q) {
      const int64_t m = bank + p * g.nWs + q;
      const int64_t dy = y - p * g.s, dx = x - q * g.s;
      for (int64_t e = offsets[m]; e < offsets[m + 1]; ++e) {
        const int64_t cid = members[e];
        const int64_t b = cid / nc, r = cid - b * nc;
        const int64_t i = r / g.nW, j = r - i * g.nW;
        const int64_t h = i * g.s + dy, w = j * g.s + dx;
        sum += static_cast<acc_t>(grad[b * sgB + h * sgH + w * sgW]) / static_cast<acc_t>(overlap_count(h, w, g));
      }
    }
  }
  return sum;
}

}  // namespace style_swap
}  // namespace pytexsynth
