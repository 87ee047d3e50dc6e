// libFuzzer target: the IR reader (conf.yaml + model.bin, ne::load_ir), then Executor build + one
// run on small inputs when it loads.
//
// Input layout: <conf.yaml bytes> "\n#NEBIN#\n" <model.bin bytes>. Without the separator the
// whole input is the YAML and model.bin is empty. Seeds: scripts/fuzz.sh joins the fixtures so.
#include <cstring>

#include "tests/fuzz/fuzz_util.hpp"

static const char kSep[] = "\n#NEBIN#\n";

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& dir = ne_fuzz::temp_dir();
  static const std::string conf = dir + "/conf.yaml", bin = dir + "/model.bin";
  const size_t sep_len = sizeof(kSep) - 1;
  size_t yaml_len = size, bin_off = size;
  const uint8_t* p = size >= sep_len ? static_cast<const uint8_t*>(memmem(data, size, kSep, sep_len)) : nullptr;
  if (p) {
    yaml_len = size_t(p - data);
    bin_off = yaml_len + sep_len;
  }
  ne_fuzz::write_file(conf, data, yaml_len);
  ne_fuzz::write_file(bin, data + bin_off, size - bin_off);
  ne_fuzz::expect_ok_or_error([&] {
    ne::Model m = ne::load_ir(conf, bin);
    (void)ne::ir_to_yaml(m);  // the writer must handle whatever the reader accepted
    ne_fuzz::build_and_run(std::move(m));
  });
  return 0;
}
