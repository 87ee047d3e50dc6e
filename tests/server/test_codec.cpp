// The KServe v2 request decoder / response encoder and the worker frames, without HTTP.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sys/socket.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <thread>

#include "bin/server/codec.hpp"
#include "bin/server/frame.hpp"

namespace ne {
namespace server {
namespace {

InferRequest dec(const std::string& s, int64_t json_size = -1) {
  return decode_infer_request(s.data(), s.size(), json_size);
}

std::string dec_error(const std::string& s, int64_t json_size = -1) {
  try {
    dec(s, json_size);
  } catch (const RequestError& e) {
    return e.what();
  }
  return "<no error>";
}

TEST(ServerCodec, JsonFlatAndNested) {
  auto r = dec(R"({"id":"a","inputs":[{"name":"x","datatype":"INT64","shape":[2,3],"data":[[1,2,3],[4,5,-6]]},
                  {"name":"f","datatype":"FP32","shape":[2],"data":[0.5, 3]},
                  {"name":"b","datatype":"BOOL","shape":[2],"data":[true,false]}],
                  "outputs":[{"name":"y","parameters":{"binary_data":true}},{"name":"z"}]})");
  EXPECT_EQ(r.id, "a");
  ASSERT_EQ(r.inputs.size(), 3u);
  EXPECT_EQ(r.inputs[0].first, "x");
  EXPECT_EQ(r.inputs[0].second.dtype, DType::int64);
  EXPECT_EQ(r.inputs[0].second.shape, (Shape{2, 3}));
  EXPECT_EQ(r.inputs[0].second.ptr<int64_t>()[5], -6);
  EXPECT_EQ(r.inputs[1].second.ptr<float>()[0], 0.5f);
  EXPECT_EQ(r.inputs[1].second.ptr<float>()[1], 3.0f);
  EXPECT_EQ(r.inputs[2].second.ptr<uint8_t>()[0], 1);
  ASSERT_EQ(r.outputs.size(), 2u);
  EXPECT_TRUE(r.outputs[0].binary);
  EXPECT_FALSE(r.outputs[1].binary);
}

TEST(ServerCodec, BinaryInputs) {
  std::string h = R"({"inputs":[{"name":"x","datatype":"INT32","shape":[3],"parameters":{"binary_data_size":12}},
                      {"name":"y","datatype":"FP32","shape":[1],"data":[2.5]}],
                      "parameters":{"binary_data_output":true}})";
  int32_t v[3] = {7, -8, 9};
  std::string body = h + std::string(reinterpret_cast<char*>(v), 12);
  auto r = dec(body, int64_t(h.size()));
  EXPECT_TRUE(r.binary_output);
  EXPECT_EQ(r.inputs[0].second.ptr<int32_t>()[1], -8);
  EXPECT_EQ(r.inputs[1].second.ptr<float>()[0], 2.5f);
  EXPECT_NE(dec_error(body.substr(0, body.size() - 1), int64_t(h.size())).find("truncated"), std::string::npos);
  EXPECT_NE(dec_error(body + "z", int64_t(h.size())).find("left over"), std::string::npos);
  EXPECT_NE(dec_error(body, int64_t(body.size() + 1)).find("exceeds"), std::string::npos);
  EXPECT_NE(dec_error(h).find("no Inference-Header-Content-Length"), std::string::npos);
}

TEST(ServerCodec, ErrorsNameTheInput) {
  struct Case {
    const char* json;
    const char* needle;
  } cases[] = {
      {R"({"inputs":[)", "does not parse"},
      {R"([])", "JSON object"},
      {R"({})", "no \"inputs\""},
      {R"({"inputs":[]})", "empty"},
      {R"({"inputs":[{"datatype":"INT64","shape":[1],"data":[1]}]})", "no string \"name\""},
      {R"({"inputs":[{"name":"x","datatype":"BYTES","shape":[1],"data":["a"]}]})", "not supported"},
      {R"({"inputs":[{"name":"x","datatype":"INT64","shape":[-1],"data":[1]}]})", "non-negative"},
      {R"({"inputs":[{"name":"x","datatype":"INT64","shape":[2],"data":[1]}]})", "needs 2"},
      {R"({"inputs":[{"name":"x","datatype":"INT64","shape":[1],"data":[1.5]}]})", "integer"},
      {R"({"inputs":[{"name":"x","datatype":"INT8","shape":[1],"data":[200]}]})", "out of range"},
      {R"({"inputs":[{"name":"x","datatype":"INT32","shape":[1],"data":[3000000000]}]})", "out of range"},
      {R"({"inputs":[{"name":"x","datatype":"INT64","shape":[1],"data":[18446744073709551615]}]})", "out of range"},
      {R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":["1"]}]})", "expected a number"},
      {R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]},{"name":"x","datatype":"FP32","shape":[1],"data":[1]}]})", "twice"},
      {R"({"inputs":[{"name":"x","datatype":"FP32","shape":[4611686018427387904,4],"data":[1]}]})", "int64"},
      {R"({"inputs":[{"name":"x","datatype":"FP32","shape":[100000000000],"data":[1]}]})", "binary tensor extension"},
      {R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]}]})", "nested deeper"},
      {R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":1}]})", "must be an array"},
      {R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1]}]})", "neither"},
      {R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}],"outputs":[{"name":"y","parameters":{"binary_data":1}}]})", "true or false"},
      {R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}],"id":5})", "\"id\""},
  };
  for (auto& c : cases) {
    std::string e = dec_error(c.json);
    EXPECT_NE(e.find(c.needle), std::string::npos) << c.json << " -> " << e;
  }
}

TEST(ServerCodec, DeepNestingRefusedWhileParsingAndMessagesStayShort) {
  // 100,000 levels in "shape": refused by the parser's depth limit (nothing recurses over it).
  const std::string deep = R"({"inputs":[{"name":"x","datatype":"FP32","shape":)" + std::string(100000, '[') + "1" +
                           std::string(100000, ']') + R"(,"data":[1]}]})";
  std::string e = dec_error(deep);
  EXPECT_NE(e.find("nests deeper than 32 levels"), std::string::npos) << e.substr(0, 200);
  EXPECT_LT(e.size(), 300u);
  // A shallow but long bad shape is printed as a bounded prefix.
  std::string shape = "[-1";
  for (int i = 0; i < 20000; ++i) shape += ",1";
  e = dec_error(R"({"inputs":[{"name":"x","datatype":"FP32","shape":)" + shape + R"(],"data":[1]}]})");
  EXPECT_NE(e.find("non-negative"), std::string::npos) << e.substr(0, 200);
  EXPECT_LT(e.size(), 400u);
  // 32 levels are fine (a rank-29 tensor's nested data).
  std::string ok = R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":)" + std::string(28, '[') + "1" +
                   std::string(28, ']') + "}]}";
  e = dec_error(ok);
  EXPECT_EQ(e.find("nests deeper"), std::string::npos) << e;
}

TEST(ServerCodec, EncodeJsonRoundTripsEveryFloat) {
  HostTensor t = HostTensor::make<float>(DType::fp32, {2, 3}, {0.1f, -1e-30f, 3.4028235e38f, 1.0f / 3, -0.0f, 7.0f});
  HostTensor i = HostTensor::make<int64_t>(DType::int64, {2}, {-5, 1LL << 60});
  int64_t js = 0;
  std::string body = encode_infer_response("m", "id1", {{"y", &t, false}, {"k", &i, false}}, &js);
  EXPECT_EQ(js, -1);
  auto j = nlohmann::json::parse(body);
  EXPECT_EQ(j["model_name"], "m");
  EXPECT_EQ(j["id"], "id1");
  EXPECT_EQ(j["outputs"][0]["datatype"], "FP32");
  EXPECT_EQ(j["outputs"][0]["shape"], nlohmann::json::array({2, 3}));
  for (int k = 0; k < 6; ++k) {
    float back = float(j["outputs"][0]["data"][k].get<double>());
    EXPECT_EQ(std::memcmp(&back, &t.ptr<float>()[k], 4), 0) << k;
  }
  EXPECT_EQ(j["outputs"][1]["data"][1].get<int64_t>(), 1LL << 60);
}

TEST(ServerCodec, EncodeBinary) {
  HostTensor t = HostTensor::make<float>(DType::fp32, {2}, {1.5f, NAN});
  HostTensor u = HostTensor::make<float>(DType::fp32, {1}, {NAN});
  int64_t js = 0;
  std::string body = encode_infer_response("m", "", {{"a", &t, true}, {"b", &u, false}}, &js);
  ASSERT_GT(js, 0);
  auto j = nlohmann::json::parse(body.substr(0, size_t(js)));
  EXPECT_FALSE(j.contains("id"));
  EXPECT_EQ(j["outputs"][0]["parameters"]["binary_data_size"], 8);
  EXPECT_TRUE(j["outputs"][1]["data"][0].is_null());  // JSON has no NaN
  ASSERT_EQ(body.size(), size_t(js) + 8);
  EXPECT_EQ(std::memcmp(body.data() + js, t.bytes.data(), 8), 0);
}

TEST(ServerFrame, RoundTripOverSocketpair) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  HostTensor t;
  t.dtype = DType::fp32;
  t.shape = {64, 1024};
  t.bytes.resize(64 * 1024 * 4);
  for (size_t i = 0; i < t.bytes.size(); ++i) t.bytes[i] = uint8_t(i * 7);
  FrameWriter w;
  w.u64(42);
  w.tensor("x", t);
  std::thread wr([&] { EXPECT_TRUE(write_frame(sv[0], FrameType::run, w.buffer())); });
  FrameType type;
  std::string p;
  ASSERT_TRUE(read_frame(sv[1], &type, &p));
  wr.join();
  EXPECT_EQ(type, FrameType::run);
  FrameReader rd(p);
  EXPECT_EQ(rd.u64(), 42u);
  auto back = rd.tensor();
  EXPECT_EQ(back.first, "x");
  EXPECT_EQ(back.second.shape, t.shape);
  EXPECT_EQ(back.second.bytes, t.bytes);
  EXPECT_TRUE(rd.done());
  EXPECT_THROW(rd.u32(), Error);
  // A peer that dies mid-frame reads as end of stream.
  std::string half = w.buffer();
  uint32_t hdr[4] = {kFrameMagic, 3, uint32_t(half.size()), 0};
  ASSERT_EQ(write(sv[0], hdr, 16), 16);
  ASSERT_EQ(write(sv[0], half.data(), 10), 10);
  close(sv[0]);
  EXPECT_FALSE(read_frame(sv[1], &type, &p));
  close(sv[1]);
}

}  // namespace
}  // namespace server
}  // namespace ne
