#include <map>

#include "executor/operator.hpp"

namespace ne {

static std::map<std::string, OpFactory>& registry() {
  static std::map<std::string, OpFactory> r;
  return r;
}

bool register_op(const std::string& type, OpFactory f) {
  registry()[type] = std::move(f);
  return true;
}

std::unique_ptr<Operator> create_op(const OpInfo& info) {
  auto it = registry().find(info.type);
  if (it == registry().end()) return nullptr;
  return it->second(info);
}

std::vector<std::string> registered_op_types() {
  std::vector<std::string> r;
  for (auto& kv : registry()) r.push_back(kv.first);
  return r;
}

}  // namespace ne
