// Every operator declares its attributes (executor/op_attrs.cpp): the table covers every registered
// op type, its values construct their ops, docs/OPS.md names the same attributes; a model whose op
// carries an unknown attribute or a value it cannot honour is refused naming file, op and attribute;
// the Neural Engine's InnerProduct `src1_perm: 0,1` (weight stored [N, K]) is honoured.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <random>
#include <regex>
#include <set>
#include <sstream>

#include "common/ir.hpp"
#include "executor/executor.hpp"
#include "executor/op_attrs.hpp"
#include "tests/core/test_util.hpp"

namespace {

using ne::AttrKind;

// ------------------------------------------------------------------ the table

TEST(OpAttrs, EveryRegisteredTypeHasAnEntryAndNoOther) {
  std::set<std::string> reg, tab;
  for (auto& t : ne::registered_op_types()) reg.insert(t);
  for (auto& s : ne::op_attr_schemas()) EXPECT_TRUE(tab.insert(s.type).second) << s.type << " listed twice";
  for (auto& t : reg) EXPECT_TRUE(tab.count(t)) << t << " is registered (NE_REGISTER_OP) but has no entry in executor/op_attrs.cpp";
  for (auto& t : tab) EXPECT_TRUE(reg.count(t)) << t << " has an entry in executor/op_attrs.cpp but is not registered";
}

// Attributes an op needs to be constructed at all (so a value under test is the only variable).
std::vector<std::pair<std::string, std::string>> required(const std::string& type) {
  if (type == "BinaryOp") return {{"algorithm", "add"}};
  if (type == "UnaryOp") return {{"algorithm", "relu"}};
  if (type == "Cast") return {{"to", "fp32"}};
  if (type == "Quantize" || type == "Dequantize") return {{"scale", "0.5"}};
  if (type == "InnerProduct.s8") return {{"src_scale", "0.5"}};
  return {};
}

// Every enumerated value the table allows is one its operator accepts (the table is never looser
// than the op); the LayerNorm quantize_* and IP dst_* values need their partners, given here.
TEST(OpAttrs, EveryAllowedValueConstructsItsOp) {
  int n = 0;
  for (auto& s : ne::op_attr_schemas()) {
    for (auto& a : s.attrs) {
      std::vector<std::string> vals = a.values;
      if (a.kind == AttrKind::dtype)
        for (auto d : a.dtypes) vals.push_back(ne::dtype_name(d));
      for (auto& v : vals) {
        ne::OpInfo op;
        op.name = "t";
        op.type = s.type;
        op.attrs = required(s.type);
        op.set_attr(a.name, v);
        if (std::string(a.name) == "output_dtype" && (v == "u8" || v == "s8") && s.type == "InnerProduct.s8")
          op.set_attr("dst_scale", "0.1");
        op.outputs = {"y"};
        if (std::string(a.name) == "quantize_dtype") {
          op.set_attr("quantize_scale", "0.1");
          op.outputs.push_back("y_quantized");
        }
        EXPECT_NO_THROW(ne::check_op_attrs(op, s.type, "table")) << s.type << " " << a.name << "=" << v;
        try {
          auto o = ne::create_op(op);
          EXPECT_TRUE(o) << s.type;
        } catch (const ne::Error& e) {
          ADD_FAILURE() << s.type << " " << a.name << "=" << v << ": the table allows it, the op refuses: " << e.what();
        }
        ++n;
      }
    }
  }
  EXPECT_GT(n, 80);
}

// docs/OPS.md and the table name the same attributes: every attribute of the table appears
// (backquoted) in its op's row, and every backquoted word of a row's attrs column is an attribute
// of that op or one of its enumerated values.
TEST(OpAttrs, OpsMdAgreesWithTheTable) {
  std::ifstream f(std::string(NE_TEST_DATA) + "/../../docs/OPS.md");
  ASSERT_TRUE(f.good());
  std::map<std::string, std::set<std::string>> doc_attr_words;  // registered type -> words in its attrs cell
  std::map<std::string, std::string> doc_row;                   // registered type -> whole row
  const std::map<std::string, std::string> precision_rows = {
      {"fp32", "InnerProduct"}, {"bf16", "InnerProduct.bf16"}, {"s8", "InnerProduct.s8"}};
  int attrs_col = -1;
  bool precision = false;
  const std::regex word("`([a-z_][a-z0-9_]*)`"), type_re("`([A-Za-z][A-Za-z0-9]*)`");
  for (std::string line; std::getline(f, line);) {
    if (line.rfind("|", 0) != 0) { attrs_col = -1; continue; }
    std::vector<std::string> cells;
    std::stringstream ss(line.substr(1));
    for (std::string c; std::getline(ss, c, '|');) cells.push_back(c);
    if (attrs_col < 0) {  // a header
      precision = cells.size() > 0 && cells[0].find("weight dtype") != std::string::npos;
      for (size_t i = 0; i < cells.size(); ++i)
        if (cells[i].find("attrs") != std::string::npos) attrs_col = int(i);
      if (attrs_col < 0) attrs_col = 99;  // a table without attrs (feature-major mode)
      continue;
    }
    if (attrs_col >= int(cells.size()) || cells[0].find("---") != std::string::npos) continue;
    std::vector<std::string> types;
    for (std::sregex_iterator it(cells[0].begin(), cells[0].end(), type_re), e; it != e; ++it) {
      std::string t = (*it)[1];
      if (precision) {
        if (precision_rows.count(t)) types.push_back(precision_rows.at(t));
      } else {
        types.push_back(t);
      }
    }
    for (auto& t : types) {
      doc_row[t] += line;
      auto& ws = doc_attr_words[t];
      const std::string& cell = cells[size_t(attrs_col)];
      for (std::sregex_iterator it(cell.begin(), cell.end(), word), e; it != e; ++it) ws.insert((*it)[1]);
    }
  }
  // The variants are documented as "as above" plus their own rows.
  for (const char* v : {"InnerProduct.bf16", "InnerProduct.s8"}) {
    doc_row[v] += doc_row["InnerProduct"];
    for (auto& w : doc_attr_words["InnerProduct"]) doc_attr_words[v].insert(w);
  }
  for (auto& s : ne::op_attr_schemas()) {
    if (s.type.rfind("T_", 0) == 0) continue;  // test-only ops (tests/core/test_executor.cpp)
    EXPECT_TRUE(doc_row.count(s.type)) << s.type << " has no row in docs/OPS.md";
    if (!doc_row.count(s.type)) continue;
    std::set<std::string> names, values;
    for (auto& a : s.attrs) {
      names.insert(a.name);
      for (auto& v : a.values) values.insert(v);
      for (auto d : a.dtypes) values.insert(ne::dtype_name(d));
      EXPECT_NE(doc_row[s.type].find(std::string("`") + a.name + "`"), std::string::npos)
          << s.type << ": attribute " << a.name << " is in the table but not in its docs/OPS.md row";
    }
    for (auto& w : doc_attr_words[s.type])
      EXPECT_TRUE(names.count(w) || values.count(w))
          << s.type << ": docs/OPS.md names `" << w << "` in its attrs, the table has no such attribute or value";
  }
}

// ------------------------------------------------------------------ models refused

ne::Model softmax_model(std::vector<std::pair<std::string, std::string>> attrs, const std::string& type = "Softmax") {
  ne::Model m;
  m.source = "/some/dir/conf.yaml";
  ne::OpInfo in, op, out;
  in.name = "input_data"; in.type = "Input"; in.outputs = {"x"};
  op.name = "sm"; op.type = type; op.inputs = {"x"}; op.outputs = {"y"}; op.attrs = std::move(attrs);
  out.name = "output_data"; out.type = "Output"; out.inputs = {"y"};
  m.ops = {in, op, out};
  ne::TensorInfo x;
  x.name = "x"; x.shape = {-1, 4}; x.has_shape = true;
  m.tensors["x"] = x;
  return m;
}

std::string build_error(ne::Model m) {
  try {
    ne::Executor ex(std::move(m));
    return "";
  } catch (const ne::Error& e) {
    return e.what();
  }
}

TEST(OpAttrs, RefusedNamingFileOpAndAttribute) {
  struct C { std::string type; std::vector<std::pair<std::string, std::string>> attrs; std::string expect; };
  const std::vector<C> cs = {
      {"Softmax", {{"axes", "1"}}, "unknown attribute 'axes' (value '1'): Softmax takes axis"},
      {"Softmax", {{"axis", "x"}}, "attribute axis='x' is not an integer"},
      {"Softmax", {{"axis", "1"}, {"axis", "1"}}, "attribute 'axis' is given twice"},
      {"Identity", {{"axis", "1"}}, "unknown attribute 'axis' (value '1'): Identity takes no attributes"},
      {"Gelu", {{"algorithm", "gelu_fast"}}, "attribute algorithm='gelu_fast' is not supported"},
      {"Reorder", {{"perm", "1,1"}}, "attribute perm='1,1' is not a permutation of 0..1"},
      {"Reorder", {{"perm", "0,2"}}, "is not a permutation"},
      {"Reorder", {{"perm", "a,b"}}, "attribute perm='a,b' is not a list of integers"},
      {"Cast", {{"to", "fp33"}}, "attribute to='fp33' is not a dtype name"},
      {"LayerNorm", {{"epsilon", "abc"}}, "attribute epsilon='abc' is not a number"},
      {"LayerNorm", {{"transpose_mode", "0,2"}}, "attribute transpose_mode='0,2' is not supported"},
      {"Quantize", {{"scale", "1"}, {"output_dtype", "fp32"}}, "attribute output_dtype='fp32' is not supported"},
      {"Matmul", {{"compute_dtype", "fp16"}}, "attribute compute_dtype='fp16' is not supported"},
      {"Matmul", {{"dst_perm", "0,0,1"}}, "attribute dst_perm='0,0,1' is not a permutation"},
      {"UnaryOp", {{"algorithm", "relu"}, {"alpha", "nan"}}, "attribute alpha='nan' is not a number"},
  };
  for (auto& c : cs) {
    const std::string msg = build_error(softmax_model(c.attrs, c.type));
    EXPECT_NE(msg.find("/some/dir/conf.yaml: operator 'sm' (" + c.type + "): "), std::string::npos) << msg;
    EXPECT_NE(msg.find(c.expect), std::string::npos) << "want: " << c.expect << "\ngot:  " << msg;
  }
  // Values the table accepts but the op refuses still name the file (Executor adds it).
  const std::string msg = build_error(softmax_model({{"scale", "-1"}}, "Quantize"));
  EXPECT_EQ(msg.rfind("/some/dir/conf.yaml: operator 'sm' (Quantize): scale", 0), 0u) << msg;
}

// ------------------------------------------------------------------ InnerProduct src1_perm

std::vector<uint8_t> bytes_of(const void* p, size_t n) {
  auto b = static_cast<const uint8_t*>(p);
  return std::vector<uint8_t>(b, b + n);
}

struct HandWeight {
  std::string name, dtype;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
};

// Writes DIR/conf.yaml + DIR/model.bin by hand: x [-1, K] -> InnerProduct(inputs) -> y.
std::string write_hand_ir(const std::string& tag, int64_t K, const std::vector<HandWeight>& ws,
                          const std::vector<std::string>& ip_inputs, const std::string& attr) {
  std::string d = ne_test::tmp_dir(tag);
  std::string bin, conf = "model:\n  name: " + tag + "\n  operator:\n    input_data:\n      type: Input\n      output:\n";
  conf += "        x: {dtype: fp32, shape: [-1, " + std::to_string(K) + "]}\n";
  for (auto& w : ws) {
    bin.resize((bin.size() + 63) / 64 * 64, '\0');
    conf += "        " + w.name + ": {dtype: " + w.dtype + ", shape: [";
    for (size_t i = 0; i < w.shape.size(); ++i) conf += (i ? ", " : "") + std::to_string(w.shape[i]);
    conf += "], location: [" + std::to_string(bin.size()) + ", " + std::to_string(w.bytes.size()) + "]}\n";
    bin.append(w.bytes.begin(), w.bytes.end());
  }
  conf += "    fc:\n      type: InnerProduct\n      input: {";
  for (size_t i = 0; i < ip_inputs.size(); ++i) conf += (i ? ", " : "") + ip_inputs[i] + ": {}";
  conf += "}\n      output: {y: {}}\n";
  if (!attr.empty()) conf += "      attr: {" + attr + "}\n";
  conf += "    output_data:\n      type: Output\n      input: {y: {}}\n";
  ne_test::write_file(d + "/conf.yaml", conf);
  ne_test::write_file(d + "/model.bin", bin);
  return d;
}

std::vector<float> run_ir(const std::string& d, const std::vector<float>& x, int64_t M, int64_t K) {
  ne::Executor ex(ne::load_ir(d + "/conf.yaml", d + "/model.bin"));
  auto out = ex.run({{"x", ne::HostTensor::make(ne::DType::fp32, {M, K}, x)}});
  const float* p = out.at(0).ptr<float>();
  return std::vector<float>(p, p + out.at(0).numel());
}

// W[K, N] in `dt`, written [K, N] plainly and [N, K] with src1_perm: 0,1; outputs must agree.
void check_src1_perm(const std::string& dt, int64_t K, int64_t N) {
  SCOPED_TRACE(dt + " K=" + std::to_string(K) + " N=" + std::to_string(N));
  std::mt19937 rng(1234);  // seed printed by SCOPED_TRACE's shape; fixed
  std::uniform_real_distribution<float> u(-1, 1);
  const int64_t M = 5;
  std::vector<float> x(static_cast<size_t>(M * K)), w(static_cast<size_t>(K * N)), b(static_cast<size_t>(N)),
      sc(static_cast<size_t>(N));
  for (auto& v : x) v = u(rng);
  for (auto& v : w) v = u(rng);
  for (auto& v : b) v = u(rng);
  for (auto& v : sc) v = 0.01f + 0.001f * std::abs(u(rng));
  auto encode = [&](bool transposed) {
    const size_t es = dt == "fp32" ? 4 : dt == "bf16" ? 2 : 1;
    std::vector<uint8_t> out(size_t(K * N) * es);
    for (int64_t k = 0; k < K; ++k)
      for (int64_t n = 0; n < N; ++n) {
        const float v = w[size_t(k * N + n)];
        const size_t at = size_t(transposed ? n * K + k : k * N + n) * es;
        if (dt == "fp32") std::memcpy(&out[at], &v, 4);
        else if (dt == "bf16") { uint16_t h = ne::fp32_to_bf16(v); std::memcpy(&out[at], &h, 2); }
        else out[at] = uint8_t(int8_t(std::lround(v * 127)));
      }
    return out;
  };
  auto ir = [&](bool transposed) {
    std::vector<HandWeight> ws = {{"w", dt, transposed ? std::vector<int64_t>{N, K} : std::vector<int64_t>{K, N}, encode(transposed)}};
    std::vector<std::string> in = {"x", "w"};
    std::string attr = transposed ? "src1_perm: '0,1', append_op: relu" : "append_op: relu";
    if (dt == "s8") {
      ws.push_back({"ws", "fp32", {N}, bytes_of(sc.data(), sc.size() * 4)});
      in.push_back("ws");
      attr += ", src_scale: 0.0078125, src_zero_point: 128";
    }
    ws.push_back({"b", "fp32", {N}, bytes_of(b.data(), b.size() * 4)});
    in.push_back("b");
    return write_hand_ir(std::string("src1perm_") + dt + (transposed ? "_nk" : "_kn") + std::to_string(K) + "x" +
                             std::to_string(N), K, ws, in, attr);
  };
  const auto ref = run_ir(ir(false), x, M, K), got = run_ir(ir(true), x, M, K);
  ASSERT_EQ(ref.size(), size_t(M * N));
  ASSERT_EQ(got.size(), ref.size());
  // The same weight values in the same K order: the kernels see identical operands.
  for (size_t i = 0; i < ref.size(); ++i) EXPECT_NEAR(got[i], ref[i], 1e-6f) << "at " << i;
}

TEST(OpAttrs, InnerProductSrc1PermHonoured) {
  for (const char* dt : {"fp32", "bf16", "s8"}) {
    check_src1_perm(dt, 7, 3);   // non-square [N, K] = [3, 7]
    check_src1_perm(dt, 16, 16); // square: read untransposed it would run silently wrong
  }
}

TEST(OpAttrs, InnerProductSrc1PermIdentityAndSharedWeight) {
  // "1,0" is our layout [K, N] (the Neural Engine writes it on MatMul weights): nothing to do.
  std::vector<float> w = {1, 2, 3, 4};
  std::string d = write_hand_ir("src1perm_id", 2, {{"w", "fp32", {2, 2}, bytes_of(w.data(), 16)}}, {"x", "w"},
                                "src1_perm: [1, 0]");
  auto y = run_ir(d, {1, 1}, 1, 2);
  EXPECT_EQ(y, (std::vector<float>{4, 6}));
  // [1,1] · W with W stored [N, K] = [[1,2],[3,4]] -> W[K, N] = [[1,3],[2,4]] -> [3, 7].
  d = write_hand_ir("src1perm_t", 2, {{"w", "fp32", {2, 2}, bytes_of(w.data(), 16)}}, {"x", "w"}, "src1_perm: '0,1'");
  y = run_ir(d, {1, 1}, 1, 2);
  EXPECT_EQ(y, (std::vector<float>{3, 7}));

  // Two InnerProducts reading one [N, K] weight: transposed once.
  ne::Model m = ne::load_ir(d + "/conf.yaml", d + "/model.bin");
  ne::OpInfo fc2 = m.ops[1];
  fc2.name = "fc2";
  fc2.inputs[0] = "y";
  fc2.outputs = {"y2"};
  m.ops.insert(m.ops.begin() + 2, fc2);
  m.ops.back().inputs = {"y2"};
  ne::Executor ex(std::move(m));
  int transposed = 0;
  for (auto& kv : ex.model().tensors) transposed += kv.first.find("/transposed") != std::string::npos;
  EXPECT_EQ(transposed, 1);
  for (auto& op : ex.model().ops) EXPECT_FALSE(op.has_attr("src1_perm")) << op.name;
  auto out = ex.run({{"x", ne::HostTensor::make(ne::DType::fp32, {1, 2}, std::vector<float>{1, 1})}});
  const float* p = out.at(0).ptr<float>();
  EXPECT_EQ(p[0], 1 * 3 + 2 * 7);  // [3, 7] · [[1,3],[2,4]]
  EXPECT_EQ(p[1], 3 * 3 + 4 * 7);
}

TEST(OpAttrs, InnerProductSrc1PermOnARunTimeWeightIsRefused) {
  ne::Model m = softmax_model({}, "InnerProduct");
  m.ops[1].inputs = {"x", "x"};
  m.ops[1].attrs = {{"src1_perm", "0,1"}};
  const std::string msg = build_error(std::move(m));
  EXPECT_NE(msg.find("/some/dir/conf.yaml: operator 'sm' (InnerProduct): attribute src1_perm='0,1' needs a constant weight"),
            std::string::npos) << msg;
}

}  // namespace
