// A fixed set of threads for the engine facade's blocking calls, with a
// bounded queue: when it is full a call is refused (the API answers 429)
// instead of piling up in memory.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace jobsmith::server {

class call_pool {
 public:
  call_pool(std::size_t threads, std::size_t max_queued) : max_queued_(max_queued) {
    for (std::size_t i = 0; i < threads; ++i) threads_.emplace_back([this] { run(); });
  }
  ~call_pool() { stop(); }
  call_pool(const call_pool&) = delete;
  call_pool& operator=(const call_pool&) = delete;

  /// Queues `task`; false when the queue is full or the pool stopped.
  bool try_post(std::function<void()> task) { return post(std::move(task), false); }
  /// Queues `task` beyond the bound: for work already admitted (the second
  /// half of an asynchronous call). False only after stop().
  bool force_post(std::function<void()> task) { return post(std::move(task), true); }

  /// Runs what is queued, then joins the threads. Idempotent.
  void stop() {
    {
      std::lock_guard<std::mutex> guard{mu_};
      if (stopping_) return;
      stopping_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
    threads_.clear();
  }

  std::size_t queued() const {
    std::lock_guard<std::mutex> guard{mu_};
    return tasks_.size();
  }

 private:
  bool post(std::function<void()> task, bool beyond_bound) {
    {
      std::lock_guard<std::mutex> guard{mu_};
      if (stopping_) return false;
      if (!beyond_bound && tasks_.size() >= max_queued_) return false;
      tasks_.push_back(std::move(task));
    }
    cv_.notify_one();
    return true;
  }

  void run() {
    for (;;) {
      std::function<void()> task;
      {
        std::unique_lock<std::mutex> lock{mu_};
        cv_.wait(lock, [&] { return stopping_ || !tasks_.empty(); });
        if (tasks_.empty()) return;  // stopping and drained
        task = std::move(tasks_.front());
        tasks_.pop_front();
      }
      task();
    }
  }

  const std::size_t max_queued_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace jobsmith::server
