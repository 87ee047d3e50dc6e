// neural_engine_server's worker processes: one per instance, started (fork + exec of this binary
// with --worker, pinned to the instance's cores), fed batches over a socketpair (frame.hpp),
// watched (a worker that does not answer in time is killed), and restarted when they die.
#include <errno.h>
#include <glog/logging.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>

#include "bin/instances.hpp"
#include "bin/server/frame.hpp"
#include "bin/server/server_impl.hpp"

namespace ne {
namespace server {

int64_t worker_timeout_ms(int64_t tokens) {
  return FLAGS_worker_timeout_ms > 0 ? FLAGS_worker_timeout_ms : 60000 + tokens / 20;
}

std::string Server::load_frame() const {
  FrameWriter w;
  w.u32(uint32_t(models_.size()));
  for (auto& m : models_) {
    w.str(m.name);
    w.str(m.conf);
    w.str(m.weight);
  }
  // The flag, else NE_SPARSE_THRESHOLD (< 0: neither; the worker leaves the per-pattern defaults).
  double thr = FLAGS_sparse_threshold;
  if (thr < 0) thr = ExecOptions::from_env().op.sparse_threshold;
  w.f64(thr);
  w.str(FLAGS_warmup);
  w.u64(uint64_t(FLAGS_max_activation_bytes));
  return w.buffer();
}

bool Server::spawn(Instance& in, std::string* err) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    *err = std::string("socketpair: ") + std::strerror(errno);
    return false;
  }
  instances::Spec sp;
  sp.argv = {self_, "--worker=" + std::to_string(sv[1])};
  sp.cpus = in.cpus;
  sp.index = in.index;
  sp.count = int(instances_.size());
  sp.keep_fds = {sv[1]};  // the only descriptor the worker keeps
  pid_t pid = -1;
  try {
    pid = instances::spawn(sp);
  } catch (const std::exception& e) {
    *err = e.what();
    close(sv[0]);
    close(sv[1]);
    return false;
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
  // The watchdog: a worker that has not answered by the deadline (hung, stopped, swapping) is
  // killed; its batch is answered 503 and the worker restarted, as if it had died.
  int64_t tokens = 0;
  if (!head->inputs.empty()) tokens = int64_t(rows) * std::max<int64_t>(1, head->inputs[0].numel() / std::max<int64_t>(1, head->rows));
  const int64_t timeout_ms = worker_timeout_ms(tokens);
  const Clock::time_point deadline = t_send + std::chrono::milliseconds(timeout_ms);
  FrameType type;
  std::string payload;
  bool got = false, late = false;
  std::string proto_err;
  try {
    got = read_frame_until(in.fd, &type, &payload, &deadline, &late) && type == FrameType::result;
  } catch (const std::exception& e) {
    proto_err = e.what();
  }
  in.m.busy_ns += uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t_send).count());
  in.m.batches++;
  sm.metrics->batch_size.observe(double(rows));
  sm.metrics->batch_requests.observe(double(batch.size()));
  if (late) {
    const pid_t pid = in.pid;
    if (pid > 0) kill(pid, SIGKILL);
    in.m.timeouts++;
    std::string how;
    reap(in, &how);
    std::string msg = str_cat("instance ", in.index, ": the worker (pid ", pid, ") did not answer within ", timeout_ms,
                              " ms (--worker_timeout_ms); it was killed and is being restarted");
    LOG(WARNING) << msg;
    for (auto& j : batch) {
      j->worker_died = true;
      j->complete(503, msg);
    }
    return;
  }
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
      if (status == 2) {
        // Not an input error: its text may name files of this machine; it goes to the log only.
        LOG(ERROR) << "instance " << in.index << ": model '" << sm.name << "': " << msg;
        msg = "internal error while running the model (the server log has the details)";
      }
      head->complete(status == 1 ? 400 : status == 3 ? 413 : 500, msg);
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
    LOG(ERROR) << "instance " << in.index << ": bad result from the worker: " << e.what();
    for (auto& j : batch) j->complete(500, "bad result from the worker (the server log has the details)");
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
      LOG(ERROR) << "instance " << in.index << ": " << e.what();
      for (auto& j : batch) j->complete(500, "internal error (the server log has the details)");
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

}  // namespace server
}  // namespace ne
