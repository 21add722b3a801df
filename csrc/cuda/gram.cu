// gram / gram_loss on CUDA: the GEMMs are cuBLAS (correct by construction, precision set
// explicitly per call), the epilogues are small kernels around gram_math.h.
//
// Forward: P = F F^T as S partial products over slices of H*W (one strided-batched GEMM per
// image, plus one for a shorter tail slice), so a small C (64 channels, one output tile) still
// spreads over every SM. The epilogue sums the S partials of each upper-triangle entry in split
// order, mirrors it (G exactly symmetric), and for the loss writes D = G - T and one partial sum
// of squares per block; a one-block kernel adds those in a fixed order. No float atomics.
// Backward: S = scale (D + D^T) with scale = coef * grad_loss read on the device (no .item()),
// then one GEMM S F.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/Exceptions.h>
#include <c10/cuda/CUDAGuard.h>
#include <cublas_v2.h>
#include <torch/library.h>

#include <climits>

#include "common/gram.h"

namespace pytexsynth {
namespace {

using gram::Features;
using gram::Precision;

constexpr int kThreads = 256;
// Epilogue blocks are small so that a small C (64 x 64 entries) still spreads over 32+ SMs.
constexpr int kEpilogueThreads = 128;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

unsigned int blocks_for(int64_t total, int threads = kThreads) {
  return static_cast<unsigned int>(ceil_div(total, threads));
}

// ---- cuBLAS ---------------------------------------------------------------------------------

cudaDataType cuda_type(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return CUDA_R_32F;
    case at::kDouble: return CUDA_R_64F;
    case at::kHalf: return CUDA_R_16F;
    case at::kBFloat16: return CUDA_R_16BF;
    default: TORCH_CHECK(false, "gram: no cuBLAS type for ", t);
  }
}

// Sets the handle's math mode for this call (TF32 allowed or not) and restores the previous one:
// ATen's handle is shared with every other matmul of the process.
class MathModeGuard {
 public:
  MathModeGuard(cublasHandle_t handle, cublasMath_t mode) : handle_(handle) {
    TORCH_CUDABLAS_CHECK(cublasGetMathMode(handle_, &previous_));
    TORCH_CUDABLAS_CHECK(cublasSetMathMode(handle_, mode));
  }
  ~MathModeGuard() { cublasSetMathMode(handle_, previous_); }
  MathModeGuard(const MathModeGuard&) = delete;
  MathModeGuard& operator=(const MathModeGuard&) = delete;

 private:
  cublasHandle_t handle_;
  cublasMath_t previous_;
};

void check_int(int64_t v, const char* what) {
  TORCH_CHECK(v >= 0 && v <= INT_MAX, "gram: ", what, " = ", v, " exceeds the 32-bit sizes cuBLAS takes");
}

// Column-major C = op(A) op(B), `batch` times with the given element strides; operands of dtype
// in_t, output out_t, accumulation in fp32 (fp64 for double). "ieee" forbids TF32 even where
// PyTorch's global flag allows it; "tf32" asks for it.
void gemm(cublasOperation_t ta, cublasOperation_t tb, int64_t m, int64_t n, int64_t k, const void* A, int64_t lda,
          int64_t sA, const void* B, int64_t ldb, int64_t sB, void* C, int64_t ldc, int64_t sC, int64_t batch,
          at::ScalarType in_t, at::ScalarType out_t, Precision p) {
  if (batch == 0 || m == 0 || n == 0) return;
  check_int(m, "m"); check_int(n, "n"); check_int(k, "k"); check_int(lda, "lda"); check_int(ldb, "ldb");
  check_int(ldc, "ldc"); check_int(batch, "batch");
  cublasHandle_t handle = at::cuda::getCurrentCUDABlasHandle();  // bound to the current stream
  const bool fp64 = in_t == at::kDouble;
  const bool tf32 = p == Precision::kTF32 && in_t == at::kFloat;
  MathModeGuard mode(handle, tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH);
  const cublasComputeType_t compute =
      fp64 ? CUBLAS_COMPUTE_64F : (tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F);
  const double one64 = 1.0, zero64 = 0.0;
  const float one32 = 1.0f, zero32 = 0.0f;
  const void* alpha = fp64 ? static_cast<const void*>(&one64) : static_cast<const void*>(&one32);
  const void* beta = fp64 ? static_cast<const void*>(&zero64) : static_cast<const void*>(&zero32);
  TORCH_CUDABLAS_CHECK(cublasGemmStridedBatchedEx(
      handle, ta, tb, static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), alpha, A, cuda_type(in_t),
      static_cast<int>(lda), sA, B, cuda_type(in_t), static_cast<int>(ldb), sB, beta, C, cuda_type(out_t),
      static_cast<int>(ldc), sC, static_cast<int>(batch), compute, CUBLAS_GEMM_DEFAULT));
}

const void* offset(const void* base, int64_t elements, int64_t elem_size) {
  return static_cast<const char*>(base) + elements * elem_size;
}

// ---- forward products -----------------------------------------------------------------------

// How H*W is sliced: enough slices that the GEMMs of one image fill about twice the SMs (a
// 128x128 output tile per CTA is assumed), each slice at least 2048 pixels long, the partials at
// most 64 MB. The plan depends only on shapes and the device: gram() and gram_loss() of the same
// x slice alike, so a target made by gram() gives D = 0 exactly.
struct SplitPlan {
  int64_t count, chunk, full, tail;
};

SplitPlan plan_splits(int64_t B, int64_t C, int64_t n) {
  const int64_t sms = at::cuda::getCurrentDeviceProperties()->multiProcessorCount;
  const int64_t tiles = ceil_div(C, 128) * ceil_div(C, 128);
  const int64_t want = ceil_div(2 * sms, tiles);
  const int64_t by_len = std::max<int64_t>(1, n / 2048);
  const int64_t by_mem = std::max<int64_t>(1, (int64_t(1) << 24) / std::max<int64_t>(1, B * C * C));
  SplitPlan s;
  const int64_t count = std::max<int64_t>(1, std::min({want, by_len, by_mem}));
  s.chunk = ceil_div(n, count);
  s.full = n / s.chunk;
  s.tail = n - s.full * s.chunk;
  s.count = s.full + (s.tail > 0 ? 1 : 0);
  return s;
}

// Raw partial products (B, S, C, C) in acc, and S.
at::Tensor products(const Features& f, at::ScalarType acc, Precision p, int64_t& splits) {
  const int64_t B = f.B, C = f.C, n = f.n;
  if (n == 0) {
    splits = 1;
    return at::zeros({B, 1, C, C}, f.data.options().dtype(acc));
  }
  const SplitPlan plan = plan_splits(B, C, n);
  splits = plan.count;
  at::Tensor P = at::empty({B, plan.count, C, C}, f.data.options().dtype(acc));
  if (P.numel() == 0) return P;
  const void* F = f.data.const_data_ptr();
  void* out = P.mutable_data_ptr();
  const int64_t fs = f.data.element_size(), ps = P.element_size();
  const at::ScalarType in_t = f.data.scalar_type();
  // NCHW: image b is the column-major (n x C) matrix at b*C*n, ld n; P_s = A_s^T A_s.
  // NHWC: image b is the column-major (C x n) matrix at b*n*C, ld C;   P_s = A_s A_s^T.
  const cublasOperation_t ta = f.channels_last ? CUBLAS_OP_N : CUBLAS_OP_T;
  const cublasOperation_t tb = f.channels_last ? CUBLAS_OP_T : CUBLAS_OP_N;
  const int64_t ld = f.channels_last ? C : n;
  const int64_t split_step = f.channels_last ? plan.chunk * C : plan.chunk;  // elements between slices
  if (plan.count == 1) {
    gemm(ta, tb, C, C, n, F, ld, C * n, F, ld, C * n, out, C, C * C, B, in_t, acc, p);
    return P;
  }
  for (int64_t b = 0; b < B; ++b) {
    const void* Fb = offset(F, b * C * n, fs);
    void* Pb = static_cast<char*>(out) + b * plan.count * C * C * ps;
    gemm(ta, tb, C, C, plan.chunk, Fb, ld, split_step, Fb, ld, split_step, Pb, C, C * C, plan.full, in_t, acc, p);
    if (plan.tail > 0) {
      const void* Ft = offset(Fb, plan.full * split_step, fs);
      gemm(ta, tb, C, C, plan.tail, Ft, ld, 0, Ft, ld, 0, static_cast<char*>(Pb) + plan.full * C * C * ps, C, C * C,
           1, in_t, acc, p);
    }
  }
  return P;
}

// ---- epilogue kernels -----------------------------------------------------------------------

struct Entry {
  int64_t b, i, j;
};

__device__ inline Entry decode(int64_t l, int64_t C) {
  Entry e;
  e.j = l % C;
  l /= C;
  e.i = l % C;
  e.b = l / C;
  return e;
}

// Fixed-order tree sum of one value per thread; thread 0 gets the block's total.
template <int Threads, typename acc_t>
__device__ inline acc_t block_sum(acc_t v) {
  __shared__ acc_t shared[Threads];
  shared[threadIdx.x] = v;
  __syncthreads();
  for (int s = Threads / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) shared[threadIdx.x] += shared[threadIdx.x + s];
    __syncthreads();
  }
  return shared[0];
}

template <typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(kEpilogueThreads)
gram_epilogue_kernel(const acc_t* __restrict__ P, int64_t splits, int64_t C, acc_t norm, scalar_t* __restrict__ out,
                     int64_t total) {
  const int64_t l = static_cast<int64_t>(blockIdx.x) * kEpilogueThreads + threadIdx.x;
  if (l >= total) return;
  const Entry e = decode(l, C);
  if (e.i > e.j) return;  // the upper entry's thread writes the mirror
  gram::gram_pair(P + e.b * splits * C * C, splits, C, e.i, e.j, norm, out + e.b * C * C);
}

template <typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(kEpilogueThreads)
gram_loss_epilogue_kernel(const acc_t* __restrict__ P, int64_t splits, int64_t C, acc_t norm,
                          const scalar_t* __restrict__ T, int64_t tb, int64_t ti, int64_t tj, acc_t* __restrict__ D,
                          acc_t* __restrict__ block_sq, int64_t total) {
  const int64_t l = static_cast<int64_t>(blockIdx.x) * kEpilogueThreads + threadIdx.x;
  acc_t sq = acc_t(0);
  if (l < total) {
    const Entry e = decode(l, C);
    if (e.i <= e.j) {
      sq = gram::loss_pair(P + e.b * splits * C * C, splits, C, e.i, e.j, norm, T + e.b * tb, ti, tj, D + e.b * C * C);
    }
  }
  const acc_t sum = block_sum<kEpilogueThreads>(sq);
  if (threadIdx.x == 0) block_sq[blockIdx.x] = sum;
}

template <typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(kThreads)
gram_loss_finish_kernel(const acc_t* __restrict__ block_sq, int64_t nblocks, acc_t count, acc_t weight,
                        scalar_t* __restrict__ loss) {
  acc_t s = acc_t(0);
  for (int64_t k = threadIdx.x; k < nblocks; k += kThreads) s += block_sq[k];
  const acc_t sum = block_sum<kThreads>(s);
  if (threadIdx.x == 0) *loss = static_cast<scalar_t>(gram::finish_loss(sum, count, weight));
}

// S[b, i, j] = symmetric_grad(M[b, i, j], M[b, j, i], coef * grad) in the GEMM operand dtype;
// grad is null for gram's backward (scale = coef).
template <typename m_t, typename g_t, typename s_t, typename acc_t>
__global__ void __launch_bounds__(kThreads)
symmetric_grad_kernel(const m_t* __restrict__ M, int64_t sb, int64_t si, int64_t sj, int64_t C,
                      const g_t* __restrict__ grad, acc_t coef, s_t* __restrict__ S, int64_t total) {
  const int64_t l = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (l >= total) return;
  const Entry e = decode(l, C);
  const acc_t scale = grad != nullptr ? coef * static_cast<acc_t>(*grad) : coef;
  const m_t* Mb = M + e.b * sb;
  S[l] = static_cast<s_t>(gram::symmetric_grad(static_cast<acc_t>(Mb[e.i * si + e.j * sj]),
                                               static_cast<acc_t>(Mb[e.j * si + e.i * sj]), scale));
}

// ---- backward GEMM --------------------------------------------------------------------------

// grad_x = S F (S symmetric, operand dtype), in x's layout and dtype.
at::Tensor apply_grad(const Features& f, const at::Tensor& S, const at::Tensor& x, Precision p) {
  const at::ScalarType acc = gram::acc_type(x);
  const int64_t B = f.B, C = f.C, n = f.n;
  at::Tensor out = gram::grad_like(f, x.size(2), x.size(3), acc, x);
  const at::ScalarType in_t = f.data.scalar_type();
  if (f.channels_last) {
    // Column-major (C x n) per image: Out = S A.
    gemm(CUBLAS_OP_N, CUBLAS_OP_N, C, n, C, S.const_data_ptr(), C, C * C, f.data.const_data_ptr(), C, n * C,
         out.mutable_data_ptr(), C, n * C, B, in_t, acc, p);
  } else {
    // Column-major (n x C) per image: Out = A S^T = A S.
    gemm(CUBLAS_OP_N, CUBLAS_OP_N, n, C, C, f.data.const_data_ptr(), n, C * n, S.const_data_ptr(), C, C * C,
         out.mutable_data_ptr(), n, C * n, B, in_t, acc, p);
  }
  return out.scalar_type() == x.scalar_type() ? out : out.to(x.scalar_type());
}

template <typename m_t, typename g_t, typename acc_t>
at::Tensor symmetric(const m_t* M, int64_t sb, int64_t si, int64_t sj, int64_t B, int64_t C, const g_t* grad,
                     double coef, const at::Tensor& like, at::ScalarType operand) {
  at::Tensor S = at::empty({B, C, C}, like.options().dtype(operand));
  const int64_t total = S.numel();
  const auto stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, operand, "gram_symmetric_grad_cuda", [&] {
    symmetric_grad_kernel<m_t, g_t, scalar_t, acc_t><<<blocks_for(total), kThreads, 0, stream>>>(
        M, sb, si, sj, C, grad, static_cast<acc_t>(coef), S.mutable_data_ptr<scalar_t>(), total);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return S;
}

// ---- ops ------------------------------------------------------------------------------------

at::Tensor gram_cuda(const at::Tensor& x, c10::string_view normalize, c10::string_view precision) {
  const char* op = "gram";
  gram::check_x(x, op);
  const auto p = gram::parse_precision(std::string(precision), op);
  const int64_t B = x.size(0), C = x.size(1);
  const double norm = gram::normalizer(std::string(normalize), C, x.size(2) * x.size(3), op);
  const c10::cuda::CUDAGuard guard(x.device());
  at::Tensor out = at::empty({B, C, C}, x.options());
  if (out.numel() == 0) return out;
  const Features f = gram::features(x, gram::operand_type(x, p));
  int64_t splits = 1;
  const at::Tensor P = products(f, gram::acc_type(x), p, splits);
  const int64_t total = B * C * C;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "gram_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    gram_epilogue_kernel<scalar_t, acc_t>
        <<<blocks_for(total, kEpilogueThreads), kEpilogueThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
        P.const_data_ptr<acc_t>(), splits, C, static_cast<acc_t>(norm), out.mutable_data_ptr<scalar_t>(), total);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> gram_loss_cuda(const at::Tensor& x, const at::Tensor& target, double weight,
                                                  c10::string_view normalize, c10::string_view precision) {
  const char* op = "gram_loss";
  gram::check_x(x, op);
  const int64_t tb = gram::check_target(x, target, op);
  const auto p = gram::parse_precision(std::string(precision), op);
  const int64_t B = x.size(0), C = x.size(1);
  const double norm = gram::normalizer(std::string(normalize), C, x.size(2) * x.size(3), op);
  const c10::cuda::CUDAGuard guard(x.device());
  const at::ScalarType acc = gram::acc_type(x);
  at::Tensor diff = at::empty({B, C, C}, x.options().dtype(acc));
  at::Tensor loss = at::empty({}, x.options());
  const int64_t total = B * C * C;
  const int64_t nblocks = ceil_div(total, kEpilogueThreads);
  at::Tensor block_sq = at::empty({std::max<int64_t>(nblocks, 1)}, x.options().dtype(acc));
  int64_t splits = 1;
  at::Tensor P;
  if (total > 0) P = products(gram::features(x, gram::operand_type(x, p)), acc, p, splits);
  const auto stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "gram_loss_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    if (total > 0) {
      gram_loss_epilogue_kernel<scalar_t, acc_t><<<static_cast<unsigned int>(nblocks), kEpilogueThreads, 0, stream>>>(
          P.const_data_ptr<acc_t>(), splits, C, static_cast<acc_t>(norm), target.const_data_ptr<scalar_t>(), tb,
          target.stride(-2), target.stride(-1), diff.mutable_data_ptr<acc_t>(), block_sq.mutable_data_ptr<acc_t>(),
          total);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
    gram_loss_finish_kernel<scalar_t, acc_t><<<1, kThreads, 0, stream>>>(
        block_sq.const_data_ptr<acc_t>(), total > 0 ? nblocks : 0, static_cast<acc_t>(total),
        static_cast<acc_t>(weight), loss.mutable_data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {loss, diff};
}

at::Tensor gram_backward_cuda(const at::Tensor& grad_output, const at::Tensor& x, c10::string_view normalize,
                              c10::string_view precision) {
  const char* op = "_gram_backward";
  gram::check_x(x, op);
  gram::check_grad_gram(grad_output, x, op);
  const auto [B, C, H, W, p, norm, operand] = gram::backward_args(x, normalize, precision, op);
  const c10::cuda::CUDAGuard guard(x.device());
  const Features f = gram::features(x, operand);
  if (x.numel() == 0) return gram::grad_like(f, H, W, x.scalar_type(), x).zero_();
  const at::Tensor go = grad_output.scalar_type() == x.scalar_type() ? grad_output : grad_output.to(x.scalar_type());
  at::Tensor S;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "gram_backward_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    S = symmetric<scalar_t, scalar_t, acc_t>(go.const_data_ptr<scalar_t>(), go.stride(0), go.stride(1), go.stride(2),
                                             B, C, nullptr, 1.0 / norm, x, operand);
  });
  return apply_grad(f, S, x, p);
}

at::Tensor gram_loss_backward_cuda(const at::Tensor& grad_loss, const at::Tensor& diff, const at::Tensor& x,
                                   double weight, c10::string_view normalize, c10::string_view precision) {
  const char* op = "_gram_loss_backward";
  gram::check_x(x, op);
  gram::check_diff(x, diff, op);
  gram::check_grad_loss(grad_loss, x, op);
  const auto [B, C, H, W, p, norm, operand] = gram::backward_args(x, normalize, precision, op);
  const c10::cuda::CUDAGuard guard(x.device());
  const Features f = gram::features(x, operand);
  if (x.numel() == 0) return gram::grad_like(f, H, W, x.scalar_type(), x).zero_();
  const double coef = 2.0 * weight / (static_cast<double>(B * C * C) * norm);
  const at::Tensor d = diff.contiguous();
  const at::Tensor g = grad_loss.to(gram::acc_type(x));  // stays on the device: no sync
  at::Tensor S;
  AT_DISPATCH_FLOATING_TYPES(gram::acc_type(x), "gram_loss_backward_cuda", [&] {
    S = symmetric<scalar_t, scalar_t, scalar_t>(d.const_data_ptr<scalar_t>(), C * C, C, 1, B, C,
                                                g.const_data_ptr<scalar_t>(), coef, x, operand);
  });
  return apply_grad(f, S, x, p);
}

}  // namespace

TORCH_LIBRARY_IMPL(pytexsynth, CUDA, m) {
  m.impl("gram", &gram_cuda);
  m.impl("_gram_backward", &gram_backward_cuda);
  m.impl("gram_loss", &gram_loss_cuda);
  m.impl("_gram_loss_backward", &gram_loss_backward_cuda);
}

}  // namespace pytexsynth
