#include "bin/server/batcher.hpp"

#include <algorithm>

namespace ne {
namespace server {

void Job::complete(int st, std::string err, std::vector<HostTensor> outs) {
  {
    std::lock_guard<std::mutex> g(mu_);
    if (done_) return;
    status = st;
    error = std::move(err);
    outputs = std::move(outs);
    done_ = true;
  }
  cv_.notify_all();
}

void Job::wait() {
  std::unique_lock<std::mutex> lk(mu_);
  cv_.wait(lk, [&] { return done_; });
}

bool Job::wait_until(Clock::time_point t) {
  std::unique_lock<std::mutex> lk(mu_);
  return cv_.wait_until(lk, t, [&] { return done_; });
}

bool Job::done() {
  std::lock_guard<std::mutex> g(mu_);
  return done_;
}

bool Batcher::submit(JobPtr j) {
  {
    std::lock_guard<std::mutex> g(mu_);
    if (closed_ || q_.size() >= max_queue_) return false;
    q_.push_back(std::move(j));
  }
  cv_.notify_one();
  return true;
}

std::vector<JobPtr> Batcher::next(Clock::time_point until) {
  std::unique_lock<std::mutex> lk(mu_);
  for (;;) {
    // Jobs already answered (their waiter gave up) are not run.
    for (size_t i = q_.size(); i-- > 0;)
      if (q_[i]->done()) q_.erase(q_.begin() + std::ptrdiff_t(i));
    if (q_.empty()) {
      if (closed_ || Clock::now() >= until) return {};
      cv_.wait_until(lk, until);
      continue;
    }
    const JobPtr& head = q_.front();
    std::vector<size_t> pick{0};
    int64_t rows = head->rows;
    bool full = !head->batchable || rows >= max_batch_;
    for (size_t i = 1; !full && i < q_.size(); ++i) {
      const Job& j = *q_[i];
      if (!j.batchable || j.model != head->model || j.key != head->key) continue;
      if (rows + j.rows > max_batch_) {
        full = true;  // the next compatible job does not fit: waiting cannot grow this batch
        break;
      }
      pick.push_back(i);
      rows += j.rows;
      full = rows >= max_batch_;
    }
    const auto deadline = head->arrival + delay_;
    if (full || closed_ || delay_.count() == 0 || Clock::now() >= deadline) {
      std::vector<JobPtr> batch;
      for (size_t i : pick) batch.push_back(q_[i]);
      for (size_t k = pick.size(); k-- > 0;) q_.erase(q_.begin() + std::ptrdiff_t(pick[k]));
      if (!q_.empty()) cv_.notify_one();
      return batch;
    }
    if (Clock::now() >= until) return {};
    cv_.wait_until(lk, std::min(deadline, until));
  }
}

bool Batcher::finished() const {
  std::lock_guard<std::mutex> g(mu_);
  return closed_ && q_.empty();
}

void Batcher::close() {
  {
    std::lock_guard<std::mutex> g(mu_);
    closed_ = true;
  }
  cv_.notify_all();
}

size_t Batcher::size() const {
  std::lock_guard<std::mutex> g(mu_);
  return q_.size();
}

}  // namespace server
}  // namespace ne
