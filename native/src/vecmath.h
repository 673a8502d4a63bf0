// Branch-free exp and erf that GCC vectorises inside loops (libm's expf/erff are scalar calls). Accuracy: exp within
// ~1 ulp over the float range (degree-7 Taylor on |r| ≤ ln2/2); erf within 2.5e-8 relative (a rational fit of our own,
// x·P(x²)/Q(x²) on [0, 4], evaluated in double).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>

namespace mifo {

// Max reductions do not auto-vectorise (maxps is not associative under NaN and signed-zero rules), so this one is
// written on 8-float vectors by hand (GCC vector extensions: AVX, or SSE pairs).
typedef float Float8 __attribute__((vector_size(32)));

inline float maxOf(const float* x, int64_t n) {
  float top = -std::numeric_limits<float>::infinity();
  int64_t j = 0;
  if (n >= 16) {
    Float8 a, b;
    std::memcpy(&a, x, sizeof a);
    std::memcpy(&b, x + 8, sizeof b);
    for (j = 16; j + 16 <= n; j += 16) {
      Float8 u, v;
      std::memcpy(&u, x + j, sizeof u);
      std::memcpy(&v, x + j + 8, sizeof v);
      a = a > u ? a : u;
      b = b > v ? b : v;
    }
    a = a > b ? a : b;
    for (int lane = 0; lane < 8; lane++) top = std::max(top, a[lane]);
  }
  for (; j < n; j++) top = std::max(top, x[j]);
  return top;
}

inline float bitsToFloat(int32_t bits) { return __builtin_bit_cast(float, bits); }

inline float expApprox(float x) {
  // Below −87.3 the result is subnormal or 0 and above 88.7 it overflows; clamping keeps 2^n representable.
  x = std::min(std::max(x, -87.33654f), 88.72283f);
  const float n = __builtin_floorf(x * 1.44269504088896341f + 0.5f);
  const float r = (x - n * 0.693145751953125f) - n * 1.42860682030941723212e-6f;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  // 2^n split in two factors so n = 128 (x near 88.7) does not overflow the exponent field.
  const int32_t e = static_cast<int32_t>(n);
  const int32_t half = e >> 1;
  return p * bitsToFloat((half + 127) << 23) * bitsToFloat((e - half + 127) << 23);
}

inline float erfApprox(float xf) {
  const double x = std::min(std::max(static_cast<double>(xf), -4.0), 4.0);
  const double z = x * x;
  const double p = ((((1.986705121e-06 * z + 2.845629791e-04) * z + 3.883419081e-03) * z + 5.310196427e-02) * z +
                    1.935474657e-01) * z + 1.128379139e+00;
  const double q = ((((3.741921668e-05 * z + 1.185580657e-03) * z + 1.520740589e-02) * z + 1.153509036e-01) * z +
                    5.048595311e-01) * z + 1.0;
  const double value = x * p / q;
  return static_cast<float>(std::min(std::max(value, -1.0), 1.0));
}

}  // namespace mifo
