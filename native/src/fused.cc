#include "fused.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "common.h"
#include "vecmath.h"

namespace mifo {

namespace {

constexpr float kInvSqrt2 = 0.70710678118654752f;
constexpr float kInvSqrt2Pi = 0.39894228040143268f;

}  // namespace

void siluForward(const float* x, float* y, int64_t n) {
  forEachRange(n, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; i++) y[i] = x[i] / (1.0f + expApprox(-x[i]));
  });
}

void siluBackward(const float* dy, const float* x, float* dx, int64_t n) {
  forEachRange(n, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; i++) {
      const float s = 1.0f / (1.0f + expApprox(-x[i]));
      dx[i] = dy[i] * s * (1.0f + x[i] * (1.0f - s));
    }
  });
}

void geluForward(const float* x, float* y, int64_t n) {
  forEachRange(n, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; i++) y[i] = 0.5f * x[i] * (1.0f + erfApprox(x[i] * kInvSqrt2));
  });
}

void geluBackward(const float* dy, const float* x, float* dx, int64_t n) {
  forEachRange(n, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; i++) {
      const float cdf = 0.5f * (1.0f + erfApprox(x[i] * kInvSqrt2));
      const float pdf = kInvSqrt2Pi * expApprox(-0.5f * x[i] * x[i]);
      dx[i] = dy[i] * (cdf + x[i] * pdf);
    }
  });
}

void softmaxForward(const float* x, float* y, int64_t rows, int64_t cols) {
  forEachTask(rows, cols, [&](int64_t r) {
    const float* in = x + r * cols;
    float* out = y + r * cols;
    const float top = maxOf(in, cols);
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
  forEachTask(rows, cols, [&](int64_t r) {
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
    forEachTask(batch * slices, per * channels, [&](int64_t task) {
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
  forEachTask(batch * pixels, channels, [&](int64_t row) {
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
  forEachTask(rows, cols, [&](int64_t r) {
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
  const int64_t slices = std::max<int64_t>(1, std::min<int64_t>(rows, rows * cols < kParallelWork ? 1 : poolThreads()));
  const int64_t per = (rows + slices - 1) / slices;
  std::vector<float> partialGamma(static_cast<size_t>(slices * cols), 0.0f), partialBeta(partialGamma.size(), 0.0f);
  forEachTask(slices, per * cols, [&](int64_t slice) {
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
  const float beta1 = h.beta1, beta2 = h.beta2, eps = h.eps;
  forEachRange(n, 1, [=](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; i++) {
      const float g = grad[i];
      const float m1 = beta1 * m[i] + (1.0f - beta1) * g;
      const float v1 = beta2 * v[i] + (1.0f - beta2) * g * g;
      mOut[i] = m1;
      vOut[i] = v1;
      paramOut[i] = param[i] * decay - stepSize * m1 / (std::sqrt(v1) * invSqrtCorrection2 + eps);
    }
  });
}

}  // namespace mifo
