// Histogram matching and the histogram loss on the CPU: at::parallel_for over (n, c) planes,
// three passes per plane (min/max, bin counts, remap), all through histogram_math.h.
//
// The remap pass narrows each value's binary search in the style CDF to the style bins its own
// bin's quantile interval [u(b, 0), u(b, 1)] spans (computed once per bin with the same
// functions): find_style_bin is monotone in u, so the restricted search returns the same k as
// the full one, and most searches are over one or two bins.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <limits>
#include <vector>

#include "common/histogram.h"

namespace pytexsynth {
namespace histogram {
namespace {

// Calls f(value, h, w) for every element of one plane, rows in order; a dense row is a
// unit-stride loop the compiler can vectorise.
template <typename scalar_t, typename F>
inline void for_each_value(const scalar_t* plane, const Problem& p, F&& f) {
  for (int64_t h = 0; h < p.H; ++h) {
    const scalar_t* row = plane + h * p.sH;
    if (p.sW == 1) {
      for (int64_t w = 0; w < p.W; ++w) f(row[w], h, w);
    } else {
      for (int64_t w = 0; w < p.W; ++w) f(row[w * p.sW], h, w);
    }
  }
}

// Scratch of one worker: the plane's cumulative counts and the per-bin search ranges.
struct Scratch {
  std::vector<int64_t> cum;
  std::vector<int32_t> k0, k1;
  explicit Scratch(int32_t nb) : cum(nb + 1), k0(nb), k1(nb) {}
};

// Pass 2 of a plane whose values vary (hi > lo): s.cum = the cumulative counts of its finite
// values per bin, cum[0] = 0.
template <typename scalar_t, typename acc_t>
void count_bins(const scalar_t* x, const Problem& p, acc_t lo, acc_t hi, Scratch& s) {
  // Values at the minimum (ReLU's zeros: often half the plane) all fall in bin 0; counting them
  // apart keeps them off the bin counters' store-to-load chain.
  int64_t* counts = s.cum.data() + 1;  // shifted by one so the prefix sum gives cum[0] = 0
  int64_t at_lo = 0;
  for_each_value(x, p, [&](scalar_t v_, int64_t, int64_t) {
    const acc_t v = static_cast<acc_t>(v_);
    if (v == lo) {
      ++at_lo;
    } else if (is_finite_value(v)) {
      counts[bin_position(v, lo, hi, p.nb).bin] += 1;
    }
  });
  counts[0] += at_lo;
  for (int32_t b = 0; b < p.nb; ++b) s.cum[b + 1] += s.cum[b];
}

// The style-bin search range of each non-empty input bin: the style bins of its lowest and
// highest quantile.
template <typename acc_t>
void search_ranges(const InputPlane<acc_t, int64_t>& in, const StyleChannel<acc_t>& st, Scratch& s) {
  for (int32_t b = 0; b < in.nb; ++b) {
    const int64_t cnt = s.cum[b + 1] - s.cum[b];
    if (cnt == 0) continue;
    const acc_t u0 = cdf_position(s.cum[b], cnt, acc_t(0), in.n);
    const acc_t u1 = cdf_position(s.cum[b], cnt, acc_t(1), in.n);
    s.k0[b] = find_style_bin(st.cdf, u0, 0, st.nb - 1);
    s.k1[b] = find_style_bin(st.cdf, u1, s.k0[b], st.nb - 1);
  }
}

// R (or D = x - R when WriteDiff) of one plane; returns the sum of D^2 in double.
template <bool WriteDiff, typename scalar_t>
double match_plane(const scalar_t* x, scalar_t* out, const Problem& p, const StyleChannel<at::opmath_type<scalar_t>>& st,
                   Scratch& s) {
  using acc_t = at::opmath_type<scalar_t>;
  const int32_t nb = p.nb;
  // Pass 1: range of the finite values (NaN and +-inf are left out; see histogram_math.h).
  acc_t lo = std::numeric_limits<acc_t>::infinity(), hi = -std::numeric_limits<acc_t>::infinity();
  for_each_value(x, p, [&](scalar_t v_, int64_t, int64_t) {
    const acc_t v = static_cast<acc_t>(v_);
    const bool finite = is_finite_value(v);
    lo = finite && v < lo ? v : lo;
    hi = finite && v > hi ? v : hi;
  });
  // Pass 2: counts (a constant plane has none: every value maps to u = 0.5).
  std::fill(s.cum.begin(), s.cum.end(), int64_t(0));
  const bool varies = hi > lo;
  if (varies) count_bins(x, p, lo, hi, s);
  const InputPlane<acc_t, int64_t> in{lo, hi, s.cum.data(), static_cast<acc_t>(s.cum[nb]), nb};
  if (varies) search_ranges(in, st, s);
  const auto narrow = [&s](int32_t bin, int32_t& k0, int32_t& k1) {
    k0 = s.k0[bin];
    k1 = s.k1[bin];
  };
  // R of the minimum, computed once with the same function (the same bits as per element).
  const acc_t r_lo = remap_value(lo, in, st, narrow);
  // Pass 3: remap.
  double sum_sq = 0.0;
  for_each_value(x, p, [&](scalar_t v_, int64_t h, int64_t w) {
    const acc_t v = static_cast<acc_t>(v_);
    const acc_t r = v == lo ? r_lo : remap_value(v, in, st, narrow);
    scalar_t* o = out + h * p.oH + w * p.oW;
    if (WriteDiff) {
      const acc_t d = v - r;
      *o = static_cast<scalar_t>(d);
      sum_sq += static_cast<double>(d) * static_cast<double>(d);  // as the CUDA kernel
    } else {
      *o = static_cast<scalar_t>(r);
    }
  });
  return sum_sq;
}

// Runs every plane; returns the per-plane sums of D^2 (empty unless WriteDiff).
template <bool WriteDiff>
std::vector<double> run(const at::Tensor& x, const at::Tensor& lo, const at::Tensor& hi, const at::Tensor& cdf,
                        at::Tensor& out, int32_t nb) {
  const Problem p = make_problem(x, out, nb);
  std::vector<double> sums(WriteDiff ? p.planes() : 0, 0.0);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "histogram_match_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const auto style = style_tensors(lo, hi, cdf, c10::CppTypeToScalarType<acc_t>::value, nb);
    const acc_t* s_lo = style.lo.const_data_ptr<acc_t>();
    const acc_t* s_step = style.step.const_data_ptr<acc_t>();
    const acc_t* s_cdf = style.cdf.const_data_ptr<acc_t>();
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    scalar_t* op = out.mutable_data_ptr<scalar_t>();
    // Planes are independent; each worker keeps its own scratch. Grain: about 64k values.
    const int64_t grain = std::max<int64_t>(1, 65536 / std::max<int64_t>(1, p.plane_numel()));
    at::parallel_for(0, p.planes(), grain, [&](int64_t begin, int64_t end) {
      Scratch scratch(nb);
      for (int64_t pl = begin; pl < end; ++pl) {
        const int64_t n = pl / p.C, c = pl % p.C;
        const StyleChannel<acc_t> st{s_cdf + c * (nb + 1), s_lo[c], s_step[c], nb};
        const double sq = match_plane<WriteDiff>(xp + n * p.sN + c * p.sC, op + n * p.oN + c * p.oC, p, st, scratch);
        if (WriteDiff) sums[pl] = sq;
      }
    });
  });
  return sums;
}

struct CpuBackend {
  static void match(const at::Tensor& x, const at::Tensor& lo, const at::Tensor& hi, const at::Tensor& cdf,
                    at::Tensor& out, int32_t nb) {
    run<false>(x, lo, hi, cdf, out, nb);
  }

  static at::Tensor loss(const at::Tensor& x, const at::Tensor& lo, const at::Tensor& hi, const at::Tensor& cdf,
                         double weight, at::Tensor& diff, int32_t nb) {
    const auto sums = run<true>(x, lo, hi, cdf, diff, nb);
    double total = 0.0;
    for (double v : sums) total += v;  // fixed order: deterministic for any thread count
    const double loss = total * (weight / static_cast<double>(x.numel()));  // as the CUDA loss_kernel
    return at::full({}, loss, x.options());
  }
};

}  // namespace

TORCH_LIBRARY_IMPL(pytexsynth, CPU, m) { register_kernels<CpuBackend>(m); }

}  // namespace histogram
}  // namespace pytexsynth
