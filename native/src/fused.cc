#include "fused.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "common.h"
#include "vecmath.h"

namespace mifo {

namespace {

// Element-wise work is split over threads only past this size: below it a pool wake-up costs more than it saves.
constexpr int64_t kParallelElements = int64_t{1} << 15;

template <typename Fn>
void forRanges(int64_t n, int64_t grain, Fn fn) {
  const int64_t threads = poolThreads();
  if (threads == 1 || n < std::max(grain, kParallelElements)) {
    fn(int64_t{0}, n);
    return;
  }
  const int64_t chunks = std::min<int64_t>(threads * 4, std::max<int64_t>(1, n / grain));
  const int64_t per = (n + chunks - 1) / chunks;
  parallelFor(chunks, [&](int64_t c) {
    const int64_t begin = c * per;
    const int64_t end = std::min(n, begin + per);
    if (begin < end) fn(begin, end);
  });
}

// Runs fn(task) for task in [0, tasks) in parallel when the total work (tasks · costPerTask floats) is large enough.
template <typename Fn>
void forTasks(int64_t tasks, int64_t costPerTask, Fn fn) {
  if (poolThreads() == 1 || tasks < 2 || tasks * costPerTask < kParallelElements) {
    for (int64_t t = 0; t < tasks; t++) fn(t);
    return;
  }
  parallelFor(tasks, fn);
}

constexpr float kInvSqrt2 = 0.70710678118654752f;
constexpr float kInvSqrt2Pi = 0.39894228040143268f;

}  // namespace

void siluForward(const float* x, float* y, int64_t n) {
  forRanges(n, 4096, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; i++) y[i] = x[i] / (1.0f + expApprox(-x[i]));
  });
}

void siluBackward(const float* dy, const float* x, float* dx, int64_t n) {
  forRanges(n, 4096, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; i++) {
      const float s = 1.0f / (1.0f + expApprox(-x[i]));
      dx[i] = dy[i] * s * (1.0f + x[i] * (1.0f - s));
    }
  });
}

void geluForward(const float* x, float* y, int64_t n) {
  forRanges(n, 4096, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; i++) y[i] = 0.5f * x[i] * (1.0f + erfApprox(x[i] * kInvSqrt2));
  });
}

void geluBackward(const float* dy, const float* x, float* dx, int64_t n) {
  forRanges(n, 4096, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; i++) {
      const float cdf = 0.5f * (1.0f + erfApprox(x[i] * kInvSqrt2));
      const float pdf = kInvSqrt2Pi * expApprox(-0.5f * x[i] * x[i]);
      dx[i] = dy[i] * (cdf + x[i] * pdf);
    }
  });
}

void softmaxForward(const float* x, float* y, int64_t rows, int64_t cols) {
  forTasks(rows, cols, [&](int64_t r) {
    const float* in = x + r * cols;
    float* out = y + r * cols;
    float top = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : top)
    for (int64_t j = 0; j < cols; j++) top = std::max(top, in[j]);
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j < cols; j++) {
      out[j] = expApprox(in[j] - top);
      sum += out[j];
    }
    const float inv = 1.0f / sum;
    for (int64_t j = 0; j < cols; j++) out[j] *= inv;
  });
}

void softmaxBackward(const float* dy, const float* y, float* dx, int64_t rows, int64_t cols) {
  forTasks(rows, cols, [&](int64_t r) {
    const float* g = dy + r * cols;
    const float* p = y + r * cols;
    float* out = dx + r * cols;
    float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
    for (int64_t j = 0; j < cols; j++) dot += g[j] * p[j];
    for (int64_t j = 0; j < cols; j++) out[j] = p[j] * (g[j] - dot);
  });
}

namespace {

// Per-channel sums over pixel ranges, accumulated in double. `slices` splits each image's pixels so that small
// batches still use every thread; partial sums land in [batch·slices, channels] and are combined by the caller.
struct ChannelSums {
  int64_t batch, pixels, channels, slices;
  std::vector<double> first, second;

  ChannelSums(int64_t batch, int64_t pixels, int64_t channels)
      : batch(batch), pixels(pixels), channels(channels), slices(std::max<int64_t>(1, std::min<int64_t>(pixels, (poolThreads() + batch - 1) / batch))),
        first(static_cast<size_t>(batch * slices * channels), 0.0), second(first.size(), 0.0) {}

  // fn(b, pixelBegin, pixelEnd, first, second) fills the partial sums of one slice
  template <typename Fn>
  void run(Fn fn) {
    const int64_t per = (pixels + slices - 1) / slices;
    forTasks(batch * slices, per * channels, [&](int64_t task) {
      const int64_t b = task / slices;
      const int64_t begin = (task % slices) * per;
      const int64_t end = std::min(pixels, begin + per);
      fn(b, begin, end, first.data() + task * channels, second.data() + task * channels);
    });
  }
  double firstOf(int64_t b, int64_t c) const {
    double total = 0;
    for (int64_t s = 0; s < slices; s++) total += first[(b * slices + s) * channels + c];
    return total;
  }
  double secondOf(int64_t b, int64_t c) const {
    double total = 0;
    for (int64_t s = 0; s < slices; s++) total += second[(b * slices + s) * channels + c];
    return total;
  }
};

// y[b, p, c] = x[b, p, c]·scale[b, c] + shift[b, c] (and the same form for the GroupNorm input gradient)
void affinePerChannel(const float* x, const float* dy, const float* dyScale, const float* xScale, const float* shift, float* out,
                      int64_t batch, int64_t pixels, int64_t channels) {
  forTasks(batch * pixels, channels, [&](int64_t row) {
    const int64_t b = row / pixels;
    const float* xs = x + row * channels;
    const float* sx = xScale + b * channels;
    const float* sh = shift + b * channels;
    float* o = out + row * channels;
    if (dy) {
      const float* g = dy + row * channels;
      const float* sg = dyScale + b * channels;
      for (int64_t c = 0; c < channels; c++) o[c] = g[c] * sg[c] + xs[c] * sx[c] + sh[c];
    } else {
      for (int64_t c = 0; c < channels; c++) o[c] = xs[c] * sx[c] + sh[c];
    }
  });
}

}  // namespace

void groupNormForward(const float* x, const float* gamma, const float* beta, float* y, float* mean, float* rstd,
                      int64_t batch, int64_t pixels, int64_t channels, int64_t groups, float eps) {
  const int64_t perGroup = channels / groups;
  ChannelSums sums(batch, pixels, channels);
  sums.run([&](int64_t b, int64_t begin, int64_t end, double* s1, double* s2) {
    for (int64_t p = begin; p < end; p++) {
      const float* row = x + (b * pixels + p) * channels;
      for (int64_t c = 0; c < channels; c++) {
        s1[c] += row[c];
        s2[c] += static_cast<double>(row[c]) * row[c];
      }
    }
  });
  const double count = static_cast<double>(pixels * perGroup);
  std::vector<float> scale(static_cast<size_t>(batch * channels)), shift(scale.size());
  for (int64_t b = 0; b < batch; b++) {
    for (int64_t g = 0; g < groups; g++) {
      double s1 = 0, s2 = 0;
      for (int64_t c = g * perGroup; c < (g + 1) * perGroup; c++) {
        s1 += sums.firstOf(b, c);
        s2 += sums.secondOf(b, c);
      }
      const double mu = s1 / count;
      const double variance = std::max(0.0, s2 / count - mu * mu);
      const double inv = 1.0 / std::sqrt(variance + eps);
      mean[b * groups + g] = static_cast<float>(mu);
      rstd[b * groups + g] = static_cast<float>(inv);
      for (int64_t c = g * perGroup; c < (g + 1) * perGroup; c++) {
        scale[b * channels + c] = static_cast<float>(inv * gamma[c]);
        shift[b * channels + c] = static_cast<float>(beta[c] - mu * inv * gamma[c]);
      }
    }
  }
  affinePerChannel(x, nullptr, nullptr, scale.data(), shift.data(), y, batch, pixels, channels);
}

void groupNormBackward(const float* dy, const float* x, const float* gamma, const float* mean, const float* rstd, float* dx,
                       float* dgamma, float* dbeta, int64_t batch, int64_t pixels, int64_t channels, int64_t groups) {
  const int64_t perGroup = channels / groups;
  ChannelSums sums(batch, pixels, channels);
  sums.run([&](int64_t b, int64_t begin, int64_t end, double* s1, double* s2) {
    for (int64_t p = begin; p < end; p++) {
      const float* g = dy + (b * pixels + p) * channels;
      const float* xs = x + (b * pixels + p) * channels;
      for (int64_t c = 0; c < channels; c++) {
        s1[c] += g[c];
        s2[c] += static_cast<double>(g[c]) * xs[c];
      }
    }
  });
  const double count = static_cast<double>(pixels * perGroup);
  std::vector<double> gammaSum(static_cast<size_t>(channels), 0.0), betaSum(gammaSum.size(), 0.0);
  std::vector<float> dyScale(static_cast<size_t>(batch * channels)), xScale(dyScale.size()), shift(dyScale.size());
  for (int64_t b = 0; b < batch; b++) {
    for (int64_t g = 0; g < groups; g++) {
      const double mu = mean[b * groups + g];
      const double inv = rstd[b * groups + g];
      // A = Σ γ·dy and B = Σ γ·dy·(x − μ) over the group
      double A = 0, B = 0;
      for (int64_t c = g * perGroup; c < (g + 1) * perGroup; c++) {
        const double s1 = sums.firstOf(b, c);
        const double s2 = sums.secondOf(b, c);
        A += gamma[c] * s1;
        B += gamma[c] * (s2 - mu * s1);
        betaSum[c] += s1;
        gammaSum[c] += inv * (s2 - mu * s1);
      }
      // dx = rstd·γ·dy − rstd·A/n − (x − μ)·rstd³·B/n
      const double xCoefficient = -inv * inv * inv * B / count;
      const double constant = -inv * A / count - mu * xCoefficient;
      for (int64_t c = g * perGroup; c < (g + 1) * perGroup; c++) {
        dyScale[b * channels + c] = static_cast<float>(inv * gamma[c]);
        xScale[b * channels + c] = static_cast<float>(xCoefficient);
        shift[b * channels + c] = static_cast<float>(constant);
      }
    }
  }
  for (int64_t c = 0; c < channels; c++) {
    dgamma[c] = static_cast<float>(gammaSum[c]);
    dbeta[c] = static_cast<float>(betaSum[c]);
  }
  affinePerChannel(x, dy, dyScale.data(), xScale.data(), shift.data(), dx, batch, pixels, channels);
}

void layerNormForward(const float* x, const float* gamma, const float* beta, float* y, float* mean, float* rstd, int64_t rows,
                      int64_t cols, float eps) {
  forTasks(rows, cols, [&](int64_t r) {
    const float* in = x + r * cols;
    float* out = y + r * cols;
    double s1 = 0, s2 = 0;
#pragma omp simd reduction(+ : s1, s2)
    for (int64_t c = 0; c < cols; c++) {
      s1 += in[c];
      s2 += static_cast<double>(in[c]) * in[c];
    }
    const double mu = s1 / cols;
    const double inv = 1.0 / std::sqrt(std::max(0.0, s2 / cols - mu * mu) + eps);
    mean[r] = static_cast<float>(mu);
    rstd[r] = static_cast<float>(inv);
    const float m = static_cast<float>(mu);
    const float s = static_cast<float>(inv);
    for (int64_t c = 0; c < cols; c++) out[c] = (in[c] - m) * s * gamma[c] + beta[c];
  });
}

void layerNormBackward(const float* dy, const float* x, const float* gamma, const float* mean, const float* rstd, float* dx,
                       float* dgamma, float* dbeta, int64_t rows, int64_t cols) {
  // dγ and dβ are sums over rows: each slice of rows keeps its own partial sums.
  const int64_t slices = std::max<int64_t>(1, std::min<int64_t>(rows, rows * cols < kParallelElements ? 1 : poolThreads()));
  const int64_t per = (rows + slices - 1) / slices;
  std::vector<float> partialGamma(static_cast<size_t>(slices * cols), 0.0f), partialBeta(partialGamma.size(), 0.0f);
  forTasks(slices, per * cols, [&](int64_t slice) {
    float* pg = partialGamma.data() + slice * cols;
    float* pb = partialBeta.data() + slice * cols;
    for (int64_t r = slice * per; r < std::min(rows, (slice + 1) * per); r++) {
      const float* g = dy + r * cols;
      const float* in = x + r * cols;
      float* out = dx + r * cols;
      const float m = mean[r];
      const float s = rstd[r];
      float A = 0.0f, B = 0.0f;
#pragma omp simd reduction(+ : A, B)
      for (int64_t c = 0; c < cols; c++) {
        const float normalized = (in[c] - m) * s;
        const float scaled = g[c] * gamma[c];
        A += scaled;
        B += scaled * normalized;
        pg[c] += g[c] * normalized;
        pb[c] += g[c];
      }
      const float a = A / cols;
      const float b = B / cols;
      for (int64_t c = 0; c < cols; c++) out[c] = s * (g[c] * gamma[c] - a - (in[c] - m) * s * b);
    }
  });
  for (int64_t c = 0; c < cols; c++) {
    float sg = 0.0f, sb = 0.0f;
    for (int64_t slice = 0; slice < slices; slice++) {
      sg += partialGamma[slice * cols + c];
      sb += partialBeta[slice * cols + c];
    }
    dgamma[c] = sg;
    dbeta[c] = sb;
  }
}

void unsortedSegmentSum(const float* x, const int32_t* ids, float* out, int64_t rows, int64_t rowSize, int64_t segments) {
  std::fill(out, out + segments * rowSize, 0.0f);
  for (int64_t r = 0; r < rows; r++) {
    const int64_t s = ids[r];
    if (s < 0 || s >= segments) continue;
    const float* src = x + r * rowSize;
    float* dst = out + s * rowSize;
    for (int64_t c = 0; c < rowSize; c++) dst[c] += src[c];
  }
}

void adamwUpdate(const float* param, const float* grad, const float* m, const float* v, float* paramOut, float* mOut,
                 float* vOut, int64_t n, const AdamWHyper& h) {
  const float decay = 1.0f - h.lr * h.weightDecay;
  const float stepSize = h.lr / static_cast<float>(1.0 - std::pow(static_cast<double>(h.beta1), static_cast<double>(h.step)));
  const float invSqrtCorrection2 =
      static_cast<float>(1.0 / std::sqrt(1.0 - std::pow(static_cast<double>(h.beta2), static_cast<double>(h.step))));
  forRanges(n, 8192, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; i++) {
      const float g = grad[i];
      const float m1 = h.beta1 * m[i] + (1.0f - h.beta1) * g;
      const float v1 = h.beta2 * v[i] + (1.0f - h.beta2) * g * g;
      mOut[i] = m1;
      vOut[i] = v1;
      paramOut[i] = param[i] * decay - stepSize * m1 / (std::sqrt(v1) * invSqrtCorrection2 + h.eps);
    }
  });
}

namespace {

struct HeadView {
  const float* q;
  const float* k;
  const float* v;
  const float* mask;  // this head's mask origin, or null
  int64_t maskRowStride, maskColStride;
};

HeadView headView(const AttentionShape& s, const float* q, const float* k, const float* v, int64_t bh) {
  const int64_t b = bh / s.heads;
  const int64_t h = bh % s.heads;
  HeadView view{q + bh * s.queries * s.headDim, k + bh * s.keys * s.headDim, v + bh * s.keys * s.headDim, nullptr, 0, 0};
  if (s.mask) {
    view.mask = s.mask + b * s.maskStride[0] + h * s.maskStride[1];
    view.maskRowStride = s.maskStride[2];
    view.maskColStride = s.maskStride[3];
  }
  return view;
}

// dst[d, keys] = src[keys, d]ᵀ
void transposeInto(const float* src, float* dst, int64_t keys, int64_t d) {
  for (int64_t j = 0; j < keys; j++) {
    for (int64_t c = 0; c < d; c++) dst[c * keys + j] = src[j * d + c];
  }
}

// logits[j] = scale·q_i·k_j + mask_ij, with k given transposed [d, keys]
void rowLogits(const AttentionShape& s, const HeadView& view, const float* qRow, const float* kT, int64_t i, float* logits) {
  const int64_t keys = s.keys;
  std::fill(logits, logits + keys, 0.0f);
  for (int64_t c = 0; c < s.headDim; c++) {
    const float qc = qRow[c] * s.scale;
    const float* kc = kT + c * keys;
    for (int64_t j = 0; j < keys; j++) logits[j] += qc * kc[j];
  }
  if (view.mask) {
    const float* m = view.mask + i * view.maskRowStride;
    if (view.maskColStride == 1) {
      for (int64_t j = 0; j < keys; j++) logits[j] += m[j];
    } else {
      for (int64_t j = 0; j < keys; j++) logits[j] += m[j * view.maskColStride];
    }
  }
}

}  // namespace

void attentionForward(const AttentionShape& s, const float* q, const float* k, const float* v, float* out, float* lse,
                      float* probs) {
  const int64_t d = s.headDim, keys = s.keys, queries = s.queries;
  // Tasks are (head, block of query rows) so that a single image with few heads still fills every thread.
  const int64_t rowsPerTask = std::max<int64_t>(1, std::min<int64_t>(queries, 64));
  const int64_t blocks = (queries + rowsPerTask - 1) / rowsPerTask;
  forTasks(s.batch * s.heads * blocks, rowsPerTask * keys * d, [&](int64_t task) {
    const int64_t bh = task / blocks;
    const int64_t first = (task % blocks) * rowsPerTask;
    const int64_t last = std::min(queries, first + rowsPerTask);
    const HeadView view = headView(s, q, k, v, bh);
    std::vector<float> kT(static_cast<size_t>(d * keys)), row(static_cast<size_t>(keys)), acc(static_cast<size_t>(d));
    transposeInto(view.k, kT.data(), keys, d);
    for (int64_t i = first; i < last; i++) {
      rowLogits(s, view, view.q + i * d, kT.data(), i, row.data());
      float top = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : top)
      for (int64_t j = 0; j < keys; j++) top = std::max(top, row[j]);
      float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
      for (int64_t j = 0; j < keys; j++) {
        row[j] = expApprox(row[j] - top);
        sum += row[j];
      }
      const float inv = 1.0f / sum;
      for (int64_t j = 0; j < keys; j++) row[j] *= inv;
      lse[bh * queries + i] = top + std::log(sum);
      if (probs) std::copy(row.begin(), row.end(), probs + (bh * queries + i) * keys);
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (int64_t j = 0; j < keys; j++) {
        const float p = row[j];
        const float* vj = view.v + j * d;
        for (int64_t c = 0; c < d; c++) acc[c] += p * vj[c];
      }
      std::copy(acc.begin(), acc.end(), out + (bh * queries + i) * d);
    }
  });
}

void attentionBackward(const AttentionShape& s, const float* q, const float* k, const float* v, const float* lse,
                       const float* probs, const float* dout, const float* dprobs, float* dq, float* dk, float* dv) {
  const int64_t d = s.headDim, keys = s.keys, queries = s.queries;
  // dk and dv sum over every query row of a head, so a head is one task.
  forTasks(s.batch * s.heads, queries * keys * d, [&](int64_t bh) {
    const HeadView view = headView(s, q, k, v, bh);
    std::vector<float> kT(static_cast<size_t>(d * keys)), vT(kT.size()), dkT(kT.size(), 0.0f), dvT(kT.size(), 0.0f);
    std::vector<float> p(static_cast<size_t>(keys)), dp(p.size());
    transposeInto(view.k, kT.data(), keys, d);
    transposeInto(view.v, vT.data(), keys, d);
    for (int64_t i = 0; i < queries; i++) {
      const int64_t rowIndex = bh * queries + i;
      const float* qi = view.q + i * d;
      const float* gi = dout + rowIndex * d;
      if (probs) {
        std::copy(probs + rowIndex * keys, probs + (rowIndex + 1) * keys, p.begin());
      } else {
        rowLogits(s, view, qi, kT.data(), i, p.data());
        const float shift = lse[rowIndex];
        for (int64_t j = 0; j < keys; j++) p[j] = expApprox(p[j] - shift);
      }
      // dP_ij = dO_i·v_j (+ the gradient arriving at the probabilities); dV += Pᵀ·dO
      if (dprobs) {
        std::copy(dprobs + rowIndex * keys, dprobs + (rowIndex + 1) * keys, dp.begin());
      } else {
        std::fill(dp.begin(), dp.end(), 0.0f);
      }
      for (int64_t c = 0; c < d; c++) {
        const float g = gi[c];
        const float* vc = vT.data() + c * keys;
        float* dvc = dvT.data() + c * keys;
        for (int64_t j = 0; j < keys; j++) {
          dp[j] += g * vc[j];
          dvc[j] += g * p[j];
        }
      }
      // dS = P ∘ (dP − Σ_j P·dP), then dQ = scale·dS·K and dK += scale·dSᵀ·q
      float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
      for (int64_t j = 0; j < keys; j++) dot += p[j] * dp[j];
      for (int64_t j = 0; j < keys; j++) dp[j] = p[j] * (dp[j] - dot) * s.scale;
      float* dqi = dq + rowIndex * d;
      for (int64_t c = 0; c < d; c++) {
        const float* kc = kT.data() + c * keys;
        float* dkc = dkT.data() + c * keys;
        const float qc = qi[c];
        float total = 0.0f;
#pragma omp simd reduction(+ : total)
        for (int64_t j = 0; j < keys; j++) {
          total += dp[j] * kc[j];
          dkc[j] += qc * dp[j];
        }
        dqi[c] = total;
      }
    }
    float* dkHead = dk + bh * keys * d;
    float* dvHead = dv + bh * keys * d;
    for (int64_t j = 0; j < keys; j++) {
      for (int64_t c = 0; c < d; c++) {
        dkHead[j * d + c] = dkT[c * keys + j];
        dvHead[j * d + c] = dvT[c * keys + j];
      }
    }
  });
}

}  // namespace mifo
