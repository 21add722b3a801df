// Every CUDA GEMM of the extension, through cuBLAS with the precision of common/precision.h:
// the Precision argument picks the compute type and the math mode for the calls, the handle's
// previous math mode is restored afterwards, and PyTorch's global TF32 flag plays no part.
#pragma once

#include <ATen/ATen.h>
#include <cublas_v2.h>

#include <cstdint>

#include "common/precision.h"

namespace pytexsynth {
namespace blas {

// Sets the handle's math mode (TF32 allowed or not) for the lifetime of the guard and restores
// the previous one: ATen's handle is shared with every other matmul of the process, and ATen
// itself sets it from the global flag each time it hands the handle out.
class MathModeGuard {
 public:
  MathModeGuard(cublasHandle_t handle, cublasMath_t mode);
  ~MathModeGuard();
  MathModeGuard(const MathModeGuard&) = delete;
  MathModeGuard& operator=(const MathModeGuard&) = delete;

 private:
  cublasHandle_t handle_;
  cublasMath_t previous_;
};

// A family of column-major cuBLAS GEMMs C = alpha op(A) op(B) + beta C on the current stream:
// operands of dtype `in`, C of dtype `out`, accumulation in float32 (float64 for double), TF32
// only for Precision::kTF32 with float32 operands (precision.h). The math mode holds while the
// object lives. Sizes are checked against cuBLAS's 32-bit ints, naming `op`.
class Gemm {
 public:
  Gemm(at::ScalarType in, at::ScalarType out, Precision p, const char* op);
  Gemm(const Gemm&) = delete;
  Gemm& operator=(const Gemm&) = delete;

  // `batch` products at element strides sA, sB, sC; accumulate: beta = 1, else beta = 0.
  void strided(cublasOperation_t ta, cublasOperation_t tb, int64_t m, int64_t n, int64_t k, const void* A,
               int64_t lda, int64_t sA, const void* B, int64_t ldb, int64_t sB, void* C, int64_t ldc, int64_t sC,
               int64_t batch, bool accumulate = false) const;
  // `batch` products from device arrays of pointers (each 16-byte aligned: cuBLAS cannot check
  // pointers it does not see), beta = 0.
  void batched(cublasOperation_t ta, cublasOperation_t tb, int64_t m, int64_t n, int64_t k, const void* const* A,
               int64_t lda, const void* const* B, int64_t ldb, void* const* C, int64_t ldc, int64_t batch) const;
  // One product, beta = 0.
  void single(cublasOperation_t ta, cublasOperation_t tb, int64_t m, int64_t n, int64_t k, const void* A,
              int64_t lda, const void* B, int64_t ldb, void* C, int64_t ldc) const;

 private:
  void check_sizes(int64_t m, int64_t n, int64_t k, int64_t lda, int64_t ldb, int64_t ldc, int64_t batch) const;

  cublasHandle_t handle_;
  cudaDataType in_, out_;
  cublasComputeType_t compute_;
  bool fp64_;
  const char* op_;
  double one64_ = 1.0, zero64_ = 0.0;
  float one32_ = 1.0f, zero32_ = 0.0f;
  MathModeGuard mode_;
};

// out[q] (+)= a[q] @ b[q] for row-major (batch, m, k) a, (batch, k, n) b and (batch, m, n) out,
// read through their strides (a matrix with neither inner stride 1 is copied first). a and b of
// the operand dtype, out of the accumulation dtype (float32, or float64 for double operands).
void bmm(const at::Tensor& a, const at::Tensor& b, const at::Tensor& out, bool accumulate, Precision p,
         const char* op);

// a @ b for row-major 2-D a, b, rounded to the operand dtype of the precision first
// (precision.h: bf16 rounds float32 operands); the result in float32, or float64 for double.
at::Tensor mm(const at::Tensor& a, const at::Tensor& b, Precision p, const char* op);

}  // namespace blas
}  // namespace pytexsynth
