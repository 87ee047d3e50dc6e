// neural_engine_server's front end, shared by its files: server.cpp (flags, models, start-up,
// drain, main), instances.cpp (the worker processes: start, watchdog, batches, restarts),
// routes.cpp (the HTTP endpoints, authentication, /metrics) and http_conn.cpp (connections:
// limit, request deadline, TLS).
#pragma once
#include <gflags/gflags.h>
#include <httplib.h>
#include <pthread.h>
#include <sys/types.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "bin/server/batcher.hpp"
#include "bin/server/metrics.hpp"
#include "executor/executor.hpp"

DECLARE_string(model);
DECLARE_string(precision);
DECLARE_string(config);
DECLARE_string(weight);
DECLARE_int32(max_batch_size);
DECLARE_int32(max_queue_size);
DECLARE_int64(max_request_bytes);
DECLARE_int32(request_timeout_ms);
DECLARE_double(sparse_threshold);
DECLARE_string(warmup);
DECLARE_string(auth_token_file);
DECLARE_int32(worker_timeout_ms);
DECLARE_int64(max_seq_len);
DECLARE_int64(max_activation_bytes);
DECLARE_int32(max_connections);

namespace ne {
namespace server {

class HttpServer;

struct OutputMeta {
  std::string name;
  int dtype = 255;  // DType, 255 unknown
  bool has_shape = false;
  Shape shape;
};

struct ServedModel {
  std::string name, conf, weight;
  Model model;  // loaded here for metadata and input checks (model.bin mapped, nothing packed)
  std::vector<std::string> inputs, outputs;
  std::vector<OutputMeta> out_meta;  // from the first worker's ready frame
  bool batchable = false;            // every input has a dynamic dim 0
  int64_t max_seq_len = -1;          // longest dim 1 of 2-D inputs accepted (-1: any)
  std::unique_ptr<ModelMetrics> metrics;
};

struct Instance {
  int index = 0;
  std::vector<int> cpus;
  pid_t pid = -1;
  int fd = -1;
  bool started_once = false;
  Clock::time_point first_ready;  // its first worker answered ready
  InstanceMetrics m;
  std::thread th;
};

class Server {
 public:
  ~Server() {
    if (!ir_tmp_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(ir_tmp_, ec);  // also when start-up failed
    }
  }
  int run();

 private:
  void load_models();
  std::string load_frame() const;
  bool spawn(Instance& in, std::string* err);
  void reap(Instance& in, std::string* how);
  void instance_loop(Instance& in);
  void run_batch(Instance& in, std::vector<JobPtr>& batch, bool* worker_lost);
  void routes(HttpServer& s);
  void infer(const std::string& name, const httplib::Request& req, httplib::Response& res);
  void load_auth_token();
  bool authorized(const httplib::Request& req) const;
  std::string metrics_text();
  int find(const std::string& name) const;
  bool ready() const { return ready_.load() && !draining_.load() && up_count() > 0; }
  int up_count() const {
    int n = 0;
    for (auto& i : instances_) n += i->m.up.load();
    return n;
  }

  std::vector<ServedModel> models_;
  std::vector<std::unique_ptr<Instance>> instances_;
  std::unique_ptr<Batcher> batcher_;
  std::atomic<bool> ready_{false}, draining_{false};
  std::atomic<uint64_t> next_batch_id_{1};
  std::atomic<int64_t> inflight_{0};
  std::string self_, ir_tmp_;
  std::string auth_token_;        // empty: no authentication
  HttpServer* http_ = nullptr;    // for its connection counters in /metrics
  std::mutex meta_mu_;
};

// The watchdog's deadline for a batch of `tokens` tokens (rows x sequence): --worker_timeout_ms,
// or 60 s plus 50 us per token.
int64_t worker_timeout_ms(int64_t tokens);

void json_reply(httplib::Response& res, int status, const std::string& body);
void error_reply(httplib::Response& res, int status, const std::string& msg);

}  // namespace server
}  // namespace ne
