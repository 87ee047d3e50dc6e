#include "kernels/cpu_features.hpp"

#include <cpuid.h>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#ifdef __linux__
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "kernels/env.hpp"

namespace ne::cpu {
namespace {

void cpuid(unsigned leaf, unsigned sub, unsigned r[4]) {
  __cpuid_count(leaf, sub, r[0], r[1], r[2], r[3]);
}

// xgetbv without -mxsave: raw encoding.
uint64_t xgetbv0() {
  uint32_t eax, edx;
  __asm__ volatile(".byte 0x0f, 0x01, 0xd0" : "=a"(eax), "=d"(edx) : "c"(0));
  return (uint64_t(edx) << 32) | eax;
}

bool request_amx_permission() {
#ifdef __linux__
  constexpr long kArchGetXcompPerm = 0x1022, kArchReqXcompPerm = 0x1023;
  constexpr long kXfeatureXtiledata = 18;
  unsigned long bitmask = 0;
  if (syscall(SYS_arch_prctl, kArchGetXcompPerm, &bitmask) == 0 &&
      (bitmask & (1ul << kXfeatureXtiledata)))
    return true;
  if (syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) != 0) return false;
  bitmask = 0;
  if (syscall(SYS_arch_prctl, kArchGetXcompPerm, &bitmask) != 0) return false;
  return (bitmask & (1ul << kXfeatureXtiledata)) != 0;
#else
  return false;
#endif
}

Features detect() {
  Features f;
  unsigned r[4];
  cpuid(0, 0, r);
  const unsigned max_leaf = r[0];
  if (max_leaf < 1) return f;
  cpuid(1, 0, r);
  const unsigned ecx1 = r[2];
  f.sse41 = ecx1 & (1u << 19);
  f.fma = ecx1 & (1u << 12);
  f.f16c = ecx1 & (1u << 29);
  const bool osxsave = ecx1 & (1u << 27);
  f.avx = ecx1 & (1u << 28);
  uint64_t xcr0 = osxsave ? xgetbv0() : 0;
  f.os_ymm = (xcr0 & 0x6) == 0x6;                 // SSE + AVX state
  f.os_zmm = f.os_ymm && (xcr0 & 0xe0) == 0xe0;   // opmask + ZMM_Hi256 + Hi16_ZMM
  f.os_amx = (xcr0 & (3ull << 17)) == (3ull << 17);  // XTILECFG + XTILEDATA
  if (max_leaf >= 7) {
    cpuid(7, 0, r);
    const unsigned ebx = r[1], ecx = r[2], edx = r[3];
    const unsigned max_sub = r[0];
    f.avx2 = ebx & (1u << 5);
    f.avx512f = ebx & (1u << 16);
    f.avx512dq = ebx & (1u << 17);
    f.avx512bw = ebx & (1u << 30);
    f.avx512vl = ebx & (1u << 31);
    f.avx512_vnni = ecx & (1u << 11);
    f.amx_bf16 = edx & (1u << 22);
    f.amx_tile = edx & (1u << 24);
    f.amx_int8 = edx & (1u << 25);
    if (max_sub >= 1) {
      cpuid(7, 1, r);
      f.avx512_bf16 = r[0] & (1u << 5);
    }
  }
  if (!f.os_ymm) f.avx = f.avx2 = f.fma = false;
  if (f.amx_tile && f.os_amx) f.amx_permitted = request_amx_permission();
  return f;
}

const char* const kIsaNames[] = {"generic",          "sse41",           "avx2",
                                  "avx512_core",      "avx512_core_vnni", "avx512_core_bf16",
                                  "avx512_core_amx"};
constexpr int kNumIsa = 7;

std::string missing(Isa isa) {
  const Features& f = features();
  switch (isa) {
    case Isa::generic: return "";
    case Isa::sse41: return f.sse41 ? "" : "CPU lacks SSE4.1";
    case Isa::avx2:
      if (!f.avx2 || !f.fma) return "CPU lacks AVX2/FMA";
      if (!f.os_ymm) return "OS does not enable YMM state (XCR0)";
      return missing(Isa::sse41);
    case Isa::avx512_core:
      if (!(f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq)) return "CPU lacks AVX512 F/BW/VL/DQ";
      if (!f.os_zmm) return "OS does not enable ZMM/opmask state (XCR0)";
      return missing(Isa::avx2);
    case Isa::avx512_core_vnni:
      if (!f.avx512_vnni) return "CPU lacks AVX512_VNNI";
      return missing(Isa::avx512_core);
    case Isa::avx512_core_bf16:
      if (!f.avx512_bf16) return "CPU lacks AVX512_BF16";
      return missing(Isa::avx512_core_vnni);
    case Isa::avx512_core_amx:
      if (!(f.amx_tile && f.amx_int8 && f.amx_bf16)) return "CPU lacks AMX_TILE/AMX_INT8/AMX_BF16";
      if (!f.os_amx) return "OS does not enable AMX tile state (XCR0)";
      if (!f.amx_permitted) return "arch_prctl(ARCH_REQ_XCOMP_PERM, XTILEDATA) refused";
      return missing(Isa::avx512_core_bf16);
  }
  return "unknown ISA";
}

Isa compute_detected() {
  Isa best = Isa::generic;
  for (int i = 1; i < kNumIsa; ++i)
    if (missing(Isa(i)).empty()) best = Isa(i);
  return best;
}

struct Cap {
  std::atomic<int> override_cap{-1};
  int env_cap = -1;
  std::string env_text;
};
Cap& cap_state() {
  static Cap* c = [] {
    auto* c = new Cap;
    if (const char* e = ne::kernels::env::max_isa()) {
      Isa isa;
      c->env_text = e;
      if (parse_isa(e, &isa)) c->env_cap = int(isa);
    }
    return c;
  }();
  return *c;
}

}  // namespace

const Features& features() {
  static const Features f = detect();
  return f;
}

Isa detected_isa() {
  static const Isa d = compute_detected();
  return d;
}

Isa max_isa() {
  Cap& c = cap_state();
  int cap = c.override_cap.load();
  if (cap < 0) cap = c.env_cap;
  int d = int(detected_isa());
  return Isa(cap >= 0 && cap < d ? cap : d);
}

bool mayiuse(Isa isa) { return int(isa) <= int(max_isa()); }
void set_isa_cap(Isa cap) { cap_state().override_cap = int(cap); }
void clear_isa_cap() { cap_state().override_cap = -1; }

const char* isa_name(Isa isa) {
  int i = int(isa);
  return i >= 0 && i < kNumIsa ? kIsaNames[i] : "unknown";
}

bool parse_isa(const char* s, Isa* out) {
  if (!s) return false;
  for (int i = 0; i < kNumIsa; ++i)
    if (std::strcmp(s, kIsaNames[i]) == 0 || (i == 0 && std::strcmp(s, "any") == 0)) {
      *out = Isa(i);
      return true;
    }
  // oneDNN spellings
  if (!std::strcmp(s, "avx512_core_amx_fp16")) { *out = Isa::avx512_core_amx; return true; }
  return false;
}

std::string why_not(Isa isa) {
  std::string m = missing(isa);
  if (!m.empty()) return m;
  if (!mayiuse(isa)) {
    Cap& c = cap_state();
    if (c.override_cap.load() >= 0)
      return std::string("capped by set_isa_cap(") + isa_name(Isa(c.override_cap.load())) + ")";
    return "capped by NE_MAX_ISA=" + c.env_text;
  }
  return "";
}

std::string brand() {
  unsigned r[4];
  char text[49] = {0};
  cpuid(0x80000000u, 0, r);
  if (r[0] >= 0x80000004u)
    for (unsigned i = 0; i < 3; ++i) {
      cpuid(0x80000002u + i, 0, r);
      std::memcpy(text + 16 * i, r, 16);
    }
  std::string s = text;
  size_t a = s.find_first_not_of(' '), e = s.find_last_not_of(' ');
  return a == std::string::npos ? "unknown" : s.substr(a, e - a + 1);
}

std::string describe() {
  const Features& f = features();
  std::string s = "cpu: " + brand();
  s += " | has:";
  struct { bool v; const char* n; } flags[] = {
      {f.sse41, "sse4.1"},     {f.avx2, "avx2"},           {f.fma, "fma"},
      {f.avx512f, "avx512f"},  {f.avx512bw, "avx512bw"},   {f.avx512vl, "avx512vl"},
      {f.avx512dq, "avx512dq"}, {f.avx512_vnni, "avx512_vnni"}, {f.avx512_bf16, "avx512_bf16"},
      {f.amx_tile, "amx_tile"}, {f.amx_int8, "amx_int8"}, {f.amx_bf16, "amx_bf16"}};
  for (auto& fl : flags)
    if (fl.v) { s += ' '; s += fl.n; }
  s += " | os:";
  s += f.os_ymm ? " ymm" : "";
  s += f.os_zmm ? " zmm" : "";
  s += f.os_amx ? " amx" : "";
  if (f.amx_tile) s += f.amx_permitted ? " amx_perm" : " amx_perm_refused";
  s += " | isa ";
  s += isa_name(detected_isa());
  if (max_isa() != detected_isa()) {
    s += " capped to ";
    s += isa_name(max_isa());
  }
  return s;
}

}  // namespace ne::cpu
