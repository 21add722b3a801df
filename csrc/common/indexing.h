// Index arithmetic shared by the CPU and CUDA code of every op: rounding-up division and the
// decoding of a linear position in a dense 4-D tensor into its coordinates. One definition, so
// a kernel and the CPU code that mirrors it cannot drift apart.
#pragma once

#include <c10/macros/Macros.h>

#include <cstdint>

namespace pytexsynth {

// a / b rounded up, for a >= 0 and b > 0.
C10_HOST_DEVICE inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

template <typename index_t>
struct Coord {
  index_t n, c, h, w;
};

// Coordinates of the element at linear position l of a dense (N, C, H, W) tensor stored
// contiguous (NCHW) or channels_last (NHWC): the order in which the kernels walk their output
// so that writes are sequential in memory. index_t is int32 where every offset fits.
template <bool ChannelsLast, typename index_t>
C10_HOST_DEVICE inline Coord<index_t> coord_of(index_t l, index_t C, index_t H, index_t W) {
  Coord<index_t> p;
  if (ChannelsLast) {
    p.c = l % C; l /= C;
    p.w = l % W; l /= W;
    p.h = l % H; p.n = l / H;
  } else {
    p.w = l % W; l /= W;
    p.h = l % H; l /= H;
    p.c = l % C; p.n = l / C;
  }
  return p;
}

}  // namespace pytexsynth
