// The only reader of the kernels' environment variables (kernels/env.hpp lists them).
#include "kernels/env.hpp"

#include <cstdlib>
#include <cstring>
#include <string>

namespace ne::kernels::env {
namespace {

// The variables read once, at the first call that needs one of them.
struct Once {
  bool max_isa_set = false;
  std::string max_isa;
  bool sparse_verbose = false;
  long long sparse_stream_bytes = 8ll << 20;
};

const Once& once() {
  static const Once o = [] {
    Once o;
    if (const char* e = std::getenv("NE_MAX_ISA")) o.max_isa_set = true, o.max_isa = e;
    if (const char* e = std::getenv("NE_SPARSE_VERBOSE")) o.sparse_verbose = *e && *e != '0';
    if (const char* e = std::getenv("NE_SPARSE_STREAM_BYTES"); e && *e) o.sparse_stream_bytes = std::atoll(e);
    return o;
  }();
  return o;
}

}  // namespace

const char* max_isa() { return once().max_isa_set ? once().max_isa.c_str() : nullptr; }
bool sparse_verbose() { return once().sparse_verbose; }
long long sparse_stream_bytes() { return once().sparse_stream_bytes; }

bool attention_amx_disabled() {
  const char* e = std::getenv("NE_ATTENTION_AMX");
  return e && std::strcmp(e, "0") == 0;
}

}  // namespace ne::kernels::env
