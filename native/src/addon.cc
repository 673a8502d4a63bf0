// N-API entry points of mifo_native. Each function takes the wasm heap ArrayBuffer first, then byte offsets of the
// tensors (inputs already filled, outputs already allocated by the tfjs wasm backend) and their sizes.
#include <cblas.h>
#include <node_api.h>

#include <string>

#include "common.h"
#include "linalg.h"

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

napi_value SetThreads(napi_env env, napi_callback_info info) {
  return guarded(env, "setThreads", [&] {
    size_t argc = 1;
    napi_value argv[1];
    napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
    int32_t threads = 0;
    if (argc != 1 || napi_get_value_int32(env, argv[0], &threads) != napi_ok || threads <= 0) {
      throw ArgumentError("setThreads expects a positive integer");
    }
    setMaxBlasThreads(threads);
    setPoolThreads(threads);
    return undefined(env);
  });
}

// info() -> { threads, blasCore, blasConfig }
napi_value Info(napi_env env, napi_callback_info) {
  napi_value result, threads, core, config;
  napi_create_object(env, &result);
  napi_create_int32(env, maxBlasThreads(), &threads);
  const char* coreName = openblas_get_corename();
  const char* configText = openblas_get_config();
  napi_create_string_utf8(env, coreName ? coreName : "unknown", NAPI_AUTO_LENGTH, &core);
  napi_create_string_utf8(env, configText ? configText : "unknown", NAPI_AUTO_LENGTH, &config);
  napi_set_named_property(env, result, "threads", threads);
  napi_set_named_property(env, result, "blasCore", core);
  napi_set_named_property(env, result, "blasConfig", config);
  return result;
}

napi_value Init(napi_env env, napi_value exports) {
  const napi_property_descriptor functions[] = {
      {"gemm", nullptr, Gemm, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"conv2dForward", nullptr, Conv2dForward, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"conv2dBackpropInput", nullptr, Conv2dBackpropInput, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"conv2dBackpropFilter", nullptr, Conv2dBackpropFilter, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"setThreads", nullptr, SetThreads, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"info", nullptr, Info, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof(functions) / sizeof(functions[0]), functions);
  return exports;
}

}  // namespace
}  // namespace mifo

NAPI_MODULE(NODE_GYP_MODULE_NAME, mifo::Init)
