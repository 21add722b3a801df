// adain and its backward: argument checks, plane geometry and the entry points shared by the
// CPU and CUDA backends, so both reject the same inputs with the same messages.
//
// A backend supplies, for checked, non-empty inputs on the current device:
//   static void forward(content, style, at::Tensor& out, double alpha, double eps)
//   static void backward(grad_output, content, style, at::Tensor& grad_content,
//                        at::Tensor& grad_style, double alpha, double eps)
// reading every tensor through its own strides (make_planes) and writing outputs allocated
// here in output_memory_format of the tensor they belong to.
#pragma once

#include <c10/core/DeviceGuard.h>
#include <torch/library.h>

#include <cmath>
#include <tuple>

#include "common/adain_math.h"
#include "common/checks.h"

namespace pytexsynth {
namespace adain {

inline Planes make_planes(const at::Tensor& t) {
  const bool batched = t.dim() == 4;
  Planes p;
  p.N = batched ? t.size(0) : 1;
  p.C = t.size(-3);
  p.H = t.size(-2);
  p.W = t.size(-1);
  p.sN = batched ? t.stride(0) : 0;
  p.sC = t.stride(-3);
  p.sH = t.stride(-2);
  p.sW = t.stride(-1);
  return p;
}

inline void check_args(const at::Tensor& content, const at::Tensor& style, double alpha, double eps, const char* op) {
  check_dim_in(content, {3, 4}, op, "content", "3-D (C, H, W) or 4-D (N, C, H, W)");
  check_floating(content, op, "content");
  TORCH_CHECK(style.dim() == content.dim(), op, ": style must have as many dimensions as content (",
              content.dim(), "), got a ", style.dim(), "-D tensor of shape ", shape_str(style));
  TORCH_CHECK(style.scalar_type() == content.scalar_type(), op, ": style must have content's dtype ",
              content.scalar_type(), ", got ", style.scalar_type());
  check_same_device(content, style, op, "content", "style");
  TORCH_CHECK(content.dim() == 3 || style.size(0) == content.size(0), op, ": style must have content's batch size ",
              content.size(0), ", got style of shape ", shape_str(style));
  TORCH_CHECK(style.size(-3) == content.size(-3), op, ": style must have content's ", content.size(-3),
              " channels, got style of shape ", shape_str(style));
  TORCH_CHECK(content.numel() == 0 || style.size(-2) * style.size(-1) > 0, op,
              ": style must have at least one value per channel, got style of shape ", shape_str(style));
  TORCH_CHECK(std::isfinite(alpha) && alpha >= 0.0 && alpha <= 1.0, op, ": alpha must be a finite number in [0, 1], got ",
              alpha);
  TORCH_CHECK(std::isfinite(eps) && eps > 0.0, op, ": eps must be a finite number > 0, got ", eps);
}

inline at::Tensor empty_output(const at::Tensor& t) {
  return at::empty(t.sizes(), t.options().memory_format(output_memory_format(t)));
}

template <class Backend>
at::Tensor forward_entry(const at::Tensor& content, const at::Tensor& style, double alpha, double eps) {
  check_args(content, style, alpha, eps, "adain");
  const c10::DeviceGuard guard(content.device());
  at::Tensor out = empty_output(content);
  if (out.numel() == 0) return out;
  Backend::forward(content, style, out, alpha, eps);
  return out;
}

template <class Backend>
std::tuple<at::Tensor, at::Tensor> backward_entry(const at::Tensor& grad_output, const at::Tensor& content,
                                                  const at::Tensor& style, double alpha, double eps) {
  const char* op = "_adain_backward";
  check_args(content, style, alpha, eps, op);
  TORCH_CHECK(grad_output.sizes() == content.sizes(), op, ": grad_output must have content's shape ",
              shape_str(content), ", got ", shape_str(grad_output));
  TORCH_CHECK(grad_output.scalar_type() == content.scalar_type(), op, ": grad_output must have content's dtype ",
              content.scalar_type(), ", got ", grad_output.scalar_type());
  check_same_device(content, grad_output, op, "content", "grad_output");
  const c10::DeviceGuard guard(content.device());
  at::Tensor grad_content = empty_output(content);
  at::Tensor grad_style = empty_output(style);
  if (content.numel() == 0) {
    grad_style.zero_();
    return {grad_content, grad_style};
  }
  Backend::backward(grad_output, content, style, grad_content, grad_style, alpha, eps);
  return {grad_content, grad_style};
}

template <class Backend>
void register_kernels(torch::Library& m) {
  m.impl("adain", &forward_entry<Backend>);
  m.impl("_adain_backward", &backward_entry<Backend>);
}

}  // namespace adain
}  // namespace pytexsynth
