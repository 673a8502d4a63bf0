// GEMM and NHWC convolution kernels on OpenBLAS. Layouts follow tfjs: row-major matrices, images NHWC, filters HWIO.
#pragma once

#include <cstdint>

namespace mifo {

// C[b] = op(A[b]) · op(B[b]) for b < batch; op transposes when asked. A stride of 0 broadcasts that operand.
void gemmBatched(int64_t batch, bool transA, bool transB, int64_t M, int64_t N, int64_t K, const float* A, int64_t strideA,
                 const float* B, int64_t strideB, float* C, int64_t strideC);

struct ConvGeometry {
  int64_t batch, inHeight, inWidth, inChannels;
  int64_t filterHeight, filterWidth, outChannels;
  int64_t outHeight, outWidth;
  int64_t strideHeight, strideWidth;
  int64_t padTop, padLeft;
  int64_t dilationHeight, dilationWidth;

  int64_t inputSize() const { return batch * inHeight * inWidth * inChannels; }
  int64_t outputSize() const { return batch * outHeight * outWidth * outChannels; }
  int64_t filterSize() const { return filterHeight * filterWidth * inChannels * outChannels; }
  void validate() const;
};

// y = conv(x, w)
void conv2dForward(const ConvGeometry& g, const float* x, const float* w, float* y);
// dx = ∂/∂x given dy
void conv2dBackpropInput(const ConvGeometry& g, const float* dy, const float* w, float* dx);
// dw = ∂/∂w given x and dy
void conv2dBackpropFilter(const ConvGeometry& g, const float* x, const float* dy, float* dw);

}  // namespace mifo
