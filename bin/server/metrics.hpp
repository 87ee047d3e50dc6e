// Prometheus text-format metrics of neural_engine_server (GET /metrics): counters and
// histograms with fixed buckets, labelled by model or instance; thread-safe.
#pragma once
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace ne {
namespace server {

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}
  void observe(double v);
  // Appends `name_bucket{labels,le=..}`, `name_sum{labels}`, `name_count{labels}` lines.
  void render(std::string& out, const std::string& name, const std::string& labels) const;

 private:
  mutable std::mutex mu_;
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;
  double sum_ = 0;
  uint64_t count_ = 0;
};

struct ModelMetrics {
  explicit ModelMetrics(int max_batch);
  std::atomic<uint64_t> requests{0};         // infer requests received for the model
  std::atomic<uint64_t> success{0};          // answered 200
  std::atomic<uint64_t> fail_client{0};      // 4xx: bad request (decode, checks, engine error)
  std::atomic<uint64_t> fail_overload{0};    // 503: queue full or draining
  std::atomic<uint64_t> fail_worker{0};      // 500/503: the worker died or hung while running it
  std::atomic<uint64_t> fail_internal{0};    // 500: other server errors
  Histogram latency;                         // seconds, request received -> response ready
  Histogram queue_time;                      // seconds, queued -> sent to a worker
  Histogram batch_size;                      // rows per batch run (observed per batch)
  Histogram batch_requests;                  // requests per batch run
};

struct InstanceMetrics {
  std::atomic<uint64_t> batches{0};
  std::atomic<uint64_t> busy_ns{0};     // time with a batch in the worker
  std::atomic<uint64_t> restarts{0};    // worker processes started after the first
  std::atomic<uint64_t> timeouts{0};    // workers killed by the watchdog (no answer in time)
  std::atomic<int64_t> pid{0};
  std::atomic<int> up{0};
};

// Latency buckets in seconds: 0.5 ms .. 30 s.
std::vector<double> latency_buckets();
// 1, 2, 4, .., >= max_batch.
std::vector<double> batch_buckets(int max_batch);

}  // namespace server
}  // namespace ne
