// gram / gram_loss / gram_loss_multi and their backward ops: argument checks, options, operand
// layout and the six entry points, shared by the CPU and CUDA backends so both reject the same
// inputs with the same messages and read F alike.
//
// A backend supplies (inputs checked, the current device x's, outputs non-empty):
//   static void gram(const at::Tensor& x, Precision p, double norm, at::Tensor& out)
//       out (B, C, C) = F F^T / norm in x's dtype, by the tile schedule of gram_math.h;
//   static void loss_layers(at::TensorList xs, at::TensorList targets, const LossArgs& a,
//                           std::vector<at::Tensor>& diffs, at::Tensor& loss)
//       diffs[l] = G_l - T_l (allocated, acc dtype), loss (0-d, xs' dtype) =
//       sum_l weights[l] * mean(diffs[l]^2), reduced in a fixed order;
//   static at::Tensor symmetric(const at::Tensor& M, const at::Tensor& grad, double coef,
//                               at::ScalarType operand)
//       S[b, i, j] = symmetric_grad(M[b, i, j], M[b, j, i], scale) with scale = coef, times
//       grad's one value (acc dtype, read where it lives) when grad is defined; S holds
//       operand-dtype values (the GEMM's reading of it);
//   static at::Tensor apply_grad(const Features& f, const at::Tensor& S, const at::Tensor& x,
//                                Precision p)
//       grad_x = S F in x's layout and dtype.
#pragma once

#include <c10/core/DeviceGuard.h>
#include <torch/library.h>

#include <string>
#include <tuple>
#include <vector>

#include "common/checks.h"
#include "common/gram_math.h"
#include "common/precision.h"

namespace pytexsynth {
namespace gram {

// The divisor of F F^T: H*W (Gatys), C*H*W (Ulyanov) or 1.
inline double normalizer(c10::string_view normalize, int64_t C, int64_t n, const char* op) {
  if (normalize == "hw") return static_cast<double>(n);
  if (normalize == "chw") return static_cast<double>(C) * static_cast<double>(n);
  if (normalize == "none") return 1.0;
  TORCH_CHECK(false, op, ": normalize must be 'hw', 'chw' or 'none', got '", std::string(normalize), "'");
}

inline void check_x(const at::Tensor& x, const char* op, const char* name = "x") {
  check_dim_in(x, {4}, op, name, "4-D (B, C, H, W)");
  check_floating(x, op, name);
}

// Accumulation (and D) dtype: float64 for float64 input, else float32.
inline at::ScalarType acc_type(const at::Tensor& x) {
  return x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

// What both backward ops derive from their arguments (after their own checks), in the order
// the checks report errors: sizes, then precision, then normalize.
struct BackwardArgs {
  int64_t B, C, H, W;
  Precision precision;
  double norm;
  at::ScalarType operand;
};

inline BackwardArgs backward_args(const at::Tensor& x, c10::string_view normalize, c10::string_view precision,
                                  const char* op) {
  BackwardArgs a;
  a.B = x.size(0);
  a.C = x.size(1);
  a.H = x.size(2);
  a.W = x.size(3);
  a.precision = parse_precision(precision, op);
  a.norm = normalizer(normalize, a.C, a.H * a.W, op);
  a.operand = operand_type(x.scalar_type(), a.precision);
  return a;
}

// _gram_backward's grad_output: a floating (B, C, C) tensor on x's device.
inline void check_grad_gram(const at::Tensor& grad_output, const at::Tensor& x, const char* op) {
  check_floating(grad_output, op, "grad_output");
  check_same_device(x, grad_output, op, "x", "grad_output");
  const int64_t B = x.size(0), C = x.size(1);
  TORCH_CHECK(grad_output.dim() == 3 && grad_output.size(0) == B && grad_output.size(1) == C &&
                  grad_output.size(2) == C,
              op, ": grad_output must be (", B, ", ", C, ", ", C, "), got ", shape_str(grad_output));
}

// _gram_loss_backward's grad_loss: one value on x's device.
inline void check_grad_loss(const at::Tensor& grad_loss, const at::Tensor& x, const char* op) {
  check_same_device(x, grad_loss, op, "x", "grad_loss");
  TORCH_CHECK(grad_loss.numel() == 1, op, ": grad_loss must hold one value, got shape ", shape_str(grad_loss));
}

// F, the (B, C, n) features as a dense buffer: NCHW (rows of length n per channel) or, for a
// channels_last x, NHWC (rows of C per pixel). Other strides are copied to NCHW first.
struct Features {
  at::Tensor data;  // contiguous in its layout, dtype = operand type
  bool channels_last;
  int64_t B, C, n;
};

inline Features features(const at::Tensor& x, at::ScalarType operand) {
  Features f;
  f.B = x.size(0);
  f.C = x.size(1);
  f.n = x.size(2) * x.size(3);
  f.channels_last = output_memory_format(x) == at::MemoryFormat::ChannelsLast;
  at::Tensor t = f.channels_last ? x : x.contiguous();
  if (t.scalar_type() != operand) t = t.to(operand);  // keeps the dense layout
  f.data = t;
  return f;
}

// target is (C, C), (1, C, C) or (B, C, C): returns the batch stride (0 when broadcast).
inline int64_t check_target(const at::Tensor& x, const at::Tensor& target, const char* op, const char* xn = "x",
                            const char* tn = "target") {
  check_same_device(x, target, op, xn, tn);
  TORCH_CHECK(target.scalar_type() == x.scalar_type(), op, ": ", tn, " must have the dtype of ", xn, " (",
              x.scalar_type(), "), got ", target.scalar_type());
  const int64_t B = x.size(0), C = x.size(1);
  TORCH_CHECK(target.dim() == 2 || target.dim() == 3, op, ": ", tn, " must be (C, C) or (B, C, C), got a ",
              target.dim(), "-D tensor of shape ", shape_str(target));
  TORCH_CHECK(target.size(-1) == C && target.size(-2) == C, op, ": ", tn, " of shape ", shape_str(target),
              " does not match ", xn, "'s ", C, " channels; expected (", C, ", ", C, ") or (", B, ", ", C, ", ", C,
              ")");
  if (target.dim() == 2) return 0;
  TORCH_CHECK(target.size(0) == B || target.size(0) == 1, op, ": ", tn, " of shape ", shape_str(target),
              " has batch ", target.size(0), " but ", xn, " has batch ", B, "; expected 1 or ", B);
  return target.size(0) == 1 ? 0 : target.stride(0);
}

inline void check_diff(const at::Tensor& x, const at::Tensor& diff, const char* op, const char* xn = "x",
                       const char* dn = "diff") {
  check_same_device(x, diff, op, xn, dn);
  const int64_t B = x.size(0), C = x.size(1);
  TORCH_CHECK(diff.dim() == 3 && diff.size(0) == B && diff.size(1) == C && diff.size(2) == C, op,
              ": ", dn, " must be (", B, ", ", C, ", ", C, "), got ", shape_str(diff));
  TORCH_CHECK(diff.scalar_type() == acc_type(x), op, ": ", dn, " must be ", acc_type(x), ", got ",
              diff.scalar_type());
}

// grad_x with x's sizes in the layout of F (NCHW, or channels_last for an NHWC F).
inline at::Tensor grad_like(const Features& f, int64_t H, int64_t W, at::ScalarType dtype, const at::Tensor& x) {
  auto opts = x.options().dtype(dtype);
  if (f.channels_last) return at::empty({f.B, f.C, H, W}, opts.memory_format(at::MemoryFormat::ChannelsLast));
  return at::empty({f.B, f.C, H, W}, opts);
}

// ---- multi-layer entry ----------------------------------------------------------------------

// gram_loss_multi's lists: one x, target (and weight) per layer, at least one layer, every x
// floating, 4-D, and of one dtype on one device (one loss value, one stream). Returns each
// target's batch stride (0 when broadcast).
inline std::vector<int64_t> check_layers(at::TensorList xs, at::TensorList targets, size_t weights, const char* op) {
  TORCH_CHECK(!xs.empty(), op, ": xs must hold at least one tensor");
  TORCH_CHECK(targets.size() == xs.size() && weights == xs.size(), op,
              ": xs, targets and weights must have the same length, got ", xs.size(), ", ", targets.size(), " and ",
              weights);
  std::vector<int64_t> strides;
  for (size_t l = 0; l < xs.size(); ++l) {
    const std::string xn = "xs[" + std::to_string(l) + "]", tn = "targets[" + std::to_string(l) + "]";
    check_x(xs[l], op, xn.c_str());
    TORCH_CHECK(xs[l].device() == xs[0].device(), op, ": every layer must be on one device; ", xn, " is on ",
                xs[l].device(), " but xs[0] is on ", xs[0].device());
    TORCH_CHECK(xs[l].scalar_type() == xs[0].scalar_type(), op, ": every layer must have one dtype; ", xn, " is ",
                xs[l].scalar_type(), " but xs[0] is ", xs[0].scalar_type());
    strides.push_back(check_target(xs[l], targets[l], op, xn.c_str(), tn.c_str()));
  }
  return strides;
}

// The backward's lists: one diff per x, as gram_loss_multi returned them.
inline void check_backward_layers(at::TensorList diffs, at::TensorList xs, size_t weights, const char* op) {
  TORCH_CHECK(!xs.empty(), op, ": xs must hold at least one tensor");
  TORCH_CHECK(diffs.size() == xs.size() && weights == xs.size(), op,
              ": diffs, xs and weights must have the same length, got ", diffs.size(), ", ", xs.size(), " and ",
              weights);
  for (size_t l = 0; l < xs.size(); ++l) {
    const std::string xn = "xs[" + std::to_string(l) + "]", dn = "diffs[" + std::to_string(l) + "]";
    check_x(xs[l], op, xn.c_str());
    check_diff(xs[l], diffs[l], op, xn.c_str(), dn.c_str());
  }
}

// The loss coefficient of grad_x = coef * grad_loss * (D + D^T) F for one layer.
inline double loss_grad_coef(double weight, int64_t B, int64_t C, double norm) {
  return 2.0 * weight / (static_cast<double>(B * C * C) * norm);
}

// What the loss ops derive from their lists (after the checks, in the order they report
// errors: layers, then precision, then normalize).
struct LossArgs {
  std::vector<int64_t> target_sb;  // each target's batch stride (0 when broadcast)
  std::vector<double> norms;       // each layer's divisor of F F^T
  at::ArrayRef<double> weights;
  Precision precision;
  const char* op;
};

inline LossArgs loss_args(at::TensorList xs, at::TensorList targets, at::ArrayRef<double> weights,
                          c10::string_view normalize, c10::string_view precision, const char* op) {
  LossArgs a;
  a.target_sb = check_layers(xs, targets, weights.size(), op);
  a.precision = parse_precision(precision, op);
  for (const auto& x : xs) a.norms.push_back(normalizer(normalize, x.size(1), x.size(2) * x.size(3), op));
  a.weights = weights;
  a.op = op;
  return a;
}

// ---- entry points ---------------------------------------------------------------------------

template <class Backend>
at::Tensor forward(const at::Tensor& x, c10::string_view normalize, c10::string_view precision) {
  const char* op = "gram";
  check_x(x, op);
  const Precision p = parse_precision(precision, op);
  const int64_t B = x.size(0), C = x.size(1);
  const double norm = normalizer(normalize, C, x.size(2) * x.size(3), op);
  const c10::DeviceGuard guard(x.device());
  at::Tensor out = at::empty({B, C, C}, x.options());
  if (out.numel() == 0) return out;
  Backend::gram(x, p, norm, out);
  return out;
}

// The loss of all layers, sum_l weights[l] * mean((G_l - T_l)^2), and each layer's D = G - T.
template <class Backend>
std::tuple<at::Tensor, std::vector<at::Tensor>> loss_layers(at::TensorList xs, at::TensorList targets,
                                                            at::ArrayRef<double> weights, c10::string_view normalize,
                                                            c10::string_view precision, const char* op) {
  const LossArgs a = loss_args(xs, targets, weights, normalize, precision, op);
  const c10::DeviceGuard guard(xs[0].device());
  std::vector<at::Tensor> diffs;
  for (const auto& x : xs) diffs.push_back(at::empty({x.size(0), x.size(1), x.size(1)}, x.options().dtype(acc_type(x))));
  at::Tensor loss = at::empty({}, xs[0].options());
  Backend::loss_layers(xs, targets, a, diffs, loss);
  return {loss, diffs};
}

template <class Backend>
std::tuple<at::Tensor, at::Tensor> loss(const at::Tensor& x, const at::Tensor& target, double weight,
                                        c10::string_view normalize, c10::string_view precision) {
  const char* op = "gram_loss";
  check_x(x, op);
  check_target(x, target, op);  // the single-layer messages name x and target
  auto [value, diffs] = loss_layers<Backend>({x}, {target}, {weight}, normalize, precision, op);
  return {value, diffs[0]};
}

template <class Backend>
std::tuple<at::Tensor, std::vector<at::Tensor>> loss_multi(at::TensorList xs, at::TensorList targets,
                                                           at::ArrayRef<double> weights, c10::string_view normalize,
                                                           c10::string_view precision) {
  return loss_layers<Backend>(xs, targets, weights, normalize, precision, "gram_loss_multi");
}

// grad_x = S F with S = coef [* grad] * (M + M^T), in x's layout: every backward op is this.
template <class Backend>
at::Tensor symmetric_times_f(const at::Tensor& M, const at::Tensor& grad, double coef, const at::Tensor& x,
                             const BackwardArgs& a) {
  const Features f = features(x, a.operand);
  if (x.numel() == 0) return grad_like(f, a.H, a.W, x.scalar_type(), x).zero_();
  const at::Tensor S = Backend::symmetric(M, grad, coef, a.operand);
  return Backend::apply_grad(f, S, x, a.precision);
}

template <class Backend>
at::Tensor backward(const at::Tensor& grad_output, const at::Tensor& x, c10::string_view normalize,
                    c10::string_view precision) {
  const char* op = "_gram_backward";
  check_x(x, op);
  check_grad_gram(grad_output, x, op);
  const BackwardArgs a = backward_args(x, normalize, precision, op);
  const c10::DeviceGuard guard(x.device());
  const at::Tensor go = grad_output.scalar_type() == x.scalar_type() ? grad_output : grad_output.to(x.scalar_type());
  return symmetric_times_f<Backend>(go, at::Tensor(), 1.0 / a.norm, x, a);
}

// grad_x of one layer of the loss: S = coef * grad_loss * (D + D^T), grad_loss read where it
// lives (on a GPU: no sync), then S F.
template <class Backend>
at::Tensor layer_grad(const at::Tensor& grad_loss, const at::Tensor& diff, const at::Tensor& x, double weight,
                      c10::string_view normalize, c10::string_view precision, const char* op) {
  const BackwardArgs a = backward_args(x, normalize, precision, op);
  const c10::DeviceGuard guard(x.device());
  return symmetric_times_f<Backend>(diff.contiguous(), grad_loss.to(acc_type(x)),
                                    loss_grad_coef(weight, a.B, a.C, a.norm), x, a);
}

template <class Backend>
at::Tensor loss_backward(const at::Tensor& grad_loss, const at::Tensor& diff, const at::Tensor& x, double weight,
                         c10::string_view normalize, c10::string_view precision) {
  const char* op = "_gram_loss_backward";
  check_x(x, op);
  check_diff(x, diff, op);
  check_grad_loss(grad_loss, x, op);
  return layer_grad<Backend>(grad_loss, diff, x, weight, normalize, precision, op);
}

template <class Backend>
std::vector<at::Tensor> loss_multi_backward(const at::Tensor& grad_loss, at::TensorList diffs, at::TensorList xs,
                                            at::ArrayRef<double> weights, c10::string_view normalize,
                                            c10::string_view precision) {
  const char* op = "_gram_loss_multi_backward";
  check_backward_layers(diffs, xs, weights.size(), op);
  check_grad_loss(grad_loss, xs[0], op);
  std::vector<at::Tensor> grads;
  grads.reserve(xs.size());
  for (size_t l = 0; l < xs.size(); ++l) {
    grads.push_back(layer_grad<Backend>(grad_loss, diffs[l], xs[l], weights[l], normalize, precision, op));
  }
  return grads;
}

template <class Backend>
void register_kernels(torch::Library& m) {
  m.impl("gram", &forward<Backend>);
  m.impl("_gram_backward", &backward<Backend>);
  m.impl("gram_loss", &loss<Backend>);
  m.impl("_gram_loss_backward", &loss_backward<Backend>);
  m.impl("gram_loss_multi", &loss_multi<Backend>);
  m.impl("_gram_loss_multi_backward", &loss_multi_backward<Backend>);
}

// The CPU's tile schedule: about 16 GEMMs per layer (whatever the thread count, so the split of
// the work does not depend on it), chunks of at least 4096 pixels, workspace at most 64 MB of float32.
inline Schedule cpu_schedule(int64_t B, int64_t C, int64_t n) {
  return make_schedule(B, C, n, /*target_items=*/16, /*min_chunk=*/4096, /*max_workspace=*/int64_t(1) << 24);
}

// The CPU forward's schedule for (B, C, n) as [tile, tiles, pairs, chunk, chunks, items], for the
// tests to check which cases their shapes exercise (op _gram_schedule).
inline std::vector<int64_t> cpu_schedule_info(int64_t B, int64_t C, int64_t n) {
  TORCH_CHECK(B >= 0 && C >= 0 && n >= 0, "_gram_schedule: B, C and n must be >= 0, got ", B, ", ", C, ", ", n);
  // Beyond these the schedule's products (B * tile pairs * slot) overflow int64; no tensor that
  // fits in memory comes near them (a (C, C) Gram matrix of 2^24 channels is 2^48 entries).
  TORCH_CHECK(B <= (int64_t(1) << 31) && C <= (int64_t(1) << 24) && n <= (int64_t(1) << 47),
              "_gram_schedule: B must be at most 2^31, C at most 2^24 and n at most 2^47, got ", B, ", ", C, ", ", n);
  const Schedule s = cpu_schedule(B, C, n);
  return {s.tile, s.tiles, s.pairs, s.chunk, s.chunks, s.items()};
}

}  // namespace gram
}  // namespace pytexsynth
