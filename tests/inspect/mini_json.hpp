// A small JSON reader for the tests (meta.json from gen_bert.py, report.json): objects, arrays,
// strings (\uXXXX kept as '?'), numbers, true/false/null. Throws std::runtime_error on bad input.
#pragma once
#include <cctype>
#include <cstdlib>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace mini_json {

struct Value {
  enum Kind { Null, Bool, Num, Str, Arr, Obj } kind = Null;
  bool b = false;
  double num = 0;
  std::string str;
  std::vector<Value> arr;
  std::map<std::string, Value> obj;
  const Value& operator[](const std::string& k) const {
    auto it = obj.find(k);
    if (kind != Obj || it == obj.end()) throw std::runtime_error("json: no key '" + k + "'");
    return it->second;
  }
  const Value& operator[](size_t i) const {
    if (kind != Arr || i >= arr.size()) throw std::runtime_error("json: bad index");
    return arr[i];
  }
  bool has(const std::string& k) const { return kind == Obj && obj.count(k); }
};

class Parser {
 public:
  explicit Parser(const std::string& s) : s_(s) {}
  Value parse() {
    Value v = value();
    ws();
    if (p_ != s_.size()) err("trailing characters");
    return v;
  }

 private:
  [[noreturn]] void err(const std::string& m) { throw std::runtime_error("json: " + m + " at " + std::to_string(p_)); }
  void ws() {
    while (p_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[p_]))) ++p_;
  }
  bool lit(const char* w) {
    size_t n = std::char_traits<char>::length(w);
    if (s_.compare(p_, n, w) == 0) return p_ += n, true;
    return false;
  }
  std::string string() {
    if (s_[p_] != '"') err("expected string");
    ++p_;
    std::string r;
    while (p_ < s_.size() && s_[p_] != '"') {
      char c = s_[p_++];
      if (c == '\\') {
        if (p_ >= s_.size()) err("bad escape");
        char e = s_[p_++];
        switch (e) {
          case 'n': r += '\n'; break;
          case 't': r += '\t'; break;
          case 'r': r += '\r'; break;
          case 'b': r += '\b'; break;
          case 'f': r += '\f'; break;
          case 'u': r += '?'; p_ += 4; break;
          default: r += e;
        }
      } else {
        r += c;
      }
    }
    if (p_ >= s_.size()) err("unterminated string");
    ++p_;
    return r;
  }
  Value value() {
    ws();
    if (p_ >= s_.size()) err("unexpected end");
    Value v;
    char c = s_[p_];
    if (c == '{') {
      v.kind = Value::Obj;
      ++p_;
      ws();
      if (s_[p_] == '}') return ++p_, v;
      for (;;) {
        ws();
        std::string k = string();
        ws();
        if (s_[p_++] != ':') err("expected ':'");
        v.obj[k] = value();
        ws();
        if (s_[p_] == ',') { ++p_; continue; }
        if (s_[p_] == '}') { ++p_; break; }
        err("expected ',' or '}'");
      }
    } else if (c == '[') {
      v.kind = Value::Arr;
      ++p_;
      ws();
      if (s_[p_] == ']') return ++p_, v;
      for (;;) {
        v.arr.push_back(value());
        ws();
        if (s_[p_] == ',') { ++p_; continue; }
        if (s_[p_] == ']') { ++p_; break; }
        err("expected ',' or ']'");
      }
    } else if (c == '"') {
      v.kind = Value::Str;
      v.str = string();
    } else if (lit("true")) {
      v.kind = Value::Bool, v.b = true;
    } else if (lit("false")) {
      v.kind = Value::Bool;
    } else if (lit("null")) {
    } else {
      char* end = nullptr;
      v.num = std::strtod(s_.c_str() + p_, &end);
      if (end == s_.c_str() + p_) err("bad value");
      v.kind = Value::Num;
      p_ = size_t(end - s_.c_str());
    }
    return v;
  }
  const std::string& s_;
  size_t p_ = 0;
};

inline Value parse(const std::string& s) { return Parser(s).parse(); }

}  // namespace mini_json
