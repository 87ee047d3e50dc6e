// Dynamic batching for neural_engine_server: a bounded FIFO of infer jobs; an idle instance
// takes the oldest job and, with it, every later job of the same model and the same input
// shapes past the batch axis (dim 0) that fits within max_batch rows, waiting up to max_delay
// from the oldest job's arrival for more to come while the batch is not full.
#pragma once
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "executor/executor.hpp"

namespace ne {
namespace server {

using Clock = std::chrono::steady_clock;

// One infer request on its way through the queue to a worker and back.
struct Job {
  int model = 0;
  std::string key;         // dtypes and shapes past dim 0, in model input order
  bool batchable = true;   // false: runs alone
  int64_t rows = 1;        // dim 0 of its inputs
  std::vector<HostTensor> inputs;  // in model input order
  Clock::time_point arrival, dispatched;

  // Result, set once by complete(); wait() blocks until then.
  int status = 0;  // HTTP status
  std::string error;
  std::vector<HostTensor> outputs;  // in model output order
  int batch_rows = 0;               // rows of the batch it ran in
  bool worker_died = false;         // failed because its worker died running it

  // The first complete() sets the result; later ones are ignored.
  void complete(int st, std::string err, std::vector<HostTensor> outs = {});
  void wait();
  bool wait_until(Clock::time_point t);  // false: not complete by then
  bool done();

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
};
using JobPtr = std::shared_ptr<Job>;

class Batcher {
 public:
  Batcher(int max_batch, int64_t max_delay_us, size_t max_queue)
      : max_batch_(max_batch), delay_(std::chrono::microseconds(max_delay_us)), max_queue_(max_queue) {}
  // Queues the job; false (and nothing queued) when max_queue jobs are waiting or it is closed.
  bool submit(JobPtr j);
  // Blocks until a batch is ready (never empty), or until `until`, or while the batcher is closed
  // and empty; the last two return {}.
  std::vector<JobPtr> next(Clock::time_point until);
  bool finished() const;  // closed and empty
  // Stops accepting; next() hands out what is queued without waiting for the delay, then {}.
  void close();
  size_t size() const;

 private:
  const int64_t max_batch_;
  const std::chrono::microseconds delay_;
  const size_t max_queue_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<JobPtr> q_;
  bool closed_ = false;
};

}  // namespace server
}  // namespace ne
