// ne::cpu: the lattice is monotone, the cap works, the description is one line.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <string>

#include "kernels/cpu_features.hpp"

using ne::cpu::Isa;

// Holds under any NE_MAX_ISA in the environment (scripts/test.sh runs this suite under capped
// tiers): the uncapped lattice is checked with set_isa_cap(detected) overriding the env cap, and
// the env cap itself against its own value.
TEST(CpuFeatures, LatticeIsMonotoneAndCapWorks) {
  const Isa d = ne::cpu::detected_isa();
  ne::cpu::set_isa_cap(d);  // no effective cap
  EXPECT_EQ(ne::cpu::max_isa(), d);
  for (int i = 0; i <= int(d); ++i) EXPECT_EQ(ne::cpu::why_not(Isa(i)), "") << ne::cpu::isa_name(Isa(i));
  for (int i = int(d) + 1; i <= int(Isa::avx512_core_amx); ++i) {
    EXPECT_NE(ne::cpu::why_not(Isa(i)), "") << ne::cpu::isa_name(Isa(i));
    // Above the detected level the reason is what the CPU/OS lacks, never a cap.
    EXPECT_EQ(ne::cpu::why_not(Isa(i)).find("capped"), std::string::npos) << ne::cpu::why_not(Isa(i));
  }
  ne::cpu::set_isa_cap(Isa::avx2);
  EXPECT_LE(int(ne::cpu::max_isa()), int(Isa::avx2));
  if (d > Isa::avx2) {
    EXPECT_FALSE(ne::cpu::mayiuse(Isa::avx512_core));
    EXPECT_NE(ne::cpu::why_not(Isa::avx512_core).find("capped by set_isa_cap(avx2)"), std::string::npos)
        << ne::cpu::why_not(Isa::avx512_core);
  }
  ne::cpu::clear_isa_cap();
  // Back to the env cap (read once, at first use), or none.
  const char* e = std::getenv("NE_MAX_ISA");
  Isa env = d;
  if (!e || !ne::cpu::parse_isa(e, &env)) env = d;  // unset or unparsable: no cap
  env = std::min(env, d);
  EXPECT_EQ(ne::cpu::max_isa(), env) << "NE_MAX_ISA=" << (e ? e : "(unset)");
  for (int i = 0; i <= int(env); ++i) EXPECT_EQ(ne::cpu::why_not(Isa(i)), "") << ne::cpu::isa_name(Isa(i));
  for (int i = int(env) + 1; i <= int(d); ++i)
    EXPECT_EQ(ne::cpu::why_not(Isa(i)), std::string("capped by NE_MAX_ISA=") + e) << ne::cpu::isa_name(Isa(i));
}

TEST(CpuFeatures, FeaturesAgreeWithLattice) {
  const auto& f = ne::cpu::features();
  if (ne::cpu::detected_isa() >= Isa::avx512_core) {
    EXPECT_TRUE(f.avx512f && f.avx512bw && f.os_zmm);
  }
  if (ne::cpu::detected_isa() >= Isa::avx512_core_vnni) {
    EXPECT_TRUE(f.avx512_vnni);
  }
  if (ne::cpu::detected_isa() >= Isa::avx512_core_amx) {
    EXPECT_TRUE(f.amx_permitted && f.os_amx);
  }
  if (!f.amx_tile) {
    EXPECT_LT(ne::cpu::detected_isa(), Isa::avx512_core_amx);
  }
}

TEST(CpuFeatures, ParseAndDescribe) {
  Isa i;
  EXPECT_TRUE(ne::cpu::parse_isa("avx512_core_vnni", &i));
  EXPECT_EQ(i, Isa::avx512_core_vnni);
  EXPECT_FALSE(ne::cpu::parse_isa("avx9000", &i));
  const std::string s = ne::cpu::describe();
  EXPECT_EQ(s.find('\n'), std::string::npos);
  EXPECT_NE(s.find(ne::cpu::isa_name(ne::cpu::detected_isa())), std::string::npos);
  std::printf("%s\n", s.c_str());
}
