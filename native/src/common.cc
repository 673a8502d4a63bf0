#include "common.h"

#include <sched.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

namespace mifo {

Args::Args(napi_env env, napi_callback_info info, size_t expected) : env_(env), argc_(kMaxArgs) {
  if (expected > kMaxArgs) throw ArgumentError("too many arguments declared");
  if (napi_get_cb_info(env, info, &argc_, argv_, nullptr, nullptr) != napi_ok) throw ArgumentError("cannot read arguments");
  if (argc_ != expected) {
    throw ArgumentError("expected " + std::to_string(expected) + " arguments, got " + std::to_string(argc_));
  }
  bool isArrayBuffer = false;
  napi_is_arraybuffer(env, argv_[0], &isArrayBuffer);
  if (!isArrayBuffer) throw ArgumentError("argument 0 must be the wasm heap ArrayBuffer");
  void* data = nullptr;
  if (napi_get_arraybuffer_info(env, argv_[0], &data, &heapBytes_) != napi_ok) throw ArgumentError("cannot read the heap");
  heap_ = static_cast<uint8_t*>(data);
}

int64_t Args::integer(size_t index) const {
  int64_t result = 0;
  if (napi_get_value_int64(env_, argv_[index], &result) != napi_ok) {
    throw ArgumentError("argument " + std::to_string(index) + " must be a number");
  }
  return result;
}

double Args::number(size_t index) const {
  double result = 0;
  if (napi_get_value_double(env_, argv_[index], &result) != napi_ok) {
    throw ArgumentError("argument " + std::to_string(index) + " must be a number");
  }
  return result;
}

bool Args::flag(size_t index) const { return integer(index) != 0; }

void* Args::region(size_t index, size_t bytes) const {
  const int64_t offset = integer(index);
  if (offset < 0 || static_cast<uint64_t>(offset) + bytes > heapBytes_ || offset % 4 != 0) {
    throw ArgumentError("argument " + std::to_string(index) + ": region [" + std::to_string(offset) + ", +" +
                        std::to_string(bytes) + ") is outside the wasm heap or misaligned");
  }
  return heap_ + offset;
}

float* Args::floats(size_t index, size_t count) const { return static_cast<float*>(region(index, count * sizeof(float))); }

int32_t* Args::ints(size_t index, size_t count) const { return static_cast<int32_t*>(region(index, count * sizeof(int32_t))); }

float* Args::optionalFloats(size_t index, size_t count) const {
  return integer(index) < 0 ? nullptr : floats(index, count);
}

namespace {

// Subnormal floats cost ~100x on x86 (microcode assists), and vectorised code computes some lanes it then discards,
// so our kernels run with flush-to-zero and denormals-are-zero. The main thread is V8's, whose arithmetic must stay
// IEEE, so its control word is restored after every call; pool workers keep the mode for life.
constexpr unsigned kFlushDenormals = 0x8040;

void flushDenormalsOnThisThread() {
#if defined(__SSE2__)
  _mm_setcsr(_mm_getcsr() | kFlushDenormals);
#endif
}

class FlushDenormalsScope {
 public:
#if defined(__SSE2__)
  FlushDenormalsScope() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | kFlushDenormals); }
  ~FlushDenormalsScope() { _mm_setcsr(saved_); }

 private:
  unsigned saved_;
#endif
};

int envThreads() {
  const char* text = std::getenv("MIFO_THREADS");
  int threads = text ? std::atoi(text) : 0;
  if (threads <= 0) threads = static_cast<int>(std::thread::hardware_concurrency());
  return threads > 0 ? threads : 1;
}

thread_local bool insidePool = false;
constexpr std::chrono::microseconds kSpin{50};

inline void pause() {
#if defined(__SSE2__)
  _mm_pause();
#endif
}

// Created once and kept for the life of the process; its workers are detached.
class Pool {
 public:
  explicit Pool(int threads) : workers_(threads - 1) {
    for (int i = 1; i < threads; i++) std::thread([this] { workerLoop(); }).detach();
  }
  int threads() const { return workers_ + 1; }

  void run(int64_t chunks, const std::function<void(int64_t)>& fn) {
    if (workers_ == 0 || chunks <= 1 || insidePool) {
      for (int64_t i = 0; i < chunks; i++) fn(i);
      return;
    }
    insidePool = true;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      task_ = &fn;
      chunks_ = chunks;
      next_.store(0);
      busy_.store(workers_);
      generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    work();
    while (busy_.load(std::memory_order_acquire) != 0) sched_yield();
    insidePool = false;
  }

 private:
  void work() {
    for (;;) {
      const int64_t i = next_.fetch_add(1);
      if (i >= chunks_) return;
      (*task_)(i);
    }
  }
  void workerLoop() {
    flushDenormalsOnThisThread();
    insidePool = true;
    uint64_t seen = 0;
    for (;;) {
      // Kernels come in quick succession (a few µs of JS between them): spin briefly before sleeping, so the next
      // one does not pay a futex wake-up.
      const auto spinUntil = std::chrono::steady_clock::now() + kSpin;
      while (generation_.load(std::memory_order_acquire) == seen && std::chrono::steady_clock::now() < spinUntil) pause();
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return generation_.load() != seen; });
        seen = generation_.load();
      }
      work();
      busy_.fetch_sub(1, std::memory_order_release);
    }
  }

  const int workers_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::atomic<uint64_t> generation_{0};
  const std::function<void(int64_t)>* task_ = nullptr;
  int64_t chunks_ = 0;
  std::atomic<int64_t> next_{0};
  std::atomic<int> busy_{0};
};

Pool* pool = nullptr;

}  // namespace

float* scratch(int slot, int64_t floats) {
  struct Buffer {
    std::unique_ptr<float[]> data;
    int64_t size = 0;
  };
  thread_local std::vector<Buffer> buffers;
  if (slot < 0) throw ArgumentError("negative scratch slot");
  if (static_cast<size_t>(slot) >= buffers.size()) buffers.resize(static_cast<size_t>(slot) + 1);
  Buffer& buffer = buffers[static_cast<size_t>(slot)];
  if (buffer.size < floats) {
    buffer.data.reset(new float[static_cast<size_t>(floats)]);
    buffer.size = floats;
  }
  return buffer.data.get();
}

int poolThreads() {
  if (!pool) pool = new Pool(envThreads());
  return pool->threads();
}

void parallelFor(int64_t chunks, const std::function<void(int64_t)>& fn) {
  if (!pool) pool = new Pool(envThreads());
  pool->run(chunks, fn);
}

napi_value guarded(napi_env env, const char* name, const std::function<napi_value()>& body) {
  const FlushDenormalsScope flush;
  try {
    return body();
  } catch (const std::exception& error) {
    napi_throw_error(env, nullptr, (std::string("mifo_native.") + name + ": " + error.what()).c_str());
    return nullptr;
  }
}

}  // namespace mifo
