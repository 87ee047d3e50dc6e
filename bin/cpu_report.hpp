// The CPU a run was measured on, for the run summary and --report_json (bin/ only).
#pragma once
#include <nlohmann/json.hpp>

#include <string>

#include "kernels/cpu_features.hpp"

namespace ne {

// {"model": CPUID brand string, "isa": the ISA tier the kernels used (NE_MAX_ISA applied),
//  "isa_detected": the best tier of this CPU + OS + process, "amx": AMX kernels usable}
inline nlohmann::ordered_json cpu_report() {
  nlohmann::ordered_json j;
  j["model"] = cpu::brand();
  j["isa"] = cpu::isa_name(cpu::max_isa());
  j["isa_detected"] = cpu::isa_name(cpu::detected_isa());
  j["amx"] = cpu::mayiuse(cpu::Isa::avx512_core_amx);
  return j;
}

// " CPU is <model> (<isa>)", with ", capped from <detected>" when NE_MAX_ISA lowered it.
inline std::string cpu_line() {
  std::string s = " CPU is " + cpu::brand() + " (" + cpu::isa_name(cpu::max_isa());
  if (cpu::max_isa() != cpu::detected_isa()) s += std::string(", capped from ") + cpu::isa_name(cpu::detected_isa());
  return s + ")";
}

}  // namespace ne
