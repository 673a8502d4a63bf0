#include "tensor_ops.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "common.h"

namespace mifo {

void copyColumns(const void* src, int64_t srcStride, void* dst, int64_t dstStride, int64_t rows, int64_t cols) {
  const auto* from = static_cast<const uint8_t*>(src);
  auto* to = static_cast<uint8_t*>(dst);
  forEachRange(rows, cols, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; r++) std::memcpy(to + r * dstStride * 4, from + r * srcStride * 4, static_cast<size_t>(cols) * 4);
  });
}

void sumMiddle(const float* x, float* out, int64_t outer, int64_t middle, int64_t inner) {
  if (inner == 1) {
    forEachRange(outer, middle, [&](int64_t begin, int64_t end) {
      for (int64_t o = begin; o < end; o++) {
        const float* row = x + o * middle;
        float total = 0.0f;
#pragma omp simd reduction(+ : total)
        for (int64_t m = 0; m < middle; m++) total += row[m];
        out[o] = total;
      }
    });
    return;
  }
  // Columns of one outer slice are summed in chunks so several threads can share a single slice.
  const int64_t chunk = std::max<int64_t>(64, (inner + 3) / 4);
  const int64_t chunks = (inner + chunk - 1) / chunk;
  forEachTask(outer * chunks, middle * std::min(chunk, inner), [&](int64_t task) {
    const int64_t o = task / chunks;
    const int64_t first = (task % chunks) * chunk;
    const int64_t width = std::min(inner, first + chunk) - first;
    float* dst = out + o * inner + first;
    std::fill(dst, dst + width, 0.0f);
    for (int64_t m = 0; m < middle; m++) {
      const float* src = x + (o * middle + m) * inner + first;
      for (int64_t i = 0; i < width; i++) dst[i] += src[i];
    }
  });
}

}  // namespace mifo
