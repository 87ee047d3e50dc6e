// ne::env — the engine's environment variables above the kernels, and the only place that reads
// them (executor/env.cpp). The front ends (neural_engine, neural_engine_server's workers, the
// Python module, neural_engine_inspect) start from ExecOptions::from_env() and let a flag or an
// argument they were given beat the variable.
//
// Elsewhere, each in one file: the kernels' variables (NE_MAX_ISA, NE_SPARSE_VERBOSE,
// NE_SPARSE_STREAM_BYTES, NE_ATTENTION_AMX) in kernels/env.cpp; the compiler's
// NE_NO_LN_QUANT_FUSION in compile/compile.cpp; the command-line tools' test hooks and launcher
// protocol in bin/ (NE_SERVER_TEST_DELAY_MS in bin/server/worker.cpp, NE_BARRIER_FDS and
// NE_BARRIER_END_FDS in bin/launcher.cpp).
//
// Variables that tests set and unset in-process (setenv) are read at each call, as before; the
// others are read when asked too (they are asked once per load or per process).
//
//   NE_SPARSE_THRESHOLD  block sparsity above which a weight goes to a sparse kernel, for every
//                        pattern (default per pattern, sparse_dispatch.hpp); a given threshold
//                        also turns the measured dispatch off.
//   NE_DISPATCH          "timed" (default) or "threshold" (the first accepting InnerProduct entry
//                        runs, no timing); any other value is an error.
//   NE_VERBOSE           set (any value): log every kernel choice and its reason.
//   NE_IP_ONLY           one InnerProduct entry name: every other entry declines.
//   NE_DENSE_MATMUL      "sgemm" or "onednn": the dense Matmul's path, forced.
//   NE_CACHE_DIR         where shared packed weights live (default /dev/shm/neural_engine).
//   NE_CACHE_VERIFY      "0": a packed-weight file found in the cache is used without its
//                        checksum pass.
//   NE_TEST_DIE_WHILE_PACKING  test hook: SIGKILL after writing a packed-weight temp file.
//   WEIGHT_SHARING       set, not "" and not "0": packed weights are shared through files in
//                        NE_CACHE_DIR (the Neural Engine's variable).
//   ONEDNN_MAX_CPU_ISA / DNNL_MAX_CPU_ISA  oneDNN's own ceiling: when set, NE_MAX_ISA leaves
//                        oneDNN alone.
#pragma once
#include <optional>
#include <string>

namespace ne::env {

// NE_SPARSE_THRESHOLD as a number; nullopt when unset or "".
std::optional<float> sparse_threshold();

enum class Dispatch { timed, threshold };
// NE_DISPATCH; unset or "" is timed. Other values: ne::Error
// "NE_DISPATCH='<v>': expected 'timed' (default) or 'threshold'".
Dispatch dispatch();

bool verbose();                 // NE_VERBOSE is set
std::string ip_only();          // NE_IP_ONLY, "" when unset
std::string dense_matmul();     // NE_DENSE_MATMUL, "" when unset
std::string cache_dir();        // NE_CACHE_DIR, "/dev/shm/neural_engine" when unset or ""
bool cache_verify();            // NE_CACHE_VERIFY is not "0"
bool test_die_while_packing();  // NE_TEST_DIE_WHILE_PACKING is set
bool weight_sharing();          // WEIGHT_SHARING set, not "" and not "0"
bool onednn_isa_set();          // ONEDNN_MAX_CPU_ISA or DNNL_MAX_CPU_ISA is set

}  // namespace ne::env
