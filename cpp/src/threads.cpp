// The thread pool (threads.hpp).
#include "lstm_native/threads.hpp"

#include <algorithm>
#include <thread>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#define LSTM_NATIVE_HAVE_ATFORK 1
#endif

namespace lstm_native {

namespace {
constexpr std::chrono::microseconds kSpin{50};

// Spins (with a pause hint) until done() or kSpin has passed; returns done().
template <class F>
bool spin_until(F&& done) {
  const auto until = std::chrono::steady_clock::now() + kSpin;
  for (int i = 1;; ++i) {
    if (done()) return true;
#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
    __builtin_ia32_pause();
#endif
    if ((i & 63) == 0 && std::chrono::steady_clock::now() > until) return done();
  }
}
}  // namespace

std::atomic<int>& default_num_threads_setting() {
  static std::atomic<int> n{0};
  return n;
}

int default_num_threads() {
  const int n = default_num_threads_setting().load();
  return n > 0 ? n : ThreadPool::hardware_threads();
}

ThreadPool& ThreadPool::instance() {
  ThreadPool* p = slot().load(std::memory_order_acquire);
  if (p) return *p;
  static std::once_flag once;
  std::call_once(once, [] {
#ifdef LSTM_NATIVE_HAVE_ATFORK
    pthread_atfork(nullptr, nullptr, &after_fork_in_child);
#endif
    slot().store(new ThreadPool, std::memory_order_release);  // never deleted (see the top)
  });
  return *slot().load(std::memory_order_acquire);
}

int ThreadPool::hardware_threads() {
  const unsigned n = std::thread::hardware_concurrency();
  return n ? static_cast<int>(n) : 1;
}

void ThreadPool::run(int n_tasks, int threads, const std::function<void(int)>& fn) {
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
    next_ = 1;  // task 0 is the caller's, so that it runs on the same core call after call
    pending_.store(n_tasks, std::memory_order_relaxed);
    active_workers_ = threads - 1;
    error_ = nullptr;
    generation_.fetch_add(1, std::memory_order_release);
  }
  cv_work_.notify_all();
  run_task(0);
  work_loop();
  // The remaining tasks are running on workers: spin briefly, then sleep.
  if (!spin_until([&] { return pending_.load(std::memory_order_acquire) == 0; })) {
    std::unique_lock<std::mutex> lk(m_);
    cv_done_.wait(lk, [&] { return pending_.load(std::memory_order_acquire) == 0; });
  }
  std::lock_guard<std::mutex> lk(m_);
  fn_ = nullptr;
  if (error_) std::rethrow_exception(error_);
}

std::atomic<ThreadPool*>& ThreadPool::slot() {
  static std::atomic<ThreadPool*> p{nullptr};
  return p;
}

// In the child of fork(): a fresh pool. The parent's copy is left as it is (its workers do
// not exist here and its mutexes may be held by threads that do not exist either).
void ThreadPool::after_fork_in_child() {
  if (slot().load(std::memory_order_relaxed))
    slot().store(new ThreadPool, std::memory_order_release);
}

void ThreadPool::ensure_workers(int n) {
  // Detached: nothing ever joins them (they end with the process).
  for (; n_workers_ < n; ++n_workers_) {
    const int id = n_workers_;
    std::thread([this, id] { worker(id); }).detach();
  }
}

void ThreadPool::run_task(int i) {
  try {
    (*fn_)(i);
  } catch (...) {
    std::lock_guard<std::mutex> lk(m_);
    if (!error_) error_ = std::current_exception();
  }
  if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    std::lock_guard<std::mutex> lk(m_);  // pairs with the caller's cv_done_ wait
    cv_done_.notify_all();
  }
}

// Takes tasks until none is left.
void ThreadPool::work_loop() {
  for (;;) {
    int i;
    {
      std::lock_guard<std::mutex> lk(m_);
      if (next_ >= n_tasks_) return;
      i = next_++;
    }
    run_task(i);
  }
}

void ThreadPool::worker(int id) {
  unsigned long seen = 0;
  for (;;) {
    spin_until([&] { return generation_.load(std::memory_order_acquire) != seen; });
    {
      std::unique_lock<std::mutex> lk(m_);
      cv_work_.wait(lk, [&] {
        return generation_.load(std::memory_order_relaxed) != seen && id < active_workers_;
      });
      seen = generation_.load(std::memory_order_relaxed);
    }
    work_loop();
  }
}

}  // namespace lstm_native
