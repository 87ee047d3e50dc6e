#include "bin/instances.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "common/error.hpp"

extern char** environ;

namespace ne {
namespace instances {

std::vector<int> allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> r;
  if (sched_getaffinity(0, sizeof set, &set) == 0)
    for (int c = 0; c < CPU_SETSIZE; ++c)
      if (CPU_ISSET(c, &set)) r.push_back(c);
  return r;
}

std::vector<std::vector<int>> split_cores(int n, int c) {
  NE_CHECK(n > 0 && c > 0, "--instances and --cores_per_instance must be positive");
  const std::vector<int> cpus = allowed_cpus();
  NE_CHECK(size_t(n) * size_t(c) <= cpus.size(), "--instances ", n, " x --cores_per_instance ", c, " = ", n * c,
           " cores, but this process may use only ", cpus.size(), " cores");
  std::vector<std::vector<int>> r(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i)
    for (int k = 0; k < c; ++k) r[size_t(i)].push_back(cpus[size_t(i * c + k)]);
  return r;
}

std::string self_exe() {
  char self[4096];
  const ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
  NE_CHECK(len > 0, "cannot find this binary (/proc/self/exe)");
  self[len] = 0;
  return self;
}

bool have_numactl() { return std::system("numactl --show >/dev/null 2>&1") == 0; }

pid_t spawn(const Spec& s) {
  std::vector<std::string> argv, env;
  std::string cores;
  for (size_t k = 0; k < s.cpus.size(); ++k) cores += (k ? "," : "") + std::to_string(s.cpus[k]);
  if (s.numactl) argv = {"numactl", "-C", cores};
  argv.insert(argv.end(), s.argv.begin(), s.argv.end());
  bool weight_sharing_set = false;
  for (char** e = environ; *e; ++e) {
    const std::string v = *e;
    if (v.rfind("OMP_NUM_THREADS=", 0) == 0 || v.rfind("NE_INSTANCE=", 0) == 0 || v.rfind("INST_NUM=", 0) == 0) continue;
    weight_sharing_set = weight_sharing_set || v.rfind("WEIGHT_SHARING=", 0) == 0;
    env.push_back(v);
  }
  env.push_back("OMP_NUM_THREADS=" + std::to_string(s.cpus.size()));
  env.push_back("NE_INSTANCE=" + std::to_string(s.index));
  env.push_back("INST_NUM=" + std::to_string(s.count));
  if (!weight_sharing_set) env.push_back("WEIGHT_SHARING=1");
  env.insert(env.end(), s.extra_env.begin(), s.extra_env.end());
  std::vector<char*> av, ev;
  for (auto& a : argv) av.push_back(const_cast<char*>(a.c_str()));
  av.push_back(nullptr);
  for (auto& e : env) ev.push_back(const_cast<char*>(e.c_str()));
  ev.push_back(nullptr);
  cpu_set_t set;
  CPU_ZERO(&set);
  for (int c : s.cpus) CPU_SET(c, &set);
  const pid_t pid = fork();
  NE_CHECK(pid >= 0, "fork: ", std::strerror(errno));
  if (pid == 0) {
    sigset_t none;
    sigemptyset(&none);
    pthread_sigmask(SIG_SETMASK, &none, nullptr);
    signal(SIGPIPE, SIG_DFL);
    if (!s.numactl) sched_setaffinity(0, sizeof set, &set);
    for (int fd : s.keep_fds) fcntl(fd, F_SETFD, 0);
    execvpe(av[0], av.data(), ev.data());
    _exit(127);
  }
  return pid;
}

}  // namespace instances
}  // namespace ne
