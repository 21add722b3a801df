// adain on the CPU, with at::parallel_for over (n, c) planes.
//
// Each plane is walked once per statistic in chunks of at most kChunk consecutive values of a
// row (any strides): a chunk's mean and M2 come from two passes over it while it is in L1, and
// the chunks merge in order with Chan's formula (adain_math.h). The order depends on the shape
// alone, so results are the same bits for any thread count.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "common/adain.h"

namespace pytexsynth {
namespace adain {
namespace {

constexpr int64_t kChunk = 256;

// Calls fn(ptr, len, stride) for each chunk of a plane, rows in order.
template <typename scalar_t, typename Fn>
inline void for_each_chunk(const scalar_t* plane, const Planes& g, Fn&& fn) {
  for (int64_t h = 0; h < g.H; ++h) {
    const scalar_t* row = plane + h * g.sH;
    for (int64_t w0 = 0; w0 < g.W; w0 += kChunk) {
      fn(row + w0 * g.sW, std::min(kChunk, g.W - w0), g.sW);
    }
  }
}

template <typename acc_t, typename scalar_t>
Moments<acc_t> plane_moments(const scalar_t* plane, const Planes& g) {
  Moments<acc_t> total = empty_moments<acc_t>();
  for_each_chunk(plane, g, [&](const scalar_t* p, int64_t len, int64_t stride) {
    acc_t sum = 0;
    for (int64_t i = 0; i < len; ++i) sum += static_cast<acc_t>(p[i * stride]);
    const acc_t mean = sum / static_cast<acc_t>(len);
    acc_t m2 = 0;
    for (int64_t i = 0; i < len; ++i) {
      const acc_t d = static_cast<acc_t>(p[i * stride]) - mean;
      m2 += d * d;
    }
    total = merge(total, Moments<acc_t>{len, mean, m2});
  });
  return total;
}

inline int64_t grain(const Planes& g) { return std::max<int64_t>(1, 32768 / std::max<int64_t>(1, g.numel())); }

template <typename acc_t, typename scalar_t>
std::vector<Stats<acc_t>> all_stats(const scalar_t* data, const Planes& g, acc_t eps) {
  std::vector<Stats<acc_t>> stats(g.count());
  at::parallel_for(0, g.count(), grain(g), [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) stats[p] = stats_of(plane_moments<acc_t>(data + g.base(p), g), eps);
  });
  return stats;
}

template <typename scalar_t>
void forward(const at::Tensor& content, const at::Tensor& style, at::Tensor& out, double alpha, double eps) {
  using acc_t = at::opmath_type<scalar_t>;
  const Planes gx = make_planes(content), gs = make_planes(style), go = make_planes(out);
  const scalar_t* x = content.const_data_ptr<scalar_t>();
  scalar_t* o = out.mutable_data_ptr<scalar_t>();
  const auto s_stats = all_stats(style.const_data_ptr<scalar_t>(), gs, static_cast<acc_t>(eps));
  at::parallel_for(0, gx.count(), grain(gx), [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      const scalar_t* xp = x + gx.base(p);
      const auto st = stats_of(plane_moments<acc_t>(xp, gx), static_cast<acc_t>(eps));
      const auto f = forward_coefs(st, s_stats[p], static_cast<acc_t>(alpha));
      scalar_t* op = o + go.base(p);
      for (int64_t h = 0; h < gx.H; ++h) {
        const scalar_t* xr = xp + h * gx.sH;
        scalar_t* orow = op + h * go.sH;
        for (int64_t w = 0; w < gx.W; ++w) {
          orow[w * go.sW] = static_cast<scalar_t>(forward_value(static_cast<acc_t>(xr[w * gx.sW]), f));
        }
      }
    }
  });
}

// sum(g) and sum(g (x - mu)) over a content plane, in row chunks (two-level accumulation).
template <typename acc_t, typename scalar_t>
void grad_sums(const scalar_t* gp, const Planes& gg, const scalar_t* xp, const Planes& gx, acc_t mu, acc_t& sum_g,
               acc_t& sum_gd) {
  sum_g = 0;
  sum_gd = 0;
  for (int64_t h = 0; h < gx.H; ++h) {
    for (int64_t w0 = 0; w0 < gx.W; w0 += kChunk) {
      const int64_t len = std::min(kChunk, gx.W - w0);
      acc_t cg = 0, cgd = 0;
      for (int64_t w = w0; w < w0 + len; ++w) {
        const acc_t gv = static_cast<acc_t>(gp[h * gg.sH + w * gg.sW]);
        cg += gv;
        cgd += gv * (static_cast<acc_t>(xp[h * gx.sH + w * gx.sW]) - mu);
      }
      sum_g += cg;
      sum_gd += cgd;
    }
  }
}

template <typename scalar_t>
void backward(const at::Tensor& grad, const at::Tensor& content, const at::Tensor& style, at::Tensor& grad_content,
              at::Tensor& grad_style, double alpha_d, double eps_d) {
  using acc_t = at::opmath_type<scalar_t>;
  const acc_t alpha = static_cast<acc_t>(alpha_d), eps = static_cast<acc_t>(eps_d);
  const Planes gx = make_planes(content), gs = make_planes(style), gg = make_planes(grad);
  const Planes gcx = make_planes(grad_content), gcs = make_planes(grad_style);
  const scalar_t *x = content.const_data_ptr<scalar_t>(), *s = style.const_data_ptr<scalar_t>();
  const scalar_t* g = grad.const_data_ptr<scalar_t>();
  scalar_t *dx = grad_content.mutable_data_ptr<scalar_t>(), *ds = grad_style.mutable_data_ptr<scalar_t>();
  const auto s_stats = all_stats(s, gs, eps);
  std::vector<acc_t> dmu(gx.count()), dsigma(gx.count());
  at::parallel_for(0, gx.count(), grain(gx), [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      const scalar_t *xp = x + gx.base(p), *gp = g + gg.base(p);
      const auto st = stats_of(plane_moments<acc_t>(xp, gx), eps);
      acc_t sum_g, sum_gd;
      grad_sums(gp, gg, xp, gx, st.mean, sum_g, sum_gd);
      const auto c = content_grad_coefs(st, s_stats[p], alpha, sum_g, sum_gd, gx.numel());
      dmu[p] = c.dmu_s;
      dsigma[p] = c.dsigma_s;
      scalar_t* dp = dx + gcx.base(p);
      for (int64_t h = 0; h < gx.H; ++h) {
        for (int64_t w = 0; w < gx.W; ++w) {
          const acc_t v = content_grad_value(static_cast<acc_t>(gp[h * gg.sH + w * gg.sW]),
                                             static_cast<acc_t>(xp[h * gx.sH + w * gx.sW]), c);
          dp[h * gcx.sH + w * gcx.sW] = static_cast<scalar_t>(v);
        }
      }
    }
  });
  at::parallel_for(0, gs.count(), grain(gs), [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      const auto q = style_grad_coefs(s_stats[p], dmu[p], dsigma[p], gs.numel());
      const scalar_t* sp = s + gs.base(p);
      scalar_t* dp = ds + gcs.base(p);
      for (int64_t h = 0; h < gs.H; ++h) {
        for (int64_t w = 0; w < gs.W; ++w) {
          dp[h * gcs.sH + w * gcs.sW] =
              static_cast<scalar_t>(style_grad_value(static_cast<acc_t>(sp[h * gs.sH + w * gs.sW]), s_stats[p].mean, q));
        }
      }
    }
  });
}

struct CpuBackend {
  static void forward(const at::Tensor& content, const at::Tensor& style, at::Tensor& out, double alpha, double eps) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, content.scalar_type(), "adain_cpu", [&] {
      adain::forward<scalar_t>(content, style, out, alpha, eps);
    });
  }
  static void backward(const at::Tensor& grad, const at::Tensor& content, const at::Tensor& style, at::Tensor& gc,
                       at::Tensor& gs, double alpha, double eps) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, content.scalar_type(), "adain_backward_cpu", [&] {
      adain::backward<scalar_t>(grad, content, style, gc, gs, alpha, eps);
    });
  }
};

}  // namespace

TORCH_LIBRARY_IMPL(pytexsynth, CPU, m) { register_kernels<CpuBackend>(m); }

}  // namespace adain
}  // namespace pytexsynth
