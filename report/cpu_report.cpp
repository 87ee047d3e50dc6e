#include "report/cpu_report.hpp"

#include "kernels/cpu_features.hpp"

namespace ne {

nlohmann::ordered_json cpu_report() {
  nlohmann::ordered_json j;
  j["model"] = cpu::brand();
  j["isa"] = cpu::isa_name(cpu::max_isa());
  j["isa_detected"] = cpu::isa_name(cpu::detected_isa());
  j["amx"] = cpu::mayiuse(cpu::Isa::avx512_core_amx);
  return j;
}

std::string cpu_line() {
  std::string s = " CPU is " + cpu::brand() + " (" + cpu::isa_name(cpu::max_isa());
  if (cpu::max_isa() != cpu::detected_isa()) s += std::string(", capped from ") + cpu::isa_name(cpu::detected_isa());
  return s + ")";
}

}  // namespace ne
