// Every operator declares its attributes (ARCHITECTURE "The IR on disk", STYLE 14): one table,
// op type -> the attribute names it reads, each with the kind of value it can honour. The executor
// checks every op of a model against it before any operator is built, so an attribute no op reads,
// or a value it cannot honour, is an error naming the file, the operator and the attribute —
// never ignored. docs/OPS.md documents the same sets (tests/core/test_op_attrs.cpp keeps the two
// and the registry in step). Range checks that depend on other attributes or on the tensors
// (a zero point within its dtype, a perm's rank against its input's) stay in the operators.
#pragma once
#include <string>
#include <vector>

#include "common/dtype.hpp"
#include "common/ir.hpp"

namespace ne {

enum class AttrKind {
  integer,      // "3", "-1"
  number,       // a float ("1e-5", "0.125", "nan" is refused)
  ints,         // comma list of integers ("0,2,1,3"; "" = none)
  perm,         // ints that are a permutation of 0..n-1
  one_of,       // exactly one of `values` (after dropping spaces and brackets: "[1, 0]" == "1,0")
  list_of,      // comma list whose every item is one of `values` (append_op)
  dtype,        // a dtype name (parse_dtype); one of `dtypes` when that is not empty
  number_or,    // a number or one of `values` (src_scale: 0.02 | dynamic)
};

struct AttrSpec {
  const char* name;
  AttrKind kind;
  std::vector<std::string> values = {};  // one_of / list_of / number_or
  std::vector<DType> dtypes = {};        // dtype
};

struct OpAttrSchema {
  std::string type;  // registered type ("InnerProduct", "InnerProduct.s8", ...)
  std::vector<AttrSpec> attrs;
};

// The table, one entry per registered op type (NE_REGISTER_OP), Input and Output included.
const std::vector<OpAttrSchema>& op_attr_schemas();
// Declares the attributes of an op type registered outside executor/ops (tests, extensions); an
// entry for a type already in the table replaces it. Returns true (for static initialisers).
bool declare_op_attrs(OpAttrSchema schema);
// nullptr when `registered_type` has no entry.
const OpAttrSchema* find_op_attr_schema(const std::string& registered_type);

// The registered type an op runs as: "<type>.<dtype of input 1>" when input 1 is a non-fp32 weight
// and that variant is registered (InnerProduct.s8, InnerProduct.bf16), else its type.
std::string registered_type_of(const Model& m, const OpInfo& op);

// Checks one op's attributes against `registered_type`'s entry. Throws ne::Error
// "<source>: operator '<name>' (<type>): <what>" naming the attribute and its value.
void check_op_attrs(const OpInfo& op, const std::string& registered_type, const std::string& source);
// Checks every op of `m` (its type must be registered: unknown types are reported before this).
void check_model_attrs(const Model& m);

// The Neural Engine's `src1_perm` on InnerProduct: "0,1" (weight [K, N], ours) is dropped;
// "1,0" (weight stored [N, K]) transposes the constant weight once, into a new tensor
// "<weight>/transposed" ([K, N], same dtype: fp32, bf16, s8 — an s8 weight's per-channel scales
// are per N either way, so they are kept), and drops the attribute. A non-constant weight is an
// error naming the op. Returns the number of ops rewritten.
int lower_inner_product_src1_perm(Model& m);

}  // namespace ne
