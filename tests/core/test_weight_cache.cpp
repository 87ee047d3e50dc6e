// Shared packed-weight cache: built once, mapped by later users, corrupt files rebuilt, a
// process killed mid-packing leaves nothing that breaks the next start.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include "executor/weight_cache.hpp"
#include "tests/core/test_util.hpp"

namespace {
struct EnvGuard {
  EnvGuard(const std::string& dir) {
    setenv("WEIGHT_SHARING", "1", 1);
    setenv("NE_CACHE_DIR", dir.c_str(), 1);
  }
  ~EnvGuard() {
    unsetenv("WEIGHT_SHARING");
    unsetenv("NE_CACHE_DIR");
  }
};
void fill(uint8_t* p, size_t n, uint8_t seed) {
  for (size_t i = 0; i < n; ++i) p[i] = uint8_t(i * 7 + seed);
}
}  // namespace

TEST(WeightCache, PrivateWithoutSharing) {
  unsetenv("WEIGHT_SHARING");
  int calls = 0;
  auto b = ne::get_packed("k", 1000, [&](uint8_t* p) { ++calls; fill(p, 1000, 1); });
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(b->shared());
  EXPECT_EQ(reinterpret_cast<uintptr_t>(b->data()) % 64, 0u);
  EXPECT_EQ(b->data()[999], uint8_t(999 * 7 + 1));
}

TEST(WeightCache, BuiltOnceThenMapped) {
  std::string dir = ne_test::tmp_dir("wc1");
  EnvGuard g(dir);
  int calls = 0;
  auto b1 = ne::get_packed("key-a", 5000, [&](uint8_t* p) { ++calls; fill(p, 5000, 3); });
  auto b2 = ne::get_packed("key-a", 5000, [&](uint8_t* p) { ++calls; fill(p, 5000, 3); });
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(b2->shared());
  EXPECT_EQ(b1->path(), b2->path());
  EXPECT_EQ(b2->data()[4999], uint8_t(4999 * 7 + 3));
  EXPECT_NE(ne::mapped_cache_paths().find(b1->path()), std::string::npos);
}

TEST(WeightCache, CorruptFileIsRebuilt) {
  std::string dir = ne_test::tmp_dir("wc2");
  EnvGuard g(dir);
  std::string path;
  {
    auto b = ne::get_packed("key-b", 8192, [&](uint8_t* p) { fill(p, 8192, 5); });
    path = b->path();
  }
  {  // flip a payload byte
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(4096 + 100);
    f.put(char(0x55));
  }
  int calls = 0;
  auto b = ne::get_packed("key-b", 8192, [&](uint8_t* p) { ++calls; fill(p, 8192, 5); });
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(b->data()[100], uint8_t(100 * 7 + 5));
  // truncated file
  truncate(path.c_str(), 5000);
  calls = 0;
  auto c = ne::get_packed("key-b", 8192, [&](uint8_t* p) { ++calls; fill(p, 8192, 5); });
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(c->data()[8191], uint8_t(8191 * 7 + 5));
}

TEST(WeightCache, KilledWhilePackingLeavesNothingBroken) {
  std::string dir = ne_test::tmp_dir("wc3");
  EnvGuard g(dir);
  pid_t pid = fork();
  if (pid == 0) {
    ne::get_packed("key-c", 1 << 20, [&](uint8_t* p) {
      fill(p, 1 << 19, 9);
      raise(SIGKILL);  // dies half-way through packing
    });
    _exit(0);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  ASSERT_TRUE(WIFSIGNALED(st));
  int calls = 0;
  auto b = ne::get_packed("key-c", 1 << 20, [&](uint8_t* p) { ++calls; fill(p, 1 << 20, 9); });
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(b->data()[(1 << 20) - 1], uint8_t(((1 << 20) - 1) * 7 + 9));
  std::string out;
  ne_test::run_cmd("ls " + dir, &out);
  EXPECT_EQ(out.find(".tmp."), std::string::npos) << out;  // the dead builder's temp was removed
}
