// Per-entry arithmetic of the Gram matrix and Gram loss epilogues, shared by the CPU and CUDA
// kernels so that the CPU tests exercise exactly the math the GPU runs.
//
// Both devices first compute raw products P = F F^T with a GEMM (the GPU in S partial sums over
// slices of H*W, the CPU in one). The epilogue then reads only the upper triangle (i <= j) of P
// and writes both (i, j) and (j, i): G is symmetric bit for bit, and the target of a loss
// computed by the same op from the same x gives D = G - T = 0 exactly.
#pragma once

#include <c10/macros/Macros.h>

namespace pytexsynth {
namespace gram {

// Sum of the `splits` partial products of one Gram entry, in split order (deterministic: the
// same bits on every run whatever the thread count). No max/min tricks: NaN propagates.
template <typename acc_t, typename index_t>
C10_HOST_DEVICE inline acc_t sum_partials(const acc_t* p, index_t splits, index_t split_stride) {
  acc_t s = p[0];
  for (index_t k = 1; k < splits; ++k) s += p[k * split_stride];
  return s;
}

// Gram entry (i, j), i <= j, of one image: partials points at that image's (S, C, C) products.
template <typename acc_t, typename index_t>
C10_HOST_DEVICE inline acc_t entry(const acc_t* partials, index_t splits, index_t C, index_t i, index_t j,
                                   acc_t norm) {
  return sum_partials(partials + i * C + j, splits, C * C) / norm;
}

// gram(): writes the entry (i <= j) at (i, j) and its mirror (j, i) of the (C, C) output.
template <typename out_t, typename acc_t, typename index_t>
C10_HOST_DEVICE inline void gram_pair(const acc_t* partials, index_t splits, index_t C, index_t i, index_t j,
                                      acc_t norm, out_t* out) {
  const out_t g = static_cast<out_t>(entry(partials, splits, C, i, j, norm));
  out[i * C + j] = g;
  out[j * C + i] = g;
}

// gram_loss(): for the pair i <= j writes D = G - T at (i, j) and (j, i) (T need not be
// symmetric), and returns the pair's squared error (one term on the diagonal, two off it).
// target points at this image's (C, C) target, read through strides (ti, tj).
template <typename acc_t, typename t_t, typename index_t>
C10_HOST_DEVICE inline acc_t loss_pair(const acc_t* partials, index_t splits, index_t C, index_t i, index_t j,
                                       acc_t norm, const t_t* target, index_t ti, index_t tj, acc_t* diff) {
  const acc_t g = entry(partials, splits, C, i, j, norm);
  const acc_t d_ij = g - static_cast<acc_t>(target[i * ti + j * tj]);
  diff[i * C + j] = d_ij;
  if (i == j) return d_ij * d_ij;
  const acc_t d_ji = g - static_cast<acc_t>(target[j * ti + i * tj]);
  diff[j * C + i] = d_ji;
  return d_ij * d_ij + d_ji * d_ji;
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
