// libFuzzer target: the ONNX loader (ne::compile_onnx on the bytes written to a temp file), then
// Executor build + one run on small inputs when it compiles.
//
// The temp directory also holds a copy of tests/data/models/tiny_extdata/model.onnx.data (when
// NE_FUZZ_EXTDATA names it) so external-data references resolve and get checked.
#include <fstream>
#include <iterator>
#include <vector>

#include "compile/compile.hpp"
#include "tests/fuzz/fuzz_util.hpp"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
#ifdef NE_FUZZ_EXTDATA
  std::ifstream f(NE_FUZZ_EXTDATA, std::ios::binary);
  std::vector<uint8_t> b((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (!b.empty()) ne_fuzz::write_file(ne_fuzz::temp_dir() + "/model.onnx.data", b.data(), b.size());
#endif
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = ne_fuzz::temp_dir() + "/model.onnx";
  ne_fuzz::write_file(path, data, size);
  ne_fuzz::expect_ok_or_error([&] {
    ne::Model m = ne::compile_onnx(path);
    ne_fuzz::build_and_run(std::move(m));
  });
  return 0;
}
