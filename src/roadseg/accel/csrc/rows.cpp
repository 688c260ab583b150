// roadseg's kernels over the class rows of bf16 logits on the CPU (channels-last NCHW logits are rows
// of `classes` values, one per pixel): the fused softmax cross-entropy and the argmax.
//
// softmax_cross_entropy_bf16: one pass computes the weighted mean loss of PyTorch's F.cross_entropy
// (fp32 log-softmax, class weights, ignore_index) and writes its gradient with respect to the logits,
// already in bf16. PyTorch spends a cast to fp32, the log-softmax, a zero-filled gradient, its
// backward and a cast back on the same (about 3% of a bf16 U-Net training step at 96x128).
// argmax_bf16: the class of each row (PyTorch's argmax over the strided class dimension: 1% of it).
// dice_sums_bf16 / dice_grad_bf16: the per-class sums of the soft Dice loss over softmax rows, then
// its gradient with respect to the logits from them (PyTorch's one-hot, masks, products and their
// backward over fp32 copies of the logits took a quarter of a bf16 resunet step at 288x384).
// Called from roadseg/accel/rows.py.
#include <cmath>
#include <vector>

#include "common.h"

typedef float v8 __attribute__((vector_size(32)));
typedef float v4 __attribute__((vector_size(16)));

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
  v8 a, b;
  std::memcpy(&a, &v, 32);
  std::memcpy(&b, reinterpret_cast<const char *>(&v) + 32, 32);
  a = a > b ? a : b;
  v4 c, d;
  std::memcpy(&c, &a, 16);
  std::memcpy(&d, reinterpret_cast<const char *>(&a) + 16, 16);
  c = c > d ? c : d;
  return std::max(std::max(c[0], c[1]), std::max(c[2], c[3]));
}

static inline float hsum(v16 v) {
  v8 a, b;
  std::memcpy(&a, &v, 32);
  std::memcpy(&b, reinterpret_cast<const char *>(&v) + 32, 32);
  a += b;
  v4 c, d;
  std::memcpy(&c, &a, 16);
  std::memcpy(&d, reinterpret_cast<const char *>(&a) + 16, 16);
  c += d;
  return (c[0] + c[2]) + (c[1] + c[3]);
}

constexpr int64_t MAX_CLASSES = 256, MAX_VECS = MAX_CLASSES / 16;

// Loads a row of `classes` bf16 logits into vecs vectors (padding -inf) and returns their maximum.
// `wide`: the memory past the row may be read (it is not the last one).
static inline float load_row(const uint16_t *row, int64_t classes, int64_t vecs, v16 *val, bool wide) {
  v16 m = v16{} - INFINITY;
  for (int64_t v = 0; v < vecs; ++v) {
    val[v] = load_bf16(row + 16 * v, std::min<int64_t>(16, classes - 16 * v), -INFINITY, wide);
    m = m > val[v] ? m : val[v];
  }
  return hmax(m);
}

// exp(x - mx) in place over a row that load_row put in val (mx: its maximum), the padding lanes past
// the last class 0; returns their sum.
static inline float exp_row(v16 *val, int64_t vecs, float mx) {
  v16 s = v16{};
  for (int64_t v = 0; v < vecs; ++v) {
    const v16 e = exp_nonpositive(val[v] - mx);
    val[v] = val[v] == -INFINITY ? v16{} : e;
    s += val[v];
  }
  return hsum(s);
}

// Rows of at most BLOCK_CLASSES classes also go 16 at a time, transposed: col[c] holds class c of 16 rows
// (lane r = row r), so the maximum, exponentials and sums over a row are vertical vector operations, not
// horizontal ones: 2.5-3x faster for 11 classes (benchmarks/RESULTS.md, eleventh session).
constexpr int64_t BLOCK_CLASSES = 32;

// log(x) for finite x > 0 (Cephes' logf: x = m 2^e, m in [sqrt(1/2), sqrt(2)), a degree-8 polynomial).
static inline v16 log_positive(v16 x) {
  i16v bits;
  std::memcpy(&bits, &x, sizeof bits);
  i16v e = ((bits >> 23) & 0xff) - 126;  // x = m 2^e, m in [0.5, 1)
  bits = (bits & 0x807fffff) | 0x3f000000;
  v16 m;
  std::memcpy(&m, &bits, sizeof m);
  const i16v small = m < 0.707106781186547524f;  // -1 where m < sqrt(1/2): then m = 2m, e = e - 1
  e += small;
  m = m + (small ? m : v16{}) - 1.0f;
  const v16 z = m * m;
  v16 y = v16{} + 7.0376836292e-2f;
  y = y * m - 1.1514610310e-1f;
  y = y * m + 1.1676998740e-1f;
  y = y * m - 1.2420140846e-1f;
  y = y * m + 1.4249322787e-1f;
  y = y * m - 1.6668057665e-1f;
  y = y * m + 2.0000714765e-1f;
  y = y * m - 2.4999993993e-1f;
  y = y * m + 3.3333331174e-1f;
  const v16 ef = __builtin_convertvector(e, v16);
  y = y * m * z + ef * -2.12194440e-4f - 0.5f * z;
  return m + y + ef * 0.693359375f;
}

// 16 rows of `classes` (<= BLOCK_CLASSES) bf16 values at x into col[c], transposed.
static inline void load_block(const uint16_t *x, int64_t classes, v16 *col) {
  float flat[16 * BLOCK_CLASSES];
  for (int64_t k = 0; k < 16 * classes; k += 16) store(flat + k, load_bf16(x + k, 16, 0.0f, true));
  for (int64_t c = 0; c < classes; ++c)
    for (int64_t r = 0; r < 16; ++r) col[c][r] = flat[r * classes + c];
}

// col (16 rows, transposed) to x as bf16 rows.
static inline void store_block(uint16_t *x, int64_t classes, const v16 *col) {
  float flat[16 * BLOCK_CLASSES];
  for (int64_t c = 0; c < classes; ++c)
    for (int64_t r = 0; r < 16; ++r) flat[r * classes + c] = col[c][r];
  for (int64_t k = 0; k < 16 * classes; k += 16) store_bf16(x + k, load(flat + k), 16);
}

// In place, col[c] = exp(col[c] - the row maximum); returns the rows' sums of them. `mx` (if not null)
// gets the maxima.
static inline v16 exp_block(v16 *col, int64_t classes, v16 *mx = nullptr) {
  v16 m = col[0];
  for (int64_t c = 1; c < classes; ++c) m = m > col[c] ? m : col[c];
  v16 sum = v16{};
  for (int64_t c = 0; c < classes; ++c) {
    col[c] = exp_nonpositive(col[c] - m);
    sum += col[c];
  }
  if (mx) *mx = m;
  return sum;
}

// In place, the softmax of 16 transposed rows.
static inline void softmax_block(v16 *col, int64_t classes) {
  const v16 inv = 1.0f / exp_block(col, classes);
  for (int64_t c = 0; c < classes; ++c) col[c] *= inv;
}

// table[t] in each lane where `valid` (1 for every class when table is null), 0 elsewhere.
static inline v16 gather_lanes(const float *table, i16v t, i16v valid) {
  v16 out = v16{};
  for (int64_t r = 0; r < 16; ++r) out[r] = valid[r] ? (table ? table[t[r]] : 1.0f) : 0.0f;
  return out;
}

// The targets of 16 rows as lanes (-1 for one that is not a class), and the lanes not `ignore`.
static inline void load_targets(const int64_t *target, int64_t classes, int64_t ignore, i16v &t, i16v &valid) {
  for (int64_t r = 0; r < 16; ++r) {
    t[r] = target[r] >= 0 && target[r] < classes ? int32_t(target[r]) : -1;
    valid[r] = target[r] == ignore ? 0 : -1;
  }
}

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
    v16 val[MAX_VECS];
    for (int64_t p = p0; p < p1; ++p) {
      double loss = 0;
      const int64_t end = std::min(rows, (p + 1) * chunk);
      int64_t i = p * chunk;
      for (; classes <= BLOCK_CLASSES && i + 16 <= end; i += 16) {  // 16 rows at a time, transposed
        v16 col[BLOCK_CLASSES], mx, xt = v16{};
        i16v t, valid;
        load_targets(target + i, classes, ignore, t, valid);
        load_block(x + i * classes, classes, col);
        for (int64_t c = 0; c < classes; ++c) xt = t == int32_t(c) ? col[c] : xt;
        const v16 sum = exp_block(col, classes, &mx), w = gather_lanes(weight, t, valid);
        const v16 rows_loss = w * ((mx - xt) + log_positive(sum));
        for (int64_t r = 0; r < 16; ++r) loss += valid[r] ? double(rows_loss[r]) : 0.0;
        if (grad) {
          const v16 scale = w * inv_w, prob_scale = scale / sum;
          for (int64_t c = 0; c < classes; ++c) col[c] = col[c] * prob_scale - (t == int32_t(c) ? scale : v16{});
          store_block(grad + i * classes, classes, col);
        }
      }
      for (; i < end; ++i) {
        const int64_t t = target[i];
        const uint16_t *row = x + i * classes;
        if (t == ignore) {
          if (grad) std::memset(grad + i * classes, 0, classes * sizeof(uint16_t));
          continue;
        }
        const float mx = load_row(row, classes, vecs, val, (rows - i) * classes >= 16 * vecs);
        const float xt = val[t / 16][t % 16];
        const float sum = exp_row(val, vecs, mx);
        const float w = weight ? weight[t] : 1.0f;
        loss += double(w) * (double(mx) + std::log(double(sum)) - double(xt));
        if (grad) {
          const float scale = w * inv_w, prob_scale = scale / sum;
          for (int64_t v = 0; v < vecs; ++v) {
            v16 g = val[v] * prob_scale;
            if (t / 16 == v) g[t % 16] -= scale;
            store_bf16(grad + i * classes + 16 * v, g, std::min<int64_t>(16, classes - 16 * v));
          }
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

// The softmax of a row of bf16 logits into val (the padding lanes past the last class 0).
static inline void softmax_row(const uint16_t *row, int64_t classes, int64_t vecs, v16 *val, bool wide) {
  const float inv = 1.0f / exp_row(val, vecs, load_row(row, classes, vecs, val, wide));
  for (int64_t v = 0; v < vecs; ++v) val[v] *= inv;
}

// Over the rows whose target is not `ignore`: sums[c] = sum of p[c] where the target is c (the soft
// intersection), sums[classes + c] = sum of p[c], sums[2 * classes + c] = rows of target c. Returns -1,
// or the first row whose target is neither ignore nor a class (sums are then not complete).
extern "C" int64_t dice_sums_bf16(const uint16_t *x, const int64_t *target, int64_t rows, int64_t classes,
                                  int64_t ignore, double *sums, int threads) {
  if (classes < 1 || classes > MAX_CLASSES) return 0;
  threads = std::max(threads, 1);
  const int64_t vecs = (classes + 15) / 16, chunk = (rows + threads - 1) / threads;
  std::vector<double> part(3 * classes * threads, 0.0);
  std::vector<int64_t> bad(threads, -1);
  parallel(threads, threads, [&](int64_t p0, int64_t p1) {
    v16 val[MAX_VECS];
    for (int64_t p = p0; p < p1; ++p) {
      double *inter = part.data() + 3 * classes * p, *mass = inter + classes, *count = mass + classes;
      const int64_t end = std::min(rows, (p + 1) * chunk);
      for (int64_t b = p * chunk; b < end; b += 1024) {  // fp32 sums over blocks, added up in fp64
        v16 acc[MAX_VECS] = {};
        int64_t i = b;
        if (classes <= BLOCK_CLASSES) {  // 16 rows at a time, transposed: per-class sums over lanes
          v16 col[BLOCK_CLASSES], c_inter[BLOCK_CLASSES] = {}, c_mass[BLOCK_CLASSES] = {}, c_count[BLOCK_CLASSES] = {};
          for (; i + 16 <= std::min(end, b + 1024); i += 16) {
            i16v t, valid;
            load_targets(target + i, classes, ignore, t, valid);
            bool any_bad = false;
            for (int64_t r = 0; r < 16; ++r) any_bad |= valid[r] && t[r] < 0;
            if (any_bad) break;  // the row path below finds and reports it
            load_block(x + i * classes, classes, col);
            softmax_block(col, classes);
            for (int64_t c = 0; c < classes; ++c) {
              const v16 prob = valid ? col[c] : v16{};
              c_mass[c] += prob;
              c_inter[c] += t == int32_t(c) ? prob : v16{};
              c_count[c] += (t == int32_t(c)) & valid ? v16{} + 1.0f : v16{};
            }
          }
          for (int64_t c = 0; c < classes; ++c) {
            inter[c] += hsum(c_inter[c]);
            mass[c] += hsum(c_mass[c]);
            count[c] += hsum(c_count[c]);
          }
        }
        for (; i < std::min(end, b + 1024); ++i) {
          const int64_t t = target[i];
          if (t == ignore) continue;
          if (t < 0 || t >= classes) { bad[p] = i; return; }
          softmax_row(x + i * classes, classes, vecs, val, (rows - i) * classes >= 16 * vecs);
          for (int64_t v = 0; v < vecs; ++v) acc[v] += val[v];
          inter[t] += val[t / 16][t % 16];
          count[t] += 1;
        }
        for (int64_t c = 0; c < classes; ++c) mass[c] += acc[c / 16][c % 16];
      }
    }
  });
  for (int p = 0; p < threads; ++p)
    if (bad[p] >= 0) return bad[p];
  for (int64_t k = 0; k < 3 * classes; ++k) {
    double total = 0;
    for (int p = 0; p < threads; ++p) total += part[3 * classes * p + k];
    sums[k] = total;
  }
  return -1;
}

// grad (bf16, rows x classes) = the gradient with respect to the logits of a loss whose gradient with
// respect to the probabilities p of a row with target t is a[c] * (c == t) + b[c]; zeros for ignored
// rows. Softmax's backward: p[k] * (g[k] - sum_j p[j] g[j]). Targets must be in range (dice_sums_bf16).
extern "C" void dice_grad_bf16(const uint16_t *x, const int64_t *target, int64_t rows, int64_t classes,
                               int64_t ignore, const float *a, const float *b, uint16_t *grad, int threads) {
  const int64_t vecs = (classes + 15) / 16;
  v16 bv[MAX_VECS];
  for (int64_t c = 0; c < 16 * vecs; ++c) bv[c / 16][c % 16] = c < classes ? b[c] : 0.0f;
  parallel(rows, threads, [&](int64_t r0, int64_t r1) {
    v16 val[MAX_VECS];
    int64_t i = r0;
    for (; classes <= BLOCK_CLASSES && i + 16 <= r1; i += 16) {  // 16 rows at a time, transposed
      v16 col[BLOCK_CLASSES], d = v16{}, pt = v16{};
      i16v t, valid;
      load_targets(target + i, classes, ignore, t, valid);
      load_block(x + i * classes, classes, col);
      softmax_block(col, classes);
      for (int64_t c = 0; c < classes; ++c) {
        d += col[c] * b[c];
        pt = t == int32_t(c) ? col[c] : pt;
      }
      const v16 at = gather_lanes(a, t, valid), shift = d + at * pt;
      for (int64_t c = 0; c < classes; ++c)
        col[c] = valid ? col[c] * (b[c] - shift) + (t == int32_t(c) ? pt * at : v16{}) : v16{};
      store_block(grad + i * classes, classes, col);
    }
    for (; i < r1; ++i) {
      const int64_t t = target[i];
      if (t == ignore) {
        std::memset(grad + i * classes, 0, classes * sizeof(uint16_t));
        continue;
      }
      softmax_row(x + i * classes, classes, vecs, val, (rows - i) * classes >= 16 * vecs);
      v16 d = v16{};
      for (int64_t v = 0; v < vecs; ++v) d += val[v] * bv[v];
      const float pt = val[t / 16][t % 16], shift = hsum(d) + a[t] * pt;
      for (int64_t v = 0; v < vecs; ++v) {
        v16 g = val[v] * (bv[v] - shift);
        if (t / 16 == v) g[t % 16] += pt * a[t];
        store_bf16(grad + i * classes + 16 * v, g, std::min<int64_t>(16, classes - 16 * v));
      }
    }
  });
}

// out[i] = the first class of row i with the largest value (PyTorch's argmax; rows with NaN excepted).
extern "C" int argmax_bf16(const uint16_t *x, int64_t rows, int64_t classes, int64_t *out, int threads) {
  if (classes < 1 || classes > MAX_CLASSES) return 1;
  const int64_t vecs = (classes + 15) / 16;
  parallel(rows, threads, [&](int64_t r0, int64_t r1) {
    v16 val[MAX_VECS];
    for (int64_t i = r0; i < r1; ++i) {
      const float mx = load_row(x + i * classes, classes, vecs, val, (rows - i) * classes >= 16 * vecs);
      int64_t best = 0;
      for (int64_t j = 0; j < classes; ++j)
        if (val[j / 16][j % 16] == mx) { best = j; break; }
      out[i] = best;
    }
  });
  return 0;
}
