// neural_engine_server: the KServe v2 / Triton inference protocol (REST, JSON and the binary
// tensor extension) over this engine, with dynamic batching across worker processes, one per
// instance, each pinned to its own cores and sharing the packed weights.
//
// Front end (this process): connections (http_conn.cpp: limit, request deadline, TLS), the HTTP
// endpoints (routes.cpp: authentication, request decoding by codec.cpp, input checks against
// the model, /metrics), the batch queue (batcher.cpp), one thread per instance that hands
// batches to its worker process over a socketpair (instances.cpp, frame.hpp), watches it and
// restarts it. This file: flags, the models, start-up, drain on SIGTERM, main.
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
#include <cctype>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <thread>

#ifdef NE_HAVE_COMPILE
#include "compile/ne_dialect.hpp"  // load_model_ir: our IRs and the Neural Engine's dialect
#define NE_LOAD_IR ne::load_model_ir
#else
#define NE_LOAD_IR ne::load_ir
#endif
#include "bin/server/codec.hpp"
#include "bin/server/frame.hpp"
#include "bin/instances.hpp"
#include "bin/server/http_conn.hpp"
#include "bin/server/server_impl.hpp"
#include "bin/server/worker.hpp"
#include "common/cli_flags.hpp"
#include "common/proc_mem.hpp"
#include "executor/executor.hpp"
#ifdef NE_HAVE_COMPILE
#include "compile/compile.hpp"
#endif

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
DEFINE_int32(request_timeout_ms, 30000,
             "deadline for receiving a whole request (headers + body, from its first byte; 408 beyond), and "
             "for each socket read or write");
DEFINE_int32(max_connections, 256, "open connections served at once (one thread each); beyond it 503 and close");
DEFINE_string(tls_cert, "", "serve HTTPS: PEM certificate (chain) file, with --tls_key");
DEFINE_string(tls_key, "", "serve HTTPS: PEM private key file, with --tls_cert");
DEFINE_string(auth_token_file, "",
              "require 'Authorization: Bearer <token>' (the file's first line) on every endpoint but "
              "/v2/health/live and /v2/health/ready (401 without it)");
DEFINE_int32(worker_timeout_ms, 0,
             "a worker that has not answered a batch within this is killed and restarted, the batch answered 503 "
             "(0: 60 s plus 50 us per token of the batch)");
DEFINE_int64(max_seq_len, 0,
             "longest sequence (dim 1 of 2-D inputs) accepted, 400 beyond (0: the model's position table, if it "
             "has one; -1: no limit)");
DEFINE_int64(max_activation_bytes, 0,
             "activation memory one batch may plan in a worker; a request needing more is answered 413 before it "
             "runs (0: no limit)");
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

// A model name is a path component of the IR directory and of the URLs: a plain identifier.
void check_model_name(const std::string& name, const std::string& given) {
  bool ok = !name.empty() && name.size() <= 128 && name[0] != '.' && name[0] != '-';
  for (char c : name) ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.');
  NE_CHECK(ok, "model name '", name, "' (from '", given,
           "') is not a plain name: use letters, digits, '_', '-', '.' (not first), at most 128; name it with name=path");
}

// The rows of the model's position-embedding table (a 2-D weight named *position_embeddings*):
// the longest sequence it can embed; -1 when it has none.
int64_t position_table_rows(const Model& m) {
  int64_t rows = -1;
  for (auto& kv : m.tensors)
    if (kv.second.is_weight && kv.second.shape.size() == 2 && kv.first.find("position_embeddings") != std::string::npos)
      rows = std::max(rows, kv.second.shape[0]);
  return rows;
}

}  // namespace

void Server::load_auth_token() {
  if (FLAGS_auth_token_file.empty()) return;
  std::ifstream f(FLAGS_auth_token_file);
  NE_CHECK(f.good(), "--auth_token_file ", FLAGS_auth_token_file, ": cannot read it");
  std::getline(f, auth_token_);
  while (!auth_token_.empty() && std::isspace(static_cast<unsigned char>(auth_token_.back()))) auth_token_.pop_back();
  NE_CHECK(auth_token_.size() >= 16, "--auth_token_file ", FLAGS_auth_token_file,
           ": the token (its first line) must have at least 16 characters");
  for (char c : auth_token_)
    NE_CHECK(c > 32 && c < 127, "--auth_token_file ", FLAGS_auth_token_file,
             ": the token must be printable ASCII without spaces");
}

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
  for (auto& o : onnx) check_model_name(o.first, o.first + "=" + o.second);
  for (auto& c : confs) check_model_name(named(c, parent_name(c)).first, c);
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
    m.max_seq_len = FLAGS_max_seq_len > 0 ? FLAGS_max_seq_len : FLAGS_max_seq_len < 0 ? -1 : position_table_rows(m.model);
    m.metrics = std::make_unique<ModelMetrics>(FLAGS_max_batch_size);
  }
}


namespace {

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


}  // namespace

int Server::run() {
  NE_CHECK(FLAGS_instances > 0 && FLAGS_cores_per_instance > 0, "--instances and --cores_per_instance must be positive");
  NE_CHECK(FLAGS_max_batch_size > 0, "--max_batch_size must be positive");
  NE_CHECK(FLAGS_max_queue_size > 0, "--max_queue_size must be positive");
  NE_CHECK(FLAGS_max_queue_delay_us >= 0, "--max_queue_delay_us must be >= 0");
  NE_CHECK(FLAGS_max_request_bytes > 0, "--max_request_bytes must be positive");
  NE_CHECK(FLAGS_request_timeout_ms > 0, "--request_timeout_ms must be positive");
  NE_CHECK(FLAGS_max_activation_bytes >= 0, "--max_activation_bytes must be >= 0");
  NE_CHECK(FLAGS_worker_timeout_ms >= 0, "--worker_timeout_ms must be >= 0");
  ConnOptions co;
  co.max_connections = FLAGS_max_connections;
  co.request_timeout_ms = co.io_timeout_ms = FLAGS_request_timeout_ms;
  co.tls_cert = FLAGS_tls_cert;
  co.tls_key = FLAGS_tls_key;
  HttpServer http(co);  // a certificate or key that cannot be used stops the server here
  load_auth_token();
  const std::vector<std::vector<int>> cores = instances::split_cores(FLAGS_instances, FLAGS_cores_per_instance);
  self_ = instances::self_exe();

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
    in->cpus = cores[size_t(i)];
    instances_.push_back(std::move(in));
  }
  // The first worker starts alone (it packs the weights into the shared cache; the others map
  // them); a worker that cannot load the models at start stops the server with its message.
  for (auto& in : instances_) {
    std::string err;
    NE_CHECK(spawn(*in, &err), "instance ", in->index, ": ", err);
  }

  http.set_payload_max_length(size_t(FLAGS_max_request_bytes));
  routes(http);
  http_ = &http;
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
  std::cout << "neural_engine_server: listening on " << (http.tls() ? "https://" : "http://") << FLAGS_host << ":" << port << " (models: " << names
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

