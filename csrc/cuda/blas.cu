// The cuBLAS GEMMs of cuda/blas.cuh (host code only).
#include "cuda/blas.cuh"

#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/Exceptions.h>

#include <algorithm>
#include <climits>

namespace pytexsynth {
namespace blas {
namespace {

cudaDataType cuda_type(at::ScalarType t, const char* op) {
  switch (t) {
    case at::kFloat: return CUDA_R_32F;
    case at::kDouble: return CUDA_R_64F;
    case at::kHalf: return CUDA_R_16F;
    case at::kBFloat16: return CUDA_R_16BF;
    default: TORCH_CHECK(false, op, ": no cuBLAS type for ", t);
  }
}

int to_int(int64_t v) { return static_cast<int>(v); }

// How cuBLAS reads the row-major (rows x cols) matrices of a 3-D tensor t: in place when one
// inner stride is 1 and the other a valid leading dimension (col_major: the unit stride is the
// row stride), else from a contiguous copy.
struct MatrixView {
  at::Tensor t;
  bool col_major;
  int64_t ld, batch_stride;
};

MatrixView view_of(const at::Tensor& t) {
  const int64_t rows = t.size(1), cols = t.size(2), sr = t.stride(1), sc = t.stride(2);
  if (sc == 1 && (rows == 1 || sr >= std::max<int64_t>(1, cols))) {
    return {t, false, rows == 1 ? std::max<int64_t>(1, cols) : sr, t.stride(0)};
  }
  if (sr == 1 && (cols == 1 || sc >= std::max<int64_t>(1, rows))) {
    return {t, true, cols == 1 ? std::max<int64_t>(1, rows) : sc, t.stride(0)};
  }
  const at::Tensor c = t.contiguous();
  return {c, false, std::max<int64_t>(1, cols), rows * cols};
}

}  // namespace

MathModeGuard::MathModeGuard(cublasHandle_t handle, cublasMath_t mode) : handle_(handle) {
  TORCH_CUDABLAS_CHECK(cublasGetMathMode(handle_, &previous_));
  TORCH_CUDABLAS_CHECK(cublasSetMathMode(handle_, mode));
}

MathModeGuard::~MathModeGuard() { cublasSetMathMode(handle_, previous_); }

Gemm::Gemm(at::ScalarType in, at::ScalarType out, Precision p, const char* op)
    : handle_(at::cuda::getCurrentCUDABlasHandle()),  // bound to the current stream
      in_(cuda_type(in, op)),
      out_(cuda_type(out, op)),
      compute_(in == at::kDouble ? CUBLAS_COMPUTE_64F
                                 : (uses_tf32(in, p) ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F)),
      fp64_(in == at::kDouble),
      op_(op),
      mode_(handle_, uses_tf32(in, p) ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH) {}

void Gemm::check_sizes(int64_t m, int64_t n, int64_t k, int64_t lda, int64_t ldb, int64_t ldc, int64_t batch) const {
  const int64_t values[] = {m, n, k, lda, ldb, ldc, batch};
  const char* names[] = {"m", "n", "k", "lda", "ldb", "ldc", "batch"};
  for (int i = 0; i < 7; ++i) {
    TORCH_CHECK(values[i] >= 0 && values[i] <= INT_MAX, op_, ": GEMM ", names[i], " = ", values[i],
                " exceeds the 32-bit sizes cuBLAS takes");
  }
}

void Gemm::strided(cublasOperation_t ta, cublasOperation_t tb, int64_t m, int64_t n, int64_t k, const void* A,
                   int64_t lda, int64_t sA, const void* B, int64_t ldb, int64_t sB, void* C, int64_t ldc, int64_t sC,
                   int64_t batch, bool accumulate) const {
  if (batch == 0 || m == 0 || n == 0) return;
  check_sizes(m, n, k, lda, ldb, ldc, batch);
  const void* alpha = fp64_ ? static_cast<const void*>(&one64_) : static_cast<const void*>(&one32_);
  const void* beta = accumulate ? alpha : (fp64_ ? static_cast<const void*>(&zero64_) : static_cast<const void*>(&zero32_));
  TORCH_CUDABLAS_CHECK(cublasGemmStridedBatchedEx(handle_, ta, tb, to_int(m), to_int(n), to_int(k), alpha, A, in_,
                                                  to_int(lda), sA, B, in_, to_int(ldb), sB, beta, C, out_, to_int(ldc),
                                                  sC, to_int(batch), compute_, CUBLAS_GEMM_DEFAULT));
}

void Gemm::batched(cublasOperation_t ta, cublasOperation_t tb, int64_t m, int64_t n, int64_t k, const void* const* A,
                   int64_t lda, const void* const* B, int64_t ldb, void* const* C, int64_t ldc, int64_t batch) const {
  if (batch == 0 || m == 0 || n == 0) return;
  check_sizes(m, n, k, lda, ldb, ldc, batch);
  const void* alpha = fp64_ ? static_cast<const void*>(&one64_) : static_cast<const void*>(&one32_);
  const void* beta = fp64_ ? static_cast<const void*>(&zero64_) : static_cast<const void*>(&zero32_);
  TORCH_CUDABLAS_CHECK(cublasGemmBatchedEx(handle_, ta, tb, to_int(m), to_int(n), to_int(k), alpha, A, in_,
                                           to_int(lda), B, in_, to_int(ldb), beta, C, out_, to_int(ldc),
                                           to_int(batch), compute_, CUBLAS_GEMM_DEFAULT));
}

void Gemm::single(cublasOperation_t ta, cublasOperation_t tb, int64_t m, int64_t n, int64_t k, const void* A,
                  int64_t lda, const void* B, int64_t ldb, void* C, int64_t ldc) const {
  if (m == 0 || n == 0) return;
  check_sizes(m, n, k, lda, ldb, ldc, 1);
  const void* alpha = fp64_ ? static_cast<const void*>(&one64_) : static_cast<const void*>(&one32_);
  const void* beta = fp64_ ? static_cast<const void*>(&zero64_) : static_cast<const void*>(&zero32_);
  TORCH_CUDABLAS_CHECK(cublasGemmEx(handle_, ta, tb, to_int(m), to_int(n), to_int(k), alpha, A, in_, to_int(lda), B,
                                    in_, to_int(ldb), beta, C, out_, to_int(ldc), compute_, CUBLAS_GEMM_DEFAULT));
}

// Row-major out = a b is column-major out^T = b^T a^T: cuBLAS's first operand is b, its second
// a, each transposed when stored column-major.
void bmm(const at::Tensor& a, const at::Tensor& b, const at::Tensor& out, bool accumulate, Precision p,
         const char* op) {
  TORCH_CHECK(a.dim() == 3 && b.dim() == 3 && out.dim() == 3 && a.size(0) == b.size(0) && a.size(0) == out.size(0) &&
                  a.size(2) == b.size(1) && out.size(1) == a.size(1) && out.size(2) == b.size(2),
              op, ": GEMM shapes do not match: ", a.sizes(), " @ ", b.sizes(), " -> ", out.sizes());
  TORCH_CHECK(a.scalar_type() == b.scalar_type(), op, ": GEMM operands of dtypes ", a.scalar_type(), " and ",
              b.scalar_type());
  const int64_t batch = a.size(0), m = a.size(1), k = a.size(2), n = b.size(2);
  if (batch == 0 || m == 0 || n == 0) return;
  if (k == 0) {  // an empty sum
    if (!accumulate) out.zero_();
    return;
  }
  const MatrixView A = view_of(a), B = view_of(b);
  const bool out_ok = out.stride(2) == 1 && (m == 1 || out.stride(1) >= n);
  at::Tensor C = out_ok ? out : (accumulate ? out.contiguous() : at::empty(out.sizes(), out.options()));
  const int64_t ldc = out_ok && m > 1 ? out.stride(1) : n;
  const Gemm gemm(a.scalar_type(), out.scalar_type(), p, op);
  gemm.strided(B.col_major ? CUBLAS_OP_T : CUBLAS_OP_N, A.col_major ? CUBLAS_OP_T : CUBLAS_OP_N, n, m, k,
               B.t.const_data_ptr(), B.ld, B.batch_stride, A.t.const_data_ptr(), A.ld, A.batch_stride,
               C.mutable_data_ptr(), ldc, out_ok ? out.stride(0) : m * n, batch, accumulate);
  if (!out_ok) out.copy_(C);
}

at::Tensor mm(const at::Tensor& a, const at::Tensor& b, Precision p, const char* op) {
  const at::ScalarType operand = operand_type(a.scalar_type(), p);
  const at::ScalarType acc = a.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  at::Tensor out = at::empty({a.size(0), b.size(1)}, a.options().dtype(acc));
  bmm(a.to(operand).unsqueeze(0), b.to(operand).unsqueeze(0), out.unsqueeze(0), /*accumulate=*/false, p, op);
  return out;
}

}  // namespace blas
}  // namespace pytexsynth
