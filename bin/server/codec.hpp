// KServe v2 / Triton inference request decoding and response encoding, without HTTP: the JSON
// body (tensors as JSON arrays, flat or nested, row-major) and the binary-tensor extension
// (`Inference-Header-Content-Length: N`: the first N bytes are the JSON header, then the raw
// little-endian bytes of every input whose parameters carry `binary_data_size`, in input order).
// Used by neural_engine_server, its tests and the libFuzzer target tests/fuzz/fuzz_server_request.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "common/error.hpp"
#include "executor/executor.hpp"

namespace ne {
namespace server {

// A request the client got wrong (HTTP 400 with this message).
class RequestError : public Error {
 public:
  explicit RequestError(const std::string& m) : Error(m) {}
};

struct RequestedOutput {
  std::string name;
  bool binary = false;  // parameters.binary_data (or the request's binary_data_output)
};

struct InferRequest {
  std::string id;                                        // echoed in the response ("" if none)
  std::vector<std::pair<std::string, HostTensor>> inputs;  // in request order
  bool outputs_given = false;                            // "outputs" present: return only those
  std::vector<RequestedOutput> outputs;
  bool binary_output = false;  // parameters.binary_data_output: every output binary by default
};

// KServe datatype names <-> the engine's dtypes (FP32, BF16, FP16, INT8, UINT8, INT32, INT64,
// BOOL). kserve_to_dtype returns false for the others (FP64, INT16, UINT16/32/64, BYTES).
const char* dtype_to_kserve(DType t);
bool kserve_to_dtype(const std::string& s, DType* out);

struct DecodeLimits {
  // Most nesting of a tensor's JSON "data" array (a 3-D tensor written nested needs 3).
  int max_data_depth = 16;
  // Most elements one JSON-encoded tensor may declare before its data is read.
  int64_t max_json_elements = int64_t(1) << 27;
};

// Decodes a request body. `json_size` is the Inference-Header-Content-Length value, or -1 when
// the header is absent (the whole body is JSON). Throws RequestError (an ne::Error) naming the
// input and what was expected on anything malformed: JSON that does not parse, a missing or
// mistyped field, an unknown datatype, a shape whose element count does not match its data, a
// value out of range for its datatype, binary data that is truncated or left over.
InferRequest decode_infer_request(const char* body, size_t size, int64_t json_size, const DecodeLimits& lim = {});

struct ResponseTensor {
  std::string name;
  const HostTensor* tensor = nullptr;
  bool binary = false;
};

// Encodes a response. Returns the body; *json_size is set to the JSON header's length when some
// output is binary (the caller sends it as Inference-Header-Content-Length), else to -1.
// Non-finite floats are written as null in JSON (JSON has no NaN); binary outputs keep every bit.
std::string encode_infer_response(const std::string& model, const std::string& id,
                                  const std::vector<ResponseTensor>& outputs, int64_t* json_size);

// {"error": msg} with msg escaped (invalid UTF-8 replaced).
std::string error_json(const std::string& msg);

}  // namespace server
}  // namespace ne
