// A tiny thread pool for the core's coarse-grained parallelism (independent parts of a batch,
// the two column halves of a streaming step: a handful of tasks per call).
//
// Waiting is bounded spinning, then sleeping: a worker that finishes a call spins for at most
// kSpin (about 50 us) watching for the next one, so that a stream of calls a few microseconds
// apart does not pay a futex wake-up (5-10 us) each time, and then sleeps on a condition
// variable. Nobody ever waits for a task that has not started: the caller runs task 0 at once
// and then takes any task no worker has claimed yet, so a worker that the OS does not schedule
// (a busy machine) only means the caller does the work itself. This is what keeps the pool from
// collapsing under contention the way spinning OpenMP barriers do.
//
// How work is split never depends on the number of threads (callers choose the tasks from the
// problem size), so results are bit-identical for any thread count.
//
// Lifetime, fork and exit (the pool lives inside a Python process, which may fork and may exit
// while a daemon thread is inside a call):
// * the pool is created on first use and never destroyed: a static destructor at exit would
//   join workers that a daemon thread may still be feeding, or, in a forked child, wait on
//   threads that do not exist there (pthread_cond_destroy hangs). The OS reclaims the threads.
// * a child made by fork() has only the forking thread; the parent's workers and the state of
//   its mutexes (possibly held at the moment of the fork) do not carry over. A pthread_atfork
//   handler gives the child a fresh, empty pool (the old one is abandoned, not touched), so the
//   child computes normally, with workers of its own started on demand.
// Common to all kernel sets (isa.hpp): one pool per process, defined in threads.cpp (compiled
// once, for the baseline instruction set).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <functional>
#include <mutex>

namespace lstm_native {

// Threads a call may use when its object does not say: set_default_num_threads(), 0 = all the
// machine's hardware threads.
std::atomic<int>& default_num_threads_setting();
int default_num_threads();

class ThreadPool {
 public:
  static ThreadPool& instance();
  static int hardware_threads();

  // Runs fn(0..n_tasks-1) on up to `threads` threads (the caller included); returns when all
  // are done and rethrows the first exception a task threw.
  void run(int n_tasks, int threads, const std::function<void(int)>& fn);

  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

 private:
  ThreadPool() = default;
  ~ThreadPool() = default;  // never called: the pool lives until the process ends

  static std::atomic<ThreadPool*>& slot();
  static void after_fork_in_child();
  void ensure_workers(int n);
  void run_task(int i);
  void work_loop();
  void worker(int id);

  std::mutex call_mutex_, m_;
  std::condition_variable cv_work_, cv_done_;
  const std::function<void(int)>* fn_ = nullptr;
  int n_tasks_ = 0, next_ = 0, active_workers_ = 0, n_workers_ = 0;
  std::atomic<int> pending_{0};
  std::atomic<unsigned long> generation_{0};
  std::exception_ptr error_;
};

}  // namespace lstm_native
