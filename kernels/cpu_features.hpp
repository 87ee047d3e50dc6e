// ne::cpu — CPU feature detection, done once, truthfully:
//   CPUID says what the silicon has; XCR0 (xgetbv) says whether the OS saves the
//   YMM/ZMM/opmask and AMX tile state; arch_prctl(ARCH_REQ_XCOMP_PERM, XTILEDATA)
//   says whether this process may use AMX tiles (Linux >= 5.16).
// An ISA lattice orders what the kernels need; NE_MAX_ISA (env, read by kernels/env.cpp) or
// set_isa_cap() caps it so lower paths can be exercised on a bigger CPU.
// This file is compiled WITHOUT ISA flags.
#pragma once
#include <string>

namespace ne::cpu {

struct Features {
  // CPUID
  bool sse41 = false, avx = false, avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false;
  bool avx512_vnni = false, avx512_bf16 = false;
  bool amx_tile = false, amx_int8 = false, amx_bf16 = false;
  // OS state (XCR0)
  bool os_ymm = false, os_zmm = false, os_amx = false;
  // arch_prctl permission for XTILEDATA
  bool amx_permitted = false;
};

// ISA lattice, each level implies the ones below it.
enum class Isa : int {
  generic = 0,        // any x86-64 (scalar reference kernels)
  sse41,
  avx2,               // AVX2 + FMA
  avx512_core,        // F + BW + VL + DQ, ZMM state enabled
  avx512_core_vnni,   // + AVX512_VNNI
  avx512_core_bf16,   // + AVX512_BF16
  avx512_core_amx,    // + AMX tile/int8/bf16, XCR0 tile state, arch_prctl permission
};

const Features& features();          // detected once (thread-safe static)
Isa detected_isa();                  // best level this CPU + OS + process supports
Isa max_isa();                       // min(detected, cap); cap from NE_MAX_ISA or set_isa_cap
bool mayiuse(Isa isa);               // isa <= max_isa()
void set_isa_cap(Isa cap);           // override the env cap at run time (tests, executor flag)
void clear_isa_cap();                // back to the env (or no) cap
const char* isa_name(Isa isa);       // "avx512_core_vnni", ...
bool parse_isa(const char* s, Isa* out);
// Why a level is not usable, e.g. "CPU lacks AVX512_VNNI", "capped by NE_MAX_ISA=avx2";
// empty string when usable.
std::string why_not(Isa isa);
// The CPU's name from the CPUID brand string, e.g. "Intel(R) Xeon(R) Platinum 8480+" (leading
// and trailing spaces trimmed; "unknown" when the CPU has no brand string).
std::string brand();
// One line for logs: "cpu: AMD ... | avx2 fma avx512f ... | os: zmm | isa avx512_core_bf16 (cap none)"
std::string describe();

}  // namespace ne::cpu
