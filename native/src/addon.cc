// N-API entry points of mifo_native. Each function takes the wasm heap ArrayBuffer first, then byte offsets of the
// tensors (inputs already filled, outputs already allocated by the tfjs wasm backend) and their sizes.
#include <cblas.h>
#include <node_api.h>

#include <string>

#include "common.h"
#include "fused.h"
#include "linalg.h"
#include "tensor_ops.h"

namespace mifo {
namespace {

napi_value undefined(napi_env env) {
  napi_value result;
  napi_get_undefined(env, &result);
  return result;
}

// gemm(heap, batch, transA, transB, M, N, K, a, strideA, b, strideB, c): C[b] = op(A[b])·op(B[b]), C dense.
napi_value Gemm(napi_env env, napi_callback_info info) {
  return guarded(env, "gemm", [&] {
    Args args(env, info, 12);
    const int64_t batch = args.integer(1), M = args.integer(4), N = args.integer(5), K = args.integer(6);
    const int64_t strideA = args.integer(8), strideB = args.integer(10);
    if (batch <= 0 || M <= 0 || N <= 0 || K <= 0 || strideA < 0 || strideB < 0) throw ArgumentError("bad GEMM sizes");
    const float* a = args.floats(7, (batch - 1) * strideA + M * K);
    const float* b = args.floats(9, (batch - 1) * strideB + K * N);
    float* c = args.floats(11, batch * M * N);
    gemmBatched(batch, args.flag(2), args.flag(3), M, N, K, a, strideA, b, strideB, c, M * N);
    return undefined(env);
  });
}

// Conv geometry as 15 consecutive integers starting at `first` (see ConvGeometry's field order).
ConvGeometry readGeometry(const Args& args, size_t first) {
  ConvGeometry g{};
  int64_t* fields[] = {&g.batch,        &g.inHeight,     &g.inWidth,       &g.inChannels,  &g.filterHeight,
                       &g.filterWidth,  &g.outChannels,  &g.outHeight,     &g.outWidth,    &g.strideHeight,
                       &g.strideWidth,  &g.padTop,       &g.padLeft,       &g.dilationHeight, &g.dilationWidth};
  for (size_t i = 0; i < 15; i++) *fields[i] = args.integer(first + i);
  g.validate();
  return g;
}

// conv2dForward(heap, ...geometry, x, w, y)
napi_value Conv2dForward(napi_env env, napi_callback_info info) {
  return guarded(env, "conv2dForward", [&] {
    Args args(env, info, 19);
    const ConvGeometry g = readGeometry(args, 1);
    conv2dForward(g, args.floats(16, g.inputSize()), args.floats(17, g.filterSize()), args.floats(18, g.outputSize()));
    return undefined(env);
  });
}

// conv2dBackpropInput(heap, ...geometry, dy, w, dx)
napi_value Conv2dBackpropInput(napi_env env, napi_callback_info info) {
  return guarded(env, "conv2dBackpropInput", [&] {
    Args args(env, info, 19);
    const ConvGeometry g = readGeometry(args, 1);
    conv2dBackpropInput(g, args.floats(16, g.outputSize()), args.floats(17, g.filterSize()), args.floats(18, g.inputSize()));
    return undefined(env);
  });
}

// conv2dBackpropFilter(heap, ...geometry, x, dy, dw)
napi_value Conv2dBackpropFilter(napi_env env, napi_callback_info info) {
  return guarded(env, "conv2dBackpropFilter", [&] {
    Args args(env, info, 19);
    const ConvGeometry g = readGeometry(args, 1);
    conv2dBackpropFilter(g, args.floats(16, g.inputSize()), args.floats(17, g.outputSize()), args.floats(18, g.filterSize()));
    return undefined(env);
  });
}

int64_t positive(const Args& args, size_t index, const char* what) {
  const int64_t value = args.integer(index);
  if (value <= 0) throw ArgumentError(std::string(what) + " must be positive");
  return value;
}

// silu/gelu(heap, x, y, n) and their gradients (heap, dy, x, dx, n)
template <void (*Kernel)(const float*, float*, int64_t)>
napi_value Elementwise(napi_env env, napi_callback_info info) {
  return guarded(env, "activation", [&] {
    Args args(env, info, 4);
    const int64_t n = positive(args, 3, "size");
    Kernel(args.floats(1, n), args.floats(2, n), n);
    return undefined(env);
  });
}

template <void (*Kernel)(const float*, const float*, float*, int64_t)>
napi_value ElementwiseGrad(napi_env env, napi_callback_info info) {
  return guarded(env, "activationGrad", [&] {
    Args args(env, info, 5);
    const int64_t n = positive(args, 4, "size");
    Kernel(args.floats(1, n), args.floats(2, n), args.floats(3, n), n);
    return undefined(env);
  });
}

// softmax(heap, x, y, rows, cols)
napi_value Softmax(napi_env env, napi_callback_info info) {
  return guarded(env, "softmax", [&] {
    Args args(env, info, 5);
    const int64_t rows = positive(args, 3, "rows"), cols = positive(args, 4, "cols");
    softmaxForward(args.floats(1, rows * cols), args.floats(2, rows * cols), rows, cols);
    return undefined(env);
  });
}

// softmaxGrad(heap, dy, y, dx, rows, cols)
napi_value SoftmaxGrad(napi_env env, napi_callback_info info) {
  return guarded(env, "softmaxGrad", [&] {
    Args args(env, info, 6);
    const int64_t rows = positive(args, 4, "rows"), cols = positive(args, 5, "cols");
    const int64_t n = rows * cols;
    softmaxBackward(args.floats(1, n), args.floats(2, n), args.floats(3, n), rows, cols);
    return undefined(env);
  });
}

// groupNorm(heap, x, gamma, beta, y, mean, rstd, batch, pixels, channels, groups, eps)
napi_value GroupNorm(napi_env env, napi_callback_info info) {
  return guarded(env, "groupNorm", [&] {
    Args args(env, info, 12);
    const int64_t batch = positive(args, 7, "batch"), pixels = positive(args, 8, "pixels");
    const int64_t channels = positive(args, 9, "channels"), groups = positive(args, 10, "groups");
    if (channels % groups != 0) throw ArgumentError("channels must be divisible by groups");
    const int64_t n = batch * pixels * channels;
    groupNormForward(args.floats(1, n), args.floats(2, channels), args.floats(3, channels), args.floats(4, n),
                     args.floats(5, batch * groups), args.floats(6, batch * groups), batch, pixels, channels, groups,
                     static_cast<float>(args.number(11)));
    return undefined(env);
  });
}

// groupNormGrad(heap, dy, x, gamma, mean, rstd, dx, dgamma, dbeta, batch, pixels, channels, groups)
napi_value GroupNormGrad(napi_env env, napi_callback_info info) {
  return guarded(env, "groupNormGrad", [&] {
    Args args(env, info, 13);
    const int64_t batch = positive(args, 9, "batch"), pixels = positive(args, 10, "pixels");
    const int64_t channels = positive(args, 11, "channels"), groups = positive(args, 12, "groups");
    if (channels % groups != 0) throw ArgumentError("channels must be divisible by groups");
    const int64_t n = batch * pixels * channels;
    groupNormBackward(args.floats(1, n), args.floats(2, n), args.floats(3, channels), args.floats(4, batch * groups),
                      args.floats(5, batch * groups), args.floats(6, n), args.floats(7, channels), args.floats(8, channels),
                      batch, pixels, channels, groups);
    return undefined(env);
  });
}

// layerNorm(heap, x, gamma, beta, y, mean, rstd, rows, cols, eps)
napi_value LayerNorm(napi_env env, napi_callback_info info) {
  return guarded(env, "layerNorm", [&] {
    Args args(env, info, 10);
    const int64_t rows = positive(args, 7, "rows"), cols = positive(args, 8, "cols");
    layerNormForward(args.floats(1, rows * cols), args.floats(2, cols), args.floats(3, cols), args.floats(4, rows * cols),
                     args.floats(5, rows), args.floats(6, rows), rows, cols, static_cast<float>(args.number(9)));
    return undefined(env);
  });
}

// layerNormGrad(heap, dy, x, gamma, mean, rstd, dx, dgamma, dbeta, rows, cols)
napi_value LayerNormGrad(napi_env env, napi_callback_info info) {
  return guarded(env, "layerNormGrad", [&] {
    Args args(env, info, 11);
    const int64_t rows = positive(args, 9, "rows"), cols = positive(args, 10, "cols");
    const int64_t n = rows * cols;
    layerNormBackward(args.floats(1, n), args.floats(2, n), args.floats(3, cols), args.floats(4, rows), args.floats(5, rows),
                      args.floats(6, n), args.floats(7, cols), args.floats(8, cols), rows, cols);
    return undefined(env);
  });
}

// unsortedSegmentSum(heap, x, ids, out, rows, rowSize, segments)
napi_value UnsortedSegmentSum(napi_env env, napi_callback_info info) {
  return guarded(env, "unsortedSegmentSum", [&] {
    Args args(env, info, 7);
    const int64_t rows = args.integer(4), rowSize = args.integer(5), segments = args.integer(6);
    if (rows < 0 || rowSize < 0 || segments < 0) throw ArgumentError("negative size");
    unsortedSegmentSum(args.floats(1, rows * rowSize), args.ints(2, rows), args.floats(3, segments * rowSize), rows, rowSize,
                       segments);
    return undefined(env);
  });
}

// adamw(heap, param, grad, m, v, paramOut, mOut, vOut, n, lr, beta1, beta2, eps, weightDecay, step)
napi_value AdamW(napi_env env, napi_callback_info info) {
  return guarded(env, "adamw", [&] {
    Args args(env, info, 15);
    const int64_t n = positive(args, 8, "size");
    const AdamWHyper hyper{static_cast<float>(args.number(9)),  static_cast<float>(args.number(10)),
                           static_cast<float>(args.number(11)), static_cast<float>(args.number(12)),
                           static_cast<float>(args.number(13)), positive(args, 14, "step")};
    adamwUpdate(args.floats(1, n), args.floats(2, n), args.floats(3, n), args.floats(4, n), args.floats(5, n),
                args.floats(6, n), args.floats(7, n), n, hyper);
    return undefined(env);
  });
}

// Attention shape and mask from (batch, heads, queries, keys, headDim, scale) at `first` and a mask offset (-1: none)
// followed by its 4 strides at `maskIndex`.
AttentionShape readAttention(const Args& args, size_t first, size_t maskIndex) {
  AttentionShape s{};
  s.batch = positive(args, first, "batch");
  s.heads = positive(args, first + 1, "heads");
  s.queries = positive(args, first + 2, "queries");
  s.keys = positive(args, first + 3, "keys");
  s.headDim = positive(args, first + 4, "headDim");
  s.scale = static_cast<float>(args.number(first + 5));
  int64_t span = 1;
  const int64_t extents[4] = {s.batch, s.heads, s.queries, s.keys};
  for (int i = 0; i < 4; i++) {
    s.maskStride[i] = args.integer(maskIndex + 1 + i);
    if (s.maskStride[i] < 0) throw ArgumentError("negative mask stride");
    span += (extents[i] - 1) * s.maskStride[i];
  }
  s.mask = args.optionalFloats(maskIndex, span);
  return s;
}

// attention(heap, batch, heads, queries, keys, headDim, scale, q, k, v, mask, ms0, ms1, ms2, ms3, out, lse, probs)
napi_value Attention(napi_env env, napi_callback_info info) {
  return guarded(env, "attention", [&] {
    Args args(env, info, 18);
    const AttentionShape s = readAttention(args, 1, 10);
    const int64_t rows = s.batch * s.heads * s.queries, keyRows = s.batch * s.heads * s.keys;
    attentionForward(s, args.floats(7, rows * s.headDim), args.floats(8, keyRows * s.headDim), args.floats(9, keyRows * s.headDim),
                     args.floats(15, rows * s.headDim), args.floats(16, rows), args.optionalFloats(17, rows * s.keys));
    return undefined(env);
  });
}

// attentionGrad(heap, batch, heads, queries, keys, headDim, scale, q, k, v, mask, ms0, ms1, ms2, ms3, lse, probs,
//               dout, dprobs, dq, dk, dv)
napi_value AttentionGrad(napi_env env, napi_callback_info info) {
  return guarded(env, "attentionGrad", [&] {
    Args args(env, info, 22);
    const AttentionShape s = readAttention(args, 1, 10);
    const int64_t rows = s.batch * s.heads * s.queries, keyRows = s.batch * s.heads * s.keys;
    attentionBackward(s, args.floats(7, rows * s.headDim), args.floats(8, keyRows * s.headDim), args.floats(9, keyRows * s.headDim),
                      args.floats(15, rows), args.optionalFloats(16, rows * s.keys), args.floats(17, rows * s.headDim),
                      args.optionalFloats(18, rows * s.keys), args.floats(19, rows * s.headDim), args.floats(20, keyRows * s.headDim),
                      args.floats(21, keyRows * s.headDim));
    return undefined(env);
  });
}

// copyColumns(heap, src, srcStride, dst, dstStride, rows, cols): 4-byte elements, strides in elements
napi_value CopyColumns(napi_env env, napi_callback_info info) {
  return guarded(env, "copyColumns", [&] {
    Args args(env, info, 7);
    const int64_t srcStride = args.integer(2), dstStride = args.integer(4), rows = args.integer(5), cols = args.integer(6);
    if (rows <= 0 || cols <= 0 || srcStride < cols || dstStride < cols) throw ArgumentError("bad copy geometry");
    copyColumns(args.floats(1, (rows - 1) * srcStride + cols), srcStride, args.floats(3, (rows - 1) * dstStride + cols), dstStride,
                rows, cols);
    return undefined(env);
  });
}

// sumMiddle(heap, x, out, outer, middle, inner)
napi_value SumMiddle(napi_env env, napi_callback_info info) {
  return guarded(env, "sumMiddle", [&] {
    Args args(env, info, 6);
    const int64_t outer = positive(args, 3, "outer"), middle = positive(args, 4, "middle"), inner = positive(args, 5, "inner");
    sumMiddle(args.floats(1, outer * middle * inner), args.floats(2, outer * inner), outer, middle, inner);
    return undefined(env);
  });
}

// info() -> { threads, blasCore }
napi_value Info(napi_env env, napi_callback_info) {
  napi_value result, threads, core;
  napi_create_object(env, &result);
  napi_create_int32(env, poolThreads(), &threads);
  const char* coreName = openblas_get_corename();
  napi_create_string_utf8(env, coreName ? coreName : "unknown", NAPI_AUTO_LENGTH, &core);
  napi_set_named_property(env, result, "threads", threads);
  napi_set_named_property(env, result, "blasCore", core);
  return result;
}

napi_value Init(napi_env env, napi_value exports) {
  // Every GEMM is split over our own pool; OpenBLAS's threads would spin between calls and steal the cores.
  openblas_set_num_threads(1);
  const napi_property_descriptor functions[] = {
      {"gemm", nullptr, Gemm, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"conv2dForward", nullptr, Conv2dForward, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"conv2dBackpropInput", nullptr, Conv2dBackpropInput, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"conv2dBackpropFilter", nullptr, Conv2dBackpropFilter, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"silu", nullptr, Elementwise<siluForward>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"siluGrad", nullptr, ElementwiseGrad<siluBackward>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"gelu", nullptr, Elementwise<geluForward>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"geluGrad", nullptr, ElementwiseGrad<geluBackward>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"softmax", nullptr, Softmax, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"softmaxGrad", nullptr, SoftmaxGrad, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"groupNorm", nullptr, GroupNorm, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"groupNormGrad", nullptr, GroupNormGrad, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"layerNorm", nullptr, LayerNorm, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"layerNormGrad", nullptr, LayerNormGrad, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"unsortedSegmentSum", nullptr, UnsortedSegmentSum, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"adamw", nullptr, AdamW, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"attention", nullptr, Attention, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"attentionGrad", nullptr, AttentionGrad, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"copyColumns", nullptr, CopyColumns, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"sumMiddle", nullptr, SumMiddle, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"info", nullptr, Info, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof(functions) / sizeof(functions[0]), functions);
  return exports;
}

}  // namespace
}  // namespace mifo

NAPI_MODULE(NODE_GYP_MODULE_NAME, mifo::Init)
