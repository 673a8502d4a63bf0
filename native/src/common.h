// Shared plumbing of the mifo_native addon: reading N-API arguments that point into the tfjs wasm heap, a tiny thread
// pool for our own kernels, and the per-call choice of OpenBLAS threads.
#pragma once

#include <node_api.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>

namespace mifo {

// Every kernel receives the wasm heap (an ArrayBuffer) plus byte offsets and sizes of the tensors it touches.
// Offsets are checked against the heap so a bad call throws instead of corrupting memory.
class Args {
 public:
  Args(napi_env env, napi_callback_info info, size_t expected);

  int64_t integer(size_t index) const;
  double number(size_t index) const;
  bool flag(size_t index) const;
  float* floats(size_t index, size_t count) const;
  int32_t* ints(size_t index, size_t count) const;
  // a float region that may be absent (offset -1)
  float* optionalFloats(size_t index, size_t count) const;
  napi_value value(size_t index) const { return argv_[index]; }

 private:
  void* region(size_t index, size_t bytes) const;

  napi_env env_;
  static constexpr size_t kMaxArgs = 24;
  napi_value argv_[kMaxArgs];
  size_t argc_;
  uint8_t* heap_ = nullptr;
  size_t heapBytes_ = 0;
};

class ArgumentError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Runs fn(chunk) for chunk in [0, chunks) on the calling thread plus the pool's workers. All parallelism of the addon
// goes through this one pool (OpenBLAS itself runs single-threaded: its own spinning threads would compete with ours
// for the 2 cores). A call from inside a pool task runs serially.
void parallelFor(int64_t chunks, const std::function<void(int64_t)>& fn);
int poolThreads();

// Uninitialised per-thread scratch of at least `floats` floats, reused across calls (zeroing or freeing a fresh
// buffer per call costs more than small kernels themselves). Slots give a thread several live buffers at once; a
// slot's buffer is valid until the same thread asks for that slot again.
float* scratch(int slot, int64_t floats);

// Work below this many floats touched runs on the calling thread: waking a worker costs more than it saves.
constexpr int64_t kParallelWork = int64_t{1} << 15;

// fn(task) for task in [0, tasks), in parallel when tasks · costPerTask is large enough.
template <typename Fn>
void forEachTask(int64_t tasks, int64_t costPerTask, Fn fn) {
  if (poolThreads() == 1 || tasks < 2 || tasks * costPerTask < kParallelWork) {
    for (int64_t t = 0; t < tasks; t++) fn(t);
    return;
  }
  parallelFor(tasks, fn);
}

// fn(begin, end) over [0, n) split into a few ranges per thread, in parallel when n · costPerItem is large enough.
template <typename Fn>
void forEachRange(int64_t n, int64_t costPerItem, Fn fn) {
  const int64_t threads = poolThreads();
  if (threads == 1 || n < 2 || n * costPerItem < kParallelWork) {
    fn(int64_t{0}, n);
    return;
  }
  const int64_t chunks = std::min<int64_t>(n, threads * 4);
  const int64_t per = (n + chunks - 1) / chunks;
  parallelFor(chunks, [&](int64_t c) {
    const int64_t begin = c * per;
    const int64_t end = std::min(n, begin + per);
    if (begin < end) fn(begin, end);
  });
}


// Wraps a kernel so C++ exceptions become JS errors.
napi_value guarded(napi_env env, const char* name, const std::function<napi_value()>& body);

}  // namespace mifo
