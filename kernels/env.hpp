// ne::kernels::env — the kernels' environment variables, and the only place that reads them
// (kernels/env.cpp). The engine's own (NE_DISPATCH, NE_SPARSE_THRESHOLD, NE_VERBOSE, the weight
// cache, ...) are read in executor/env.cpp; front ends take them from there.
//
//   NE_MAX_ISA             the ISA ceiling (ne::cpu: "avx2", "avx512_core", ..., "any"); an
//                          unknown level caps nothing. Read once; cpu::set_isa_cap() overrides it
//                          at run time. Also caps oneDNN (executor/ops/dense_common.cpp) unless
//                          ONEDNN_MAX_CPU_ISA / DNNL_MAX_CPU_ISA is set.
//   NE_SPARSE_VERBOSE      set, non-empty and not "0...": the block-sparse GEMM logs each kernel
//                          choice once to stderr. Read once.
//   NE_SPARSE_STREAM_BYTES fp32 outputs of at least this many bytes are written with
//                          non-temporal stores (default 8 MiB; 0 = never). Read once.
//   NE_ATTENTION_AMX       "0": the AMX attention kernels decline. Read at each call (tests and
//                          bench_attention toggle it in-process).
//
// Declarations only (no inline code): ISA-flagged kernel files include this header.
#pragma once

namespace ne::kernels::env {

const char* max_isa();            // NE_MAX_ISA as given; nullptr when unset
bool sparse_verbose();            // NE_SPARSE_VERBOSE
long long sparse_stream_bytes();  // NE_SPARSE_STREAM_BYTES
bool attention_amx_disabled();    // NE_ATTENTION_AMX=0

}  // namespace ne::kernels::env
