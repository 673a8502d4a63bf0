// A register-blocked GEMM for the small, oddly shaped products inside fused attention (head dims 8-160, a few hundred
// keys), where calling OpenBLAS per block from worker threads is neither safe nor fast. C (+)= op(A)·B, all row-major,
// op(A) = A or Aᵀ; n must be a multiple of 8 (callers pad). Tiles of R rows × 8·V columns keep R·V independent
// accumulators in registers, enough to hide FMA latency.
#pragma once

#include <cstdint>
#include <cstring>

#include "vecmath.h"

namespace mifo {

namespace detail {

// A points at the tile's first row of op(A); with TransA, op(A) row r, column p is A[p·lda + r].
template <int R, int V, bool TransA>
inline void gemmTile(int64_t k, const float* A, int64_t lda, const float* B, int64_t ldb, float* C, int64_t ldc, bool accumulate) {
  Float8 acc[R][V];
  for (int r = 0; r < R; r++) {
    for (int v = 0; v < V; v++) {
      if (accumulate) {
        std::memcpy(&acc[r][v], C + r * ldc + 8 * v, sizeof(Float8));
      } else {
        acc[r][v] = Float8{};
      }
    }
  }
  for (int64_t p = 0; p < k; p++) {
    Float8 b[V];
    for (int v = 0; v < V; v++) std::memcpy(&b[v], B + p * ldb + 8 * v, sizeof(Float8));
    for (int r = 0; r < R; r++) {
      const float a = TransA ? A[p * lda + r] : A[r * lda + p];
      for (int v = 0; v < V; v++) acc[r][v] += a * b[v];
    }
  }
  for (int r = 0; r < R; r++) {
    for (int v = 0; v < V; v++) std::memcpy(C + r * ldc + 8 * v, &acc[r][v], sizeof(Float8));
  }
}

template <int R, int V, bool TransA>
inline void gemmRows(int64_t rows, int64_t n, int64_t k, const float* A, int64_t lda, const float* B, int64_t ldb, float* C,
                     int64_t ldc, bool accumulate) {
  const auto rowOf = [&](int64_t i) { return TransA ? A + i : A + i * lda; };
  for (int64_t j = 0; j < n; j += 8 * V) {
    int64_t i = 0;
    for (; i + R <= rows; i += R) gemmTile<R, V, TransA>(k, rowOf(i), lda, B + j, ldb, C + i * ldc + j, ldc, accumulate);
    for (; i < rows; i++) gemmTile<1, V, TransA>(k, rowOf(i), lda, B + j, ldb, C + i * ldc + j, ldc, accumulate);
  }
}

template <bool TransA>
inline void gemm(int64_t rows, int64_t n, int64_t k, const float* A, int64_t lda, const float* B, int64_t ldb, float* C,
                 int64_t ldc, bool accumulate) {
  if (n % 16 == 0) {
    gemmRows<4, 2, TransA>(rows, n, k, A, lda, B, ldb, C, ldc, accumulate);
  } else {
    gemmRows<8, 1, TransA>(rows, n, k, A, lda, B, ldb, C, ldc, accumulate);
  }
}

}  // namespace detail

// C[rows×n] = A[rows×k]·B[k×n] (or += when accumulate); n % 8 == 0.
inline void smallGemm(int64_t rows, int64_t n, int64_t k, const float* A, int64_t lda, const float* B, int64_t ldb, float* C,
                      int64_t ldc, bool accumulate) {
  detail::gemm<false>(rows, n, k, A, lda, B, ldb, C, ldc, accumulate);
}

// C[rows×n] = A[k×rows]ᵀ·B[k×n] (or += when accumulate); n % 8 == 0.
inline void smallGemmTransA(int64_t rows, int64_t n, int64_t k, const float* A, int64_t lda, const float* B, int64_t ldb,
                            float* C, int64_t ldc, bool accumulate) {
  detail::gemm<true>(rows, n, k, A, lda, B, ldb, C, ldc, accumulate);
}

inline int64_t roundUp8(int64_t n) { return (n + 7) / 8 * 8; }

}  // namespace mifo
