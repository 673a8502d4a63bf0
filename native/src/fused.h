// Fused kernels for what a UNet step spends its non-GEMM time on: normalisation, activations, softmax, attention,
// the AdamW update and segment sums. Each forward has a matching backward; statistics a backward needs (mean and
// 1/σ, attention log-sum-exp) are outputs of the forward.
#pragma once

#include <cstdint>

namespace mifo {

void siluForward(const float* x, float* y, int64_t n);
void siluBackward(const float* dy, const float* x, float* dx, int64_t n);
// exact GELU, 0.5·x·(1 + erf(x/√2))
void geluForward(const float* x, float* y, int64_t n);
void geluBackward(const float* dy, const float* x, float* dx, int64_t n);

// softmax over the last axis of a [rows, cols] matrix
void softmaxForward(const float* x, float* y, int64_t rows, int64_t cols);
void softmaxBackward(const float* dy, const float* y, float* dx, int64_t rows, int64_t cols);

// GroupNorm over NHWC x [batch, pixels, channels]; mean and rstd are [batch, groups]
void groupNormForward(const float* x, const float* gamma, const float* beta, float* y, float* mean, float* rstd,
                      int64_t batch, int64_t pixels, int64_t channels, int64_t groups, float eps);
void groupNormBackward(const float* dy, const float* x, const float* gamma, const float* mean, const float* rstd, float* dx,
                       float* dgamma, float* dbeta, int64_t batch, int64_t pixels, int64_t channels, int64_t groups);

// LayerNorm over the last axis of x [rows, cols]; mean and rstd are [rows]
void layerNormForward(const float* x, const float* gamma, const float* beta, float* y, float* mean, float* rstd, int64_t rows,
                      int64_t cols, float eps);
void layerNormBackward(const float* dy, const float* x, const float* gamma, const float* mean, const float* rstd, float* dx,
                       float* dgamma, float* dbeta, int64_t rows, int64_t cols);

// out[s] = Σ_{i: ids[i] = s} x[i] over rows of `rowSize` floats; ids outside [0, segments) are dropped
void unsortedSegmentSum(const float* x, const int32_t* ids, float* out, int64_t rows, int64_t rowSize, int64_t segments);

// One decoupled-weight-decay Adam step (torch.optim.AdamW) on one tensor; writes new param, m and v.
struct AdamWHyper {
  float lr, beta1, beta2, eps, weightDecay;
  int64_t step;
};
void adamwUpdate(const float* param, const float* grad, const float* m, const float* v, float* paramOut, float* mOut,
                 float* vOut, int64_t n, const AdamWHyper& hyper);

// Attention over [batchHeads, queries, headDim] q and [batchHeads, keys, headDim] k/v.
// mask: optional additive logits, element (bh, i, j) at mask[(bh / heads)·maskStride[0] + (bh % heads)·maskStride[1]
// + i·maskStride[2] + j·maskStride[3]] (zero strides broadcast).
struct AttentionShape {
  int64_t batch, heads, queries, keys, headDim;
  float scale;
  const float* mask;
  int64_t maskStride[4];
};
// out = softmax(scale·q·kᵀ + mask)·v; lse[bh, i] = log Σ_j exp(logit_ij) for the backward; probs (optional) receives
// the softmax itself.
void attentionForward(const AttentionShape& s, const float* q, const float* k, const float* v, float* out, float* lse,
                      float* probs);
// Gradients of the forward. probs: the saved softmax, or null to recompute it from q, k and lse. dprobs: optional
// gradient arriving at the probabilities output.
void attentionBackward(const AttentionShape& s, const float* q, const float* k, const float* v, const float* lse,
                       const float* probs, const float* dout, const float* dprobs, float* dq, float* dk, float* dv);

}  // namespace mifo
