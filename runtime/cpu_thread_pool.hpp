#pragma once
// A small persistent thread pool for the CPU kernels. The caller owns it (no
// global pool) and passes it to every forward(); workers are created once and
// sleep between calls, so a GEMV never pays for thread creation.
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace quanteval::runtime {

class ThreadPool {
 public:
  // `num_threads` counts the calling thread, which always does a share of the
  // work: ThreadPool(1) starts no workers. 0 = std::thread::hardware_concurrency().
  explicit ThreadPool(int num_threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  // Splits [0, count) into size() contiguous ranges (some may be empty) and runs
  // task(begin, end) on each, the first on the calling thread. Returns when all
  // are done; rethrows the first exception a task threw. Not reentrant: a task
  // must not call parallel_for on the same pool (throws std::logic_error).
  void parallel_for(int64_t count, const std::function<void(int64_t begin, int64_t end)>& task);

 private:
  void worker_loop(int index);
  void run_share(int index);

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable start_;
  std::condition_variable done_;
  uint64_t generation_ = 0;  // bumped once per parallel_for; workers wait for a change
  int pending_ = 0;          // worker shares not yet finished in this generation
  bool stopping_ = false;
  bool busy_ = false;
  int64_t count_ = 0;
  const std::function<void(int64_t, int64_t)>* task_ = nullptr;
  std::exception_ptr first_error_;
};

}  // namespace quanteval::runtime
