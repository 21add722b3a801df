// The one GEMM precision policy of every op (gram, gram_loss(_multi), style_swap, and
// winograd_conv3x3 with its fixed "ieee").
//
// The op's `precision=` argument decides, per call. No kernel reads or writes PyTorch's global
// matmul settings (torch.backends.cuda.matmul.allow_tf32 / fp32_precision): a global flag would
// change results behind the caller's back, and flipping it around a call would change them for
// other threads' matmuls. On CUDA every GEMM goes through cuda/blas.cuh, which sets the cuBLAS
// compute type and math mode from the precision for that call and restores the handle after.
//
//   "ieee"  float32 operands, float32 products and accumulation; never TF32, even where
//           torch.backends.cuda.matmul.allow_tf32 is True.
//   "tf32"  float32 operands multiplied on TF32 tensor cores (10-bit mantissa), float32
//           accumulation. The CPU has no TF32 units: there "tf32" is "ieee".
//   "bf16"  operands rounded to bfloat16, products accumulated in float32 (CUDA: a bf16 GEMM
//           with fp32 compute; CPU: the rounded operands multiplied in float32).
// float64 inputs always run in float64 (gradcheck), whatever the precision; half and bfloat16
// inputs are read as they are ("bf16" rounds half operands to bfloat16) with float32
// accumulation.
#pragma once

#include <c10/core/ScalarType.h>
#include <c10/util/Exception.h>
#include <c10/util/string_view.h>

#include <string>

namespace pytexsynth {

enum class Precision { kIEEE, kTF32, kBF16 };

inline Precision parse_precision(c10::string_view precision, const char* op) {
  if (precision == "ieee") return Precision::kIEEE;
  if (precision == "tf32") return Precision::kTF32;
  if (precision == "bf16") return Precision::kBF16;
  TORCH_CHECK(false, op, ": precision must be 'ieee', 'tf32' or 'bf16', got '", std::string(precision), "'");
}

// The dtype a GEMM reads its operands in, for inputs of dtype `input`.
inline at::ScalarType operand_type(at::ScalarType input, Precision p) {
  if (input == at::kDouble) return at::kDouble;
  if (p == Precision::kBF16) return at::kBFloat16;
  return input;
}

// Whether a GEMM of `operand` dtype runs on TF32 tensor cores (CUDA only).
inline bool uses_tf32(at::ScalarType operand, Precision p) { return p == Precision::kTF32 && operand == at::kFloat; }

}  // namespace pytexsynth
