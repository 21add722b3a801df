// Per-element and per-plane arithmetic of AdaIN (Huang & Belongie 2017), shared by the CPU and
// CUDA kernels so that the CPU tests exercise the formulas the GPU runs.
//
// For one (n, c) plane of the content x (M values) and of the style s (Ms values):
//   mu, var = mean and biased variance; sigma = sqrt(var + eps)
//   y   = sigma_s * (x - mu_x) / sigma_x + mu_s,   out = alpha * y + (1 - alpha) * x
// which is one fused affine map per plane, out = a * (x - mu_x) + c (forward_coefs).
// Backward, with g = dL/dout, r = sigma_s / sigma_x, xhat = (x - mu_x) / sigma_x:
//   dL/dx   = (1 - alpha + alpha r) g - alpha r (mean(g) + xhat mean(g xhat))
//   dL/dmu_s = alpha sum(g),  dL/dsigma_s = alpha sum(g xhat)
//   dL/ds   = (dL/dmu_s + dL/dsigma_s (s - mu_s) / sigma_s) / Ms
// Statistics are merged from partial moments (count, mean, M2) with Chan et al.'s formula: one
// pass over memory, no E[x^2] - E[x]^2 cancellation, and a fixed merge order (deterministic).
// A NaN or infinity in a plane makes its statistics NaN, and so every output (and gradient)
// value that depends on them.
#pragma once

#include <c10/macros/Macros.h>

#include <cmath>
#include <cstdint>

namespace pytexsynth {
namespace adain {

// The planes of one tensor: (N, C, H, W) read through its strides (3-D: N = 1, sN = 0).
struct Planes {
  int64_t N, C, H, W;
  int64_t sN, sC, sH, sW;
  C10_HOST_DEVICE int64_t count() const { return N * C; }
  C10_HOST_DEVICE int64_t numel() const { return H * W; }
  // Offset of plane p = n * C + c.
  C10_HOST_DEVICE int64_t base(int64_t p) const { return (p / C) * sN + (p % C) * sC; }
  // Offset of element i (row-major over H, W) inside a plane.
  C10_HOST_DEVICE int64_t offset(int64_t i) const { return (i / W) * sH + (i % W) * sW; }
};

// Partial moments of some values: their count, mean and sum of squared deviations.
template <typename acc_t>
struct Moments {
  int64_t n;
  acc_t mean, m2;
};

template <typename acc_t>
C10_HOST_DEVICE inline Moments<acc_t> empty_moments() {
  return {0, acc_t(0), acc_t(0)};
}

// Welford's update with one value.
template <typename acc_t>
C10_HOST_DEVICE inline void add_value(Moments<acc_t>& m, acc_t v) {
  m.n += 1;
  const acc_t d = v - m.mean;
  m.mean += d / static_cast<acc_t>(m.n);
  m.m2 += d * (v - m.mean);
}

// Chan et al.'s merge of two partial moments (either may be empty).
template <typename acc_t>
C10_HOST_DEVICE inline Moments<acc_t> merge(const Moments<acc_t>& a, const Moments<acc_t>& b) {
  if (b.n == 0) return a;
  if (a.n == 0) return b;
  const int64_t n = a.n + b.n;
  const acc_t fb = static_cast<acc_t>(b.n) / static_cast<acc_t>(n);
  const acc_t d = b.mean - a.mean;
  return {n, a.mean + d * fb, a.m2 + b.m2 + d * d * static_cast<acc_t>(a.n) * fb};
}

// Mean and sigma = sqrt(biased variance + eps) of a whole plane.
template <typename acc_t>
struct Stats {
  acc_t mean, sigma;
};

template <typename acc_t>
C10_HOST_DEVICE inline Stats<acc_t> stats_of(const Moments<acc_t>& m, acc_t eps) {
  const acc_t var = m.m2 / static_cast<acc_t>(m.n);
  // var >= 0 by construction (a sum of squares); NaN propagates.
  return {m.mean, static_cast<acc_t>(::sqrt(var + eps))};
}

// Forward: out = a * (x - mu_x) + c for every x of the plane, c = alpha mu_s + (1 - alpha) mu_x.
// Centred first: a * x + b would cancel when a = sigma_s / sigma_x is large (a near-constant plane).
template <typename acc_t>
struct Affine {
  acc_t a, b;
};

template <typename acc_t>
struct ForwardMap {
  acc_t a, mu, c;
};

template <typename acc_t>
C10_HOST_DEVICE inline ForwardMap<acc_t> forward_coefs(Stats<acc_t> x, Stats<acc_t> s, acc_t alpha) {
  const acc_t r = s.sigma / x.sigma;
  return {alpha * r + (acc_t(1) - alpha), x.mean, alpha * s.mean + (acc_t(1) - alpha) * x.mean};
}

template <typename acc_t>
C10_HOST_DEVICE inline acc_t forward_value(acc_t x, const ForwardMap<acc_t>& f) {
  return f.a * (x - f.mu) + f.c;
}

// Backward of a content plane, from sum_g = sum(g) and sum_gd = sum(g (x - mu_x)) over it:
// dL/dx = a g + d (x - mu_x) + e, and the plane's contributions to the style's statistics.
template <typename acc_t>
struct ContentGrad {
  acc_t a, d, e, mu;
  acc_t dmu_s, dsigma_s;  // dL/dmu_s, dL/dsigma_s
};

template <typename acc_t>
C10_HOST_DEVICE inline ContentGrad<acc_t> content_grad_coefs(Stats<acc_t> x, Stats<acc_t> s, acc_t alpha,
                                                             acc_t sum_g, acc_t sum_gd, int64_t count) {
  const acc_t r = s.sigma / x.sigma;
  const acc_t inv_n = acc_t(1) / static_cast<acc_t>(count);
  const acc_t sum_gxhat = sum_gd / x.sigma;
  ContentGrad<acc_t> c;
  c.a = acc_t(1) - alpha + alpha * r;
  c.d = -alpha * r * sum_gxhat * inv_n / x.sigma;
  c.e = -alpha * r * sum_g * inv_n;
  c.mu = x.mean;
  c.dmu_s = alpha * sum_g;
  c.dsigma_s = alpha * sum_gxhat;
  return c;
}

template <typename acc_t>
C10_HOST_DEVICE inline acc_t content_grad_value(acc_t g, acc_t x, const ContentGrad<acc_t>& c) {
  return c.a * g + c.d * (x - c.mu) + c.e;
}

// dL/ds = p + q (s - mu_s) for every s of a style plane.
template <typename acc_t>
C10_HOST_DEVICE inline Affine<acc_t> style_grad_coefs(Stats<acc_t> s, acc_t dmu_s, acc_t dsigma_s, int64_t count) {
  const acc_t inv_n = acc_t(1) / static_cast<acc_t>(count);
  return {dmu_s * inv_n, dsigma_s * inv_n / s.sigma};
}

template <typename acc_t>
C10_HOST_DEVICE inline acc_t style_grad_value(acc_t s, acc_t mu_s, Affine<acc_t> q) {
  return q.a + q.b * (s - mu_s);
}

}  // namespace adain
}  // namespace pytexsynth
