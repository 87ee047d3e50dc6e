// Pinned instances of this binary, shared by `neural_engine --instances` (bin/launcher.cpp) and
// neural_engine_server's workers (bin/server/instances.cpp): the allowed cores split into
// instances, each instance's environment (OMP_NUM_THREADS, WEIGHT_SHARING, INST_NUM,
// NE_INSTANCE) and its start (fork + exec, pinned with sched_setaffinity or `numactl -C`).
#pragma once
#include <sys/types.h>

#include <string>
#include <vector>

namespace ne {
namespace instances {

// The cores this process may run on.
std::vector<int> allowed_cpus();
// Instance i gets cores [i*c, i*c+c) of the allowed ones; an error (ne::Error) when n*c is more
// than there are.
std::vector<std::vector<int>> split_cores(int n, int c);
// The path of this binary (/proc/self/exe).
std::string self_exe();
bool have_numactl();

struct Spec {
  std::vector<std::string> argv;       // argv[0]: the binary (searched in PATH when numactl)
  std::vector<std::string> extra_env;  // NAME=value, set after the instance variables
  std::vector<int> cpus;               // the cores it is pinned to
  int index = 0, count = 1;            // NE_INSTANCE / INST_NUM
  bool numactl = false;                // pin with `numactl -C` (else sched_setaffinity)
  std::vector<int> keep_fds;           // descriptors it inherits even if close-on-exec
};

// Starts one instance: this process's environment without OMP_NUM_THREADS, NE_INSTANCE and
// INST_NUM, then OMP_NUM_THREADS=<cores>, NE_INSTANCE, INST_NUM, WEIGHT_SHARING=1 unless set, and
// extra_env; signal mask and SIGPIPE reset to the defaults. Everything is prepared before fork
// (after it only async-signal-safe calls). Returns the pid; an error when fork fails.
pid_t spawn(const Spec& s);

}  // namespace instances
}  // namespace ne
