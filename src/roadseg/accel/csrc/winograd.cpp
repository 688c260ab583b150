// roadseg's CPU inference kernels: the transforms of Winograd F(4x4,3x3) convolution on
// channels-last (NHWC) fp32 tensors, and a channel concatenation. The batched matrix products in
// between run in oneDNN (a 36-group 1x1 convolution), called from Python.
//
// Built on first use by roadseg/kernels.py with the system compiler (-O3 -march=native -fopenmp)
// and loaded with ctypes. OpenMP resolves to the libgomp that PyTorch has already loaded, so these
// loops run on PyTorch's own worker threads instead of competing with them.
//
// Layouts: tiles are the 4x4 output blocks, T = n * ceil(h/4) * ceil(w/4), in (image, row, column)
// order. V (transformed input) is [T][36][C]; M (products) is [T][36][K]; channels are processed
// 16 at a time, so every source's channel count and K must be multiples of 16.
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "common.h"

// Runs f(t, image, tile row, tile column) for every 4x4 output tile t of an n x h x w map.
template <typename F>
static void for_each_tile(int64_t n, int64_t h, int64_t w, int threads, F f) {
  const int64_t th = (h + 3) / 4, tw = (w + 3) / 4;
  parallel(n * th * tw, threads, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t r = t % (th * tw);
      f(t, t / (th * tw), r / tw, r % tw);
    }
  });
}

// Input transform B^T d B, one 6-vector at a time (Lavin & Gray, interpolation points 0, +-1, +-2).
static inline void bt6(const v16 *d, v16 *o) {
  o[0] = 4.f * d[0] - 5.f * d[2] + d[4];
  o[1] = -4.f * (d[1] + d[2]) + d[3] + d[4];
  o[2] = 4.f * (d[1] - d[2]) - d[3] + d[4];
  o[3] = 2.f * (d[3] - d[1]) - d[2] + d[4];
  o[4] = 2.f * (d[1] - d[3]) - d[2] + d[4];
  o[5] = 4.f * d[1] - 5.f * d[3] + d[5];
}

// Output transform A^T m A, one 6-vector at a time.
static inline void at6(const v16 *m, v16 *o) {
  const v16 a = m[1] + m[2], s = m[1] - m[2], a2 = m[3] + m[4], s2 = m[3] - m[4];
  o[0] = m[0] + a + a2;
  o[1] = s + 2.f * s2;
  o[2] = a + 4.f * a2;
  o[3] = s + 8.f * s2 + m[5];
}

// A g: the transpose of the output transform, four values to six.
static inline void a4(const v16 *g, v16 *o) {
  const v16 e = g[0] + g[2], f = g[1] + g[3], e4 = g[0] + 4.f * g[2], f2 = 2.f * g[1] + 8.f * g[3];
  o[0] = g[0];
  o[1] = e + f;
  o[2] = e - f;
  o[3] = e4 + f2;
  o[4] = e4 - f2;
  o[5] = g[3];
}

// One source of input channels: a channels-last tensor (channel stride 1) given by its pointer and
// element strides; or, when `phased`, a 2x upsampled map held as its four stride-2 phases (pixel
// (y, x) is in phase (y % 2) * 2 + x % 2 at (y / 2, x / 2)), as the transposed convolutions write it.
struct Source {
  const float *p[4];
  int64_t sn[4], sh[4], sw[4];
  int64_t c;
  int64_t phased;
};

static inline const float *pixel(const Source &s, int64_t b, int64_t y, int64_t x) {
  if (!s.phased) return s.p[0] + b * s.sn[0] + y * s.sh[0] + x * s.sw[0];
  const int k = int((y & 1) * 2 + (x & 1));
  return s.p[k] + b * s.sn[k] + (y >> 1) * s.sh[k] + (x >> 1) * s.sw[k];
}

static int64_t total_channels(const Source *srcs, int nsrc) {
  int64_t c = 0;
  for (int i = 0; i < nsrc; ++i) c += srcs[i].c;
  return c;
}

// V = B^T d B for every 6x6 input tile (zero padding of 1), the sources concatenated along channels.
extern "C" void winograd_input(const Source *srcs, int nsrc, int64_t n, int64_t h, int64_t w, float *v,
                               int threads) {
  const int64_t c = total_channels(srcs, nsrc);
  const v16 zero = {};
  for_each_tile(n, h, w, threads, [&](int64_t t, int64_t b, int64_t ti, int64_t tj) {
    float *vt = v + t * 36 * c;
    int64_t cb = 0;
    for (int si = 0; si < nsrc; ++si) {
      const Source &s = srcs[si];
      const float *at[6][6];
      for (int i = 0; i < 6; ++i)
        for (int j = 0; j < 6; ++j) {
          const int64_t y = 4 * ti - 1 + i, x = 4 * tj - 1 + j;
          at[i][j] = (y < 0 || y >= h || x < 0 || x >= w) ? nullptr : pixel(s, b, y, x);
        }
      for (int64_t co = 0; co < s.c; co += 16, cb += 16) {
        v16 cols[6][6];  // B^T applied down each column, stored [row][column]
        for (int j = 0; j < 6; ++j) {
          v16 d[6], o[6];
          for (int i = 0; i < 6; ++i) d[i] = at[i][j] ? load(at[i][j] + co) : zero;
          bt6(d, o);
          for (int i = 0; i < 6; ++i) cols[i][j] = o[i];
        }
        for (int i = 0; i < 6; ++i) {
          v16 o[6];
          bt6(cols[i], o);
          float *dst = vt + i * 6 * c + cb;
          for (int j = 0; j < 6; ++j) store(dst + j * c, o[j]);
        }
      }
    }
  });
}

// y = A^T m A (+ bias, then ReLU if asked) for every tile, written to a channels-last y of K channels.
extern "C" void winograd_output(const float *m, const float *bias, int64_t k, int relu, int64_t n, int64_t h,
                                int64_t w, float *y, int threads) {
  const v16 zero = {};
  for_each_tile(n, h, w, threads, [&](int64_t t, int64_t b, int64_t ti, int64_t tj) {
    const float *mt = m + t * 36 * k;
    for (int64_t kb = 0; kb < k; kb += 16) {
      v16 rows[4][6];  // A^T applied down each column, stored [row][column]
      for (int j = 0; j < 6; ++j) {
        v16 col[6], o[4];
        for (int i = 0; i < 6; ++i) col[i] = load(mt + (i * 6 + j) * k + kb);
        at6(col, o);
        for (int i = 0; i < 4; ++i) rows[i][j] = o[i];
      }
      const v16 bb = bias ? load(bias + kb) : zero;
      for (int i = 0; i < 4 && 4 * ti + i < h; ++i) {
        v16 o[4];
        at6(rows[i], o);
        for (int j = 0; j < 4 && 4 * tj + j < w; ++j) {
          v16 q = o[j] + bb;
          if (relu) q = q > zero ? q : zero;
          store(y + ((b * h + 4 * ti + i) * w + 4 * tj + j) * k + kb, q);
        }
      }
    }
  });
}

// Adjoint of the output transform, for the weight gradient: gM = A gY A^T for every tile's 4x4 block
// of the output gradient gy (channels-last, K channels; zero beyond the image), written as [T][36][K].
extern "C" void winograd_output_grad(const float *gy, int64_t k, int64_t n, int64_t h, int64_t w, float *gm,
                                     int threads) {
  const v16 zero = {};
  for_each_tile(n, h, w, threads, [&](int64_t t, int64_t b, int64_t ti, int64_t tj) {
    float *mt = gm + t * 36 * k;
    for (int64_t kb = 0; kb < k; kb += 16) {
      v16 cols[6][4];  // A applied down each of the 4 columns
      for (int j = 0; j < 4; ++j) {
        v16 g[4], o[6];
        for (int i = 0; i < 4; ++i) {
          const int64_t y = 4 * ti + i, x = 4 * tj + j;
          g[i] = (y < h && x < w) ? load(gy + ((b * h + y) * w + x) * k + kb) : zero;
        }
        a4(g, o);
        for (int i = 0; i < 6; ++i) cols[i][j] = o[i];
      }
      for (int i = 0; i < 6; ++i) {
        v16 o[6];
        a4(cols[i], o);
        for (int j = 0; j < 6; ++j) store(mt + (i * 6 + j) * k + kb, o[j]);
      }
    }
  });
}

// The sources concatenated along channels into a contiguous channels-last tensor (any channel counts).
extern "C" void concat_channels(const Source *srcs, int nsrc, int64_t n, int64_t h, int64_t w, float *y,
                                int threads) {
  const int64_t c = total_channels(srcs, nsrc);
  parallel(n * h, threads, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t b = r / h, yy = r % h;
      float *dst = y + r * w * c;
      for (int64_t xx = 0; xx < w; ++xx)
        for (int si = 0; si < nsrc; ++si) {
          std::memcpy(dst, pixel(srcs[si], b, yy, xx), srcs[si].c * sizeof(float));
          dst += srcs[si].c;
        }
    }
  });
}
