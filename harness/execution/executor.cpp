#include "harness/execution/executor.hpp"

#include "harness/execution/scoring.hpp"

#include <algorithm>

namespace quanteval::harness {

Executor::Executor(sandbox::Pool& pool, OnVerdict on_verdict) : pool_(pool), on_verdict_(std::move(on_verdict)) {
  const int workers = std::max(1, pool_.config().workers);
  for (int w = 0; w < workers; ++w) threads_.emplace_back([this] { serve(); });
}

Executor::~Executor() {
  {
    std::lock_guard lock(mutex_);
    queue_.clear();
  }
  stop_and_join();
}

std::size_t Executor::submit(ProgramJob job) {
  std::size_t index = 0;
  {
    std::lock_guard lock(mutex_);
    QE_CHECK(!closed_, "Executor::submit after finish()");
    if (failure_) std::rethrow_exception(failure_);
    index = next_index_++;
    queue_.emplace_back(index, std::move(job));
  }
  ready_.notify_one();
  return index;
}

void Executor::finish() {
  stop_and_join();
  std::lock_guard lock(mutex_);
  if (failure_) std::rethrow_exception(failure_);
}

void Executor::stop_and_join() {
  {
    std::lock_guard lock(mutex_);
    closed_ = true;
  }
  ready_.notify_all();
  for (auto& thread : threads_)
    if (thread.joinable()) thread.join();
}

void Executor::serve() {
  for (;;) {
    std::pair<std::size_t, ProgramJob> item;
    {
      std::unique_lock lock(mutex_);
      ready_.wait(lock, [&] { return !queue_.empty() || closed_; });
      if (queue_.empty()) return;
      item = std::move(queue_.front());
      queue_.pop_front();
      if (failure_) continue;  // after a failure nothing new starts; the queue just drains
    }
    const auto& [index, job] = item;
    try {
      sandbox::Limits limits = pool_.config().limits;
      if (job.wall_seconds > 0) limits.wall_seconds = job.wall_seconds;
      const sandbox::Result result = pool_.run(job.program, &limits);
      reports::SampleVerdict verdict = to_verdict(job.task_id, job.sample_index, result, limits);
      verdict.mode = job.mode;
      std::lock_guard deliver(deliver_mutex_);
      if (on_verdict_) on_verdict_(index, verdict);
    } catch (...) {
      std::lock_guard lock(mutex_);
      if (!failure_) failure_ = std::current_exception();
    }
  }
}

std::vector<reports::SampleVerdict> run_jobs(
    sandbox::Pool& pool, const std::vector<ProgramJob>& jobs,
    const std::function<void(std::size_t, const reports::SampleVerdict&)>& on_verdict) {
  std::vector<reports::SampleVerdict> verdicts(jobs.size());
  Executor executor(pool, [&](std::size_t index, const reports::SampleVerdict& verdict) {
    verdicts[index] = verdict;
    if (on_verdict) on_verdict(index, verdict);
  });
  for (const auto& job : jobs) executor.submit(job);
  executor.finish();
  return verdicts;
}

}  // namespace quanteval::harness
