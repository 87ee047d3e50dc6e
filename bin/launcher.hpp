#pragma once
#include <string>
#include <vector>

namespace ne {
// Starts `instances` copies of this binary, each under `numactl -C <its cores>` (or
// sched_setaffinity when numactl is absent) with OMP_NUM_THREADS=cores_per_instance and
// WEIGHT_SHARING=1 (unless set to 0), passing `args` plus --report_json; holds them at a barrier
// after their warm-ups so the timed runs overlap; waits; prints per-instance lines and a summary.
int launch_instances(int instances, int cores_per_instance, const std::vector<std::string>& args,
                     const std::string& report_json);
// Called by an instance after its warm-up: blocks until every instance is ready (no-op when not
// started by the launcher).
void instance_barrier();
// Called after the memory figures are read: holds every instance until all have read theirs.
void instance_barrier_end();
}  // namespace ne
