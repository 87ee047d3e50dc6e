#include "bin/server/codec.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

namespace ne {
namespace server {

namespace {

using json = nlohmann::json;

template <class... A>
[[noreturn]] void bad(const A&... a) {
  throw RequestError(str_cat(a...));
}

const char* type_name(const json& v) { return v.type_name(); }

// Request JSON deeper than this is refused while parsing (before anything recurses over it).
constexpr int kMaxJsonDepth = 32;

// A request value in an error message: at most 120 characters of it.
std::string brief(const json& v) {
  std::string d = v.dump(-1, ' ', false, json::error_handler_t::replace);
  return d.size() <= 120 ? d : d.substr(0, 117) + "...";
}


// Counts the scalars of a (possibly nested) data array; fails past `depth` levels.
int64_t count_leaves(const json& v, int depth, int max_depth, const std::string& input) {
  if (!v.is_array()) return 1;
  if (depth >= max_depth)
    bad("input '", input, "': \"data\" is nested deeper than ", max_depth, " levels");
  int64_t n = 0;
  for (const auto& e : v) n += count_leaves(e, depth + 1, max_depth, input);
  return n;
}

template <class T>
void put(uint8_t* dst, int64_t i, T v) {
  std::memcpy(dst + size_t(i) * sizeof(T), &v, sizeof(T));
}

void store(const json& v, DType dt, uint8_t* dst, int64_t i, const std::string& input) {
  if (dt == DType::boolean) {
    if (v.is_boolean()) put<uint8_t>(dst, i, v.get<bool>() ? 1 : 0);
    else if (v.is_number_integer() && (v.get<int64_t>() == 0 || v.get<int64_t>() == 1))
      put<uint8_t>(dst, i, uint8_t(v.get<int64_t>()));
    else
      bad("input '", input, "': element ", i, " is ", brief(v), ", expected true or false (datatype BOOL)");
    return;
  }
  if (dt == DType::fp32 || dt == DType::bf16 || dt == DType::fp16) {
    if (!v.is_number()) bad("input '", input, "': element ", i, " is a JSON ", type_name(v), ", expected a number");
    const float f = float(v.get<double>());
    if (dt == DType::fp32) put<float>(dst, i, f);
    else if (dt == DType::bf16) put<uint16_t>(dst, i, fp32_to_bf16(f));
    else put<uint16_t>(dst, i, fp32_to_fp16(f));
    return;
  }
  // Integers: exact JSON integers within the datatype's range.
  if (!v.is_number_integer())
    bad("input '", input, "': element ", i, " is ", v.is_number() ? brief(v) : std::string("a JSON ") + type_name(v),
        ", expected an integer (datatype ", dtype_to_kserve(dt), ")");
  int64_t x;
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    if (u > uint64_t(std::numeric_limits<int64_t>::max()))
      bad("input '", input, "': element ", i, " = ", u, " is out of range for ", dtype_to_kserve(dt));
    x = int64_t(u);
  } else {
    x = v.get<int64_t>();
  }
  int64_t lo = std::numeric_limits<int64_t>::min(), hi = std::numeric_limits<int64_t>::max();
  switch (dt) {
    case DType::s8: lo = -128, hi = 127; break;
    case DType::u8: lo = 0, hi = 255; break;
    case DType::int32: case DType::s32: lo = std::numeric_limits<int32_t>::min(), hi = std::numeric_limits<int32_t>::max(); break;
    default: break;
  }
  if (x < lo || x > hi)
    bad("input '", input, "': element ", i, " = ", x, " is out of range for ", dtype_to_kserve(dt), " (", lo, "..", hi,
        ")");
  switch (dt) {
    case DType::s8: put<int8_t>(dst, i, int8_t(x)); break;
    case DType::u8: put<uint8_t>(dst, i, uint8_t(x)); break;
    case DType::int32: case DType::s32: put<int32_t>(dst, i, int32_t(x)); break;
    default: put<int64_t>(dst, i, x); break;
  }
}

void fill(const json& v, DType dt, uint8_t* dst, int64_t* i, const std::string& input) {
  if (v.is_array()) {
    for (const auto& e : v) fill(e, dt, dst, i, input);
    return;
  }
  store(v, dt, dst, *i, input);
  ++*i;
}

const json* member(const json& o, const char* k) {
  auto it = o.find(k);
  return it == o.end() ? nullptr : &*it;
}

bool bool_param(const json* params, const char* k, bool def, const std::string& where) {
  if (!params) return def;
  const json* v = member(*params, k);
  if (!v) return def;
  if (!v->is_boolean()) bad(where, ": parameter \"", k, "\" must be true or false, got ", brief(*v));
  return v->get<bool>();
}

const json* params_of(const json& o, const std::string& where) {
  const json* p = member(o, "parameters");
  if (p && !p->is_object()) bad(where, ": \"parameters\" must be an object, got a JSON ", type_name(*p));
  return p;
}

std::string dump_safe(const std::string& s) {
  return json(s).dump(-1, ' ', false, json::error_handler_t::replace);
}

template <class T>
void append_num(std::string& out, T v) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

void append_float(std::string& out, float f) {
  if (!std::isfinite(f)) {
    out += "null";
    return;
  }
  // The shortest representation that reads back to the same float; written as a JSON float
  // ("7.0", "-0.0"): "-0" would read back as the integer 0 and lose the sign.
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, f);
  out.append(buf, r.ptr);
  if (std::find_if(buf, r.ptr, [](char c) { return c == '.' || c == 'e'; }) == r.ptr) out += ".0";
}

void append_data(std::string& out, const HostTensor& t) {
  const int64_t n = t.numel();
  out.reserve(out.size() + size_t(n) * 12 + 2);
  out += '[';
  for (int64_t i = 0; i < n; ++i) {
    if (i) out += ',';
    switch (t.dtype) {
      case DType::fp32: append_float(out, t.ptr<float>()[i]); break;
      case DType::bf16: append_float(out, bf16_to_fp32(t.ptr<uint16_t>()[i])); break;
      case DType::fp16: append_float(out, fp16_to_fp32(t.ptr<uint16_t>()[i])); break;
      case DType::s8: append_num(out, int(t.ptr<int8_t>()[i])); break;
      case DType::u8: append_num(out, int(t.ptr<uint8_t>()[i])); break;
      case DType::int32: case DType::s32: append_num(out, t.ptr<int32_t>()[i]); break;
      case DType::int64: append_num(out, t.ptr<int64_t>()[i]); break;
      case DType::boolean: out += t.ptr<uint8_t>()[i] ? "true" : "false"; break;
    }
  }
  out += ']';
}

}  // namespace

const char* dtype_to_kserve(DType t) {
  switch (t) {
    case DType::fp32: return "FP32";
    case DType::bf16: return "BF16";
    case DType::fp16: return "FP16";
    case DType::s8: return "INT8";
    case DType::u8: return "UINT8";
    case DType::s32: case DType::int32: return "INT32";
    case DType::int64: return "INT64";
    case DType::boolean: return "BOOL";
  }
  return "?";
}

bool kserve_to_dtype(const std::string& s, DType* out) {
  static const struct { const char* n; DType t; } names[] = {
      {"FP32", DType::fp32}, {"BF16", DType::bf16},   {"FP16", DType::fp16},   {"INT8", DType::s8},
      {"UINT8", DType::u8},  {"INT32", DType::int32}, {"INT64", DType::int64}, {"BOOL", DType::boolean}};
  for (auto& n : names)
    if (s == n.n) {
      *out = n.t;
      return true;
    }
  return false;
}

InferRequest decode_infer_request(const char* body, size_t size, int64_t json_size, const DecodeLimits& lim) {
  size_t jlen = size;
  if (json_size >= 0) {
    if (uint64_t(json_size) > size)
      bad("Inference-Header-Content-Length ", json_size, " exceeds the body's ", size, " bytes");
    jlen = size_t(json_size);
  }
  json j;
  try {
    // Depth is bounded while parsing: the value is never built (nor later printed or destroyed,
    // which recurse) past kMaxJsonDepth levels. A KServe request needs 3 + the tensor's rank.
    j = json::parse(body, body + jlen, [](int depth, json::parse_event_t, json&) {
      if (depth > kMaxJsonDepth) bad("request JSON nests deeper than ", kMaxJsonDepth, " levels");
      return true;
    });
  } catch (const json::exception& e) {
    bad("request JSON does not parse: ", e.what());
  }
  if (!j.is_object()) bad("request must be a JSON object, got a JSON ", type_name(j));
  InferRequest r;
  if (const json* id = member(j, "id")) {
    if (!id->is_string()) bad("\"id\" must be a string, got a JSON ", type_name(*id));
    r.id = id->get<std::string>();
  }
  r.binary_output = bool_param(params_of(j, "request"), "binary_data_output", false, "request");
  const json* ins = member(j, "inputs");
  if (!ins) bad("request has no \"inputs\"");
  if (!ins->is_array()) bad("\"inputs\" must be an array, got a JSON ", type_name(*ins));
  if (ins->empty()) bad("\"inputs\" is empty");
  size_t bin_off = jlen;  // next unread byte of the binary section
  std::set<std::string> seen;
  for (size_t k = 0; k < ins->size(); ++k) {
    const json& in = (*ins)[k];
    if (!in.is_object()) bad("inputs[", k, "] must be an object, got a JSON ", type_name(in));
    const json* nm = member(in, "name");
    if (!nm || !nm->is_string()) bad("inputs[", k, "] has no string \"name\"");
    const std::string name = nm->get<std::string>();
    if (!seen.insert(name).second) bad("input '", name, "' is given twice");
    const json* dtj = member(in, "datatype");
    if (!dtj || !dtj->is_string()) bad("input '", name, "' has no string \"datatype\"");
    HostTensor t;
    if (!kserve_to_dtype(dtj->get<std::string>(), &t.dtype))
      bad("input '", name, "': datatype ", brief(*dtj),
          " is not supported (supported: FP32, BF16, FP16, INT8, UINT8, INT32, INT64, BOOL)");
    const json* sh = member(in, "shape");
    if (!sh || !sh->is_array()) bad("input '", name, "' has no \"shape\" array");
    int64_t numel = 1;
    bool overflow = false;
    for (const auto& d : *sh) {
      if (!d.is_number_integer() || (d.is_number_integer() && !d.is_number_unsigned() && d.get<int64_t>() < 0))
        bad("input '", name, "': shape ", brief(*sh), " must list non-negative integers");
      if (d.is_number_unsigned() && d.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()))
        bad("input '", name, "': shape ", brief(*sh), " has a dimension out of range");
      const int64_t v = d.get<int64_t>();
      t.shape.push_back(v);
      if (v != 0 && numel > std::numeric_limits<int64_t>::max() / v) overflow = true;
      else numel *= v;
    }
    if (overflow) bad("input '", name, "': shape ", brief(*sh), " has more elements than int64 counts");
    const uint64_t esz = dtype_size(t.dtype);
    const std::string where = "input '" + name + "'";
    const json* params = params_of(in, where);
    const json* bsz = params ? member(*params, "binary_data_size") : nullptr;
    if (bsz) {
      if (!bsz->is_number_unsigned() && !(bsz->is_number_integer() && bsz->get<int64_t>() >= 0))
        bad(where, ": binary_data_size must be a non-negative integer, got ", brief(*bsz));
      if (member(in, "data")) bad(where, ": has both \"data\" and binary_data_size");
      if (json_size < 0) bad(where, ": binary_data_size given, but no Inference-Header-Content-Length header");
      const uint64_t n = bsz->get<uint64_t>();
      if (uint64_t(numel) > std::numeric_limits<uint64_t>::max() / esz || n != uint64_t(numel) * esz)
        bad(where, ": binary_data_size ", n, " does not match shape ", brief(*sh), " x ", dtj->get<std::string>(),
            " (", uint64_t(numel) * esz, " bytes)");
      if (n > size - bin_off)
        bad(where, ": binary data is truncated: needs ", n, " bytes at offset ", bin_off - jlen, ", only ",
            size - bin_off, " remain");
      t.bytes.assign(reinterpret_cast<const uint8_t*>(body) + bin_off,
                     reinterpret_cast<const uint8_t*>(body) + bin_off + n);
      bin_off += size_t(n);
    } else {
      const json* data = member(in, "data");
      if (!data) bad(where, " has neither \"data\" nor parameters.binary_data_size");
      if (numel > lim.max_json_elements)
        bad(where, ": shape ", brief(*sh), " has ", numel, " elements, more than ", lim.max_json_elements,
            " allowed in JSON (use the binary tensor extension)");
      const int64_t leaves = count_leaves(*data, 0, lim.max_data_depth, name);
      if (!data->is_array()) bad(where, ": \"data\" must be an array, got a JSON ", type_name(*data));
      if (leaves != numel)
        bad(where, ": \"data\" has ", leaves, " elements, shape ", brief(*sh), " needs ", numel);
      t.bytes.resize(size_t(numel) * esz);
      int64_t i = 0;
      fill(*data, t.dtype, t.bytes.data(), &i, name);
    }
    r.inputs.emplace_back(name, std::move(t));
  }
  if (bin_off != size)
    bad(size - bin_off, " bytes of binary data left over after the inputs (",
        json_size < 0 ? "no Inference-Header-Content-Length header" : "not claimed by any binary_data_size", ")");
  if (const json* outs = member(j, "outputs")) {
    if (!outs->is_array()) bad("\"outputs\" must be an array, got a JSON ", type_name(*outs));
    r.outputs_given = true;
    std::set<std::string> oseen;
    for (size_t k = 0; k < outs->size(); ++k) {
      const json& o = (*outs)[k];
      if (!o.is_object()) bad("outputs[", k, "] must be an object, got a JSON ", type_name(o));
      const json* nm = member(o, "name");
      if (!nm || !nm->is_string()) bad("outputs[", k, "] has no string \"name\"");
      RequestedOutput ro;
      ro.name = nm->get<std::string>();
      if (!oseen.insert(ro.name).second) bad("output '", ro.name, "' is requested twice");
      ro.binary = bool_param(params_of(o, "output '" + ro.name + "'"), "binary_data", r.binary_output,
                             "output '" + ro.name + "'");
      r.outputs.push_back(std::move(ro));
    }
  }
  return r;
}

std::string encode_infer_response(const std::string& model, const std::string& id,
                                  const std::vector<ResponseTensor>& outputs, int64_t* json_size) {
  std::string h = "{\"model_name\":" + dump_safe(model) + ",\"model_version\":\"1\"";
  if (!id.empty()) h += ",\"id\":" + dump_safe(id);
  h += ",\"outputs\":[";
  bool any_binary = false;
  for (size_t k = 0; k < outputs.size(); ++k) {
    const ResponseTensor& o = outputs[k];
    if (k) h += ',';
    h += "{\"name\":" + dump_safe(o.name) + ",\"datatype\":\"" + dtype_to_kserve(o.tensor->dtype) + "\",\"shape\":[";
    for (size_t d = 0; d < o.tensor->shape.size(); ++d) {
      if (d) h += ',';
      append_num(h, o.tensor->shape[d]);
    }
    h += ']';
    if (o.binary) {
      any_binary = true;
      h += ",\"parameters\":{\"binary_data_size\":";
      append_num(h, uint64_t(o.tensor->bytes.size()));
      h += '}';
    } else {
      h += ",\"data\":";
      append_data(h, *o.tensor);
    }
    h += '}';
  }
  h += "]}";
  if (!any_binary) {
    *json_size = -1;
    return h;
  }
  *json_size = int64_t(h.size());
  size_t total = h.size();
  for (auto& o : outputs)
    if (o.binary) total += o.tensor->bytes.size();
  h.reserve(total);
  for (auto& o : outputs)
    if (o.binary) h.append(reinterpret_cast<const char*>(o.tensor->bytes.data()), o.tensor->bytes.size());
  return h;
}

std::string error_json(const std::string& msg) { return "{\"error\":" + dump_safe(msg) + "}"; }

}  // namespace server
}  // namespace ne
