// Per-entry arithmetic of the Gram matrix and Gram loss epilogues, and the tile schedule of the
// forward products, shared by the CPU and CUDA kernels so that the CPU tests exercise exactly the
// enumeration, chunking, reduction order and mirroring the GPU runs.
//
// Forward: G is cut into tile x tile blocks and only the upper-triangle tile pairs (ti <= tj) are
// multiplied, each over `chunks` slices of H*W into its own slot of a workspace of raw partial
// products (the GPU: one batched cuBLAS call per operand shape; the CPU: one ATen GEMM per item,
// in parallel). The epilogue then sums the chunk partials of each upper entry (i <= j) in chunk
// order and writes both (i, j) and (j, i): G is symmetric bit for bit, the sums do not depend on
// the order in which the GEMMs ran, and the target of a loss computed by the same op from the
// same x gives D = G - T = 0 exactly.
#pragma once

#include <c10/macros/Macros.h>

#include <cstdint>

#include "common/indexing.h"

namespace pytexsynth {
namespace gram {

// ---- tile schedule --------------------------------------------------------------------------

// Tile edge of the upper-triangle schedule (one cuBLAS CTA tile on the GPU). A C below it is one
// tile of C.
constexpr int64_t kTile = 128;
// Chunk lengths are multiples of this many pixels, so chunk starts keep 16-byte alignment.
constexpr int64_t kChunkAlign = 8;

// Index of the tile pair (ti, ti) in the row-major enumeration of pairs ti <= tj.
C10_HOST_DEVICE inline int64_t pair_first(int64_t tiles, int64_t ti) { return ti * tiles - ti * (ti - 1) / 2; }

// One GEMM of the forward: P[item] = F[rows of tile ti, chunk] F[rows of tile tj, chunk]^T,
// (rows x cols) stored row-major with leading dimension `tile` in the item's workspace slot.
struct TileItem {
  int64_t b, pair, ti, tj, chunk;
  int64_t row0, rows, col0, cols;  // channel ranges of tile ti (rows) and tile tj (cols)
  int64_t k0, klen;                // pixel range of the chunk
};

struct Schedule {
  int64_t B = 0, C = 0, n = 0;
  int64_t tile = 1, tiles = 0, pairs = 0;  // tile edge, tiles per side, upper-triangle pairs
  int64_t chunk = 1, chunks = 1;           // pixels per chunk (the last may be shorter), count

  C10_HOST_DEVICE int64_t items() const { return B * pairs * chunks; }
  C10_HOST_DEVICE int64_t slot() const { return tile * tile; }  // workspace elements per item
  C10_HOST_DEVICE int64_t workspace() const { return items() * slot(); }

  C10_HOST_DEVICE int64_t pair_index(int64_t ti, int64_t tj) const { return pair_first(tiles, ti) + (tj - ti); }

  // Item w = (b * pairs + pair) * chunks + chunk; its slot starts at w * slot().
  C10_HOST_DEVICE TileItem item(int64_t w) const {
    TileItem it;
    it.chunk = w % chunks;
    w /= chunks;
    it.pair = w % pairs;
    it.b = w / pairs;
    int64_t ti = 0;
    while (ti + 1 < tiles && pair_first(tiles, ti + 1) <= it.pair) ++ti;
    it.ti = ti;
    it.tj = ti + (it.pair - pair_first(tiles, ti));
    it.row0 = it.ti * tile;
    it.rows = (C - it.row0) < tile ? (C - it.row0) : tile;
    it.col0 = it.tj * tile;
    it.cols = (C - it.col0) < tile ? (C - it.col0) : tile;
    it.k0 = it.chunk * chunk;
    it.klen = (n - it.k0) < chunk ? (n - it.k0) : chunk;
    return it;
  }

  // One past the last column of the tile holding column j.
  C10_HOST_DEVICE int64_t tile_end(int64_t j) const {
    const int64_t e = (j / tile + 1) * tile;
    return e < C ? e : C;
  }

  // Offset of entry (i, j), i <= j, of image b in the slot of its tile pair's chunk 0; the
  // other chunks follow at a stride of slot().
  C10_HOST_DEVICE int64_t entry_offset(int64_t b, int64_t i, int64_t j) const {
    const int64_t ti = i / tile, tj = j / tile;
    return ((b * pairs + pair_index(ti, tj)) * chunks) * slot() + (i - ti * tile) * tile + (j - tj * tile);
  }
};

// The schedule for B images of C channels and n pixels: enough chunks that the B * pairs * chunks
// GEMMs number about `target_items`, each chunk at least `min_chunk` pixels long, the workspace
// at most `max_workspace` elements. It depends only on these numbers: gram() and gram_loss() of
// the same x use the same schedule (so a target made by gram() gives D = 0 exactly), and the
// CPU's does not depend on its thread count (each GEMM's own bits are the BLAS library's).
inline Schedule make_schedule(int64_t B, int64_t C, int64_t n, int64_t target_items, int64_t min_chunk,
                              int64_t max_workspace) {
  Schedule s;
  s.B = B;
  s.C = C;
  s.n = n;
  s.tile = C < kTile ? (C > 0 ? C : 1) : kTile;
  s.tiles = ceil_div(C, s.tile);
  s.pairs = s.tiles * (s.tiles + 1) / 2;
  if (n <= 0) return s;  // one empty chunk: the caller zeroes the workspace
  const int64_t tiles_all = B * s.pairs > 0 ? B * s.pairs : 1;
  const int64_t want = ceil_div(target_items, tiles_all);
  const int64_t by_len = n / (min_chunk > 0 ? min_chunk : 1);
  const int64_t by_mem = max_workspace / (tiles_all * s.slot());
  int64_t count = want < by_len ? want : by_len;
  count = count < by_mem ? count : by_mem;
  count = count > 1 ? count : 1;
  s.chunk = ceil_div(ceil_div(n, count), kChunkAlign) * kChunkAlign;
  s.chunk = s.chunk < n ? s.chunk : n;
  s.chunks = ceil_div(n, s.chunk);
  return s;
}

// Offset, within one image's features, of channel ch at pixel k: NCHW rows of n pixels per
// channel, or NHWC rows of C channels per pixel. Operands of a tile are (channels x pixels)
// blocks with strides (n, 1) for NCHW, (1, C) for NHWC.
C10_HOST_DEVICE inline int64_t feature_offset(bool channels_last, int64_t C, int64_t n, int64_t ch, int64_t k) {
  return channels_last ? k * C + ch : ch * n + k;
}

// ---- epilogue -------------------------------------------------------------------------------

// Sum of the `chunks` partial products of one Gram entry, in chunk order (deterministic: the
// same bits on every run). No max/min tricks: NaN propagates.
template <typename acc_t, typename index_t>
C10_HOST_DEVICE inline acc_t sum_partials(const acc_t* p, index_t chunks, index_t chunk_stride) {
  acc_t s = p[0];
#ifdef __CUDA_ARCH__
#pragma unroll 8
#endif
  for (index_t k = 1; k < chunks; ++k) s += p[k * chunk_stride];  // unrolled: 8 loads in flight
  return s;
}

// Gram entry whose chunk-0 partial is at p (chunk k at p + k * slot()).
template <typename acc_t>
C10_HOST_DEVICE inline acc_t entry_at(const acc_t* p, const Schedule& s, acc_t norm) {
  return sum_partials(p, s.chunks, s.slot()) / norm;
}

// Gram entry (i, j), i <= j, of image b from the workspace of schedule s. Within one tile,
// entry_offset grows by 1 with j: a row's entries of one tile are contiguous in every slot, so
// the CPU walks them with entry_at from the segment's first offset.
template <typename acc_t>
C10_HOST_DEVICE inline acc_t entry(const acc_t* work, const Schedule& s, int64_t b, int64_t i, int64_t j,
                                   acc_t norm) {
  return entry_at(work + s.entry_offset(b, i, j), s, norm);
}

// gram(): writes the entry (i <= j) with chunk-0 partial at p at (i, j) and its mirror (j, i) of
// one image's (C, C) output.
template <typename out_t, typename acc_t>
C10_HOST_DEVICE inline void gram_pair_at(const acc_t* p, const Schedule& s, int64_t i, int64_t j, acc_t norm,
                                         out_t* out) {
  const out_t g = static_cast<out_t>(entry_at(p, s, norm));
  out[i * s.C + j] = g;
  out[j * s.C + i] = g;
}

template <typename out_t, typename acc_t>
C10_HOST_DEVICE inline void gram_pair(const acc_t* work, const Schedule& s, int64_t b, int64_t i, int64_t j,
                                      acc_t norm, out_t* out) {
  gram_pair_at(work + s.entry_offset(b, i, j), s, i, j, norm, out);
}

// gram_loss(): for the pair i <= j (chunk-0 partial at p) writes D = G - T at (i, j) and (j, i)
// of one image's (C, C) diff (T need not be symmetric), and returns the pair's squared error
// (one term on the diagonal, two off it). target points at this image's (C, C) target, read
// through strides (ti, tj).
template <typename acc_t, typename t_t>
C10_HOST_DEVICE inline acc_t loss_pair_at(const acc_t* p, const Schedule& s, int64_t i, int64_t j, acc_t norm,
                                          const t_t* target, int64_t ti, int64_t tj, acc_t* diff) {
  const acc_t g = entry_at(p, s, norm);
  const acc_t d_ij = g - static_cast<acc_t>(target[i * ti + j * tj]);
  diff[i * s.C + j] = d_ij;
  if (i == j) return d_ij * d_ij;
  const acc_t d_ji = g - static_cast<acc_t>(target[j * ti + i * tj]);
  diff[j * s.C + i] = d_ji;
  return d_ij * d_ij + d_ji * d_ji;
}

template <typename acc_t, typename t_t>
C10_HOST_DEVICE inline acc_t loss_pair(const acc_t* work, const Schedule& s, int64_t b, int64_t i, int64_t j,
                                       acc_t norm, const t_t* target, int64_t ti, int64_t tj, acc_t* diff) {
  return loss_pair_at(work + s.entry_offset(b, i, j), s, i, j, norm, target, ti, tj, diff);
}

// The loss from the sum of squared errors: weight * mean.
template <typename acc_t>
C10_HOST_DEVICE inline acc_t finish_loss(acc_t sum_sq, acc_t count, acc_t weight) {
  return weight * (sum_sq / count);
}

// Backward, entry (i, j) of the symmetric matrix S with grad_x = S F:
//   gram:      S = (dG + dG^T) / norm,                       scale = 1 / norm
//   gram_loss: S = grad * 2 w / (count * norm) * (D + D^T),  scale = coef * grad (read on device)
// m_ij + m_ji is commutative, so S is exactly symmetric too.
template <typename acc_t>
C10_HOST_DEVICE inline acc_t symmetric_grad(acc_t m_ij, acc_t m_ji, acc_t scale) {
  return scale * (m_ij + m_ji);
}

}  // namespace gram
}  // namespace pytexsynth
