// A tiny blocking thread pool for the core's coarse-grained parallelism (independent parts of a
// batch, a handful of tasks per call). Workers sleep on a condition variable between calls:
// no spin-waiting, so a busy machine slows the pool down gracefully instead of collapsing it.
//
// How work is split never depends on the number of threads (callers choose the tasks from the
// problem size), so results are bit-identical for any thread count.
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace lstm_native {

// Threads a call may use when its object does not say: set_default_num_threads(), 0 = all the
// machine's hardware threads.
inline std::atomic<int>& default_num_threads_setting() {
  static std::atomic<int> n{0};
  return n;
}

class ThreadPool;
int default_num_threads();

class ThreadPool {
 public:
  static ThreadPool& instance() {
    static ThreadPool pool;
    return pool;
  }

  static int hardware_threads() {
    const unsigned n = std::thread::hardware_concurrency();
    return n ? static_cast<int>(n) : 1;
  }

  // Runs fn(0..n_tasks-1) on up to `threads` threads (the caller included); returns when all
  // are done and rethrows the first exception a task threw.
  void run(int n_tasks, int threads, const std::function<void(int)>& fn) {
    threads = std::max(1, std::min(threads, n_tasks));
    if (threads == 1) {
      for (int i = 0; i < n_tasks; ++i) fn(i);
      return;
    }
    // One parallel call at a time; a concurrent caller runs its tasks on its own thread
    // instead of waiting (the split does not depend on threads, so neither do its results).
    std::unique_lock<std::mutex> call(call_mutex_, std::try_to_lock);
    if (!call.owns_lock()) {
      for (int i = 0; i < n_tasks; ++i) fn(i);
      return;
    }
    ensure_workers(threads - 1);
    {
      std::lock_guard<std::mutex> lk(m_);
      fn_ = &fn;
      n_tasks_ = n_tasks;
      next_ = 0;
      pending_ = n_tasks;
      active_workers_ = threads - 1;
      error_ = nullptr;
      ++generation_;
    }
    cv_work_.notify_all();
    work_loop();
    std::unique_lock<std::mutex> lk(m_);
    cv_done_.wait(lk, [&] { return pending_ == 0; });
    fn_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

  ~ThreadPool() {
    {
      std::lock_guard<std::mutex> lk(m_);
      stop_ = true;
    }
    cv_work_.notify_all();
    for (auto& t : workers_) t.join();
  }

 private:
  ThreadPool() = default;

  void ensure_workers(int n) {
    while (static_cast<int>(workers_.size()) < n) {
      const int id = static_cast<int>(workers_.size());
      workers_.emplace_back([this, id] { worker(id); });
    }
  }

  // Takes tasks until none is left.
  void work_loop() {
    for (;;) {
      int i;
      {
        std::lock_guard<std::mutex> lk(m_);
        if (next_ >= n_tasks_) return;
        i = next_++;
      }
      try {
        (*fn_)(i);
      } catch (...) {
        std::lock_guard<std::mutex> lk(m_);
        if (!error_) error_ = std::current_exception();
      }
      std::lock_guard<std::mutex> lk(m_);
      if (--pending_ == 0) cv_done_.notify_all();
    }
  }

  void worker(int id) {
    unsigned long seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> lk(m_);
        cv_work_.wait(lk, [&] { return stop_ || (generation_ != seen && id < active_workers_); });
        if (stop_) return;
        seen = generation_;
      }
      work_loop();
    }
  }

  std::mutex call_mutex_, m_;
  std::condition_variable cv_work_, cv_done_;
  std::vector<std::thread> workers_;
  const std::function<void(int)>* fn_ = nullptr;
  int n_tasks_ = 0, next_ = 0, pending_ = 0, active_workers_ = 0;
  unsigned long generation_ = 0;
  std::exception_ptr error_;
  bool stop_ = false;
};

inline int default_num_threads() {
  const int n = default_num_threads_setting().load();
  return n > 0 ? n : ThreadPool::hardware_threads();
}

}  // namespace lstm_native
