// Every op of the pytexsynth namespace is declared here, once. Kernels are registered per
// backend in cpu/<op>.cpp and cuda/<op>.cu (each through common/<op>.h's register_kernels), ops
// written purely in ATen once for every backend in composite.cpp; autograd and fake kernels in
// pytexsynth/ops/<op>.py (through pytexsynth.ops._ext.register). Backward passes are ops of their
// own (leading underscore), so autograd formulas call registered ops that also have fake kernels.
#include <torch/library.h>

#include <string>

#include "common/gram.h"

#ifdef PYTEXSYNTH_WITH_CUDA
#include <cuda_runtime_api.h>
#define PYTEXSYNTH_STR_(...) #__VA_ARGS__
#define PYTEXSYNTH_STR(...) PYTEXSYNTH_STR_(__VA_ARGS__)
#endif

namespace pytexsynth {

// CUDA runtime version the kernels were compiled with, -1 for a CPU-only build.
int64_t cuda_version() {
#ifdef PYTEXSYNTH_WITH_CUDA
  return CUDART_VERSION;
#else
  return -1;
#endif
}

// TORCH_CUDA_ARCH_LIST the kernels were compiled for, ';'-separated; empty for a CPU build.
std::string cuda_archs() {
#ifdef PYTEXSYNTH_WITH_CUDA
  std::string archs = PYTEXSYNTH_STR(PYTEXSYNTH_CUDA_ARCHS);
  for (auto& ch : archs) {
    if (ch == ',') ch = ';';
  }
  return archs;
#else
  return "";
#endif
}

}  // namespace pytexsynth

TORCH_LIBRARY(pytexsynth, m) {
  // Every op's fake kernel and autograd formula are registered from Python by
  // pytexsynth.ops._ext.register (called by the op's own module, pytexsynth/ops/<op>.py);
  // importing that module imports the whole package, so all of them are there.
  m.set_python_module("pytexsynth.ops._ext");

  m.def("_cuda_version() -> int", &pytexsynth::cuda_version);
  m.def("_cuda_archs() -> str", &pytexsynth::cuda_archs);

  // pad = (left, right, top, bottom); x is (C, H, W) or (N, C, H, W).
  m.def("circular_pad2d(Tensor x, int[] pad) -> Tensor");
  m.def("_circular_pad2d_backward(Tensor grad_output, int[] pad) -> Tensor");

  // ---- gram ----
  // x is (B, C, H, W); normalize in {hw, chw, none}; precision in {ieee, tf32, bf16}.
  // gram_loss returns (loss, diff): diff = G - T, (B, C, C) in float32 (float64 for float64 x),
  // the only thing its backward needs besides x.
  m.def("gram(Tensor x, str normalize=\"hw\", str precision=\"ieee\") -> Tensor");
  m.def("_gram_backward(Tensor grad_output, Tensor x, str normalize, str precision) -> Tensor");
  m.def("gram_loss(Tensor x, Tensor target, float weight=1.0, str normalize=\"hw\", str precision=\"ieee\") -> (Tensor, Tensor)");
  m.def("_gram_loss_backward(Tensor grad_loss, Tensor diff, Tensor x, float weight, str normalize, str precision) -> Tensor");
  // All style layers in one call: loss = sum_l weights[l] * mean((gram(xs[l]) - targets[l])^2),
  // and each layer's diff as gram_loss returns it. Every x of one dtype and device.
  m.def("gram_loss_multi(Tensor[] xs, Tensor[] targets, float[] weights, str normalize=\"hw\", str precision=\"ieee\") -> (Tensor, Tensor[])");
  m.def("_gram_loss_multi_backward(Tensor grad_loss, Tensor[] diffs, Tensor[] xs, float[] weights, str normalize, str precision) -> Tensor[]");
  // The CPU forward's tile schedule for (B, C, H*W): [tile, tiles, pairs, chunk, chunks, items].
  m.def("_gram_schedule(int B, int C, int n) -> int[]", &pytexsynth::gram::cpu_schedule_info);

  // ---- histogram matching (Risser et al. 2017) ----
  // x is (C, H, W) or (B, C, H, W); lo, hi (C,) and cdf (C, bins + 1) are the style statistics
  // of pytexsynth.ops.histogram_stats. histogram_loss returns (loss, D = x - R(x)); D is what
  // the backward needs: grad = 2 * weight / x.numel() * D * grad_output.
  m.def("histogram_match(Tensor x, Tensor lo, Tensor hi, Tensor cdf) -> Tensor");
  m.def("histogram_loss(Tensor x, Tensor lo, Tensor hi, Tensor cdf, float weight) -> (Tensor, Tensor)");
  m.def("_histogram_loss_backward(Tensor grad_output, Tensor diff, float weight) -> Tensor");
  // ---- winograd_conv3x3 ----
  // A 3x3, stride-1 convolution by Winograd F(4x4, 3x3): x (N, C, H, W), U (36, C, C') the
  // transformed weights (pytexsynth.ops.winograd_weight), padding 0 or 1 (zeros). Output
  // (N, C', H + 2 padding - 2, W + 2 padding - 2), channels_last. chunk_bytes: scratch memory
  // per chunk of tile rows, 0 = the backend's default (tests set it small for many chunks).
  m.def("winograd_conv3x3(Tensor x, Tensor U, Tensor? bias=None, int padding=1, int chunk_bytes=0) -> Tensor");
  // (grad_x, grad_U), each an empty (0,) tensor where output_mask says it is not needed.
  m.def("_winograd_conv3x3_backward(Tensor grad_output, Tensor x, Tensor U, int padding, int chunk_bytes, "
        "bool[2] output_mask) -> (Tensor, Tensor)");
  // ---- adain (Huang & Belongie 2017) ----
  // content (N, C, H, W) or (C, H, W), style of the same N and C (any H, W): per (n, c) plane,
  // out = alpha * (sigma_s (x - mu_x) / sigma_x + mu_s) + (1 - alpha) x, sigma = sqrt(var + eps)
  // with the biased variance. The backward returns (grad_content, grad_style).
  m.def("adain(Tensor content, Tensor style, float alpha=1.0, float eps=1e-5) -> Tensor");
  m.def("_adain_backward(Tensor grad_output, Tensor content, Tensor style, float alpha, float eps) -> (Tensor, Tensor)");
  // ---- style_swap ----
  // content (B, C, H, W), style (1 or B, C, Hs, Ws) -> (swapped (B, C, H, W), indices
  // (B, nH, nW) int64 of the chosen style patches). precision: ieee | tf32 | bf16;
  // method: auto | patch (unfolded-patch GEMM) | pixel (pixel GEMM + k*k shifted sums);
  // band_bytes: memory for one band of scores, 0 = the backend's default (tests set it small
  // to exercise many bands).
  m.def("style_swap(Tensor content, Tensor style, int patch_size=3, int stride=1, str precision=\"ieee\", "
        "str method=\"auto\", int band_bytes=0) -> (Tensor, Tensor)");
  // The overlap average of the style patches `indices` names (linear in style).
  m.def("_style_swap_decode(Tensor style, Tensor indices, SymInt height, SymInt width, int patch_size, "
        "int stride) -> Tensor");
  // Its adjoint: the gradient of the swapped features with respect to style.
  m.def("_style_swap_backward(Tensor grad_output, Tensor indices, SymInt[] style_size, int patch_size, "
        "int stride) -> Tensor");
}
