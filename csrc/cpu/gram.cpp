// gram / gram_loss on the CPU: one ATen GEMM (MKL/OpenBLAS) for F F^T, then the fused epilogue
// of gram_math.h in at::parallel_for over rows; backward is one GEMM S F.
//
// The loss is reduced per row (b, i) in a fixed order, then over rows in order: the same bits
// whatever the thread count. Against bmm + mse_loss autograd this saves one of the three GEMMs
// (the reference's backward multiplies twice) and the elementwise passes.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <vector>

#include "common/gram.h"

namespace pytexsynth {
namespace {

using gram::Features;

// F as the (B, C, n) / (B, n, C) matrix view of a Features buffer, in dtype acc.
at::Tensor matrix_view(const Features& f, at::ScalarType acc) {
  at::Tensor t = f.data.scalar_type() == acc ? f.data : f.data.to(acc);
  if (f.channels_last) return t.permute({0, 2, 3, 1}).reshape({f.B, f.n, f.C});
  return t.reshape({f.B, f.C, f.n});
}

// Raw products P = F F^T, (B, C, C) in acc (one split on the CPU).
at::Tensor products(const Features& f, at::ScalarType acc) {
  const at::Tensor m = matrix_view(f, acc);
  return f.channels_last ? at::bmm(m.transpose(1, 2), m) : at::bmm(m, m.transpose(1, 2));
}

// grad_x = S F, in x's layout; S (B, C, C) symmetric in acc.
at::Tensor apply_grad(const Features& f, const at::Tensor& S, const at::Tensor& x) {
  const at::ScalarType acc = S.scalar_type();
  const at::Tensor m = matrix_view(f, acc);
  const int64_t H = x.size(2), W = x.size(3);
  at::Tensor g = f.channels_last ? at::bmm(m, S).view({f.B, H, W, f.C}).permute({0, 3, 1, 2})
                                 : at::bmm(S, m).view({f.B, f.C, H, W});
  return g.scalar_type() == x.scalar_type() ? g : g.to(x.scalar_type());
}

// S[b, i, j] = symmetric_grad(M[b, i, j], M[b, j, i], scale), M read through strides; rounded
// to the GEMM operand dtype (as the GPU's GEMM reads it) and kept in acc.
template <typename m_t, typename acc_t>
at::Tensor symmetric(const m_t* M, int64_t sb, int64_t si, int64_t sj, int64_t B, int64_t C, acc_t scale,
                     const at::TensorOptions& opts, at::ScalarType operand) {
  at::Tensor S = at::empty({B, C, C}, opts);
  acc_t* s = S.mutable_data_ptr<acc_t>();
  at::parallel_for(0, B * C, std::max<int64_t>(1, 4096 / std::max<int64_t>(C, 1)), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t b = r / C, i = r % C;
      const m_t* Mb = M + b * sb;
      for (int64_t j = 0; j < C; ++j) {
        s[r * C + j] = gram::symmetric_grad(static_cast<acc_t>(Mb[i * si + j * sj]),
                                            static_cast<acc_t>(Mb[j * si + i * sj]), scale);
      }
    }
  });
  return operand == S.scalar_type() ? S : S.to(operand).to(S.scalar_type());
}

at::Tensor gram_cpu(const at::Tensor& x, c10::string_view normalize, c10::string_view precision) {
  const char* op = "gram";
  gram::check_x(x, op);
  const auto p = gram::parse_precision(std::string(precision), op);
  const int64_t B = x.size(0), C = x.size(1);
  const double norm = gram::normalizer(std::string(normalize), C, x.size(2) * x.size(3), op);
  at::Tensor out = at::empty({B, C, C}, x.options());
  if (out.numel() == 0) return out;
  const Features f = gram::features(x, gram::operand_type(x, p));
  const at::Tensor P = products(f, gram::acc_type(x));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "gram_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const acc_t* pp = P.const_data_ptr<acc_t>();
    scalar_t* o = out.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, B * C, std::max<int64_t>(1, 4096 / C), [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        const int64_t b = r / C, i = r % C;
        for (int64_t j = i; j < C; ++j) {
          gram::gram_pair<scalar_t, acc_t, int64_t>(pp + b * C * C, 1, C, i, j, static_cast<acc_t>(norm), o + b * C * C);
        }
      }
    });
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> gram_loss_cpu(const at::Tensor& x, const at::Tensor& target, double weight,
                                                 c10::string_view normalize, c10::string_view precision) {
  const char* op = "gram_loss";
  gram::check_x(x, op);
  const int64_t target_sb = gram::check_target(x, target, op);
  const auto p = gram::parse_precision(std::string(precision), op);
  const int64_t B = x.size(0), C = x.size(1);
  const double norm = gram::normalizer(std::string(normalize), C, x.size(2) * x.size(3), op);
  const Features f = gram::features(x, gram::operand_type(x, p));
  // D is written over P in place: each row reads only its upper part, and writes the lower
  // part only of later rows, which those rows never read.
  at::Tensor diff = products(f, gram::acc_type(x));
  at::Tensor loss = at::empty({}, x.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "gram_loss_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    acc_t* d = diff.mutable_data_ptr<acc_t>();
    const scalar_t* t = target.const_data_ptr<scalar_t>();
    const int64_t ti = target.stride(-2), tj = target.stride(-1);
    std::vector<acc_t> row_sq(B * C);
    at::parallel_for(0, B * C, std::max<int64_t>(1, 4096 / std::max<int64_t>(C, 1)), [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        const int64_t b = r / C, i = r % C;
        acc_t* db = d + b * C * C;
        acc_t sq = acc_t(0);
        for (int64_t j = i; j < C; ++j) {
          sq += gram::loss_pair<acc_t, scalar_t, int64_t>(db, 1, C, i, j, static_cast<acc_t>(norm),
                                                          t + b * target_sb, ti, tj, db);
        }
        row_sq[r] = sq;
      }
    });
    acc_t total = acc_t(0);
    for (const acc_t v : row_sq) total += v;
    *loss.mutable_data_ptr<scalar_t>() = static_cast<scalar_t>(
        gram::finish_loss(total, static_cast<acc_t>(B * C * C), static_cast<acc_t>(weight)));
  });
  return {loss, diff};
}

at::Tensor gram_backward_cpu(const at::Tensor& grad_output, const at::Tensor& x, c10::string_view normalize,
                             c10::string_view precision) {
  const char* op = "_gram_backward";
  gram::check_x(x, op);
  gram::check_grad_gram(grad_output, x, op);
  const auto [B, C, H, W, p, norm, operand] = gram::backward_args(x, normalize, precision, op);
  const Features f = gram::features(x, operand);
  if (x.numel() == 0) return gram::grad_like(f, H, W, x.scalar_type(), x).zero_();
  const at::Tensor go = grad_output.scalar_type() == x.scalar_type() ? grad_output : grad_output.to(x.scalar_type());
  at::Tensor S;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "gram_backward_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    S = symmetric<scalar_t, acc_t>(go.const_data_ptr<scalar_t>(), go.stride(0), go.stride(1), go.stride(2), B, C,
                                   static_cast<acc_t>(1.0 / norm), x.options().dtype(gram::acc_type(x)), operand);
  });
  return apply_grad(f, S, x);
}

at::Tensor gram_loss_backward_cpu(const at::Tensor& grad_loss, const at::Tensor& diff, const at::Tensor& x,
                                  double weight, c10::string_view normalize, c10::string_view precision) {
  const char* op = "_gram_loss_backward";
  gram::check_x(x, op);
  gram::check_diff(x, diff, op);
  gram::check_grad_loss(grad_loss, x, op);
  const auto [B, C, H, W, p, norm, operand] = gram::backward_args(x, normalize, precision, op);
  const Features f = gram::features(x, operand);
  if (x.numel() == 0) return gram::grad_like(f, H, W, x.scalar_type(), x).zero_();
  const double coef = 2.0 * weight / (static_cast<double>(B * C * C) * norm);
  const at::Tensor d = diff.contiguous();
  at::Tensor S;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "gram_loss_backward_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const acc_t g = grad_loss.to(gram::acc_type(x)).const_data_ptr<acc_t>()[0];
    S = symmetric<acc_t, acc_t>(d.const_data_ptr<acc_t>(), C * C, C, 1, B, C, static_cast<acc_t>(coef) * g,
                                d.options(), operand);
  });
  return apply_grad(f, S, x);
}

}  // namespace

TORCH_LIBRARY_IMPL(pytexsynth, CPU, m) {
  m.impl("gram", &gram_cpu);
  m.impl("_gram_backward", &gram_backward_cpu);
  m.impl("gram_loss", &gram_loss_cpu);
  m.impl("_gram_loss_backward", &gram_loss_backward_cpu);
}

}  // namespace pytexsynth
