// libFuzzer target: the .npy reader (ne::parse_npy). An array that parses is written back with
// write_npy and read again: it must round-trip exactly.
#include <cstdlib>

#include "common/npy.hpp"
#include "tests/fuzz/fuzz_util.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = ne_fuzz::temp_dir() + "/a.npy";
  ne_fuzz::expect_ok_or_error([&] {
    ne::NpyArray a = ne::parse_npy(data, size, "fuzz.npy");
    if (a.bytes.size() > (1u << 20)) return;
    ne::write_npy(path, a.dtype, a.shape, a.bytes.data());
    ne::NpyArray b = ne::read_npy(path);
    if (b.dtype != a.dtype || b.shape != a.shape || b.bytes != a.bytes) {
      std::fprintf(stderr, "\nFUZZ FINDING: .npy write/read round trip differs\n");
      std::abort();
    }
  });
  return 0;
}
