#include "runtime/kernels/cpu/thread_pool.hpp"
#include "runtime/base/check.hpp"
#include "runtime/platform/float_modes.hpp"

#include <algorithm>
#include <chrono>
#include <stdexcept>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#endif

namespace quanteval::runtime {
namespace {

// How long an idle worker (or the caller waiting for workers) polls before sleeping
// on the condition variable. Decode calls the pool every ~20-200 us (one per linear
// layer), so 100 us of polling bridges the gaps within a token without a futex
// wake-up (~10-50 us on this kind of VM), yet an idle pool stops burning a core at once.
constexpr auto kSpin = std::chrono::microseconds(100);

inline void cpu_relax() {
#if defined(__x86_64__) || defined(_M_X64)
  _mm_pause();
#else
  std::this_thread::yield();
#endif
}

// Polls `ready` until it holds or kSpin has passed; returns whether it holds.
template <typename Ready>
bool spin_until(Ready&& ready) {
  const auto deadline = std::chrono::steady_clock::now() + kSpin;
  for (int i = 0;; ++i) {
    if (ready()) return true;
    if ((i & 63) == 63 && std::chrono::steady_clock::now() >= deadline) return false;
    cpu_relax();
  }
}

}  // namespace

ThreadPool::ThreadPool(int num_threads) {
  if (num_threads <= 0) num_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  shares_ = std::make_unique<std::atomic<uint64_t>[]>(static_cast<size_t>(num_threads));
  workers_.reserve(static_cast<size_t>(num_threads - 1));
  for (int i = 1; i < num_threads; ++i) workers_.emplace_back([this] { worker_loop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    generation_.fetch_add(1, std::memory_order_release);
  }
  start_.notify_all();
  for (auto& worker : workers_) worker.join();
}

void ThreadPool::run_task(int64_t begin, int64_t end) {
  try {
    (*task_)(begin, end);
  } catch (...) {
    std::lock_guard lock(mutex_);
    if (!first_error_) first_error_ = std::current_exception();
  }
}

void ThreadPool::work(int slot) {
  if (split_ == Split::streams) {
    work_streams(slot);
    return;
  }
  for (;;) {
    const int64_t piece = next_piece_.fetch_add(1, std::memory_order_relaxed);
    if (piece >= pieces_) return;
    const int64_t begin = grain_ ? piece * grain_ : count_ * piece / pieces_;
    const int64_t end = grain_ ? std::min(count_, begin + grain_) : count_ * (piece + 1) / pieces_;
    if (begin >= end) continue;
    run_task(begin, end);
  }
}

void ThreadPool::work_streams(int slot) {
  auto front = [](uint64_t share) { return static_cast<int64_t>(share >> 32); };
  auto back = [](uint64_t share) { return static_cast<int64_t>(share & 0xffffffffu); };
  auto pack = [](int64_t f, int64_t b) { return static_cast<uint64_t>(f) << 32 | static_cast<uint64_t>(b); };
  // Half of what is left, rounded up to whole min_run_, at most grain_: while another
  // thread eats the same share from the other end, each takes half of the rest, so both
  // finish within about a min_run of each other. With fixed grain-sized runs the last two ran up to a grain apart:
  // 1/16 of a call, e.g. 0.4 ms of a 7 ms lm_head GEMV, with the other core idle.
  auto run_length = [this](int64_t left) {
    const int64_t half = ((left + 1) / 2 + min_run_ - 1) / min_run_ * min_run_;
    return std::min(left, std::min(half, grain_));
  };
  // Own share, front to back.
  std::atomic<uint64_t>& own = shares_[static_cast<size_t>(slot)];
  for (uint64_t share = own.load(std::memory_order_relaxed);;) {
    const int64_t begin = front(share), end = begin + run_length(back(share) - begin);
    if (begin >= end) break;
    if (own.compare_exchange_weak(share, pack(end, back(share)), std::memory_order_relaxed)) {
      run_task(begin, end);
      share = own.load(std::memory_order_relaxed);
    }
  }
  // Then runs from the back of whichever share has the most left.
  for (;;) {
    int victim = -1;
    int64_t most = 0;
    for (int i = 0; i < size(); ++i) {
      const uint64_t share = shares_[static_cast<size_t>(i)].load(std::memory_order_relaxed);
      if (back(share) - front(share) > most) {
        most = back(share) - front(share);
        victim = i;
      }
    }
    if (victim < 0) return;
    std::atomic<uint64_t>& other = shares_[static_cast<size_t>(victim)];
    uint64_t share = other.load(std::memory_order_relaxed);
    const int64_t end = back(share), begin = end - run_length(end - front(share));
    if (begin >= end) continue;
    if (other.compare_exchange_weak(share, pack(front(share), begin), std::memory_order_relaxed)) run_task(begin, end);
  }
}

void ThreadPool::worker_loop() {
  flush_subnormals_on_this_thread();  // as the calling thread does during run()
  uint64_t seen = 0;
  for (;;) {
    // Poll for the next call first; sleep only when none comes soon.
    if (!spin_until([&] { return generation_.load(std::memory_order_acquire) != seen; })) {
      std::unique_lock lock(mutex_);
      start_.wait(lock, [&] { return generation_.load(std::memory_order_relaxed) != seen; });
    }
    bool joined = false;
    int slot = 0;
    {
      std::lock_guard lock(mutex_);
      if (stopping_) return;
      seen = generation_.load(std::memory_order_relaxed);
      // A call whose pieces were all finished before this worker woke is closed: skip it.
      if (open_) {
        active_.fetch_add(1, std::memory_order_relaxed);
        joined = true;
        slot = next_slot_++;
      }
    }
    if (!joined) continue;
    work(slot);
    std::lock_guard lock(mutex_);
    if (active_.fetch_sub(1, std::memory_order_release) == 1) done_.notify_one();
  }
}

void ThreadPool::run(Split split, int64_t pieces, int64_t count, int64_t grain, int64_t min_run,
                     const std::function<void(int64_t, int64_t)>& task) {
  const FlushSubnormals flush;  // the workers' mode: a piece's bits do not depend on its thread
  {
    std::lock_guard lock(mutex_);
    QE_CHECK(!busy_, "ThreadPool::parallel_for called while the pool is already running a task");
    busy_ = true;
    task_ = &task;
    pieces_ = pieces;
    count_ = count;
    grain_ = grain;
    min_run_ = min_run;
    split_ = split;
    next_piece_.store(0, std::memory_order_relaxed);
    next_slot_ = 1;
    if (split == Split::streams) {
      for (int i = 0; i < size(); ++i)
        shares_[static_cast<size_t>(i)].store(static_cast<uint64_t>(count * i / size()) << 32 |
                                                  static_cast<uint64_t>(count * (i + 1) / size()),
                                              std::memory_order_relaxed);
    }
    first_error_ = nullptr;
    open_ = !workers_.empty() && pieces > 1;
    if (open_) generation_.fetch_add(1, std::memory_order_release);
  }
  if (pieces > 1 && !workers_.empty()) start_.notify_all();
  work(0);
  std::exception_ptr error;
  {
    std::lock_guard lock(mutex_);
    open_ = false;  // every piece is claimed: late workers must not join
  }
  // Workers that joined may still be finishing their last piece.
  spin_until([&] { return active_.load(std::memory_order_acquire) == 0; });
  {
    std::unique_lock lock(mutex_);
    done_.wait(lock, [&] { return active_.load(std::memory_order_acquire) == 0; });
    busy_ = false;
    task_ = nullptr;
    error = first_error_;
  }
  if (error) std::rethrow_exception(error);
}

void ThreadPool::parallel_for(int64_t count, const std::function<void(int64_t, int64_t)>& task) {
  if (count <= 0) return;
  run(Split::pieces, size(), count, 0, 1, task);
}

void ThreadPool::parallel_chunks(int64_t count, int64_t grain, const std::function<void(int64_t, int64_t)>& task) {
  if (count <= 0) return;
  if (grain < 1) throw std::invalid_argument("ThreadPool::parallel_chunks: grain must be >= 1");
  run(Split::pieces, (count + grain - 1) / grain, count, grain, 1, task);
}

void ThreadPool::parallel_streams(int64_t count, int64_t grain, const std::function<void(int64_t, int64_t)>& task,
                                  int64_t min_run) {
  if (count <= 0) return;
  if (grain < 1) throw std::invalid_argument("ThreadPool::parallel_streams: grain must be >= 1");
  if (min_run < 1 || min_run > grain)
    throw std::invalid_argument("ThreadPool::parallel_streams: min_run must be in [1, grain]");
  if (count >= (int64_t{1} << 31)) throw std::invalid_argument("ThreadPool::parallel_streams: count must be < 2^31");
  run(Split::streams, (count + grain - 1) / grain, count, grain, min_run, task);
}

}  // namespace quanteval::runtime
