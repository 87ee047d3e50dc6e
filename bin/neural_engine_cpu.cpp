// neural_engine_cpu: what this CPU is to the engine (ne::cpu's detection, under NE_MAX_ISA).
//   neural_engine_cpu              one line: model name | features | OS state | ISA tier
//   neural_engine_cpu --isa        the detected ISA tier name (e.g. avx512_core_amx), uncapped
//   neural_engine_cpu --why ISA    empty if the tier is usable here, else why not (exit 1)
// scripts/test.sh uses it to pick the capped test tiers.
#include <cstdio>
#include <cstring>
#include <string>

#include "kernels/cpu_features.hpp"

int main(int argc, char** argv) {
  if (argc == 2 && !std::strcmp(argv[1], "--isa")) {
    std::printf("%s\n", ne::cpu::isa_name(ne::cpu::detected_isa()));
    return 0;
  }
  if (argc == 3 && !std::strcmp(argv[1], "--why")) {
    ne::cpu::Isa isa;
    if (!ne::cpu::parse_isa(argv[2], &isa)) {
      std::fprintf(stderr, "error: unknown ISA tier '%s'\n", argv[2]);
      return 2;
    }
    const std::string w = ne::cpu::why_not(isa);
    if (w.empty()) return 0;
    std::printf("%s\n", w.c_str());
    return 1;
  }
  if (argc != 1) {
    std::fprintf(stderr, "usage: neural_engine_cpu [--isa | --why ISA]\n");
    return 2;
  }
  std::printf("%s\n", ne::cpu::describe().c_str());
  return 0;
}
