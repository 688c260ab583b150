// Batch normalisation of bf16 channels-last maps, for bf16 CPU training (training mode only): PyTorch's
// channels-last bf16 kernels are slow for narrow maps (its backward took 94 ms for 8x8x288x384, 11 ms
// in NCHW), and the accuracy network's full-resolution branch is 8 channels wide. A channels-last map is
// a flat array whose element k belongs to channel k % C; both kernels walk it 16 values at a time with
// per-lane coefficients that repeat every P = C / gcd(C, 16) vectors. Sums are kept in fp32 over blocks
// and added up in fp64. Called from roadseg/accel/norm.py.
#include <numeric>
#include <vector>

#include "common.h"

constexpr int64_t MAX_PERIOD = 64;  // vectors in a period: C / gcd(C, 16) (C up to 1024 when C % 16 == 0)

static inline int64_t period(int64_t c) { return c / std::gcd<int64_t>(c, 16); }

// Per-lane copies of a per-channel array: coef[v][j] = values[(16 v + j) % c] for v in [0, P).
static void lanes(const float *values, int64_t c, v16 *coef) {
  for (int64_t v = 0; v < period(c); ++v)
    for (int64_t j = 0; j < 16; ++j) coef[v][j] = values[(16 * v + j) % c];
}

// sums[ch] = sum of (p - kp[ch]) and sums[c + ch] = sum of (p - kp[ch]) * (q - kq[ch]) over the
// elements of channel ch of the flat bf16 arrays p and q (q may be p), n elements in all (a multiple
// of c). Returns 0, or 1 if c is out of range.
extern "C" int rows_sums_bf16(const uint16_t *p, const uint16_t *q, int64_t n, int64_t c, const float *kp,
                              const float *kq, double *sums, int threads) {
  const int64_t per = c < 1 ? MAX_PERIOD + 1 : period(c);
  if (per > MAX_PERIOD) return 1;
  const int64_t span = 16 * per, spans = (n + span - 1) / span;
  threads = std::max(1, threads);
  std::vector<double> part(2 * c * threads, 0.0);
  v16 ap[MAX_PERIOD], aq[MAX_PERIOD];
  lanes(kp, c, ap);
  lanes(kq, c, aq);
  const int64_t chunk = (spans + threads - 1) / threads;
  parallel(threads, threads, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      double *s1 = part.data() + 2 * c * t, *s2 = s1 + c;
      const int64_t end = std::min(spans, (t + 1) * chunk);
      for (int64_t b = t * chunk; b < end; b += 256) {  // fp32 over at most 256 spans, then fp64
        v16 acc1[MAX_PERIOD] = {}, acc2[MAX_PERIOD] = {};
        for (int64_t s = b; s < std::min(end, b + 256); ++s)
          for (int64_t v = 0; v < per; ++v) {
            const int64_t k = s * span + 16 * v;
            if (k >= n) break;
            const int64_t m = std::min<int64_t>(16, n - k);
            v16 dp = load_bf16(p + k, m, 0.0f, false) - ap[v];
            const v16 dq = load_bf16(q + k, m, 0.0f, false) - aq[v];
            if (m < 16) dp = LANE < float(m) ? dp : v16{};  // the lanes past the end
            acc1[v] += dp;
            acc2[v] += dp * dq;
          }
        for (int64_t v = 0; v < per; ++v)
          for (int64_t j = 0; j < 16; ++j) {
            s1[(16 * v + j) % c] += acc1[v][j];
            s2[(16 * v + j) % c] += acc2[v][j];
          }
      }
    }
  });
  for (int64_t k = 0; k < 2 * c; ++k) {
    double total = 0;
    for (int t = 0; t < threads; ++t) total += part[2 * c * t + k];
    sums[k] = total;
  }
  return 0;
}

// out = a[ch] * p + b[ch] * q + d[ch] per element (channel ch = k % c), rounded once to bf16.
extern "C" int rows_affine_bf16(const uint16_t *p, const uint16_t *q, int64_t n, int64_t c, const float *a,
                                const float *b, const float *d, uint16_t *out, int threads) {
  const int64_t per = c < 1 ? MAX_PERIOD + 1 : period(c);
  if (per > MAX_PERIOD) return 1;
  const int64_t span = 16 * per, spans = (n + span - 1) / span;
  v16 ca[MAX_PERIOD], cb[MAX_PERIOD], cd[MAX_PERIOD];
  lanes(a, c, ca);
  lanes(b, c, cb);
  lanes(d, c, cd);
  parallel(spans, threads, [&](int64_t s0, int64_t s1) {
    for (int64_t s = s0; s < s1; ++s)
      for (int64_t v = 0; v < per; ++v) {
        const int64_t k = s * span + 16 * v;
        if (k >= n) break;
        const int64_t m = std::min<int64_t>(16, n - k);
        const v16 y = ca[v] * load_bf16(p + k, m, 0.0f, false) + cb[v] * load_bf16(q + k, m, 0.0f, false) + cd[v];
        store_bf16(out + k, y, m);
      }
  });
  return 0;
}
