// libFuzzer target: neural_engine_server's request decoder (bin/server/codec.cpp), JSON and the
// binary tensor extension. Input: a first byte 'B' selects binary mode, the next two bytes
// (little-endian) the JSON header's length (Inference-Header-Content-Length, capped to what is
// left), the rest the body; otherwise the whole input is a JSON body. A request that decodes is
// encoded back as a response (binary and JSON): the binary bytes must equal the decoded tensors'
// and the JSON must parse with the same shapes.
#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstdlib>

#include "bin/server/codec.hpp"
#include "tests/fuzz/fuzz_util.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const char* body = reinterpret_cast<const char*>(data);
  int64_t json_size = -1;
  if (size >= 3 && data[0] == 'B') {
    json_size = int64_t(data[1] | (data[2] << 8));
    body += 3;
    size -= 3;
    if (uint64_t(json_size) > size + 8) json_size = int64_t(size);  // mostly valid, sometimes past the end
  }
  ne_fuzz::expect_ok_or_error([&] {
    ne::server::DecodeLimits lim;
    lim.max_json_elements = 1 << 20;
    ne::server::InferRequest r = ne::server::decode_infer_request(body, size, json_size, lim);
    std::vector<ne::server::ResponseTensor> outs;
    size_t total = 0;
    for (auto& kv : r.inputs) {
      outs.push_back({kv.first, &kv.second, true});
      total += kv.second.bytes.size();
    }
    int64_t js = 0;
    std::string bin = ne::server::encode_infer_response("m", r.id, outs, &js);
    if (js < 0 || bin.size() != size_t(js) + total) {
      std::fprintf(stderr, "\nFUZZ FINDING: binary response size %zu != header %lld + %zu\n", bin.size(),
                   (long long)js, total);
      std::abort();
    }
    size_t off = size_t(js);
    for (auto& kv : r.inputs) {
      if (bin.compare(off, kv.second.bytes.size(),
                      std::string(reinterpret_cast<const char*>(kv.second.bytes.data()), kv.second.bytes.size())) != 0) {
        std::fprintf(stderr, "\nFUZZ FINDING: binary response bytes differ for '%s'\n", kv.first.c_str());
        std::abort();
      }
      off += kv.second.bytes.size();
    }
    if (total > (1u << 16)) return;
    for (auto& o : outs) o.binary = false;
    std::string js_body = ne::server::encode_infer_response("m", r.id, outs, &js);
    auto j = nlohmann::json::parse(js_body, nullptr, false);
    if (j.is_discarded() || j["outputs"].size() != r.inputs.size()) {
      std::fprintf(stderr, "\nFUZZ FINDING: JSON response does not parse back\n");
      std::abort();
    }
    for (size_t k = 0; k < r.inputs.size(); ++k)
      if (j["outputs"][k]["shape"].get<std::vector<int64_t>>() != r.inputs[k].second.shape ||
          j["outputs"][k]["data"].size() != size_t(r.inputs[k].second.numel())) {
        std::fprintf(stderr, "\nFUZZ FINDING: JSON response shape/data differ for '%s'\n", r.inputs[k].first.c_str());
        std::abort();
      }
  });
  return 0;
}
