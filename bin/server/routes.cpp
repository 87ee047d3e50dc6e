// neural_engine_server's HTTP endpoints (KServe v2 REST): health, metadata, infer (decode, check
// against the model, queue, wait, encode), /metrics; errors as {"error": ...}.
#include <errno.h>
#include <glog/logging.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <map>
#include <nlohmann/json.hpp>

#include "bin/server/codec.hpp"
#include "bin/server/http_conn.hpp"
#include "bin/server/server_impl.hpp"
#include "common/proc_mem.hpp"

namespace ne {
namespace server {

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
    if (sm.max_seq_len >= 0)
      for (size_t k = 0; k < sm.inputs.size(); ++k) {
        const HostTensor& t = job->inputs[k];
        if (t.shape.size() == 2 && t.shape[1] > sm.max_seq_len)
          throw RequestError(str_cat("input '", sm.inputs[k], "' has sequence length ", t.shape[1], ": longer than ",
                                     sm.max_seq_len, " (--max_seq_len", FLAGS_max_seq_len == 0 ? ", from the model's position table" : "",
                                     ")"));
      }
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
  // Bounded: the watchdog answers a batch within the worker timeout, so a request is answered by
  // the time every batch queued ahead of it (on the fewest instances) could have timed out; past
  // that something is wrong (workers that cannot start): answer 503 rather than wait for ever.
  const int64_t worker_ms = worker_timeout_ms(int64_t(512) * FLAGS_max_batch_size);
  const int64_t bound_ms = worker_ms * (2 + FLAGS_max_queue_size / std::max<int64_t>(1, int64_t(instances_.size())));
  if (!job->wait_until(job->arrival + std::chrono::milliseconds(bound_ms)))
    job->complete(503, str_cat("not answered within ", bound_ms, " ms (no worker could run it: see the server log)"));
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
  o += "# HELP ne_request_failures_total Inference requests that failed, by reason: client (4xx), overload (503: queue full or draining), worker (500: the worker died running it; 503: it did not answer in time), internal (other 500).\n# TYPE ne_request_failures_total counter\n";
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
  o += "# HELP ne_worker_timeouts_total Workers killed by the watchdog: no answer within --worker_timeout_ms.\n# TYPE ne_worker_timeouts_total counter\n";
  for (auto& i : instances_)
    o += "ne_worker_timeouts_total{instance=\"" + std::to_string(i->index) + "\"} " + std::to_string(i->m.timeouts) + "\n";
  if (http_) {
    const ConnStats& cs = http_->stats();
    o += "# HELP ne_http_connections Open HTTP connections.\n# TYPE ne_http_connections gauge\nne_http_connections " +
         std::to_string(std::max<int64_t>(0, cs.open.load())) + "\n";
    o += "# HELP ne_http_connections_total HTTP connections, by outcome: served, refused (over --max_connections: 503), tls_failed (handshake).\n# TYPE ne_http_connections_total counter\n";
    o += "ne_http_connections_total{outcome=\"served\"} " + std::to_string(cs.accepted) + "\n";
    o += "ne_http_connections_total{outcome=\"refused\"} " + std::to_string(cs.refused) + "\n";
    o += "ne_http_connections_total{outcome=\"tls_failed\"} " + std::to_string(cs.tls_failed) + "\n";
    o += "# HELP ne_http_request_deadline_total Requests not received within --request_timeout_ms (408 or dropped).\n# TYPE ne_http_request_deadline_total counter\nne_http_request_deadline_total " +
         std::to_string(cs.deadline) + "\n";
  }
  ProcMem pm = read_proc_mem("");
  o += "# HELP ne_frontend_rss_bytes Resident memory of the front-end process.\n# TYPE ne_frontend_rss_bytes gauge\nne_frontend_rss_bytes " +
       std::to_string(pm.rss) + "\n";
  return o;
}

bool Server::authorized(const httplib::Request& q) const {
  if (auth_token_.empty() || q.path == "/v2/health/live" || q.path == "/v2/health/ready") return true;
  const std::string h = q.get_header_value("Authorization");
  const std::string want = "Bearer " + auth_token_;
  // Compared in constant time (for the token's length).
  unsigned char diff = h.size() == want.size() ? 0 : 1;
  for (size_t i = 0; i < want.size(); ++i) diff |= (unsigned char)(want[i] ^ (i < h.size() ? h[i] : 0));
  return diff == 0;
}

void Server::routes(HttpServer& s) {
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
    if (HttpServer::deadline_passed() && res.status != 413) {
      res.status = 408;
      msg = str_cat("the request was not received within --request_timeout_ms ", FLAGS_request_timeout_ms,
                    " (headers and body, from its first byte)");
    } else if (res.status == 413) msg = str_cat("request body is larger than --max_request_bytes ", FLAGS_max_request_bytes);
    else if (res.status == 404) msg = "no such endpoint: " + q.method + " " + q.path;
    else if (res.status == 405) msg = "method not allowed: " + q.method + " " + q.path;
    else if (res.status == 400 && q.has_header("Content-Length") &&
             std::strtoull(q.get_header_value("Content-Length").c_str(), nullptr, 10) > q.body.size()) {
      // The body stopped short of its Content-Length: the client stalled past the read timeout.
      res.status = 408;
      msg = str_cat("request body not received: ", q.body.size(), " of ", q.get_header_value("Content-Length"),
                    " bytes (the client stopped sending for --request_timeout_ms ", FLAGS_request_timeout_ms, ")");
    } else msg = str_cat("could not read the request (HTTP ", res.status, ")");
    res.set_content(error_json(msg), "application/json");
  });
  s.set_exception_handler([](const httplib::Request& q, httplib::Response& res, std::exception_ptr ep) {
    // The text may name files of this machine: it goes to the log, not to the client.
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      LOG(ERROR) << q.method << " " << q.path << ": " << e.what();
    } catch (...) {
      LOG(ERROR) << q.method << " " << q.path << ": unknown exception";
    }
    error_reply(res, 500, "internal error (the server log has the details)");
  });
  // Authentication before anything is read or done: only the health probes are open.
  s.set_pre_routing_handler([this](const httplib::Request& q, httplib::Response& res) {
    if (authorized(q)) {
      // A body declared larger than --max_request_bytes is refused now, not read (httplib would
      // read and discard it all, up to the request deadline).
      const std::string cl = q.get_header_value("Content-Length");
      if (!cl.empty() && std::strtoull(cl.c_str(), nullptr, 10) > uint64_t(FLAGS_max_request_bytes)) {
        error_reply(res, 413, str_cat("request body of ", cl.size() > 24 ? cl.substr(0, 24) + "..." : cl, " bytes is larger than --max_request_bytes ",
                                      FLAGS_max_request_bytes));
        HttpServer::close_after_response();
        return httplib::Server::HandlerResponse::Handled;
      }
      return httplib::Server::HandlerResponse::Unhandled;
    }
    res.set_header("WWW-Authenticate", "Bearer realm=\"neural_engine_server\"");
    error_reply(res, 401,
                q.has_header("Authorization") ? "the bearer token is not valid" : "authentication required: send 'Authorization: Bearer <token>'");
    HttpServer::close_after_response();  // its body (if any) is not read
    return httplib::Server::HandlerResponse::Handled;
  });
}

}  // namespace server
}  // namespace ne
