// neural_engine_server: the KServe v2 / Triton inference protocol (REST, JSON and the binary
// tensor extension) over this engine, with dynamic batching across worker processes, one per
// instance, each pinned to its own cores and sharing the packed weights.
//
// Front end (this process): HTTP (cpp-httplib thread pool), request decoding (codec.cpp), input
// checks against the model (ne::check_model_inputs, the messages the CLI prints), the batch
// queue (batcher.cpp), one thread per instance that hands batches to its worker process over a
// socketpair (frame.hpp) and restarts the worker when it dies, /metrics.
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <fcntl.h>
#include <gflags/gflags.h>
#include <glog/logging.h>
#include <httplib.h>
#include <nlohmann/json.hpp>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <thread>

#include "bin/server/batcher.hpp"
#ifdef NE_HAVE_COMPILE
#include "compile/ne_dialect.hpp"  // load_model_ir: our IRs and the Neural Engine's dialect
#define NE_LOAD_IR ne::load_model_ir
#else
#define NE_LOAD_IR ne::load_ir
#endif
#include "bin/server/codec.hpp"
#include "bin/server/frame.hpp"
#include "bin/server/metrics.hpp"
#include "bin/server/worker.hpp"
#include "common/cli_flags.hpp"
#include "common/proc_mem.hpp"
#include "executor/executor.hpp"
#ifdef NE_HAVE_COMPILE
#include "compile/compile.hpp"
#endif

extern char** environ;

DEFINE_string(model, "", "ONNX models to serve, compiled at start: [name=]model.onnx,... (name: default the file's stem)");
DEFINE_string(precision, "fp32", "with --model: fp32|int8|int8_dynamic|bf16");
DEFINE_string(config, "", "IRs to serve: [name=]conf.yaml,... (name: default the directory's name), paired with --weight");
DEFINE_string(weight, "", "the IRs' model.bin files, in --config's order");
DEFINE_string(host, "127.0.0.1", "address to listen on");
DEFINE_int32(port, 8000, "port to listen on (0: any free port; the chosen one is printed)");
DEFINE_int32(instances, 1, "worker processes, each pinned to its own cores with its own arena, sharing weights");
DEFINE_int32(cores_per_instance, 1, "cores (and OpenMP threads) per instance");
DEFINE_int32(max_batch_size, 8, "most rows (dim 0) in one batch; a request with more is refused (400)");
DEFINE_int64(max_queue_delay_us, 0, "how long the oldest queued request may wait for more to batch with it");
DEFINE_int32(max_queue_size, 64, "requests waiting for an instance; beyond it the server answers 503 at once");
DEFINE_int64(max_request_bytes, 64 << 20, "largest request body (413 beyond)");
DEFINE_int32(request_timeout_ms, 30000, "socket read/write timeout: a client that stops sending is dropped");
DEFINE_int32(http_threads, 64, "HTTP threads (each serves one connection at a time)");
DEFINE_double(sparse_threshold, -1, "as neural_engine's (env NE_SPARSE_THRESHOLD)");
DEFINE_string(warmup, "", "shapes each worker runs once at start, BxS,...: e.g. 1x128,8x128");
DEFINE_string(ir_dir, "", "where --model's compiled IRs go (default: a temp dir, removed at exit)");
DEFINE_int32(drain_timeout_s, 60, "SIGTERM: most seconds to finish queued and in-flight requests");

namespace ne {
namespace server {
namespace {



std::string stem(const std::string& path) {
  std::string b = path.substr(path.find_last_of('/') + 1);
  auto dot = b.find_last_of('.');
  return dot == std::string::npos ? b : b.substr(0, dot);
}

std::string parent_name(const std::string& path) {
  auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return "model";
  std::string dir = path.substr(0, slash);
  std::string b = dir.substr(dir.find_last_of('/') + 1);
  return b.empty() || b == "." ? "model" : b;
}

// "name=path" or "path".
std::pair<std::string, std::string> named(const std::string& s, const std::string& def_name) {
  auto eq = s.find('=');
  if (eq == std::string::npos) return {def_name, s};
  return {s.substr(0, eq), s.substr(eq + 1)};
}

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
  void routes(httplib::Server& s);
  void infer(const std::string& name, const httplib::Request& req, httplib::Response& res);
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
  std::mutex meta_mu_;
};

int Server::find(const std::string& name) const {
  for (size_t i = 0; i < models_.size(); ++i)
    if (models_[i].name == name) return int(i);
  return -1;
}

void Server::load_models() {
  std::vector<std::pair<std::string, std::string>> onnx;
  for (auto& s : split_flag(FLAGS_model, ',')) onnx.push_back(named(s, stem(s)));
  auto confs = split_flag(FLAGS_config, ','), weights = split_flag(FLAGS_weight, ',');
  NE_CHECK(confs.size() == weights.size(), "--config lists ", confs.size(), " files, --weight ", weights.size(),
           ": give one model.bin per conf.yaml");
  NE_CHECK(!onnx.empty() || !confs.empty(), "give --model [name=]m.onnx or --config [name=]conf.yaml --weight model.bin");
  for (size_t i = 0; i < confs.size(); ++i) {
    ServedModel m;
    auto nc = named(confs[i], parent_name(confs[i]));
    m.name = nc.first;
    m.conf = nc.second;
    m.weight = named(weights[i], "").second;
    models_.push_back(std::move(m));
  }
  if (!onnx.empty()) {
#ifdef NE_HAVE_COMPILE
    std::string dir = FLAGS_ir_dir;
    if (dir.empty()) {
      const char* t = std::getenv("TMPDIR");
      dir = std::string(t && *t ? t : "/tmp") + "/neural_engine_server." + std::to_string(getpid());
      ir_tmp_ = dir;
    }
    ::mkdir(dir.c_str(), 0755);
    for (auto& o : onnx) {
      CompileOptions co;
      co.precision = FLAGS_precision;
      if (FLAGS_precision == "int8_dynamic") {
        co.precision = "int8";
        co.int8_mode = "dynamic";
      }
      Model compiled = compile_onnx(o.second, co);
      std::string d = dir + "/" + o.first;
      save_ir(compiled, d);
      ServedModel m;
      m.name = o.first;
      m.conf = d + "/conf.yaml";
      m.weight = d + "/model.bin";
      models_.push_back(std::move(m));
    }
#else
    fail("--model: this build has no ONNX compiler; give --config/--weight");
#endif
  }
  for (auto& m : models_) {
    NE_CHECK(!m.name.empty() && m.name.find('/') == std::string::npos, "model name '", m.name,
             "' must be non-empty and contain no '/'");
    for (auto& o : models_)
      NE_CHECK(&o == &m || o.name != m.name, "two models are named '", m.name, "': name them with name=path");
    m.model = NE_LOAD_IR(m.conf, m.weight);
    // The front end reads only the model's metadata: drop the pages the load's checksum touched
    // (the workers map the same file; the page cache keeps one copy).
    if (m.model.blob) m.model.blob->release_resident();
    m.inputs = m.model.input_names();
    m.outputs = m.model.output_names();
    m.batchable = !m.inputs.empty();
    for (auto& n : m.inputs) {
      const TensorInfo* ti = m.model.find(n);
      if (!ti || !ti->has_shape || ti->shape.empty() || ti->shape[0] >= 0) m.batchable = false;
    }
    m.metrics = std::make_unique<ModelMetrics>(FLAGS_max_batch_size);
  }
}

std::string Server::load_frame() const {
  FrameWriter w;
  w.u32(uint32_t(models_.size()));
  for (auto& m : models_) {
    w.str(m.name);
    w.str(m.conf);
    w.str(m.weight);
  }
  double thr = FLAGS_sparse_threshold;
  if (thr < 0 && std::getenv("NE_SPARSE_THRESHOLD")) thr = std::atof(std::getenv("NE_SPARSE_THRESHOLD"));
  w.f64(thr);
  w.str(FLAGS_warmup);
  return w.buffer();
}

bool Server::spawn(Instance& in, std::string* err) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    *err = std::string("socketpair: ") + std::strerror(errno);
    return false;
  }
  // Everything the child needs is built before fork: after it only async-signal-safe calls.
  std::vector<std::string> args = {self_, "--worker=" + std::to_string(sv[1])};
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    std::string s = *e;
    if (s.rfind("OMP_NUM_THREADS=", 0) == 0 || s.rfind("NE_INSTANCE=", 0) == 0 || s.rfind("INST_NUM=", 0) == 0)
      continue;
    env.push_back(s);
  }
  env.push_back("OMP_NUM_THREADS=" + std::to_string(in.cpus.size()));
  env.push_back("NE_INSTANCE=" + std::to_string(in.index));
  env.push_back("INST_NUM=" + std::to_string(instances_.size()));
  if (!std::getenv("WEIGHT_SHARING")) env.push_back("WEIGHT_SHARING=1");
  std::vector<char*> av, ev;
  for (auto& a : args) av.push_back(const_cast<char*>(a.c_str()));
  av.push_back(nullptr);
  for (auto& e : env) ev.push_back(const_cast<char*>(e.c_str()));
  ev.push_back(nullptr);
  cpu_set_t set;
  CPU_ZERO(&set);
  for (int c : in.cpus) CPU_SET(c, &set);
  pid_t pid = fork();
  if (pid < 0) {
    *err = std::string("fork: ") + std::strerror(errno);
    close(sv[0]);
    close(sv[1]);
    return false;
  }
  if (pid == 0) {
    sigset_t none;
    sigemptyset(&none);
    pthread_sigmask(SIG_SETMASK, &none, nullptr);
    signal(SIGPIPE, SIG_DFL);
    sched_setaffinity(0, sizeof set, &set);
    fcntl(sv[1], F_SETFD, 0);  // the only descriptor the worker keeps
    execve(av[0], av.data(), ev.data());
    _exit(127);
  }
  close(sv[1]);
  in.pid = pid;
  in.fd = sv[0];
  in.m.pid = pid;
  std::string payload;
  FrameType type;
  bool ok = write_frame(in.fd, FrameType::load, load_frame());
  try {
    ok = ok && read_frame(in.fd, &type, &payload);
  } catch (const std::exception& e) {
    ok = false;
  }
  if (ok && type == FrameType::fatal) {
    FrameReader rd(payload);
    *err = rd.str();
    ok = false;
  } else if (ok && type != FrameType::ready) {
    *err = "worker sent an unexpected frame at start";
    ok = false;
  } else if (!ok) {
    *err = "worker exited during start";
  }
  if (!ok) {
    std::string how;
    reap(in, &how);
    if (err->rfind("worker exited", 0) == 0) *err += " (" + how + ")";
    return false;
  }
  try {
    FrameReader rd(payload);
    rd.u32();
    const uint32_t n = rd.u32();
    std::lock_guard<std::mutex> g(meta_mu_);
    for (uint32_t k = 0; k < n && k < models_.size(); ++k) {
      const uint32_t no = rd.u32();
      std::vector<OutputMeta> meta;
      for (uint32_t o = 0; o < no; ++o) {
        OutputMeta om;
        om.name = rd.str();
        om.dtype = rd.u8();
        const uint8_t rank = rd.u8();
        if (rank != 255) {
          om.has_shape = true;
          for (uint8_t d = 0; d < rank; ++d) om.shape.push_back(int64_t(rd.u64()));
        }
        meta.push_back(std::move(om));
      }
      if (models_[k].out_meta.empty()) models_[k].out_meta = std::move(meta);
    }
  } catch (const std::exception& e) {
    LOG(WARNING) << "instance " << in.index << ": bad ready frame: " << e.what();
  }
  if (in.started_once) in.m.restarts++;
  else in.first_ready = Clock::now();
  in.started_once = true;
  in.m.up = 1;
  return true;
}

void Server::reap(Instance& in, std::string* how) {
  if (in.fd >= 0) close(in.fd);
  in.fd = -1;
  in.m.up = 0;
  if (in.pid <= 0) return;
  int st = 0;
  // It closed its socket or broke the protocol: make sure it is gone, then collect it.
  pid_t r = waitpid(in.pid, &st, WNOHANG);
  if (r == 0) {
    for (int i = 0; i < 50 && r == 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      r = waitpid(in.pid, &st, WNOHANG);
    }
    if (r == 0) {
      kill(in.pid, SIGKILL);
      r = waitpid(in.pid, &st, 0);
    }
  }
  if (r == in.pid)
    *how = WIFSIGNALED(st) ? "killed by signal " + std::to_string(WTERMSIG(st))
                           : "exit status " + std::to_string(WEXITSTATUS(st));
  else
    *how = "status unknown";
  in.pid = -1;
}

void Server::run_batch(Instance& in, std::vector<JobPtr>& batch, bool* worker_lost) {
  *worker_lost = false;
  const JobPtr& head = batch.front();
  ServedModel& sm = models_[size_t(head->model)];
  int64_t rows = 0;
  for (auto& j : batch) rows += j->rows;
  FrameWriter w;
  const uint64_t id = next_batch_id_++;
  w.u64(id);
  w.u32(uint32_t(head->model));
  w.u32(uint32_t(sm.inputs.size()));
  for (size_t k = 0; k < sm.inputs.size(); ++k) {
    const HostTensor& t0 = head->inputs[k];
    Shape s = t0.shape;
    uint64_t nbytes = 0;
    for (auto& j : batch) nbytes += j->inputs[k].bytes.size();
    if (batch.size() > 1) s[0] = rows;
    w.tensor_header(sm.inputs[k], t0.dtype, s, nbytes);
    for (auto& j : batch) w.raw(j->inputs[k].bytes.data(), j->inputs[k].bytes.size());
  }
  const auto t_send = Clock::now();
  for (auto& j : batch) {
    j->dispatched = t_send;
    sm.metrics->queue_time.observe(std::chrono::duration<double>(t_send - j->arrival).count());
  }
  if (!write_frame(in.fd, FrameType::run, w.buffer())) {
    // The worker was gone before it got the batch: nothing ran; the caller restarts the worker
    // and runs the batch again.
    *worker_lost = true;
    return;
  }
  FrameType type;
  std::string payload;
  bool got = false;
  std::string proto_err;
  try {
    got = read_frame(in.fd, &type, &payload) && type == FrameType::result;
  } catch (const std::exception& e) {
    proto_err = e.what();
  }
  in.m.busy_ns += uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t_send).count());
  in.m.batches++;
  sm.metrics->batch_size.observe(double(rows));
  sm.metrics->batch_requests.observe(double(batch.size()));
  if (!got) {
    const pid_t pid = in.pid;
    std::string how;
    reap(in, &how);
    std::string msg = str_cat("instance ", in.index, ": worker (pid ", pid, ") ",
                              proto_err.empty() ? "died (" + how + ")" : "broke the protocol (" + proto_err + ")",
                              " while running this request; it is being restarted");
    LOG(WARNING) << msg;
    for (auto& j : batch) {
      j->worker_died = true;
      j->complete(500, msg);
    }
    return;
  }
  try {
    FrameReader rd(payload);
    rd.u64();
    const uint32_t status = rd.u32();
    if (status != 0) {
      std::string msg = rd.str();
      if (batch.size() > 1) {
        // One request's data (an id past the embedding table, ...) must not fail the others:
        // run each alone, so each gets its own answer and the message the CLI prints.
        for (auto& j : batch) {
          if (in.fd < 0) {
            // The worker died while running them one by one: the rest fail as in-flight ones.
            j->worker_died = true;
            j->complete(500, str_cat("instance ", in.index, ": worker died while running this request; it is being restarted"));
            continue;
          }
          std::vector<JobPtr> one{j};
          bool lost = false;
          run_batch(in, one, &lost);
          if (lost) {
            std::string how;
            reap(in, &how);
            j->worker_died = true;
            j->complete(500, str_cat("instance ", in.index, ": worker died (", how, "); it is being restarted"));
          }
        }
        return;
      }
      head->complete(status == 1 ? 400 : 500, msg);
      return;
    }
    const uint32_t n = rd.u32();
    NE_CHECK(n == sm.outputs.size(), "worker returned ", n, " outputs, the model has ", sm.outputs.size());
    std::vector<HostTensor> outs;
    for (uint32_t k = 0; k < n; ++k) outs.push_back(rd.tensor().second);
    if (batch.size() == 1) {
      head->batch_rows = int(rows);
      head->complete(200, "", std::move(outs));
      return;
    }
    for (size_t k = 0; k < outs.size(); ++k)
      NE_CHECK(!outs[k].shape.empty() && outs[k].shape[0] == rows, "output '", sm.outputs[k], "' has shape ",
               shape_str(outs[k].shape), ": its dim 0 is not the batch of ", rows, ", so a batch cannot be split");
    int64_t r0 = 0;
    for (auto& j : batch) {
      std::vector<HostTensor> mine;
      for (auto& o : outs) {
        HostTensor h;
        h.dtype = o.dtype;
        h.shape = o.shape;
        h.shape[0] = j->rows;
        const size_t row = o.bytes.size() / size_t(rows);
        h.bytes.assign(o.bytes.begin() + std::ptrdiff_t(size_t(r0) * row),
                       o.bytes.begin() + std::ptrdiff_t(size_t(r0 + j->rows) * row));
        mine.push_back(std::move(h));
      }
      r0 += j->rows;
      j->batch_rows = int(rows);
      j->complete(200, "", std::move(mine));
    }
  } catch (const std::exception& e) {
    for (auto& j : batch) j->complete(500, std::string("bad result from the worker: ") + e.what());
  }
}

void Server::instance_loop(Instance& in) {
  std::vector<JobPtr> held;  // a batch the worker never received (it was already gone)
  int backoff_ms = 200;
  for (;;) {
    if (in.fd < 0) {
      if (draining_ && batcher_->size() == 0 && held.empty()) break;
      std::string err;
      if (!spawn(in, &err)) {
        LOG(ERROR) << "instance " << in.index << ": worker failed to start: " << err;
        std::this_thread::sleep_for(std::chrono::milliseconds(backoff_ms));
        backoff_ms = std::min(backoff_ms * 2, 5000);
        continue;
      }
      backoff_ms = 200;
    }
    std::vector<JobPtr> batch;
    if (!held.empty()) {
      batch.swap(held);
    } else {
      batch = batcher_->next(Clock::now() + std::chrono::milliseconds(100));
      if (batch.empty()) {
        if (batcher_->finished()) break;
        // Idle: a worker that died meanwhile reads as end of stream; restart it now.
        pollfd p{in.fd, POLLIN, 0};
        if (poll(&p, 1, 0) > 0) {
          std::string how;
          const pid_t pid = in.pid;
          reap(in, &how);
          LOG(WARNING) << "instance " << in.index << ": idle worker (pid " << pid << ") died (" << how
                       << "); restarting it";
        }
        continue;
      }
    }
    inflight_ += int64_t(batch.size());
    bool lost = false;
    try {
      run_batch(in, batch, &lost);
    } catch (const std::exception& e) {  // never leave a request waiting
      for (auto& j : batch) j->complete(500, std::string("internal error: ") + e.what());
    }
    inflight_ -= int64_t(batch.size());
    if (lost) {
      std::string how;
      reap(in, &how);
      held = std::move(batch);
    }
  }
  if (in.fd >= 0) {
    close(in.fd);  // the worker reads end of stream and exits 0
    in.fd = -1;
    int st = 0;
    if (in.pid > 0) waitpid(in.pid, &st, 0);
    in.m.up = 0;
  }
}

// cpp-httplib 0.11 listens with a backlog of 5: a burst of connections overflows it and the
// kernel drops SYNs (the client retries after 1 s). listen() again on the bound socket (found by
// its port) sets the backlog to SOMAXCONN; Linux allows changing it so.
void widen_backlog(int port) {
  for (int fd = 0; fd < 1024; ++fd) {
    int acc = 0;
    socklen_t len = sizeof acc;
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len) != 0 || !acc) continue;
    sockaddr_storage ss{};
    socklen_t sl = sizeof ss;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &sl) != 0) continue;
    int p = ss.ss_family == AF_INET ? ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port)
            : ss.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port) : -1;
    if (p == port && ::listen(fd, SOMAXCONN) != 0) LOG(WARNING) << "listen backlog: " << std::strerror(errno);
  }
}

void json_reply(httplib::Response& res, int status, const std::string& body) {
  res.status = status;
  res.set_content(body, "application/json");
}

void error_reply(httplib::Response& res, int status, const std::string& msg) {
  json_reply(res, status, error_json(msg));
}

void Server::infer(const std::string& name, const httplib::Request& req, httplib::Response& res) {
  const auto t0 = Clock::now();
  const int mi = find(name);
  if (mi < 0) {
    std::string all;
    for (auto& m : models_) all += (all.empty() ? "" : ", ") + m.name;
    return error_reply(res, 404, "model '" + name + "' is not served here (models: " + all + ")");
  }
  ServedModel& sm = models_[size_t(mi)];
  ModelMetrics& mm = *sm.metrics;
  mm.requests++;
  if (draining_) {
    mm.fail_overload++;
    return error_reply(res, 503, "the server is shutting down");
  }
  auto job = std::make_shared<Job>();
  InferRequest r;
  try {
    int64_t json_size = -1;
    if (req.has_header("Inference-Header-Content-Length")) {
      const std::string v = req.get_header_value("Inference-Header-Content-Length");
      char* end = nullptr;
      errno = 0;
      const long long x = std::strtoll(v.c_str(), &end, 10);
      if (v.empty() || *end || errno || x < 0)
        throw RequestError("Inference-Header-Content-Length '" + v + "' is not a non-negative integer");
      json_size = x;
    }
    r = decode_infer_request(req.body.data(), req.body.size(), json_size);
    std::map<std::string, HostTensor> by_name;
    for (auto& kv : r.inputs) by_name[kv.first] = std::move(kv.second);
    check_model_inputs(sm.model, by_name);
    for (auto& o : r.outputs)
      NE_CHECK(std::find(sm.outputs.begin(), sm.outputs.end(), o.name) != sm.outputs.end(), "output '", o.name,
               "' is not an output of the model (outputs: ",
               [&] {
                 std::string s;
                 for (auto& x : sm.outputs) s += (s.empty() ? "" : ", ") + x;
                 return s;
               }(),
               ")");
    job->model = mi;
    job->batchable = sm.batchable;
    job->rows = -1;
    for (auto& n : sm.inputs) {
      HostTensor& t = by_name[n];
      if (t.shape.empty()) job->batchable = false;
      else if (job->rows < 0) job->rows = t.shape[0];
      else if (job->rows != t.shape[0]) job->batchable = false;
      job->key += std::string(dtype_name(t.dtype)) + shape_str(Shape(t.shape.begin() + (t.shape.empty() ? 0 : 1), t.shape.end())) + ";";
      job->inputs.push_back(std::move(t));
    }
    if (job->rows <= 0) job->batchable = false;
    if (job->batchable && job->rows > FLAGS_max_batch_size)
      throw RequestError(str_cat("batch size ", job->rows, " exceeds --max_batch_size ", FLAGS_max_batch_size));
    if (!job->batchable) job->rows = 1;
  } catch (const Error& e) {
    mm.fail_client++;
    return error_reply(res, 400, e.what());
  }
  job->arrival = Clock::now();
  if (!batcher_->submit(job)) {
    mm.fail_overload++;
    return error_reply(res, 503,
                       draining_ ? std::string("the server is shutting down")
                                 : str_cat("the queue is full (", FLAGS_max_queue_size,
                                           " requests waiting, --max_queue_size); try again later"));
  }
  job->wait();
  if (job->status != 200) {
    if (job->status < 500) mm.fail_client++;
    else if (job->worker_died) mm.fail_worker++;
    else mm.fail_internal++;
    return error_reply(res, job->status, job->error);
  }
  std::vector<ResponseTensor> outs;
  if (r.outputs_given) {
    for (auto& o : r.outputs) {
      size_t k = size_t(std::find(sm.outputs.begin(), sm.outputs.end(), o.name) - sm.outputs.begin());
      outs.push_back({o.name, &job->outputs[k], o.binary});
    }
  } else {
    for (size_t k = 0; k < sm.outputs.size(); ++k) outs.push_back({sm.outputs[k], &job->outputs[k], r.binary_output});
  }
  int64_t json_size = -1;
  std::string body = encode_infer_response(sm.name, r.id, outs, &json_size);
  res.status = 200;
  if (json_size >= 0) {
    res.set_header("Inference-Header-Content-Length", std::to_string(json_size));
    res.set_content(std::move(body), "application/octet-stream");
  } else {
    res.set_content(std::move(body), "application/json");
  }
  mm.success++;
  mm.latency.observe(std::chrono::duration<double>(Clock::now() - t0).count());
}

std::string Server::metrics_text() {
  std::string o;
  auto esc = [](const std::string& s) {
    std::string r;
    for (char c : s) {
      if (c == '\\' || c == '"') r += '\\';
      if (c == '\n') {
        r += "\\n";
        continue;
      }
      r += c;
    }
    return r;
  };
  o += "# HELP ne_requests_total Inference requests received, per model.\n# TYPE ne_requests_total counter\n";
  for (auto& m : models_) o += "ne_requests_total{model=\"" + esc(m.name) + "\"} " + std::to_string(m.metrics->requests) + "\n";
  o += "# HELP ne_request_success_total Inference requests answered 200.\n# TYPE ne_request_success_total counter\n";
  for (auto& m : models_) o += "ne_request_success_total{model=\"" + esc(m.name) + "\"} " + std::to_string(m.metrics->success) + "\n";
  o += "# HELP ne_request_failures_total Inference requests that failed, by reason: client (4xx), overload (503: queue full or draining), worker (500: the worker died running it), internal (other 500).\n# TYPE ne_request_failures_total counter\n";
  for (auto& m : models_) {
    const std::string l = "model=\"" + esc(m.name) + "\"";
    o += "ne_request_failures_total{" + l + ",reason=\"client\"} " + std::to_string(m.metrics->fail_client) + "\n";
    o += "ne_request_failures_total{" + l + ",reason=\"overload\"} " + std::to_string(m.metrics->fail_overload) + "\n";
    o += "ne_request_failures_total{" + l + ",reason=\"worker\"} " + std::to_string(m.metrics->fail_worker) + "\n";
    o += "ne_request_failures_total{" + l + ",reason=\"internal\"} " + std::to_string(m.metrics->fail_internal) + "\n";
  }
  o += "# HELP ne_request_latency_seconds Successful requests, received to response ready.\n# TYPE ne_request_latency_seconds histogram\n";
  for (auto& m : models_) m.metrics->latency.render(o, "ne_request_latency_seconds", "model=\"" + esc(m.name) + "\"");
  o += "# HELP ne_queue_time_seconds Time requests waited in the batch queue.\n# TYPE ne_queue_time_seconds histogram\n";
  for (auto& m : models_) m.metrics->queue_time.render(o, "ne_queue_time_seconds", "model=\"" + esc(m.name) + "\"");
  o += "# HELP ne_batch_size Rows (dim 0) per batch run on a worker.\n# TYPE ne_batch_size histogram\n";
  for (auto& m : models_) m.metrics->batch_size.render(o, "ne_batch_size", "model=\"" + esc(m.name) + "\"");
  o += "# HELP ne_batch_requests Requests per batch run on a worker.\n# TYPE ne_batch_requests histogram\n";
  for (auto& m : models_) m.metrics->batch_requests.render(o, "ne_batch_requests", "model=\"" + esc(m.name) + "\"");
  o += "# HELP ne_queue_size Requests waiting for an instance.\n# TYPE ne_queue_size gauge\nne_queue_size " +
       std::to_string(batcher_->size()) + "\n";
  o += "# HELP ne_inflight_requests Requests in a worker now.\n# TYPE ne_inflight_requests gauge\nne_inflight_requests " +
       std::to_string(inflight_.load()) + "\n";
  const auto now = Clock::now();
  o += "# HELP ne_instance_busy_seconds_total Time each instance had a batch in its worker.\n# TYPE ne_instance_busy_seconds_total counter\n";
  for (auto& i : instances_)
    o += "ne_instance_busy_seconds_total{instance=\"" + std::to_string(i->index) + "\"} " +
         std::to_string(double(i->m.busy_ns.load()) * 1e-9) + "\n";
  o += "# HELP ne_instance_utilization Busy share of each instance since its first worker was ready (rate(ne_instance_busy_seconds_total) for a window).\n# TYPE ne_instance_utilization gauge\n";
  for (auto& i : instances_) {
    const double up_s = i->started_once ? std::chrono::duration<double>(now - i->first_ready).count() : 0;
    o += "ne_instance_utilization{instance=\"" + std::to_string(i->index) + "\"} " +
         std::to_string(up_s > 0 ? double(i->m.busy_ns.load()) * 1e-9 / up_s : 0.0) + "\n";
  }
  o += "# HELP ne_instance_batches_total Batches run per instance.\n# TYPE ne_instance_batches_total counter\n";
  for (auto& i : instances_)
    o += "ne_instance_batches_total{instance=\"" + std::to_string(i->index) + "\"} " + std::to_string(i->m.batches) + "\n";
  o += "# HELP ne_worker_restarts_total Worker processes started again after the first.\n# TYPE ne_worker_restarts_total counter\n";
  for (auto& i : instances_)
    o += "ne_worker_restarts_total{instance=\"" + std::to_string(i->index) + "\"} " + std::to_string(i->m.restarts) + "\n";
  o += "# HELP ne_worker_up Whether the instance's worker is running.\n# TYPE ne_worker_up gauge\n";
  for (auto& i : instances_)
    o += "ne_worker_up{instance=\"" + std::to_string(i->index) + "\",pid=\"" + std::to_string(i->m.pid) + "\"} " +
         std::to_string(i->m.up) + "\n";
  ProcMem pm = read_proc_mem("");
  o += "# HELP ne_frontend_rss_bytes Resident memory of the front-end process.\n# TYPE ne_frontend_rss_bytes gauge\nne_frontend_rss_bytes " +
       std::to_string(pm.rss) + "\n";
  return o;
}

void Server::routes(httplib::Server& s) {
  s.Get("/v2", [&](const httplib::Request&, httplib::Response& res) {
    json_reply(res, 200, "{\"name\":\"neural_engine_server\",\"version\":\"0.1.0\",\"extensions\":[\"binary_tensor_data\"]}");
  });
  s.Get("/v2/health/live", [&](const httplib::Request&, httplib::Response& res) { res.status = 200; });
  s.Get("/v2/health/ready", [&](const httplib::Request&, httplib::Response& res) {
    if (ready()) res.status = 200;
    else error_reply(res, 400, draining_ ? "shutting down" : "no worker is ready yet");
  });
  auto model_ready = [&](const std::string& name, httplib::Response& res) {
    if (find(name) < 0) return error_reply(res, 404, "model '" + name + "' is not served here");
    if (ready()) res.status = 200;
    else error_reply(res, 400, "model '" + name + "' is not ready");
  };
  auto metadata = [&](const std::string& name, httplib::Response& res) {
    const int mi = find(name);
    if (mi < 0) return error_reply(res, 404, "model '" + name + "' is not served here");
    const ServedModel& m = models_[size_t(mi)];
    nlohmann::ordered_json j;
    j["name"] = m.name;
    j["versions"] = {"1"};
    j["platform"] = "neural_engine";
    j["inputs"] = nlohmann::ordered_json::array();
    for (auto& n : m.inputs) {
      const TensorInfo* ti = m.model.find(n);
      nlohmann::ordered_json t;
      t["name"] = n;
      t["datatype"] = ti ? dtype_to_kserve(ti->dtype) : "FP32";
      t["shape"] = ti && ti->has_shape ? nlohmann::ordered_json(ti->shape) : nlohmann::ordered_json::array();
      j["inputs"].push_back(t);
    }
    j["outputs"] = nlohmann::ordered_json::array();
    std::lock_guard<std::mutex> g(meta_mu_);
    for (size_t k = 0; k < m.outputs.size(); ++k) {
      nlohmann::ordered_json t;
      t["name"] = m.outputs[k];
      const OutputMeta* om = k < m.out_meta.size() ? &m.out_meta[k] : nullptr;
      t["datatype"] = om && om->dtype != 255 ? dtype_to_kserve(DType(om->dtype)) : "FP32";
      t["shape"] = om && om->has_shape ? nlohmann::ordered_json(om->shape) : nlohmann::ordered_json::array();
      j["outputs"].push_back(t);
    }
    json_reply(res, 200, j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace));
  };
  s.Get(R"(/v2/models/([^/]+))", [=](const httplib::Request& q, httplib::Response& res) { metadata(q.matches[1], res); });
  s.Get(R"(/v2/models/([^/]+)/versions/1)", [=](const httplib::Request& q, httplib::Response& res) { metadata(q.matches[1], res); });
  s.Get(R"(/v2/models/([^/]+)/ready)", [=](const httplib::Request& q, httplib::Response& res) { model_ready(q.matches[1], res); });
  s.Get(R"(/v2/models/([^/]+)/versions/1/ready)",
        [=](const httplib::Request& q, httplib::Response& res) { model_ready(q.matches[1], res); });
  s.Post(R"(/v2/models/([^/]+)/infer)", [&](const httplib::Request& q, httplib::Response& res) { infer(q.matches[1], q, res); });
  s.Post(R"(/v2/models/([^/]+)/versions/1/infer)",
         [&](const httplib::Request& q, httplib::Response& res) { infer(q.matches[1], q, res); });
  s.Get("/metrics", [&](const httplib::Request&, httplib::Response& res) {
    res.status = 200;
    res.set_content(metrics_text(), "text/plain; version=0.0.4");
  });
  // Errors httplib answers itself (413 over --max_request_bytes, 400 for a request it cannot
  // read, 404 for an unknown path) get the protocol's {"error": ...} body too.
  s.set_error_handler([](const httplib::Request& q, httplib::Response& res) {
    if (!res.body.empty()) return;
    std::string msg;
    if (res.status == 413) msg = str_cat("request body is larger than --max_request_bytes ", FLAGS_max_request_bytes);
    else if (res.status == 404) msg = "no such endpoint: " + q.method + " " + q.path;
    else if (res.status == 405) msg = "method not allowed: " + q.method + " " + q.path;
    else if (res.status == 400 && q.has_header("Content-Length") &&
             std::strtoull(q.get_header_value("Content-Length").c_str(), nullptr, 10) > q.body.size()) {
      // The body stopped short of its Content-Length: the client stalled past the read timeout.
      res.status = 408;
      msg = str_cat("request body not received: ", q.body.size(), " of ", q.get_header_value("Content-Length"),
                    " bytes within --request_timeout_ms ", FLAGS_request_timeout_ms);
    } else msg = str_cat("could not read the request (HTTP ", res.status, ")");
    res.set_content(error_json(msg), "application/json");
  });
  s.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string msg = "internal error";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      msg = e.what();
    } catch (...) {
    }
    error_reply(res, 500, msg);
  });
}

int Server::run() {
  NE_CHECK(FLAGS_instances > 0 && FLAGS_cores_per_instance > 0, "--instances and --cores_per_instance must be positive");
  NE_CHECK(FLAGS_max_batch_size > 0, "--max_batch_size must be positive");
  NE_CHECK(FLAGS_max_queue_size > 0, "--max_queue_size must be positive");
  NE_CHECK(FLAGS_max_queue_delay_us >= 0, "--max_queue_delay_us must be >= 0");
  NE_CHECK(FLAGS_max_request_bytes > 0, "--max_request_bytes must be positive");
  NE_CHECK(FLAGS_request_timeout_ms > 0, "--request_timeout_ms must be positive");
  NE_CHECK(FLAGS_http_threads > 0, "--http_threads must be positive");
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> cpus;
  if (sched_getaffinity(0, sizeof set, &set) == 0)
    for (int c = 0; c < CPU_SETSIZE; ++c)
      if (CPU_ISSET(c, &set)) cpus.push_back(c);
  NE_CHECK(size_t(FLAGS_instances) * size_t(FLAGS_cores_per_instance) <= cpus.size(), "--instances ",
           FLAGS_instances, " x --cores_per_instance ", FLAGS_cores_per_instance, " = ",
           FLAGS_instances * FLAGS_cores_per_instance, " cores, but this process may use only ", cpus.size(), " cores");
  char self[4096];
  ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
  NE_CHECK(len > 0, "cannot find this binary (/proc/self/exe)");
  self[len] = 0;
  self_ = self;

  // SIGTERM / SIGINT are taken by sigwait below; threads created from here on inherit the mask.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  signal(SIGPIPE, SIG_IGN);

  load_models();
  batcher_ = std::make_unique<Batcher>(FLAGS_max_batch_size, FLAGS_max_queue_delay_us, size_t(FLAGS_max_queue_size));
  for (int i = 0; i < FLAGS_instances; ++i) {
    auto in = std::make_unique<Instance>();
    in->index = i;
    for (int k = 0; k < FLAGS_cores_per_instance; ++k) in->cpus.push_back(cpus[size_t(i * FLAGS_cores_per_instance + k)]);
    instances_.push_back(std::move(in));
  }
  // The first worker starts alone (it packs the weights into the shared cache; the others map
  // them); a worker that cannot load the models at start stops the server with its message.
  for (auto& in : instances_) {
    std::string err;
    NE_CHECK(spawn(*in, &err), "instance ", in->index, ": ", err);
  }

  httplib::Server http;
  const int nthreads = FLAGS_http_threads;
  http.new_task_queue = [nthreads] { return new httplib::ThreadPool(size_t(nthreads)); };
  http.set_payload_max_length(size_t(FLAGS_max_request_bytes));
  const auto tmo = std::chrono::milliseconds(FLAGS_request_timeout_ms);
  http.set_read_timeout(tmo);
  http.set_write_timeout(tmo);
  http.set_keep_alive_max_count(1000000);
  http.set_keep_alive_timeout(5);
  http.set_tcp_nodelay(true);
  routes(http);
  int port = FLAGS_port;
  if (port == 0) {
    port = http.bind_to_any_port(FLAGS_host);
    NE_CHECK(port > 0, "cannot listen on ", FLAGS_host, " (any port)");
  } else {
    NE_CHECK(http.bind_to_port(FLAGS_host, port), "cannot listen on ", FLAGS_host, ":", port,
             " (in use? --port 0 picks a free one)");
  }
  widen_backlog(port);
  for (auto& in : instances_) in->th = std::thread([this, p = in.get()] { instance_loop(*p); });
  std::thread http_th([&] { http.listen_after_bind(); });
  ready_ = true;
  std::string names;
  for (auto& m : models_) names += (names.empty() ? "" : ", ") + m.name;
  std::cout << "neural_engine_server: listening on http://" << FLAGS_host << ":" << port << " (models: " << names
            << "; " << FLAGS_instances << " x " << FLAGS_cores_per_instance << " cores)" << std::endl;

  int sig = 0;
  sigwait(&sigs, &sig);
  std::cout << "neural_engine_server: " << (sig == SIGTERM ? "SIGTERM" : "SIGINT")
            << ": draining (no new requests; finishing " << batcher_->size() + size_t(inflight_.load())
            << " queued and in flight)" << std::endl;
  draining_ = true;
  batcher_->close();
  const auto deadline = Clock::now() + std::chrono::seconds(FLAGS_drain_timeout_s);
  bool drained = true;
  for (auto& in : instances_) {
    while (in->th.joinable()) {
      if (batcher_->size() == 0 && inflight_ == 0) {
        in->th.join();
        break;
      }
      if (Clock::now() > deadline) {
        drained = false;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  // Give handlers of finished jobs a moment to write their responses, then stop listening.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  http.stop();
  http_th.join();
  if (!drained) {
    for (auto& in : instances_)
      if (in->pid > 0) kill(in->pid, SIGKILL);
    std::cerr << "error: drain timed out after " << FLAGS_drain_timeout_s << " s" << std::endl;
    std::error_code ec;
    if (!ir_tmp_.empty()) std::filesystem::remove_all(ir_tmp_, ec);
    std::_Exit(1);  // handler threads may still wait on the workers: do not join them
  }
  std::cout << "neural_engine_server: drained, exiting" << std::endl;
  return 0;
}

}  // namespace
}  // namespace server
}  // namespace ne

int main(int argc, char** argv) {
  NE_PARSE_COMMAND_LINE(&argc, &argv,
                        "neural_engine_server --model [name=]m.onnx[,...] | --config [name=]conf.yaml[,...] --weight "
                        "model.bin[,...] [--port 8000] [--instances N --cores_per_instance C] ...");
  if (ne::server::worker_fd_flag() >= 0) return ne::server::worker_main(ne::server::worker_fd_flag());
  FLAGS_logtostderr = true;
  google::InitGoogleLogging(argv[0]);
  try {
    ne::server::Server s;
    return s.run();
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << std::endl;
    return 1;
  }
}
