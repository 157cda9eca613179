#pragma once
// The one executor of check programs, for every verb that runs them: jobs go
// in, each with its own time limit; verdicts come out as each program
// finishes. It serves a fixed list (score, selftest, time-limit calibration:
// run_jobs) and a stream fed while the model is still generating (run:
// Executor::submit from the generation callback), so execution overlaps
// generation.
//
// One thread per sandbox worker takes the next queued job and runs it on the
// pool. After the first failure (an exception from the sandbox or from the
// verdict callback) no further job is started; finish() rethrows it.
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "reports/reports.hpp"
#include "runtime/runtime.hpp"  // QE_CHECK
#include "sandbox/sandbox.hpp"

namespace quanteval::harness {

struct ProgramJob {
  std::string task_id;
  int sample_index = 0;
  std::string program;      // Python source, run as is
  double wall_seconds = 0;  // this program's time limit (execution/time_limits.hpp); 0 = the pool's
  std::string mode = {};    // copied into the verdict ("" outside `run`)
};

class Executor {
 public:
  // index: the job's position in submission order (0, 1, 2, ...).
  using OnVerdict = std::function<void(std::size_t index, const reports::SampleVerdict& verdict)>;

  // Starts the worker threads. on_verdict is called once per job as it
  // finishes, from those threads, never two calls at the same time.
  Executor(sandbox::Pool& pool, OnVerdict on_verdict);
  // Without finish() (unwinding after an error elsewhere): jobs not started
  // yet are dropped, running ones end, nothing is thrown.
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  // Queues a job and returns its index. Thread-safe. Throws the first failure
  // once there is one, so a producer stops feeding a broken executor.
  std::size_t submit(ProgramJob job);

  // Waits until every queued job has been run and delivered, stops the
  // threads, and rethrows the first failure. Call it once; submit() may not
  // be called afterwards.
  void finish();

 private:
  void serve();
  void stop_and_join();

  sandbox::Pool& pool_;
  OnVerdict on_verdict_;
  std::mutex mutex_;  // guards the queue, closed_, failure_, next_index_
  std::condition_variable ready_;
  std::deque<std::pair<std::size_t, ProgramJob>> queue_;
  std::size_t next_index_ = 0;
  bool closed_ = false;
  std::exception_ptr failure_;
  std::mutex deliver_mutex_;  // serialises on_verdict
  std::vector<std::thread> threads_;
};

// Runs a fixed list of jobs; on_verdict(index, verdict) is called as each
// finishes (one call at a time). Returns the verdicts in input order.
std::vector<reports::SampleVerdict> run_jobs(
    sandbox::Pool& pool, const std::vector<ProgramJob>& jobs,
    const std::function<void(std::size_t, const reports::SampleVerdict&)>& on_verdict = {});

}  // namespace quanteval::harness
