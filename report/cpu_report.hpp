// The CPU a run was measured on, for the run summaries of the CLI, the launcher and the Python
// module (--report_json, Graph.benchmark).
#pragma once
#include <nlohmann/json.hpp>

#include <string>

namespace ne {

// {"model": CPUID brand string, "isa": the ISA tier the kernels used (NE_MAX_ISA applied),
//  "isa_detected": the best tier of this CPU + OS + process, "amx": AMX kernels usable}
nlohmann::ordered_json cpu_report();

// " CPU is <model> (<isa>)", with ", capped from <detected>" when NE_MAX_ISA lowered it.
std::string cpu_line();

}  // namespace ne
