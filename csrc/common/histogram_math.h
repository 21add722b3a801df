// Per-element arithmetic of histogram matching (Risser et al. 2017), shared by the CPU and CUDA
// kernels so that the CPU tests exercise exactly what the GPU computes, and the two agree on
// every bin index. pytexsynth/reference.py:histogram_match does the same operations in the same
// order with PyTorch tensor ops.
//
// Every operation is an explicit, correctly rounded add/sub/mul/div: nvcc would otherwise
// contract a * b + c into an FMA (one rounding instead of two) and move values across bin
// boundaries relative to the CPU. The CPU build does not enable FMA (no -march), so plain
// operators are the same IEEE operations there.
#pragma once

#include <c10/macros/Macros.h>

#include <cstdint>
#include <limits>

namespace pytexsynth {
namespace histogram {

constexpr int32_t kMaxBins = 4096;

// The device intrinsic on the GPU, the plain operator on the host.
#ifdef __CUDA_ARCH__
#define PYTEXSYNTH_RN(device, host) (device)
#else
#define PYTEXSYNTH_RN(device, host) (host)
#endif
C10_HOST_DEVICE inline float add_rn(float a, float b) { return PYTEXSYNTH_RN(__fadd_rn(a, b), a + b); }
C10_HOST_DEVICE inline float sub_rn(float a, float b) { return PYTEXSYNTH_RN(__fsub_rn(a, b), a - b); }
C10_HOST_DEVICE inline float mul_rn(float a, float b) { return PYTEXSYNTH_RN(__fmul_rn(a, b), a * b); }
C10_HOST_DEVICE inline float div_rn(float a, float b) { return PYTEXSYNTH_RN(__fdiv_rn(a, b), a / b); }
C10_HOST_DEVICE inline double add_rn(double a, double b) { return PYTEXSYNTH_RN(__dadd_rn(a, b), a + b); }
C10_HOST_DEVICE inline double sub_rn(double a, double b) { return PYTEXSYNTH_RN(__dsub_rn(a, b), a - b); }
C10_HOST_DEVICE inline double mul_rn(double a, double b) { return PYTEXSYNTH_RN(__dmul_rn(a, b), a * b); }
C10_HOST_DEVICE inline double div_rn(double a, double b) { return PYTEXSYNTH_RN(__ddiv_rn(a, b), a / b); }
#undef PYTEXSYNTH_RN

template <typename acc_t>
struct BinPos {
  int32_t bin;
  acc_t frac;  // position inside the bin, in [0, 1]
};

// Non-finite input (the op's defined behaviour, the same on every backend and in the reference):
// NaN stays NaN and is left out of the counts; +-inf are left out of the plane's range and counts
// and map to the style's extremes (quantile 1 for +inf, 0 for -inf); the finite values are matched
// among themselves. NaN fails both comparisons.
template <typename acc_t>
C10_HOST_DEVICE inline bool is_finite_value(acc_t v) {
  return v >= -std::numeric_limits<acc_t>::max() && v <= std::numeric_limits<acc_t>::max();
}

// Bin of v in an nb-bin histogram of [lo, hi] (hi > lo, both finite): t = (v - lo) / (hi - lo) * nb,
// bin = floor(t) clamped to [0, nb - 1], so v == hi lands in the last bin with frac 1.
// A range whose width overflows (float32 [-3e38, 3e38]) is measured in halves, which do not
// (halving is exact for the normal numbers such a range holds at its ends).
// NaN gives bin 0 (callers skip non-finite values before counting).
template <typename acc_t>
C10_HOST_DEVICE inline BinPos<acc_t> bin_position(acc_t v, acc_t lo, acc_t hi, int32_t nb) {
  const acc_t width = sub_rn(hi, lo);
  acc_t t;
  if (width <= std::numeric_limits<acc_t>::max()) {
    t = mul_rn(div_rn(sub_rn(v, lo), width), static_cast<acc_t>(nb));
  } else {
    const acc_t half = acc_t(0.5);
    t = mul_rn(div_rn(sub_rn(mul_rn(v, half), mul_rn(lo, half)), sub_rn(mul_rn(hi, half), mul_rn(lo, half))),
               static_cast<acc_t>(nb));
  }
  const int32_t b = t >= acc_t(0) ? (t < static_cast<acc_t>(nb) ? static_cast<int32_t>(t) : nb - 1) : 0;
  acc_t frac = sub_rn(t, static_cast<acc_t>(b));
  frac = frac < acc_t(0) ? acc_t(0) : (frac > acc_t(1) ? acc_t(1) : frac);
  return {b, frac};
}

// Position of a value in its channel's piecewise-linear CDF: (cum[b] + frac * count[b]) / n,
// i.e. cdf[b] + frac * h[b] / n, with integer cumulative counts so cdf(hi) is exactly 1 (then
// clamped: rounding may overshoot 1 by an ulp).
template <typename acc_t, typename count_t>
C10_HOST_DEVICE inline acc_t cdf_position(count_t cum_b, count_t count_b, acc_t frac, acc_t n) {
  const acc_t u = div_rn(add_rn(static_cast<acc_t>(cum_b), mul_rn(frac, static_cast<acc_t>(count_b))), n);
  return u < acc_t(1) ? u : acc_t(1);
}

// Smallest k in [k0, k1] with cdf[k + 1] >= u (k1 when none): the style bin that holds
// quantile u. cdf has nb + 1 entries, non-decreasing, cdf[0] = 0, cdf[nb] = 1. Monotone in u, so
// a search restricted to the range found for the ends of an interval of u gives the same k.
template <typename acc_t>
C10_HOST_DEVICE inline int32_t find_style_bin(const acc_t* cdf, acc_t u, int32_t k0, int32_t k1) {
  while (k0 < k1) {
    const int32_t mid = k0 + ((k1 - k0) >> 1);
    if (cdf[mid + 1] >= u) {
      k1 = mid;
    } else {
      k0 = mid + 1;
    }
  }
  return k0;
}

// Style value at quantile u inside style bin k: linear interpolation between the bin's edges,
// lo + (k + f) * step with f = (u - cdf[k]) / (cdf[k + 1] - cdf[k]) and step = (hi - lo) / nb.
template <typename acc_t>
C10_HOST_DEVICE inline acc_t style_value(const acc_t* cdf, acc_t u, int32_t k, acc_t lo, acc_t step) {
  const acc_t c0 = cdf[k];
  const acc_t c1 = cdf[k + 1];
  acc_t f = c1 > c0 ? div_rn(sub_rn(u, c0), sub_rn(c1, c0)) : acc_t(0);
  f = f < acc_t(0) ? acc_t(0) : (f > acc_t(1) ? acc_t(1) : f);
  const acc_t kf = add_rn(static_cast<acc_t>(k), f);
  const acc_t offset = mul_rn(kf, step);
  if (offset <= std::numeric_limits<acc_t>::max()) return add_rn(lo, offset);
  // A style range whose width overflows (step near max / nb): the offset overflows, its half does not.
  const acc_t half_offset = mul_rn(kf, mul_rn(step, acc_t(0.5)));
  return add_rn(add_rn(lo, half_offset), half_offset);
}

// One channel of the input being matched: its range and cumulative bin counts.
template <typename acc_t, typename count_t>
struct InputPlane {
  acc_t lo, hi;        // min and max of the plane's finite values
  const count_t* cum;  // nb + 1 cumulative counts, cum[0] = 0, cum[nb] = n
  acc_t n;             // number of finite values
  int32_t nb;
};

// The style channel it is matched to (from histogram_stats).
template <typename acc_t>
struct StyleChannel {
  const acc_t* cdf;  // nb + 1 entries
  acc_t lo, step;    // step = (hi - lo) / nb
  int32_t nb;
};

// The full style range as the search interval for every bin (what the CUDA kernel uses).
struct FullSearch {
  C10_HOST_DEVICE inline void operator()(int32_t /*bin*/, int32_t& /*k0*/, int32_t& /*k1*/) const {}
};

// R(v): the style value at v's quantile u in its plane. NaN stays NaN (so the loss is NaN), +-inf
// go to quantile 1 / 0; a constant plane (hi <= lo, also a plane without finite values) puts every
// finite value at the median, u = 0.5.
// narrow(bin, k0, k1) may shrink the style-bin search interval [0, nb - 1] to the interval of
// v's input bin (the CPU precomputes them): the search is monotone in u, so the result is the same.
template <typename acc_t, typename count_t, typename Narrow = FullSearch>
C10_HOST_DEVICE inline acc_t remap_value(acc_t v, const InputPlane<acc_t, count_t>& in, const StyleChannel<acc_t>& st,
                                         Narrow narrow = Narrow()) {
  if (v != v) return v;
  int32_t k0 = 0, k1 = st.nb - 1;
  acc_t u = acc_t(0.5);
  if (!is_finite_value(v)) {
    u = v > acc_t(0) ? acc_t(1) : acc_t(0);
  } else if (in.hi > in.lo) {
    const BinPos<acc_t> p = bin_position(v, in.lo, in.hi, in.nb);
    narrow(p.bin, k0, k1);
    u = cdf_position(in.cum[p.bin], in.cum[p.bin + 1] - in.cum[p.bin], p.frac, in.n);
  }
  return style_value(st.cdf, u, find_style_bin(st.cdf, u, k0, k1), st.lo, st.step);
}

}  // namespace histogram
}  // namespace pytexsynth
