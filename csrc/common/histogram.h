// histogram_match / histogram_loss: argument checks, the pieces the CPU and CUDA kernels share
// (the layout of the output, the style statistics in the accumulation dtype) and the entry
// points over a backend; and _histogram_loss_backward, pure ATen, registered once for every
// device in csrc/composite.cpp.
//
// A backend supplies, for x checked against lo, hi, cdf with nb bins and a non-empty output in
// output_memory_format(x) on x's device (the current one):
//   static void match(x, lo, hi, cdf, at::Tensor& out, int32_t nb)        out = R(x)
//   static at::Tensor loss(x, lo, hi, cdf, double weight, at::Tensor& diff, int32_t nb)
//       diff = x - R(x); returns weight * mean(diff^2) as a 0-d tensor of x's dtype, summed in
//       double in a fixed order
#pragma once

#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <c10/core/DeviceGuard.h>
#include <torch/library.h>

#include <algorithm>
#include <limits>
#include <tuple>

#include "common/checks.h"
#include "common/histogram_math.h"

namespace pytexsynth {
namespace histogram {

// Sizes of a matching problem; x is read through its own strides (3-D x is a batch of one).
struct Problem {
  int64_t N, C, H, W;
  int64_t sN, sC, sH, sW;  // x strides
  int64_t oN, oC, oH, oW;  // output strides
  int32_t nb;
  int64_t planes() const { return N * C; }
  int64_t plane_numel() const { return H * W; }
};

// Validates x against the style statistics (lo, hi: (C,), cdf: (C, bins + 1)); returns bins.
inline int32_t check_args(const at::Tensor& x, const at::Tensor& lo, const at::Tensor& hi, const at::Tensor& cdf,
                          const char* op) {
  check_dim_in(x, {3, 4}, op, "x", "3-D (C, H, W) or 4-D (B, C, H, W)");
  check_floating(x, op, "x");
  const int64_t C = x.size(-3);
  for (const auto* p : {&lo, &hi, &cdf}) {
    const char* name = p == &lo ? "lo" : (p == &hi ? "hi" : "cdf");
    TORCH_CHECK(p->scalar_type() == at::kFloat || p->scalar_type() == at::kDouble, op, ": ", name,
                " must be a float32 or float64 tensor (from histogram_stats), got ", p->scalar_type());
    check_same_device(x, *p, op, "x", name);
  }
  TORCH_CHECK(lo.dim() == 1 && lo.size(0) == C, op, ": lo must have shape (C,) = (", C,
              ",) for x of shape ", shape_str(x), ", got ", shape_str(lo));
  TORCH_CHECK(hi.dim() == 1 && hi.size(0) == C, op, ": hi must have shape (C,) = (", C,
              ",) for x of shape ", shape_str(x), ", got ", shape_str(hi));
  TORCH_CHECK(cdf.dim() == 2 && cdf.size(0) == C, op, ": cdf must have shape (C, bins + 1) with C = ", C,
              " for x of shape ", shape_str(x), ", got ", shape_str(cdf));
  const int64_t nb = cdf.size(1) - 1;
  TORCH_CHECK(nb >= 1 && nb <= kMaxBins, op, ": cdf has ", cdf.size(1), " columns, i.e. bins = ", nb,
              "; expected bins from 1 to ", kMaxBins);
  TORCH_CHECK(x.size(-2) * x.size(-1) < (int64_t(1) << 31), op, ": x has ", x.size(-2) * x.size(-1),
              " elements per channel; at most 2^31 - 1 are supported (int32 bin counts)");
  return static_cast<int32_t>(nb);
}

inline at::Tensor empty_output(const at::Tensor& x) {
  return at::empty(x.sizes(), x.options().memory_format(output_memory_format(x)));
}

inline Problem make_problem(const at::Tensor& x, const at::Tensor& out, int32_t nb) {
  const bool batched = x.dim() == 4;
  Problem p;
  p.N = batched ? x.size(0) : 1;
  p.C = x.size(-3);
  p.H = x.size(-2);
  p.W = x.size(-1);
  p.sN = batched ? x.stride(0) : 0;
  p.sC = x.stride(-3);
  p.sH = x.stride(-2);
  p.sW = x.stride(-1);
  p.oN = batched ? out.stride(0) : 0;
  p.oC = out.stride(-3);
  p.oH = out.stride(-2);
  p.oW = out.stride(-1);
  p.nb = nb;
  return p;
}

// The statistics in the kernels' accumulation dtype, contiguous; step = (hi - lo) / nb per
// channel with the same rounded division on every device (and in reference.py).
struct StyleTensors {
  at::Tensor lo, step, cdf;
};

inline StyleTensors style_tensors(const at::Tensor& lo, const at::Tensor& hi, const at::Tensor& cdf, at::ScalarType acc,
                                  int32_t nb) {
  StyleTensors s;
  s.lo = lo.to(acc).contiguous();
  const at::Tensor h = hi.to(acc);
  const at::Tensor width = at::sub(h, s.lo);
  const double bins = static_cast<double>(nb);
  // A width that overflows (float32 [-3e38, 3e38]) is divided before the subtraction.
  s.step = at::where(at::isinf(width), at::sub(at::div(h, bins), at::div(s.lo, bins)), at::div(width, bins)).contiguous();
  s.cdf = cdf.to(acc).contiguous();
  return s;
}

// dL/dx = 2 * weight / N * D * grad_output; the scale stays on the device (no .item()).
inline at::Tensor loss_backward(const at::Tensor& grad_output, const at::Tensor& diff, double weight) {
  const char* op = "_histogram_loss_backward";
  check_floating(diff, op, "diff");
  check_floating(grad_output, op, "grad_output");
  TORCH_CHECK(grad_output.numel() == 1, op, ": grad_output must hold one element (the loss is a scalar), got shape ",
              shape_str(grad_output));
  check_same_device(grad_output, diff, op, "grad_output", "diff");
  const double n = static_cast<double>(std::max<int64_t>(diff.numel(), 1));
  return at::mul(diff, grad_output.reshape({}).mul(2.0 * weight / n));
}

template <class Backend>
at::Tensor match(const at::Tensor& x, const at::Tensor& lo, const at::Tensor& hi, const at::Tensor& cdf) {
  const int32_t nb = check_args(x, lo, hi, cdf, "histogram_match");
  const c10::DeviceGuard guard(x.device());
  at::Tensor out = empty_output(x);
  if (out.numel() == 0) return out;
  Backend::match(x, lo, hi, cdf, out, nb);
  return out;
}

template <class Backend>
std::tuple<at::Tensor, at::Tensor> loss(const at::Tensor& x, const at::Tensor& lo, const at::Tensor& hi,
                                        const at::Tensor& cdf, double weight) {
  const int32_t nb = check_args(x, lo, hi, cdf, "histogram_loss");
  const c10::DeviceGuard guard(x.device());
  at::Tensor diff = empty_output(x);
  if (diff.numel() == 0) {
    // The mean of nothing, as torch's mse_loss gives.
    return {at::full({}, std::numeric_limits<double>::quiet_NaN(), x.options()), diff};
  }
  at::Tensor value = Backend::loss(x, lo, hi, cdf, weight, diff, nb);
  return {value, diff};
}

template <class Backend>
void register_kernels(torch::Library& m) {
  m.impl("histogram_match", &match<Backend>);
  m.impl("histogram_loss", &loss<Backend>);
}

}  // namespace histogram
}  // namespace pytexsynth
