// The cost of KServe v2 request decoding and response encoding in neural_engine_server:
// a BERT request of batch B, sequence S (input_ids, attention_mask, token_type_ids as INT64),
// JSON and binary; the response last_hidden_state [B, S, H] FP32, JSON and binary.
// Usage: bench_server_codec [B (8)] [S (128)] [H (768)] [reps (50)]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "bin/server/codec.hpp"

namespace {

template <class F>
double best_ms(int reps, F&& f) {
  double best = 1e30;
  for (int i = 0; i < reps; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    f();
    best = std::min(best, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  const int B = argc > 1 ? std::atoi(argv[1]) : 8, S = argc > 2 ? std::atoi(argv[2]) : 128;
  const int H = argc > 3 ? std::atoi(argv[3]) : 768, reps = argc > 4 ? std::atoi(argv[4]) : 50;
  std::mt19937 rng(1);
  std::vector<int64_t> ids(size_t(B) * S), mask(ids.size(), 1), tt(ids.size(), 0);
  for (auto& v : ids) v = int64_t(rng() % 30522);
  auto arr = [](const std::vector<int64_t>& v) {
    std::string s = "[";
    for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
    return s + "]";
  };
  const std::string shape = "[" + std::to_string(B) + "," + std::to_string(S) + "]";
  std::string json = "{\"inputs\":[";
  const char* names[3] = {"input_ids", "attention_mask", "token_type_ids"};
  const std::vector<int64_t>* data[3] = {&ids, &mask, &tt};
  for (int k = 0; k < 3; ++k)
    json += std::string(k ? "," : "") + "{\"name\":\"" + names[k] + "\",\"datatype\":\"INT64\",\"shape\":" + shape +
            ",\"data\":" + arr(*data[k]) + "}";
  json += "]}";
  std::string hdr = "{\"inputs\":[";
  for (int k = 0; k < 3; ++k)
    hdr += std::string(k ? "," : "") + "{\"name\":\"" + names[k] + "\",\"datatype\":\"INT64\",\"shape\":" + shape +
           ",\"parameters\":{\"binary_data_size\":" + std::to_string(ids.size() * 8) + "}}";
  hdr += "],\"parameters\":{\"binary_data_output\":true}}";
  std::string bin = hdr;
  for (int k = 0; k < 3; ++k) bin.append(reinterpret_cast<const char*>(data[k]->data()), ids.size() * 8);

  size_t sink = 0;
  const double dj = best_ms(reps, [&] {
    auto r = ne::server::decode_infer_request(json.data(), json.size(), -1);
    sink += r.inputs.size();
  });
  const double db = best_ms(reps, [&] {
    auto r = ne::server::decode_infer_request(bin.data(), bin.size(), int64_t(hdr.size()));
    sink += r.inputs.size();
  });
  std::vector<float> out(size_t(B) * S * H);
  std::normal_distribution<float> nd;
  for (auto& v : out) v = nd(rng);
  ne::HostTensor t = ne::HostTensor::make<float>(ne::DType::fp32, {B, S, H}, out);
  int64_t js;
  size_t json_out_bytes = 0;
  const double ej = best_ms(std::max(1, reps / 5), [&] {
    std::string s = ne::server::encode_infer_response("bert", "", {{"last_hidden_state", &t, false}}, &js);
    json_out_bytes = s.size();
  });
  const double eb = best_ms(reps, [&] {
    std::string s = ne::server::encode_infer_response("bert", "", {{"last_hidden_state", &t, true}}, &js);
    sink += s.size();
  });
  std::printf("request  b%d s%d (3 x INT64): JSON %zu bytes decode %.3f ms; binary %zu bytes decode %.3f ms\n", B, S,
              json.size(), dj, bin.size(), db);
  std::printf("response [%d,%d,%d] FP32: JSON %zu bytes encode %.2f ms; binary %zu bytes encode %.3f ms\n", B, S, H,
              json_out_bytes, ej, t.bytes.size(), eb);
  std::printf("(best of %d, one thread; nlohmann-json parse + checks, std::to_chars floats)\n", reps);
  return sink == 0;
}
