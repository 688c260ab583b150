// Bilinear 2x upsampling of bf16 channels-last maps (PyTorch's F.interpolate(scale 2, "bilinear",
// align_corners=False)) and its gradient, for bf16 CPU training. Output row 2i blends input rows i-1
// and i with weights 0.25 / 0.75, row 2i+1 rows i and i+1 with 0.75 / 0.25, indices clamped at the
// edges (so the first and last output rows copy the input's); columns alike. PyTorch's channels-last
// backward of it took 7.6% of the accuracy network's bf16 training step. Both kernels work in fp32
// and round to bf16 once. Called from roadseg/accel/resize.py.
#include <vector>

#include "common.h"

// The two input indices and weights of output index o (of 2 * n) along one axis.
struct Taps { int64_t i0, i1; float a0, a1; };

static inline Taps taps(int64_t o, int64_t n) {
  const int64_t i = o / 2;
  if (o % 2 == 0) return {std::max<int64_t>(i - 1, 0), i, 0.25f, 0.75f};
  return {i, std::min(i + 1, n - 1), 0.75f, 0.25f};
}

// The weight input index i gets from output index o (0 if none): the sum over o's taps that are i.
static inline float weight_of(int64_t o, int64_t i, int64_t n) {
  const Taps t = taps(o, n);
  return (t.i0 == i ? t.a0 : 0.0f) + (t.i1 == i ? t.a1 : 0.0f);
}

// dst[k] (fp32, len values) = sum of w[r] * src[r][k] over the m bf16 rows src[r].
static inline void blend_bf16(float *dst, const uint16_t *const *src, const float *w, int m, int64_t len) {
  for (int64_t k = 0; k < len; k += 16) {
    const int64_t n = std::min<int64_t>(16, len - k);
    v16 acc = v16{};
    for (int r = 0; r < m; ++r) acc += w[r] * load_bf16(src[r] + k, n, 0.0f, false);
    if (n == 16) store(dst + k, acc);
    else for (int64_t j = 0; j < n; ++j) dst[k + j] = acc[j];
  }
}

// Along one row of `w` pixels of c channels in fp32 (`row`), writes the `w_out` output pixels as bf16:
// out pixel o = sum over its source pixels i of weight(o, i) * row[i]. `up`: w_out = 2w (forward),
// else w_out = w / 2 (the gradient, summing the output pixels that drew on each input pixel).
static void columns(const float *row, int64_t w, int64_t c, bool up, uint16_t *out) {
  const int64_t w_out = up ? 2 * w : w / 2;
  for (int64_t o = 0; o < w_out; ++o) {
    int64_t src[4];
    float wt[4];
    int m = 0;
    if (up) {
      const Taps t = taps(o, w);
      src[0] = t.i0, src[1] = t.i1, wt[0] = t.a0, wt[1] = t.a1, m = 2;
    } else {
      for (int64_t g = std::max<int64_t>(2 * o - 1, 0); g <= std::min(2 * o + 2, w - 1); ++g) {
        const float a = weight_of(g, o, w_out);
        if (a != 0.0f) src[m] = g, wt[m++] = a;
      }
    }
    for (int64_t k = 0; k < c; k += 16) {
      const int64_t n = std::min<int64_t>(16, c - k);
      v16 acc = v16{};
      for (int r = 0; r < m; ++r) {
        v16 v;
        if (n == 16) v = load(row + src[r] * c + k);
        else { v = v16{}; for (int64_t j = 0; j < n; ++j) v[j] = row[src[r] * c + k + j]; }
        acc += wt[r] * v;
      }
      store_bf16(out + o * c + k, acc, n);
    }
  }
}

// y (n, 2h, 2w, c) = the bilinear 2x upsampling of x (n, h, w, c); both bf16, channels last.
extern "C" void upsample2x_bf16(const uint16_t *x, int64_t n, int64_t h, int64_t w, int64_t c, uint16_t *y,
                                int threads) {
  parallel(n * 2 * h, threads, [&](int64_t r0, int64_t r1) {
    std::vector<float> row(w * c);
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t b = r / (2 * h), o = r % (2 * h);
      const Taps t = taps(o, h);
      const uint16_t *src[2] = {x + (b * h + t.i0) * w * c, x + (b * h + t.i1) * w * c};
      const float wt[2] = {t.a0, t.a1};
      blend_bf16(row.data(), src, wt, 2, w * c);
      columns(row.data(), w, c, true, y + r * 2 * w * c);
    }
  });
}

// gx (n, h, w, c) = the gradient of upsample2x_bf16 for the output gradient gy (n, 2h, 2w, c).
extern "C" void upsample2x_backward_bf16(const uint16_t *gy, int64_t n, int64_t h, int64_t w, int64_t c,
                                         uint16_t *gx, int threads) {
  parallel(n * h, threads, [&](int64_t r0, int64_t r1) {
    std::vector<float> row(2 * w * c);
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t b = r / h, i = r % h;
      const uint16_t *src[4];
      float wt[4];
      int m = 0;
      for (int64_t o = std::max<int64_t>(2 * i - 1, 0); o <= std::min(2 * i + 2, 2 * h - 1); ++o) {
        const float a = weight_of(o, i, h);
        if (a != 0.0f) src[m] = gy + (b * 2 * h + o) * 2 * w * c, wt[m++] = a;
      }
      blend_bf16(row.data(), src, wt, m, 2 * w * c);
      columns(row.data(), 2 * w, c, false, gx + r * w * c);
    }
  });
}
