#include "executor/ops/portable.hpp"

#include <atomic>

namespace ne::ops {
namespace {
std::atomic<bool> g_portable{false};
}  // namespace

void force_portable(bool on) { g_portable.store(on); }
bool portable_forced() { return g_portable.load(std::memory_order_relaxed); }

}  // namespace ne::ops
