// The worker process of neural_engine_server: started by the front end as
// `neural_engine_server --worker=FD` (pinned to its cores, OMP_NUM_THREADS and WEIGHT_SHARING
// set), it loads the models the load frame names, each into its own Executor (own activation
// arena; packed weights from the shared cache), answers ready, then runs one batch per run frame
// until the front end closes the socket. SIGTERM/SIGINT are ignored: the front end drains and
// then closes the socket; if the front end dies the kernel kills the worker (PR_SET_PDEATHSIG).
#include "bin/server/worker.hpp"

#include <gflags/gflags.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <random>
#include <sstream>
#include <thread>

#include <oneapi/dnnl/dnnl.hpp>

#include "bin/server/frame.hpp"
#include "executor/input_gen.hpp"
#ifdef NE_HAVE_COMPILE
#include "compile/ne_dialect.hpp"  // load_model_ir: our IRs and the Neural Engine's dialect
#define NE_LOAD_IR ne::load_model_ir
#else
#define NE_LOAD_IR ne::load_ir
#endif

DEFINE_int32(worker, -1, "internal: run as a worker on this socket fd (started by the front end)");

namespace ne {
namespace server {

int worker_fd_flag() { return FLAGS_worker; }

constexpr int kWorkerPrimitiveCache = 64;

namespace {

std::vector<std::pair<int, int>> parse_warmup(const std::string& s) {
  std::vector<std::pair<int, int>> r;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.empty()) continue;
    int b = 0, q = 0;
    char x = 0;
    std::stringstream is(item);
    NE_CHECK((is >> b >> x >> q) && x == 'x' && b > 0 && q > 0, "--warmup: expected BxS (e.g. 1x128), got '", item,
             "'");
    r.emplace_back(b, q);
  }
  return r;
}

}  // namespace

int worker_main(int fd) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() == 1) return 1;  // the front end is already gone
  signal(SIGTERM, SIG_IGN);
  signal(SIGINT, SIG_IGN);
  signal(SIGPIPE, SIG_IGN);
  // oneDNN keeps up to 1024 primitives (JIT code) in its process-wide cache by default; the
  // operators keep their own per-shape ones (ShapeCache), so a worker that sees every sequence
  // length would hold ~1024 more for nothing. ONEDNN_PRIMITIVE_CACHE_CAPACITY still overrides.
  if (!std::getenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY")) dnnl::set_primitive_cache_capacity(kWorkerPrimitiveCache);
  FrameType type;
  std::string payload;
  std::vector<std::unique_ptr<Executor>> models;
  try {
    NE_CHECK(read_frame(fd, &type, &payload) && type == FrameType::load, "worker: expected a load frame");
    FrameReader rd(payload);
    const uint32_t n = rd.u32();
    std::vector<std::string> names, confs, weights;
    for (uint32_t i = 0; i < n; ++i) {
      names.push_back(rd.str());
      confs.push_back(rd.str());
      weights.push_back(rd.str());
    }
    const double thr = rd.f64();
    const auto warm = parse_warmup(rd.str());
    const uint64_t max_act = rd.u64();
    for (uint32_t i = 0; i < n; ++i) {
      ExecOptions eo = ExecOptions::from_env();  // NE_VERBOSE (the threshold came in the frame)
      if (thr >= 0) eo.op.sparse_threshold = float(thr);
      eo.max_activation_bytes = size_t(max_act);
      models.push_back(std::make_unique<Executor>(NE_LOAD_IR(confs[i], weights[i]), eo));
      std::mt19937 rng(1);
      for (auto& bs : warm) models.back()->run(generate_inputs(models.back()->model(), bs.first, bs.second, rng));
    }
  } catch (const std::exception& e) {
    FrameWriter w;
    w.str(e.what());
    write_frame(fd, FrameType::fatal, w.buffer());
    return 1;
  }
  {
    // Output metadata as a probe run (batch 2, sequence 7, generated inputs) shows it: dtype,
    // rank, and dims that follow the batch or sequence as -1. A model the probe cannot run
    // reports its outputs' declared dtypes (255: unknown) and no shape.
    FrameWriter w;
    w.u32(uint32_t(getpid()));
    w.u32(uint32_t(models.size()));
    for (auto& ex : models) {
      auto names = ex->model().output_names();
      std::vector<HostTensor> outs;
      try {
        std::mt19937 rng(1);
        outs = ex->run(generate_inputs(ex->model(), 2, 7, rng));
      } catch (const std::exception&) {
        outs.clear();
      }
      w.u32(uint32_t(names.size()));
      for (size_t i = 0; i < names.size(); ++i) {
        w.str(names[i]);
        if (outs.size() == names.size()) {
          w.u8(uint8_t(outs[i].dtype));
          w.u8(uint8_t(outs[i].shape.size()));
          for (size_t d = 0; d < outs[i].shape.size(); ++d) {
            const int64_t v = outs[i].shape[d];
            w.u64(uint64_t((d == 0 && v == 2) || (d > 0 && v == 7) ? -1 : v));
          }
        } else {
          const TensorInfo* ti = ex->model().find(names[i]);
          w.u8(ti ? uint8_t(ti->dtype) : 255);
          w.u8(255);
        }
      }
    }
    if (!write_frame(fd, FrameType::ready, w.buffer())) return 1;
  }
  // Test hook: NE_SERVER_TEST_DELAY_MS makes every batch take at least that long, so a test can
  // kill a worker while a request is in flight.
  const char* delay_env = std::getenv("NE_SERVER_TEST_DELAY_MS");
  const int delay_ms = delay_env ? std::atoi(delay_env) : 0;
  for (;;) {
    bool got;
    try {
      got = read_frame(fd, &type, &payload);
    } catch (const std::exception&) {
      return 1;
    }
    if (!got) return 0;  // the front end closed: drained or gone
    if (type != FrameType::run) return 1;
    FrameWriter w;
    uint64_t batch_id = 0;
    try {
      FrameReader rd(payload);
      batch_id = rd.u64();
      const uint32_t m = rd.u32();
      NE_CHECK(m < models.size(), "worker: model index ", m, " out of range");
      const uint32_t n = rd.u32();
      std::map<std::string, HostTensor> inputs;
      for (uint32_t i = 0; i < n; ++i) inputs.insert(rd.tensor());
      if (delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
      std::vector<HostTensor> outs = models[m]->run(inputs);
      auto names = models[m]->model().output_names();
      w.u64(batch_id);
      w.u32(0);
      w.u32(uint32_t(outs.size()));
      for (size_t i = 0; i < outs.size(); ++i) w.tensor(names[i], outs[i]);
    } catch (const ResourceError& e) {
      w = FrameWriter();
      w.u64(batch_id);
      w.u32(3);
      w.str(e.what());
    } catch (const Error& e) {
      w = FrameWriter();
      w.u64(batch_id);
      w.u32(1);
      w.str(e.what());
    } catch (const std::exception& e) {
      w = FrameWriter();
      w.u64(batch_id);
      w.u32(2);
      w.str(e.what());
    }
    if (!write_frame(fd, FrameType::result, w.buffer())) return 0;
  }
}

}  // namespace server
}  // namespace ne
