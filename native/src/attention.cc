// Fused attention, forward and backward, in blocks of query rows: the [queries, keys] scores of a head never exist
// whole (unless the caller wants the probabilities), so memory stays O(rows·keys) per thread. The backward recomputes
// the probabilities from q, k and the saved log-sum-exp (or reads the saved probabilities).
#include <algorithm>
#include <cmath>

#include "common.h"
#include "fused.h"
#include "small_gemm.h"
#include "vecmath.h"

namespace mifo {

namespace {

constexpr int64_t kRowBlock = 64;

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

// dst[cols × ldDst] = src[rows × cols]ᵀ (rows of dst beyond `rows` are left as they are)
void transposeInto(const float* src, int64_t rows, int64_t cols, int64_t ldSrc, float* dst, int64_t ldDst) {
  for (int64_t i = 0; i < rows; i++) {
    for (int64_t j = 0; j < cols; j++) dst[j * ldDst + i] = src[i * ldSrc + j];
  }
}

// dst[rows × ldDst] = src[rows × cols], columns past cols zeroed
void padColumns(const float* src, int64_t rows, int64_t cols, float* dst, int64_t ldDst) {
  for (int64_t i = 0; i < rows; i++) {
    std::copy(src + i * cols, src + (i + 1) * cols, dst + i * ldDst);
    std::fill(dst + i * ldDst + cols, dst + (i + 1) * ldDst, 0.0f);
  }
}

// Operands of one head laid out for smallGemm (n dimensions padded to multiples of 8), in the calling thread's scratch
// slots 2 and 3.
struct Head {
  int64_t keys, dim, keysPadded, dimPadded;
  float* kT;    // [dim × keysPadded]
  float* kPad;  // [keys × dimPadded]

  Head(const AttentionShape& s, const HeadView& view)
      : keys(s.keys), dim(s.headDim), keysPadded(roundUp8(s.keys)), dimPadded(roundUp8(s.headDim)),
        kT(scratch(2, dim * keysPadded)), kPad(scratch(3, keys * dimPadded)) {
    transposeInto(view.k, keys, dim, dim, kT, keysPadded);
    padColumns(view.k, keys, dim, kPad, dimPadded);
  }
};

// logits[r × keysPadded] = (q rows) · kᵀ, then scale and mask on the first `keys` columns of each row
void scaledLogits(const AttentionShape& s, const HeadView& view, const Head& head, int64_t first, int64_t rows, float* logits) {
  smallGemm(rows, head.keysPadded, head.dim, view.q + first * head.dim, head.dim, head.kT, head.keysPadded, logits,
            head.keysPadded, false);
  for (int64_t r = 0; r < rows; r++) {
    float* row = logits + r * head.keysPadded;
    if (!view.mask) {
      for (int64_t j = 0; j < head.keys; j++) row[j] *= s.scale;
      continue;
    }
    const float* m = view.mask + (first + r) * view.maskRowStride;
    if (view.maskColStride == 1) {
      for (int64_t j = 0; j < head.keys; j++) row[j] = row[j] * s.scale + m[j];
    } else {
      for (int64_t j = 0; j < head.keys; j++) row[j] = row[j] * s.scale + m[j * view.maskColStride];
    }
  }
}

}  // namespace

void attentionForward(const AttentionShape& s, const float* q, const float* k, const float* v, float* out, float* lse,
                      float* probs) {
  const int64_t d = s.headDim, keys = s.keys, queries = s.queries;
  // Tasks are (head, block of query rows) so that one image with few heads still fills every thread.
  const int64_t blocks = (queries + kRowBlock - 1) / kRowBlock;
  forEachTask(s.batch * s.heads * blocks, std::min(queries, kRowBlock) * keys * d, [&](int64_t task) {
    const int64_t bh = task / blocks;
    const int64_t first = (task % blocks) * kRowBlock;
    const int64_t rows = std::min(queries, first + kRowBlock) - first;
    const HeadView view = headView(s, q, k, v, bh);
    const Head head(s, view);
    float* vPad = scratch(4, keys * head.dimPadded);
    padColumns(view.v, keys, d, vPad, head.dimPadded);
    float* p = scratch(5, rows * head.keysPadded);
    float* o = scratch(6, rows * head.dimPadded);
    scaledLogits(s, view, head, first, rows, p);
    for (int64_t r = 0; r < rows; r++) {
      float* row = p + r * head.keysPadded;
      const float top = maxOf(row, keys);
      float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
      for (int64_t j = 0; j < keys; j++) {
        row[j] = expApprox(row[j] - top);
        sum += row[j];
      }
      const float inv = 1.0f / sum;
      for (int64_t j = 0; j < keys; j++) row[j] *= inv;
      const int64_t index = bh * queries + first + r;
      lse[index] = top + std::log(sum);
      if (probs) std::copy(row, row + keys, probs + index * keys);
    }
    smallGemm(rows, head.dimPadded, keys, p, head.keysPadded, vPad, head.dimPadded, o, head.dimPadded, false);
    for (int64_t r = 0; r < rows; r++) std::copy(o + r * head.dimPadded, o + r * head.dimPadded + d, out + (bh * queries + first + r) * d);
  });
}

void attentionBackward(const AttentionShape& s, const float* q, const float* k, const float* v, const float* lse,
                       const float* probs, const float* dout, const float* dprobs, float* dq, float* dk, float* dv) {
  const int64_t d = s.headDim, keys = s.keys, queries = s.queries;
  // dk and dv sum over every query row of a head, so a head is one task.
  forEachTask(s.batch * s.heads, queries * keys * d, [&](int64_t bh) {
    const HeadView view = headView(s, q, k, v, bh);
    const Head head(s, view);
    const int64_t kp = head.keysPadded, dp = head.dimPadded;
    float* vT = scratch(4, d * kp);
    transposeInto(view.v, keys, d, d, vT, kp);
    float* dkAcc = scratch(5, keys * dp);
    float* dvAcc = scratch(6, keys * dp);
    std::fill(dkAcc, dkAcc + keys * dp, 0.0f);
    std::fill(dvAcc, dvAcc + keys * dp, 0.0f);
    float* p = scratch(7, kRowBlock * kp);
    float* dScores = scratch(8, kRowBlock * kp);
    float* qPad = scratch(9, kRowBlock * dp);
    float* doPad = scratch(10, kRowBlock * dp);
    float* dqBlock = scratch(11, kRowBlock * dp);
    const float* doutHead = dout + bh * queries * d;
    for (int64_t first = 0; first < queries; first += kRowBlock) {
      const int64_t rows = std::min(queries, first + kRowBlock) - first;
      const int64_t rowIndex = bh * queries + first;
      if (probs) {
        for (int64_t r = 0; r < rows; r++) std::copy(probs + (rowIndex + r) * keys, probs + (rowIndex + r + 1) * keys, p + r * kp);
      } else {
        scaledLogits(s, view, head, first, rows, p);
        for (int64_t r = 0; r < rows; r++) {
          float* row = p + r * kp;
          const float shift = lse[rowIndex + r];
          for (int64_t j = 0; j < keys; j++) row[j] = expApprox(row[j] - shift);
        }
      }
      // dP = dO·vᵀ (+ the gradient arriving at the probabilities output)
      smallGemm(rows, kp, d, doutHead + first * d, d, vT, kp, dScores, kp, false);
      for (int64_t r = 0; r < rows; r++) {
        float* g = dScores + r * kp;
        const float* pr = p + r * kp;
        if (dprobs) {
          const float* extra = dprobs + (rowIndex + r) * keys;
          for (int64_t j = 0; j < keys; j++) g[j] += extra[j];
        }
        // dS = P ∘ (dP − Σ_j P·dP), times the logit scale
        float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
        for (int64_t j = 0; j < keys; j++) dot += pr[j] * g[j];
        for (int64_t j = 0; j < keys; j++) g[j] = pr[j] * (g[j] - dot) * s.scale;
      }
      // dQ = dS·k
      smallGemm(rows, dp, keys, dScores, kp, head.kPad, dp, dqBlock, dp, false);
      for (int64_t r = 0; r < rows; r++) std::copy(dqBlock + r * dp, dqBlock + r * dp + d, dq + (rowIndex + r) * d);
      // dV += Pᵀ·dO and dK += dSᵀ·q
      padColumns(doutHead + first * d, rows, d, doPad, dp);
      padColumns(view.q + first * d, rows, d, qPad, dp);
      smallGemmTransA(keys, dp, rows, p, kp, doPad, dp, dvAcc, dp, true);
      smallGemmTransA(keys, dp, rows, dScores, kp, qPad, dp, dkAcc, dp, true);
    }
    for (int64_t j = 0; j < keys; j++) {
      std::copy(dkAcc + j * dp, dkAcc + j * dp + d, dk + (bh * keys + j) * d);
      std::copy(dvAcc + j * dp, dvAcc + j * dp + d, dv + (bh * keys + j) * d);
    }
  });
}

}  // namespace mifo
