#include "linalg.h"

#include <cblas.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "common.h"

namespace mifo {

namespace {

// im2col scratch per chunk: 4 Mi floats keeps it within L3-sized slabs and bounds the extra memory at 16 MiB.
constexpr int64_t kColumnBudget = int64_t{1} << 22;

// Below this many flops a GEMM takes a few µs and splitting it only adds overhead.
constexpr double kParallelGemmFlops = 2e6;

void sgemmSerial(bool transA, bool transB, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
                 int64_t ldb, float beta, float* C, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans, M, N, K, 1.0f, A, lda,
              B, ldb, beta, C, ldc);
}

// C = op(A)·op(B) + beta·C, split into one block of rows (or columns, whichever output side is longer) per thread;
// each block is a single-threaded OpenBLAS call.
void sgemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
           int64_t ldb, float beta, float* C, int64_t ldc) {
  const int64_t threads = poolThreads();
  const bool byRows = M >= N;
  const int64_t extent = byRows ? M : N;
  // blocks stay multiples of 16 so the OpenBLAS micro-kernels run full tiles
  const int64_t parts = std::min<int64_t>(threads, extent / 16);
  if (parts < 2 || 2.0 * M * N * K < kParallelGemmFlops) {
    sgemmSerial(transA, transB, M, N, K, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  const int64_t block = (extent / parts + 15) / 16 * 16;
  parallelFor(parts, [&](int64_t part) {
    const int64_t first = part * block;
    const int64_t count = std::min(extent, first + block) - first;
    if (count <= 0) return;
    if (byRows) {
      sgemmSerial(transA, transB, count, N, K, transA ? A + first : A + first * lda, lda, B, ldb, beta, C + first * ldc, ldc);
    } else {
      sgemmSerial(transA, transB, M, count, K, A, lda, transB ? B + first * ldb : B + first, ldb, beta, C + first, ldc);
    }
  });
}

// dst[cols × rows] = src[rows × cols]ᵀ in 16×16 tiles, so neither side is walked with a large stride.
void transposeBlocked(const float* src, int64_t rows, int64_t cols, float* dst) {
  constexpr int64_t kTile = 16;
  for (int64_t r0 = 0; r0 < rows; r0 += kTile) {
    for (int64_t c0 = 0; c0 < cols; c0 += kTile) {
      const int64_t r1 = std::min(rows, r0 + kTile), c1 = std::min(cols, c0 + kTile);
      for (int64_t c = c0; c < c1; c++) {
        for (int64_t r = r0; r < r1; r++) dst[c * rows + r] = src[r * cols + c];
      }
    }
  }
}

bool isPointwise(const ConvGeometry& g) {
  return g.filterHeight == 1 && g.filterWidth == 1 && g.strideHeight == 1 && g.strideWidth == 1 && g.padTop == 0 &&
         g.padLeft == 0 && g.outHeight == g.inHeight && g.outWidth == g.inWidth;
}

// cols[p - first][(kh·KW + kw)·Ci + ci] = x[n, oh·sh − pt + kh·dh, ow·sw − pl + kw·dw, ci] for output pixels p.
void im2col(const ConvGeometry& g, const float* x, float* cols, int64_t first, int64_t count) {
  const int64_t rowLength = g.filterHeight * g.filterWidth * g.inChannels;
  const int64_t pixels = g.outHeight * g.outWidth;
  forEachRange(count, rowLength, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; r++) {
      const int64_t p = first + r;
      const int64_t n = p / pixels;
      const int64_t oh = (p % pixels) / g.outWidth;
      const int64_t ow = p % g.outWidth;
      float* dst = cols + r * rowLength;
      for (int64_t kh = 0; kh < g.filterHeight; kh++) {
        const int64_t ih = oh * g.strideHeight - g.padTop + kh * g.dilationHeight;
        for (int64_t kw = 0; kw < g.filterWidth; kw++, dst += g.inChannels) {
          const int64_t iw = ow * g.strideWidth - g.padLeft + kw * g.dilationWidth;
          if (ih < 0 || ih >= g.inHeight || iw < 0 || iw >= g.inWidth) {
            std::memset(dst, 0, sizeof(float) * g.inChannels);
          } else {
            std::memcpy(dst, x + ((n * g.inHeight + ih) * g.inWidth + iw) * g.inChannels, sizeof(float) * g.inChannels);
          }
        }
      }
    }
  });
}

// dx[n, ih, iw, :] = Σ over the taps that read (ih, iw) of cols[(n − first, oh, ow)][tap, :], for images
// [first, first + images); a gather, so rows of dx can be filled in parallel without races.
void col2imGather(const ConvGeometry& g, const float* cols, float* dx, int64_t first, int64_t images) {
  const int64_t rowLength = g.filterHeight * g.filterWidth * g.inChannels;
  forEachRange(images * g.inHeight, g.inWidth * g.inChannels * g.filterHeight * g.filterWidth, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; row++) {
      const int64_t local = row / g.inHeight;
      const int64_t ih = row % g.inHeight;
      float* dst = dx + ((first + local) * g.inHeight + ih) * g.inWidth * g.inChannels;
      std::memset(dst, 0, sizeof(float) * g.inWidth * g.inChannels);
      for (int64_t kh = 0; kh < g.filterHeight; kh++) {
        const int64_t th = ih + g.padTop - kh * g.dilationHeight;
        if (th < 0 || th % g.strideHeight != 0 || th / g.strideHeight >= g.outHeight) continue;
        const int64_t oh = th / g.strideHeight;
        for (int64_t iw = 0; iw < g.inWidth; iw++) {
          float* out = dst + iw * g.inChannels;
          for (int64_t kw = 0; kw < g.filterWidth; kw++) {
            const int64_t tw = iw + g.padLeft - kw * g.dilationWidth;
            if (tw < 0 || tw % g.strideWidth != 0 || tw / g.strideWidth >= g.outWidth) continue;
            const int64_t ow = tw / g.strideWidth;
            const float* src = cols + ((local * g.outHeight + oh) * g.outWidth + ow) * rowLength + (kh * g.filterWidth + kw) * g.inChannels;
            for (int64_t c = 0; c < g.inChannels; c++) out[c] += src[c];
          }
        }
      }
    }
  });
}

}  // namespace

void ConvGeometry::validate() const {
  const int64_t values[] = {batch, inHeight, inWidth, inChannels, filterHeight, filterWidth, outChannels, outHeight,
                            outWidth, strideHeight, strideWidth, dilationHeight, dilationWidth};
  for (int64_t v : values) {
    if (v <= 0) throw ArgumentError("convolution sizes, strides and dilations must be positive");
  }
  if (padTop < 0 || padLeft < 0) throw ArgumentError("negative convolution padding");
}

void gemmBatched(int64_t batch, bool transA, bool transB, int64_t M, int64_t N, int64_t K, const float* A, int64_t strideA,
                 const float* B, int64_t strideB, float* C, int64_t strideC) {
  const int64_t lda = transA ? M : K;
  const int64_t ldb = transB ? K : N;
  // A shared right operand and a row-major left one stack into a single taller product.
  if (batch > 1 && strideB == 0 && !transA && strideA == M * K && strideC == M * N) {
    sgemm(false, transB, batch * M, N, K, A, lda, B, ldb, 0.0f, C, N);
    return;
  }
  if (batch >= poolThreads() && 2.0 * M * N * K < kParallelGemmFlops) {
    // many small products: one per task
    forEachTask(batch, M * N * K / 16, [&](int64_t b) {
      sgemmSerial(transA, transB, M, N, K, A + b * strideA, lda, B + b * strideB, ldb, 0.0f, C + b * strideC, N);
    });
    return;
  }
  for (int64_t b = 0; b < batch; b++) {
    sgemm(transA, transB, M, N, K, A + b * strideA, lda, B + b * strideB, ldb, 0.0f, C + b * strideC, N);
  }
}

void conv2dForward(const ConvGeometry& g, const float* x, const float* w, float* y) {
  g.validate();
  const int64_t pixels = g.batch * g.outHeight * g.outWidth;
  const int64_t K = g.filterHeight * g.filterWidth * g.inChannels;
  if (isPointwise(g)) {
    sgemm(false, false, pixels, g.outChannels, K, x, K, w, g.outChannels, 0.0f, y, g.outChannels);
    return;
  }
  const int64_t chunk = std::max<int64_t>(1, std::min(pixels, kColumnBudget / K));
  float* cols = scratch(0, chunk * K);
  for (int64_t first = 0; first < pixels; first += chunk) {
    const int64_t count = std::min(chunk, pixels - first);
    im2col(g, x, cols, first, count);
    sgemm(false, false, count, g.outChannels, K, cols, K, w, g.outChannels, 0.0f, y + first * g.outChannels, g.outChannels);
  }
}

void conv2dBackpropInput(const ConvGeometry& g, const float* dy, const float* w, float* dx) {
  g.validate();
  const int64_t K = g.filterHeight * g.filterWidth * g.inChannels;
  if (isPointwise(g)) {
    sgemm(false, true, g.batch * g.inHeight * g.inWidth, g.inChannels, g.outChannels, dy, g.outChannels, w, g.outChannels,
          0.0f, dx, g.inChannels);
    return;
  }
  const bool unitStride = g.strideHeight == 1 && g.strideWidth == 1 && g.dilationHeight == 1 && g.dilationWidth == 1;
  if (unitStride && g.padTop < g.filterHeight && g.padLeft < g.filterWidth) {
    // With stride 1 the input gradient is a forward convolution of dy with the filter rotated by 180° and its
    // channel axes swapped: pure gathers, no scatter-add.
    // slot 1: conv2dForward below uses slot 0 for its columns
    float* rotated = scratch(1, g.filterSize());
    const int64_t taps = g.filterHeight * g.filterWidth;
    forEachTask(taps, g.inChannels * g.outChannels, [&](int64_t tap) {
      const float* src = w + (taps - 1 - tap) * g.inChannels * g.outChannels;
      transposeBlocked(src, g.inChannels, g.outChannels, rotated + tap * g.outChannels * g.inChannels);
    });
    const ConvGeometry flipped{g.batch, g.outHeight, g.outWidth, g.outChannels, g.filterHeight, g.filterWidth, g.inChannels,
                               g.inHeight, g.inWidth, 1, 1, g.filterHeight - 1 - g.padTop, g.filterWidth - 1 - g.padLeft, 1, 1};
    conv2dForward(flipped, dy, rotated, dx);
    return;
  }
  const int64_t perImage = g.outHeight * g.outWidth;
  const int64_t images = std::max<int64_t>(1, std::min(g.batch, kColumnBudget / (perImage * K)));
  float* cols = scratch(0, images * perImage * K);
  for (int64_t first = 0; first < g.batch; first += images) {
    const int64_t count = std::min(images, g.batch - first);
    sgemm(false, true, count * perImage, K, g.outChannels, dy + first * perImage * g.outChannels, g.outChannels, w,
          g.outChannels, 0.0f, cols, K);
    col2imGather(g, cols, dx, first, count);
  }
}

void conv2dBackpropFilter(const ConvGeometry& g, const float* x, const float* dy, float* dw) {
  g.validate();
  const int64_t pixels = g.batch * g.outHeight * g.outWidth;
  const int64_t K = g.filterHeight * g.filterWidth * g.inChannels;
  if (isPointwise(g)) {
    sgemm(true, false, K, g.outChannels, pixels, x, K, dy, g.outChannels, 0.0f, dw, g.outChannels);
    return;
  }
  const int64_t chunk = std::max<int64_t>(1, std::min(pixels, kColumnBudget / K));
  float* cols = scratch(0, chunk * K);
  for (int64_t first = 0; first < pixels; first += chunk) {
    const int64_t count = std::min(chunk, pixels - first);
    im2col(g, x, cols, first, count);
    sgemm(true, false, K, g.outChannels, count, cols, K, dy + first * g.outChannels, g.outChannels, first == 0 ? 0.0f : 1.0f,
          dw, g.outChannels);
  }
}

}  // namespace mifo
