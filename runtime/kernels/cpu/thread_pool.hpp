#pragma once
// A small persistent thread pool for the CPU kernels. The caller owns it (no
// global pool) and passes it to every forward(); workers are created once, spin
// briefly between calls and then sleep, so a GEMV pays neither thread creation
// nor (during a burst of calls, as in decoding) a futex wake-up.
//
// Work is *claimed*, not assigned: each call publishes its pieces and whichever
// thread is free takes the next one (the calling thread always takes part). On a
// machine shared with other jobs a worker can be descheduled for milliseconds; with
// a fixed assignment the call would wait for it, here the others take its share.
// A worker that wakes after the calling thread has finished everything simply
// skips that call. Which thread runs a piece never changes what the piece computes.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
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

  // Splits [0, count) into size() contiguous ranges (range i = [count*i/size,
  // count*(i+1)/size), some may be empty) and runs task(begin, end) once on each,
  // on whichever threads are free. Returns when all are done; rethrows the first
  // exception a task threw. Not reentrant: a task must not call parallel_for on the
  // same pool (throws std::logic_error).
  void parallel_for(int64_t count, const std::function<void(int64_t begin, int64_t end)>& task);

  // Runs task(begin, end) on consecutive ranges of `grain` items (the last shorter)
  // covering [0, count), each exactly once, claimed in order by whichever thread is
  // free: load balancing for uniform work on cores that other jobs may take. Same
  // error and reentry rules as parallel_for.
  void parallel_chunks(int64_t count, int64_t grain, const std::function<void(int64_t begin, int64_t end)>& task);

  // Like parallel_chunks (every item exactly once, runs of at most `grain` items, claimed
  // by whichever thread is free), but each thread streams: [0, count) starts as size()
  // contiguous shares (parallel_for's split), each thread that joins the call takes runs
  // from the front of its own share in order, and one whose share is done takes runs from
  // the back of the share with the most left. So a thread's runs are consecutive (a GEMV's
  // weights stream through one core in address order, its prefetches running on into its
  // next run) until the end, where the shares of slow or absent threads are split up.
  // Runs shrink at the end of a share: a run is half of what the share has left, rounded up
  // to a multiple of `min_run`, at most `grain` (or all that is left, if less), so the
  // threads' last runs end close together instead of up to a whole grain apart.
  // count < 2^31. Same error and reentry rules as parallel_for.
  void parallel_streams(int64_t count, int64_t grain, const std::function<void(int64_t begin, int64_t end)>& task,
                        int64_t min_run = 1);

 private:
  enum class Split { pieces, streams };
  void worker_loop();
  void run(Split split, int64_t pieces, int64_t count, int64_t grain, int64_t min_run,
           const std::function<void(int64_t, int64_t)>& task);
  void work(int slot);  // claims and runs pieces of the current call until none are left
  void work_streams(int slot);
  void run_task(int64_t begin, int64_t end);  // task_(begin, end), the first exception kept

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable start_;
  std::condition_variable done_;
  // Published under mutex_; generation_ is also read without it by spinning workers.
  std::atomic<uint64_t> generation_{0};
  bool open_ = false;  // the current call still accepts workers
  // Workers that joined the current call and have not left it (changed under mutex_,
  // polled without it by the calling thread).
  std::atomic<int> active_{0};
  bool stopping_ = false;
  bool busy_ = false;
  int64_t pieces_ = 0;  // pieces in the current call
  int64_t count_ = 0;
  int64_t grain_ = 0;  // 0: piece i = the i-th of `pieces_` even shares; else `grain_` items
  int64_t min_run_ = 1;  // Split::streams: the shortest run while more is left
  std::atomic<int64_t> next_piece_{0};
  Split split_ = Split::pieces;
  // Split::streams: per slot (the caller 0, workers 1.. in the order they join) the part of
  // its share not yet claimed, packed as front << 32 | back.
  std::unique_ptr<std::atomic<uint64_t>[]> shares_;
  int next_slot_ = 1;  // under mutex_
  const std::function<void(int64_t, int64_t)>* task_ = nullptr;
  std::exception_ptr first_error_;
};

}  // namespace quanteval::runtime
