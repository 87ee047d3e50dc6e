// Errors at the boundary: an exception carrying context (file, op, tensor, what was expected).
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace ne {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

// A caller's input does not fit the model (a missing or unknown input name, a dtype, rank or
// shape other than the declared one, a byte count that does not match the shape). The Python
// module raises ValueError for it, RuntimeError for other errors.
class InputError : public Error {
 public:
  explicit InputError(const std::string& msg) : Error(msg) {}
};

// A call would need more than a configured limit allows (the executor's max_activation_bytes):
// nothing was allocated or run. The server answers 413 for it.
class ResourceError : public Error {
 public:
  explicit ResourceError(const std::string& msg) : Error(msg) {}
};

namespace detail {
inline void cat(std::ostringstream&) {}
template <class T, class... R>
void cat(std::ostringstream& os, const T& v, const R&... r) {
  os << v;
  cat(os, r...);
}
}  // namespace detail

template <class... A>
std::string str_cat(const A&... a) {
  std::ostringstream os;
  detail::cat(os, a...);
  return os.str();
}

template <class... A>
[[noreturn]] void fail(const A&... a) {
  throw Error(str_cat(a...));
}

}  // namespace ne

// Checked in release builds too: invariants on untrusted input.
#define NE_CHECK(cond, ...)                 \
  do {                                      \
    if (!(cond)) ::ne::fail(__VA_ARGS__);   \
  } while (0)
