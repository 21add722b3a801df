// circular_pad2d on the CPU, with at::parallel_for.
//
// Along a padded W row the sources form three runs of consecutive positions (left wrap, interior,
// right wrap), whose starts come from the shared source_index / output_taps, so the inner
// loops are plain strided copies and sums the compiler vectorises. The summation order per
// element is the one backward_value uses on the GPU: the same bits on both devices.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <vector>

#include "common/circular_pad.h"

namespace pytexsynth {
namespace circular_pad {
namespace {

template <typename T>
inline void strided_copy(T* dst, const T* src, int64_t n, int64_t stride) {
  if (stride == 1) {
    std::copy(src, src + n, dst);
  } else {
    for (int64_t i = 0; i < n; ++i) dst[i] = src[i * stride];
  }
}

template <typename acc_t, typename T>
inline void strided_accumulate(acc_t* acc, const T* src, int64_t n, int64_t stride) {
  for (int64_t i = 0; i < n; ++i) acc[i] += static_cast<acc_t>(src[i * stride]);
}

// Inputs whose innermost dimension is strided take the per-element path the CUDA kernel runs
// (the same function from circular_pad_math.h), so the CPU tests exercise the GPU arithmetic.
template <bool Backward, bool ChannelsLast, typename scalar_t>
void elementwise(const scalar_t* src, scalar_t* out, const Geometry<int64_t>& g, int64_t numel) {
  using acc_t = at::opmath_type<scalar_t>;
  at::parallel_for(0, numel, Backward ? 16384 : 32768, [&](int64_t begin, int64_t end) {
    for (int64_t l = begin; l < end; ++l) write_element<Backward, ChannelsLast, acc_t>(src, out, g, l);
  });
}

// Fast paths for a unit innermost stride.
// NCHW: parallel over planes (n, c), rows in order inside; NHWC: parallel over image rows
// (n, h), pixels in order inside. Coordinates are decoded once per plane or image row.
template <typename scalar_t>
void forward(const scalar_t* x, scalar_t* out, const Geometry<int64_t>& g, bool channels_last) {
  if (channels_last) {
    const int64_t row_elems = g.Wo * g.C;
    at::parallel_for(0, g.N * g.Ho, std::max<int64_t>(1, 32768 / row_elems), [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        const auto p = coord_of<true>(r * row_elems, g.C, g.Ho, g.Wo);  // (n, h, 0, 0)
        const scalar_t* src_row = x + p.n * g.sN + source_index(p.h, g.top, g.H) * g.sH;
        scalar_t* dst = out + r * row_elems;
        for (int64_t ow = 0; ow < g.Wo; ++ow, dst += g.C) {
          strided_copy(dst, src_row + source_index(ow, g.left, g.W) * g.sW, g.C, g.sC);
        }
      }
    });
    return;
  }
  const int64_t plane_elems = g.Ho * g.Wo;
  // Runs of the padded W axis: output [o0, o1) reads the input from source_index(o0) on.
  const int64_t bounds[4] = {0, g.left, g.left + g.W, g.Wo};
  at::parallel_for(0, g.N * g.C, std::max<int64_t>(1, 32768 / plane_elems), [&](int64_t begin, int64_t end) {
    for (int64_t plane = begin; plane < end; ++plane) {
      const auto p = coord_of<false>(plane * plane_elems, g.C, g.Ho, g.Wo);  // (n, c, 0, 0)
      const scalar_t* src_plane = x + p.n * g.sN + p.c * g.sC;
      scalar_t* dst = out + plane * plane_elems;
      for (int64_t oh = 0; oh < g.Ho; ++oh, dst += g.Wo) {
        const scalar_t* src_row = src_plane + source_index(oh, g.top, g.H) * g.sH;
        for (int k = 0; k < 3; ++k) {
          const int64_t o0 = bounds[k], len = bounds[k + 1] - bounds[k];
          if (len > 0) strided_copy(dst + o0, src_row + source_index(o0, g.left, g.W) * g.sW, len, g.sW);
        }
      }
    }
  });
}

template <typename scalar_t>
void backward(const scalar_t* grad, scalar_t* out, const Geometry<int64_t>& g, bool channels_last) {
  using acc_t = at::opmath_type<scalar_t>;
  if (channels_last) {
    const int64_t row_elems = g.W * g.C;
    at::parallel_for(0, g.N * g.H, std::max<int64_t>(1, 16384 / row_elems), [&](int64_t begin, int64_t end) {
      std::vector<acc_t> acc(g.C);
      for (int64_t r = begin; r < end; ++r) {
        const auto p = coord_of<true>(r * row_elems, g.C, g.H, g.W);  // (n, h, 0, 0)
        int64_t th[3], tw[3];
        const int nh = output_taps(p.h, g.top, g.H, g.Ho, th);
        scalar_t* dst = out + r * row_elems;
        for (int64_t iw = 0; iw < g.W; ++iw, dst += g.C) {
          const int nw = output_taps(iw, g.left, g.W, g.Wo, tw);
          std::fill(acc.begin(), acc.end(), acc_t(0));
          for (int a = 0; a < nh; ++a)
            for (int b = 0; b < nw; ++b)
              strided_accumulate(acc.data(), grad + p.n * g.sN + th[a] * g.sH + tw[b] * g.sW, g.C, g.sC);
          for (int64_t c = 0; c < g.C; ++c) dst[c] = static_cast<scalar_t>(acc[c]);
        }
      }
    });
    return;
  }
  const int64_t plane_elems = g.H * g.W;
  // Along W, output_taps gives each column its own position, plus the copy one period
  // earlier for columns >= W - left and the one a period later for columns < right.
  const int64_t right = g.Wo - g.W - g.left;
  const int64_t i0 = g.W - g.left;
  at::parallel_for(0, g.N * g.C, std::max<int64_t>(1, 16384 / plane_elems), [&](int64_t begin, int64_t end) {
    std::vector<acc_t> acc(g.W);
    for (int64_t plane = begin; plane < end; ++plane) {
      const auto p = coord_of<false>(plane * plane_elems, g.C, g.H, g.W);  // (n, c, 0, 0)
      const scalar_t* grad_plane = grad + p.n * g.sN + p.c * g.sC;
      scalar_t* dst = out + plane * plane_elems;
      for (int64_t ih = 0; ih < g.H; ++ih, dst += g.W) {
        int64_t th[3];
        const int nh = output_taps(ih, g.top, g.H, g.Ho, th);
        std::fill(acc.begin(), acc.end(), acc_t(0));
        for (int a = 0; a < nh; ++a) {
          const scalar_t* row = grad_plane + th[a] * g.sH;
          // In ascending output position per element, as backward_value sums them.
          if (g.left > 0) strided_accumulate(acc.data() + i0, row, g.left, g.sW);
          strided_accumulate(acc.data(), row + g.left * g.sW, g.W, g.sW);
          if (right > 0) strided_accumulate(acc.data(), row + (g.left + g.W) * g.sW, right, g.sW);
        }
        for (int64_t iw = 0; iw < g.W; ++iw) dst[iw] = static_cast<scalar_t>(acc[iw]);
      }
    }
  });
}

struct CpuBackend {
  template <bool Backward>
  static void run(const at::Tensor& src, at::Tensor& out, const std::array<int64_t, 4>& pads) {
    const auto g = make_geometry<int64_t>(src, pads, /*src_is_padded=*/Backward);
    const bool cl = output_memory_format(src) == at::MemoryFormat::ChannelsLast;
    const bool unit_inner = (cl ? g.sC : g.sW) == 1;
    const int64_t numel = out.numel();
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, src.scalar_type(),
                                    Backward ? "circular_pad2d_backward_cpu" : "circular_pad2d_cpu", [&] {
      const scalar_t* s = src.const_data_ptr<scalar_t>();
      scalar_t* d = out.mutable_data_ptr<scalar_t>();
      if (!unit_inner) {
        cl ? elementwise<Backward, true>(s, d, g, numel) : elementwise<Backward, false>(s, d, g, numel);
      } else if (Backward) {
        backward(s, d, g, cl);
      } else {
        forward(s, d, g, cl);
      }
    });
  }
};

}  // namespace

TORCH_LIBRARY_IMPL(pytexsynth, CPU, m) { register_kernels<CpuBackend>(m); }

}  // namespace circular_pad
}  // namespace pytexsynth
