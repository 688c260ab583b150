// roadseg's fused softmax cross-entropy for bf16 logits on the CPU: one pass over the (pixels, classes)
// rows computes the weighted mean loss of PyTorch's F.cross_entropy (fp32 log-softmax, class weights,
// ignore_index) and writes its gradient with respect to the logits, already in bf16. PyTorch spends
// a cast to fp32, the log-softmax, a zero-filled gradient, its backward and a cast back on the same
// (measured at about 3% of a bf16 U-Net training step at 96x128); this reads the logits once and
// writes the gradient once. Called from roadseg/accel/loss.py.
//
// Layout: logits are rows of `classes` bf16 values (channels-last NCHW logits are NHWC rows), one
// int64 target per row; the gradient has the logits' layout.
#include <cmath>
#include <vector>

#include "common.h"

typedef int32_t i16v __attribute__((vector_size(64)));

static inline float from_bf16(uint16_t b) {
  const uint32_t u = uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

static inline uint16_t to_bf16(float f) {  // round to nearest even, as PyTorch's casts do
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fc0;  // NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

// exp(x) for x <= 0 (Cephes' expf: x = n ln2 + r, |r| <= ln2 / 2, a degree-5 polynomial; within 2 ulp
// of expf down to -87, where it stops: smaller values are left at about 1e-38, not 0).
static inline v16 exp_nonpositive(v16 x) {
  x = x < -87.0f ? v16{} - 87.0f : x;
  const v16 t = x * 1.44269504088896341f + 12582912.0f;  // adding 1.5 * 2^23 rounds to an integer
  const v16 n = t - 12582912.0f;
  v16 r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  v16 p = v16{} + 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const v16 y = p * r * r + r + 1.0f;
  const i16v bits = (__builtin_convertvector(n, i16v) + 127) << 23;  // 2^n
  v16 scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return y * scale;
}

static inline float hmax(v16 v) {
  float m = v[0];
  for (int i = 1; i < 16; ++i) m = std::max(m, v[i]);
  return m;
}

static inline float hsum(v16 v) {
  float s = 0;
  for (int i = 0; i < 16; ++i) s += v[i];
  return s;
}

constexpr int64_t MAX_CLASSES = 256;

// Returns -1, or the first row whose target is neither ignore_index nor a class (nothing is then
// written). sums[0] = sum of weight * loss, sums[1] = sum of weights (the mean is their ratio). grad
// (may be null) gets weight / sums[1] * (softmax - onehot) per row, zeros for ignored rows.
extern "C" int64_t softmax_cross_entropy_bf16(const uint16_t *x, const int64_t *target, const float *weight,
                                              int64_t rows, int64_t classes, int64_t ignore, uint16_t *grad,
                                              double *sums, int threads) {
  if (classes < 1 || classes > MAX_CLASSES) return 0;
  threads = std::max(threads, 1);
  std::vector<double> part(2 * threads, 0.0);
  std::vector<int64_t> bad(threads, -1);
  const int64_t chunk = (rows + threads - 1) / threads;
  parallel(threads, threads, [&](int64_t p0, int64_t p1) {  // targets first: the gradient needs sum(w)
    for (int64_t p = p0; p < p1; ++p) {
      double w = 0;
      for (int64_t i = p * chunk; i < std::min(rows, (p + 1) * chunk); ++i) {
        const int64_t t = target[i];
        if (t == ignore) continue;
        if (t < 0 || t >= classes) { bad[p] = i; break; }
        w += weight ? weight[t] : 1.0f;
      }
      part[2 * p + 1] = w;
    }
  });
  double total_w = 0;
  for (int p = 0; p < threads; ++p) {
    if (bad[p] >= 0) return bad[p];
    total_w += part[2 * p + 1];
  }
  sums[1] = total_w;
  const int64_t vecs = (classes + 15) / 16;
  const float inv_w = total_w > 0 ? float(1.0 / total_w) : 0.0f;
  parallel(threads, threads, [&](int64_t p0, int64_t p1) {
    alignas(64) float buf[MAX_CLASSES];
    for (int64_t p = p0; p < p1; ++p) {
      double loss = 0;
      for (int64_t i = p * chunk; i < std::min(rows, (p + 1) * chunk); ++i) {
        const int64_t t = target[i];
        const uint16_t *row = x + i * classes;
        if (t == ignore) {
          if (grad) std::memset(grad + i * classes, 0, classes * sizeof(uint16_t));
          continue;
        }
        for (int64_t j = 0; j < classes; ++j) buf[j] = from_bf16(row[j]);
        for (int64_t j = classes; j < vecs * 16; ++j) buf[j] = -INFINITY;
        v16 m = load(buf);
        for (int64_t v = 1; v < vecs; ++v) {
          const v16 b = load(buf + 16 * v);
          m = m > b ? m : b;
        }
        const float mx = hmax(m);
        v16 s = v16{};
        for (int64_t v = 0; v < vecs; ++v) {
          const v16 b = load(buf + 16 * v);
          const v16 e = exp_nonpositive(b - mx);
          const v16 kept = b == -INFINITY ? v16{} : e;  // the padding past the last class
          store(buf + 16 * v, kept);
          s += kept;
        }
        const float sum = hsum(s);
        const float w = weight ? weight[t] : 1.0f;
        loss += double(w) * (double(mx) + std::log(double(sum)) - double(from_bf16(row[t])));
        if (grad) {
          const float scale = w * inv_w, prob_scale = scale / sum;
          uint16_t *g = grad + i * classes;
          for (int64_t j = 0; j < classes; ++j) g[j] = to_bf16(buf[j] * prob_scale - (j == t ? scale : 0.0f));
        }
      }
      part[2 * p] = loss;
    }
  });
  double total = 0;
  for (int p = 0; p < threads; ++p) total += part[2 * p];
  sums[0] = total;
  return -1;
}
