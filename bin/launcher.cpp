#include "bin/launcher.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "report/cpu_report.hpp"
#include "bin/instances.hpp"
#include "common/error.hpp"

namespace ne {

namespace {
std::string read_all(const std::string& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}
}  // namespace

void instance_barrier(const char* var) {
  const char* e = std::getenv(var);
  if (!e) return;
  int rd = -1, wr = -1;
  if (std::sscanf(e, "%d,%d", &rd, &wr) != 2) return;
  char c = 1;
  if (write(wr, &c, 1) != 1) return;
  close(wr);
  // The launcher closes its end when all are ready: read returns 0 (EOF).
  while (read(rd, &c, 1) > 0) {
  }
  close(rd);
}

void instance_barrier() { instance_barrier("NE_BARRIER_FDS"); }
void instance_barrier_end() { instance_barrier("NE_BARRIER_END_FDS"); }

int launch_instances(int n, int c, const std::vector<std::string>& args, const std::string& report_json) {
  const std::vector<std::vector<int>> cores = instances::split_cores(n, c);
  const bool numactl = instances::have_numactl();
  // The parent's ends are close-on-exec: a child that kept the write end of `go` would never see
  // the barrier open. The children's ends are passed on (keep_fds).
  int ready[2], go[2], ready2[2], go2[2];
  NE_CHECK(pipe2(ready, O_CLOEXEC) == 0 && pipe2(go, O_CLOEXEC) == 0 && pipe2(ready2, O_CLOEXEC) == 0 &&
               pipe2(go2, O_CLOEXEC) == 0,
           "pipe failed");
  const std::string self = instances::self_exe();
  std::string tmpdir = "/tmp/ne_launch_" + std::to_string(getpid());
  ::mkdir(tmpdir.c_str(), 0755);
  std::vector<pid_t> pids;
  std::vector<std::string> reports, corelists;
  for (int i = 0; i < n; ++i) {
    std::string cl;
    for (size_t k = 0; k < cores[size_t(i)].size(); ++k) cl += (k ? "," : "") + std::to_string(cores[size_t(i)][k]);
    std::string rep = tmpdir + "/instance" + std::to_string(i) + ".json";
    reports.push_back(rep);
    corelists.push_back(cl);
    instances::Spec sp;
    sp.argv = {self};
    sp.argv.insert(sp.argv.end(), args.begin(), args.end());
    sp.argv.push_back("--report_json=" + rep);
    sp.argv.push_back("--instances=0");
    sp.extra_env = {"NE_BARRIER_FDS=" + std::to_string(go[0]) + "," + std::to_string(ready[1]),
                    "NE_BARRIER_END_FDS=" + std::to_string(go2[0]) + "," + std::to_string(ready2[1])};
    sp.cpus = cores[size_t(i)];
    sp.index = i;
    sp.count = n;
    sp.numactl = numactl;
    sp.keep_fds = {go[0], ready[1], go2[0], ready2[1]};
    pids.push_back(instances::spawn(sp));
  }
  close(ready[1]);
  close(go[0]);
  close(ready2[1]);
  close(go2[0]);
  // Wait until every instance is warm (or has died), then release them together; likewise at
  // the end, so each reads its memory figures while all the others still map the weights.
  int got = 0;
  char ch;
  while (got < n && read(ready[0], &ch, 1) == 1) ++got;
  close(go[1]);
  close(ready[0]);
  got = 0;
  while (got < n && read(ready2[0], &ch, 1) == 1) ++got;
  close(go2[1]);
  close(ready2[0]);
  int failed = 0;
  for (int i = 0; i < n; ++i) {
    int st = 0;
    waitpid(pids[size_t(i)], &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
      std::cerr << "error: instance " << i << " failed (" << (WIFEXITED(st) ? "exit " + std::to_string(WEXITSTATUS(st))
                                                                           : "signal " + std::to_string(WTERMSIG(st)))
                << ")\n";
      ++failed;
    }
  }
  if (failed) return 1;
  auto cleanup = [&] {
    for (auto& r : reports) ::unlink(r.c_str());
    ::rmdir(tmpdir.c_str());
  };
  double total = 0, lat_sum = 0;
  int batch = 0;
  nlohmann::ordered_json agg;
  agg["instances"] = n;
  agg["cores_per_instance"] = c;
  agg["cpu"] = cpu_report();
  agg["per_instance"] = nlohmann::ordered_json::array();
  std::cout << std::fixed;
  for (int i = 0; i < n; ++i) {
    nlohmann::ordered_json r;
    try {
      r = nlohmann::ordered_json::parse(read_all(reports[size_t(i)]));
    } catch (const nlohmann::json::exception& e) {
      std::cerr << "error: instance " << i << ": its report " << reports[size_t(i)] << " does not parse: " << e.what()
                << "\n";
      cleanup();
      return 1;
    }
    auto num = [&](const nlohmann::ordered_json& o, const char* k) {
      return o.is_object() && o.contains(k) && o[k].is_number() ? o[k].get<double>() : 0.0;
    };
    const nlohmann::ordered_json none = nlohmann::ordered_json::object();
    const auto& mem = r.contains("memory") ? r["memory"] : none;
    double thr = num(r, "throughput");
    double lat = num(r.contains("latency_ms") ? r["latency_ms"] : none, "mean");
    batch = int(num(r, "batch"));
    total += thr;
    lat_sum += lat;
    double wpss = num(mem, "weight_pss_bytes"), wrss = num(mem, "weight_resident_bytes");
    double priv = num(mem, "private_bytes"), arena = num(mem, "arena_bytes");
    std::cout << " Instance " << i << " (cores " << corelists[size_t(i)] << "): Latency is " << std::setprecision(3)
              << (batch ? lat / batch : 0) << " ms, Throughput is " << std::setprecision(2) << thr
              << ", weights resident " << std::setprecision(1) << wrss / 1048576 << " MiB (PSS " << wpss / 1048576
              << " MiB), private " << priv / 1048576 << " MiB, arena " << arena / 1048576 << " MiB\n";
    agg["per_instance"].push_back(std::move(r));
  }
  std::cout << " Batch Size is " << batch << "\n";
  std::cout << " Instances is " << n << " x " << c << " cores\n";
  std::cout << " Latency is " << std::setprecision(3) << (batch ? lat_sum / n / batch : 0) << " ms\n";
  std::cout << " Throughput is " << std::setprecision(2) << total << "\n";
  std::cout << cpu_line() << "\n";
  agg["throughput"] = total;
  agg["latency_ms_mean"] = lat_sum / n;
  if (!report_json.empty()) {
    std::ofstream f(report_json);
    f << agg.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) << "\n";
    if (!f.good()) {
      std::cerr << "error: " << report_json << ": cannot write\n";
      cleanup();
      return 1;
    }
  }
  cleanup();
  return 0;
}

}  // namespace ne
