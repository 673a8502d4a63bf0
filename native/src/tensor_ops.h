// Data movement and reductions the stock wasm kernels do slowly: column-block copies (Concat and SplitV along any
// axis are copies between [rows, cols] views) and sums over a contiguous run of axes.
#pragma once

#include <cstdint>

namespace mifo {

// dst[r·dstStride + c] = src[r·srcStride + c] for r < rows, c < cols; 4-byte elements of any type
void copyColumns(const void* src, int64_t srcStride, void* dst, int64_t dstStride, int64_t rows, int64_t cols);

// out[o, i] = Σ_m x[o, m, i] for x viewed as [outer, middle, inner]
void sumMiddle(const float* x, float* out, int64_t outer, int64_t middle, int64_t inner);

}  // namespace mifo
