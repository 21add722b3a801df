// Argument checks shared by every op: each failure names the op, the argument, what it got
// and what was expected, so a user can fix the call without reading the kernel.
#pragma once

#include <ATen/ATen.h>

#include <array>
#include <cstdlib>
#include <initializer_list>
#include <sstream>
#include <string>

namespace pytexsynth {

inline std::string shape_str(const at::Tensor& t) {
  std::ostringstream s;
  s << t.sizes();
  return s.str();
}

// float32, float64, float16 or bfloat16: the dtypes every kernel dispatches.
inline void check_floating(const at::Tensor& t, const char* op, const char* arg) {
  const auto st = t.scalar_type();
  TORCH_CHECK(
      st == at::kFloat || st == at::kDouble || st == at::kHalf || st == at::kBFloat16,
      op, ": ", arg, " must be a float32, float64, float16 or bfloat16 tensor, got ", st);
}

inline void check_dim_in(const at::Tensor& t, std::initializer_list<int64_t> dims, const char* op,
                         const char* arg, const char* layout) {
  for (int64_t d : dims) {
    if (t.dim() == d) return;
  }
  TORCH_CHECK(false, op, ": ", arg, " must be a ", layout, " tensor, got a ", t.dim(),
              "-D tensor of shape ", shape_str(t));
}

inline void check_same_device(const at::Tensor& a, const at::Tensor& b, const char* op,
                              const char* arg_a, const char* arg_b) {
  TORCH_CHECK(a.device() == b.device(), op, ": ", arg_a, " and ", arg_b,
              " must be on the same device, got ", a.device(), " and ", b.device());
}

// The memory layout a kernel writes its output in: channels_last when the input is dense in
// that layout (and not also plain contiguous), else contiguous. pytexsynth.ops.checks
// (output_memory_format) applies the same rule in the fake kernels, so fake and real strides agree.
inline at::MemoryFormat output_memory_format(const at::Tensor& t) {
  if (t.dim() == 4 && !t.is_contiguous() && t.is_contiguous(at::MemoryFormat::ChannelsLast)) {
    return at::MemoryFormat::ChannelsLast;
  }
  return at::MemoryFormat::Contiguous;
}

// True when every offset into each tensor fits in int32 with room for a grid-stride step.
inline bool fits_int32(std::initializer_list<at::Tensor> ts) {
  for (const auto& t : ts) {
    int64_t max_offset = 0;
    for (int64_t d = 0; d < t.dim(); ++d) {
      max_offset += (t.size(d) - 1) * std::abs(t.stride(d));
    }
    if (max_offset >= (int64_t(1) << 30) || t.numel() >= (int64_t(1) << 30)) return false;
  }
  return true;
}

}  // namespace pytexsynth
