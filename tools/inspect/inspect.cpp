#include "tools/inspect/inspect.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "common/error.hpp"
#include "kernels/cpu_features.hpp"
#include "kernels/sparse_gemm/sparsity.hpp"

namespace ne::inspect {

namespace {

std::string fmt(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}
std::string pct(double v) { return fmt("%.1f%%", 100 * v); }

bool to_sparse_dtype(DType d, sparse::DType* out) {
  switch (d) {
    case DType::fp32: *out = sparse::DType::f32; return true;
    case DType::bf16: *out = sparse::DType::bf16; return true;
    case DType::s8: *out = sparse::DType::s8; return true;
    default: return false;
  }
}

float value_at(const TensorInfo& t, int64_t i) {
  switch (t.dtype) {
    case DType::fp32: return t.as<float>()[i];
    case DType::bf16: return sparse::bf16_to_f32(t.as<uint16_t>()[i]);
    case DType::s8: return float(t.as<int8_t>()[i]);
    default: return 0.f;
  }
}

// Value zero: +0.0 and -0.0 (and integer 0).
bool is_zero(const TensorInfo& t, int64_t i) {
  if (t.dtype == DType::fp32) return (t.as<uint32_t>()[i] & 0x7FFFFFFFu) == 0;
  if (t.dtype == DType::bf16) return (t.as<uint16_t>()[i] & 0x7FFFu) == 0;
  size_t es = dtype_size(t.dtype);
  const uint8_t* p = t.data + size_t(i) * es;
  for (size_t k = 0; k < es; ++k)
    if (p[k]) return false;
  return true;
}

void mkdirs(const std::string& d) {
  std::string cur;
  for (size_t i = 0; i <= d.size(); ++i) {
    if (i == d.size() || d[i] == '/') {
      if (!cur.empty()) ::mkdir(cur.c_str(), 0755);
    }
    if (i < d.size()) cur += d[i];
  }
}

void write_file(const std::string& path, const void* p, size_t n) {
  std::ofstream f(path, std::ios::binary);
  NE_CHECK(f.good(), "cannot write '", path, "'");
  f.write(static_cast<const char*>(p), std::streamsize(n));
  NE_CHECK(f.good(), "error writing '", path, "'");
}

ChannelRanges channel_ranges(const TensorInfo& t, int K, int N, double thr) {
  ChannelRanges r;
  r.min.assign(size_t(N), INFINITY);
  r.max.assign(size_t(N), -INFINITY);
  std::vector<bool> nz(size_t(N), false);
  for (int k = 0; k < K; ++k)
    for (int n = 0; n < N; ++n) {
      int64_t i = int64_t(k) * N + n;
      float v = value_at(t, i);
      r.min[size_t(n)] = std::min(r.min[size_t(n)], v);
      r.max[size_t(n)] = std::max(r.max[size_t(n)], v);
      if (!is_zero(t, i)) nz[size_t(n)] = true;
    }
  r.narrowest = INFINITY;
  for (int n = 0; n < N; ++n) {
    if (K == 0) r.min[size_t(n)] = r.max[size_t(n)] = 0;
    double w = double(r.max[size_t(n)]) - double(r.min[size_t(n)]);
    if (!nz[size_t(n)] || !(w > 0)) {
      ++r.zero_channels;
      continue;
    }
    if (w > r.widest) r.widest = w, r.widest_channel = n;
    if (w < r.narrowest) r.narrowest = w, r.narrowest_channel = n;
  }
  if (r.widest_channel < 0) {
    r.narrowest = 0;
    return r;
  }
  r.spread = r.widest / r.narrowest;
  r.risky = r.spread > thr;
  return r;
}

// Non-zero block map of W at the resolution of `p` (1x4: K x ceil(N/4); else ceil(K/4) x N).
std::vector<uint8_t> block_map(const TensorInfo& t, int K, int N, sparse::Pattern p, int* rows, int* cols) {
  const bool r14 = p != sparse::Pattern::p4x1;
  *rows = r14 ? K : (K + 3) / 4;
  *cols = r14 ? (N + 3) / 4 : N;
  std::vector<uint8_t> m(size_t(*rows) * size_t(*cols), 0);
  for (int k = 0; k < K; ++k)
    for (int n = 0; n < N; ++n)
      if (!is_zero(t, int64_t(k) * N + n)) m[size_t(r14 ? k : k / 4) * size_t(*cols) + size_t(r14 ? n / 4 : n)] = 1;
  return m;
}

// z16 by bitwise zeros, and the figures with -0.0 counted as zero: the same measures
// (kernels/sparse_gemm/sparsity.hpp) on a copy with +0.0 there.
void value_figures(const TensorInfo& t, sparse::DType sdt, WeightEntry& e) {
  const int64_t n = int64_t(e.K) * e.N;
  std::vector<uint8_t> copy;
  const void* v = sparse::canonical_zeros(t.data, sdt, size_t(n), &copy, &e.negative_zeros);
  e.z16 = sparse::z16(t.data, sdt, e.K, e.N);
  e.value_z16 = e.negative_zeros ? sparse::z16(v, sdt, e.K, e.N) : e.z16;
  // The decision measured the weight by value already (decide_sparse counts -0.0 as zero): its
  // figures are the value figures; adding the -0.0 count again counted them twice.
  for (int p = 0; p < sparse::kNumPatterns; ++p) e.value_sparsity[p] = e.decision.sparsity[p];
  e.value_element_sparsity = e.decision.element_sparsity;
}

}  // namespace

double group_zero_rows(const TensorInfo& t, int K, int N, bool by_value) {
  sparse::DType sdt;
  NE_CHECK(to_sparse_dtype(t.dtype, &sdt), "group_zero_rows: ", dtype_name(t.dtype),
           " is not a weight dtype (fp32, bf16, s8)");
  std::vector<uint8_t> copy;
  const void* w = by_value ? sparse::canonical_zeros(t.data, sdt, size_t(K) * size_t(N), &copy) : t.data;
  return sparse::z16(w, sdt, K, N);
}

namespace {

void grid_scale(int blocks, const Options& o, int* cell, int* px) {
  *cell = std::max(1, (blocks + o.max_image - 1) / o.max_image);
  *px = *cell == 1 ? std::max(1, o.min_image / std::max(1, blocks)) : 1;
  while (*px > 1 && blocks * *px > o.max_image) --*px;
}

Image heatmap_image(const std::vector<uint8_t>& map, WeightEntry& e, const Options& o) {
  grid_scale(e.grid_rows, o, &e.cell_rows, &e.px_rows);
  grid_scale(e.grid_cols, o, &e.cell_cols, &e.px_cols);
  const int cr = (e.grid_rows + e.cell_rows - 1) / e.cell_rows, cc = (e.grid_cols + e.cell_cols - 1) / e.cell_cols;
  const int mw = cc * e.px_cols, mh = cr * e.px_rows;
  const int legend_x = kMapX + mw + 14;
  Image img(legend_x + 60, std::max(mh, 110) + 2 * kMapY);
  // Frame.
  img.fill_rect(kMapX - 1, kMapY - 1, kMapX + mw + 1, kMapY + mh + 1, 120, 120, 120);
  for (int y = 0; y < cr; ++y)
    for (int x = 0; x < cc; ++x) {
      int n = 0, nz = 0;
      for (int by = y * e.cell_rows; by < std::min(e.grid_rows, (y + 1) * e.cell_rows); ++by)
        for (int bx = x * e.cell_cols; bx < std::min(e.grid_cols, (x + 1) * e.cell_cols); ++bx)
          ++n, nz += map[size_t(by) * size_t(e.grid_cols) + size_t(bx)];
      uint8_t c[3];
      density_colour(n ? double(nz) / n : 0, c);
      img.fill_rect(kMapX + x * e.px_cols, kMapY + y * e.px_rows, kMapX + (x + 1) * e.px_cols,
                    kMapY + (y + 1) * e.px_rows, c[0], c[1], c[2]);
    }
  // Legend: vertical colour bar, 100% at the top, 0% at the bottom, ticks at 0/50/100.
  const int bar_h = 100, by0 = kMapY;
  img.fill_rect(legend_x - 1, by0 - 1, legend_x + 13, by0 + bar_h + 1, 120, 120, 120);
  for (int y = 0; y < bar_h; ++y) {
    uint8_t c[3];
    density_colour(1.0 - double(y) / (bar_h - 1), c);
    img.fill_rect(legend_x, by0 + y, legend_x + 12, by0 + y + 1, c[0], c[1], c[2]);
  }
  const char* labels[3] = {"100%", "50%", "0%"};
  for (int i = 0; i < 3; ++i) {
    int y = by0 + i * (bar_h - 1) / 2;
    img.fill_rect(legend_x + 13, y, legend_x + 17, y + 1, 0, 0, 0);
    img.text(legend_x + 19, std::max(0, y - 5), labels[i], 2, 0, 0, 0);
  }
  return img;
}

Image ranges_image(const ChannelRanges& r, int N, const Options& o) {
  const int per = std::max(1, (N + o.max_image - 1) / o.max_image);  // channels per pixel column
  const int cols = (N + per - 1) / per;
  const int pxw = per == 1 ? std::max(1, std::min(8, o.max_image / std::max(1, N))) : 1;
  const int pw = cols * pxw, ph = 160, x0 = 6, y0 = 6;
  Image img(pw + 2 * x0, ph + 2 * y0);
  double a = 0;
  for (int n = 0; n < N; ++n) a = std::max({a, std::fabs(double(r.min[size_t(n)])), std::fabs(double(r.max[size_t(n)]))});
  if (!(a > 0)) a = 1;
  auto ypos = [&](double v) { return y0 + int(std::lround((1.0 - (v + a) / (2 * a)) * (ph - 1))); };
  img.fill_rect(x0 - 1, y0 - 1, x0 + pw + 1, y0 + ph + 1, 160, 160, 160);
  img.fill_rect(x0, y0, x0 + pw, y0 + ph, 255, 255, 255);
  const uint8_t cr = r.risky ? 200 : 31, cg = r.risky ? 40 : 119, cb = r.risky ? 40 : 180;
  for (int c = 0; c < cols; ++c) {
    double lo = INFINITY, hi = -INFINITY;
    for (int n = c * per; n < std::min(N, (c + 1) * per); ++n)
      lo = std::min(lo, double(r.min[size_t(n)])), hi = std::max(hi, double(r.max[size_t(n)]));
    int ya = ypos(hi), yb = ypos(lo);
    img.fill_rect(x0 + c * pxw, ya, x0 + (c + 1) * pxw - (pxw > 2 ? 1 : 0), yb + 1, cr, cg, cb);
  }
  int yz = ypos(0);
  img.fill_rect(x0, yz, x0 + pw, yz + 1, 0, 0, 0);
  return img;
}

void json_str(std::ostringstream& o, const std::string& s) {
  o << '"';
  for (char c : s) {
    if (c == '"' || c == '\\') o << '\\' << c;
    else if (static_cast<unsigned char>(c) < 0x20) o << fmt("\\u%04x", double(int(c)));
    else o << c;
  }
  o << '"';
}
std::string json_num(double v) {
  if (!std::isfinite(v)) return "null";
  char b[40];
  std::snprintf(b, sizeof b, "%.9g", v);
  return b;
}
std::string html_esc(const std::string& s) {
  std::string r;
  for (char c : s) {
    if (c == '<') r += "&lt;";
    else if (c == '>') r += "&gt;";
    else if (c == '&') r += "&amp;";
    else if (c == '"') r += "&quot;";
    else r += c;
  }
  return r;
}

std::string shape_str(const WeightEntry& e) { return std::to_string(e.K) + "x" + std::to_string(e.N); }
std::string run_str(const WeightEntry& e) {
  if (!e.inner_product) return "n/a";
  return e.decision.sparse ? std::string("sparse ") + sparse::pattern_name(e.decision.best) : "dense";
}

}  // namespace

void density_colour(double d, uint8_t rgb[3]) {
  // Three stops (ColorBrewer "Blues" ends and middle): 0 -> near white, 1 -> dark blue.
  static const double s[3][3] = {{247, 251, 255}, {107, 174, 214}, {8, 48, 107}};
  d = std::min(1.0, std::max(0.0, d));
  int i = d < 0.5 ? 0 : 1;
  double t = d < 0.5 ? d / 0.5 : (d - 0.5) / 0.5;
  for (int c = 0; c < 3; ++c) rgb[c] = uint8_t(std::lround(s[i][c] + (s[i + 1][c] - s[i][c]) * t));
}

std::string safe_name(const std::string& t) {
  std::string r;
  for (char c : t) r += (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-') ? c : '_';
  if (r.empty() || r[0] == '.') r = "_" + r;
  return r;
}

Report inspect_model(const Model& m, const Options& opt) {
  Report rep;
  rep.source = m.source;
  // The threshold in force: the per-pattern defaults are reported as the 1x4 one (the 4x1 one is
  // in each weight's reason).
  rep.threshold = sparse_threshold_for(sparse::Pattern::p1x4, opt.op);
  rep.spread_threshold = opt.spread_threshold;
  rep.isa = cpu::isa_name(cpu::max_isa());
  std::set<std::string> seen, files;
  auto add = [&](const std::string& tname, const OpInfo* op, bool ip) {
    const TensorInfo* t = m.find(tname);
    if (!t || !t->is_weight || !t->data || t->shape.size() != 2 || seen.count(tname)) return;
    sparse::DType sdt;
    if (!to_sparse_dtype(t->dtype, &sdt)) return;
    if (!ip && (t->shape[0] < 4 || t->shape[1] < 4)) return;  // vectors in disguise: not meaningful
    seen.insert(tname);
    WeightEntry e;
    e.tensor = tname;
    e.op = op ? op->name : "";
    e.op_type = op ? op->type : "";
    e.inner_product = ip;
    e.append_op = ip ? op->attr("append_op") : "";
    e.dtype = t->dtype;
    e.K = int(t->shape[0]);
    e.N = int(t->shape[1]);
    OpConfig cfg = opt.op;
    if (!ip) cfg.allow_sparse = false;  // figures only; the executor decides only InnerProducts
    e.decision = decide_sparse(t->data, sdt, e.K, e.N, cfg);
    if (!ip) e.decision.kernel = "";
    value_figures(*t, sdt, e);
    if (ip) e.ranges = channel_ranges(*t, e.K, e.N, opt.spread_threshold);
    e.heatmap_pattern = e.value_sparsity[1] > e.value_sparsity[0] ? sparse::Pattern::p4x1 : sparse::Pattern::p1x4;
    std::vector<uint8_t> map = block_map(*t, e.K, e.N, e.heatmap_pattern, &e.grid_rows, &e.grid_cols);
    std::string base = safe_name(tname);
    while (files.count(base)) base += "_";
    files.insert(base);
    e.heatmap_file = "heatmaps/" + base + ".png";
    if (opt.images) {
      e.heatmap_png = encode_png(heatmap_image(map, e, opt));
      if (ip) {
        e.ranges_file = "ranges/" + base + ".png";
        e.ranges_png = encode_png(ranges_image(e.ranges, e.N, opt));
      }
    } else {
      grid_scale(e.grid_rows, opt, &e.cell_rows, &e.px_rows);
      grid_scale(e.grid_cols, opt, &e.cell_cols, &e.px_cols);
    }
    rep.weights.push_back(std::move(e));
  };
  for (const OpInfo& op : m.ops)
    if (op.type == "InnerProduct" && op.inputs.size() >= 2) add(op.inputs[1], &op, true);
  for (const OpInfo& op : m.ops) {
    if (op.type == "Input" || op.type == "InnerProduct") continue;
    for (const auto& in : op.inputs) add(in, &op, false);
  }
  return rep;
}

std::string json_report(const Report& r) {
  std::ostringstream o;
  o << "{\n  \"source\": ";
  json_str(o, r.source);
  o << ",\n  \"sparse_threshold\": " << json_num(r.threshold) << ",\n  \"spread_threshold\": "
    << json_num(r.spread_threshold) << ",\n  \"isa\": ";
  json_str(o, r.isa);
  o << ",\n  \"weights\": [";
  for (size_t i = 0; i < r.weights.size(); ++i) {
    const WeightEntry& e = r.weights[i];
    const SparseDecision& d = e.decision;
    o << (i ? ",\n" : "\n") << "    {\"tensor\": ";
    json_str(o, e.tensor);
    o << ", \"op\": ";
    json_str(o, e.op);
    o << ", \"op_type\": ";
    json_str(o, e.op_type);
    o << ", \"inner_product\": " << (e.inner_product ? "true" : "false") << ", \"dtype\": ";
    json_str(o, dtype_name(e.dtype));
    o << ", \"shape\": [" << e.K << ", " << e.N << "], \"element_sparsity\": " << json_num(d.element_sparsity)
      << ", \"sparsity\": {";
    for (int p = 0; p < sparse::kNumPatterns; ++p)
      o << (p ? ", " : "") << '"' << sparse::pattern_name(sparse::Pattern(p)) << "\": " << json_num(d.sparsity[p]);
    o << "}, \"z16\": " << json_num(e.z16) << ", \"negative_zeros\": " << e.negative_zeros << ", \"value_element_sparsity\": "
      << json_num(e.value_element_sparsity) << ", \"value_sparsity\": {";
    for (int p = 0; p < sparse::kNumPatterns; ++p)
      o << (p ? ", " : "") << '"' << sparse::pattern_name(sparse::Pattern(p)) << "\": " << json_num(e.value_sparsity[p]);
    o << "}, \"value_z16\": " << json_num(e.value_z16) << ", \"best_pattern\": \"" << sparse::pattern_name(d.best)
      << "\", \"best_sparsity\": " << json_num(d.best_sparsity);
    if (e.inner_product) {
      o << ", \"append_op\": ";
      json_str(o, e.append_op);
      o << ", \"sparse\": " << (d.sparse ? "true" : "false") << ", \"kernel\": ";
      json_str(o, d.kernel);
      o << ", \"reason\": ";
      json_str(o, d.reason);
      const ChannelRanges& c = e.ranges;
      o << ", \"ranges\": {\"spread\": " << json_num(c.spread) << ", \"risky\": " << (c.risky ? "true" : "false")
        << ", \"widest\": " << json_num(c.widest) << ", \"widest_channel\": " << c.widest_channel
        << ", \"narrowest\": " << json_num(c.narrowest) << ", \"narrowest_channel\": " << c.narrowest_channel
        << ", \"zero_channels\": " << c.zero_channels << ", \"min\": [";
      for (size_t n = 0; n < c.min.size(); ++n) o << (n ? "," : "") << json_num(c.min[n]);
      o << "], \"max\": [";
      for (size_t n = 0; n < c.max.size(); ++n) o << (n ? "," : "") << json_num(c.max[n]);
      o << "]}";
    }
    o << ", \"heatmap\": {\"file\": ";
    json_str(o, e.heatmap_file);
    o << ", \"pattern\": \"" << sparse::pattern_name(e.heatmap_pattern) << "\", \"blocks\": [" << e.grid_rows << ", "
      << e.grid_cols << "], \"blocks_per_pixel\": [" << e.cell_rows << ", " << e.cell_cols << "]}";
    if (!e.ranges_file.empty()) {
      o << ", \"ranges_plot\": ";
      json_str(o, e.ranges_file);
    }
    o << "}";
  }
  o << "\n  ]\n}\n";
  return o.str();
}

namespace {
// Bar chart of log10(spread) per InnerProduct layer with the threshold line (inline SVG).
std::string spread_svg(const Report& r) {
  std::vector<const WeightEntry*> ip;
  for (const auto& e : r.weights)
    if (e.inner_product) ip.push_back(&e);
  if (ip.empty()) return "";
  double top = std::log10(std::max(r.spread_threshold, 1.0) * 10);
  for (auto* e : ip)
    if (e->ranges.spread > 0) top = std::max(top, std::log10(e->ranges.spread) * 1.05);
  const int bw = std::max(4, std::min(24, 1000 / int(ip.size()))), h = 220, x0 = 50, y0 = 10;
  const int w = x0 + bw * int(ip.size()) + 10;
  auto y = [&](double s) { return y0 + h - int(std::lround((s > 0 ? std::log10(std::max(s, 1.0)) : 0) / top * h)); };
  std::ostringstream o;
  o << "<svg xmlns='http://www.w3.org/2000/svg' width='" << w << "' height='" << h + 40
    << "' style='background:#fff;font:11px sans-serif'>";
  for (int d = 0; d <= int(top); ++d) {
    int yy = y(std::pow(10.0, d));
    o << "<line x1='" << x0 << "' x2='" << w << "' y1='" << yy << "' y2='" << yy << "' stroke='#ddd'/>"
      << "<text x='" << x0 - 4 << "' y='" << yy + 4 << "' text-anchor='end'>" << fmt("%g", std::pow(10.0, d))
      << "&#215;</text>";
  }
  for (size_t i = 0; i < ip.size(); ++i) {
    const auto* e = ip[i];
    int yy = y(e->ranges.spread);
    o << "<rect x='" << x0 + int(i) * bw + 1 << "' y='" << yy << "' width='" << bw - 2 << "' height='" << y0 + h - yy
      << "' fill='" << (e->ranges.risky ? "#c82828" : "#1f77b4") << "'><title>" << html_esc(e->op) << " ("
      << html_esc(e->tensor) << "): spread " << fmt("%.1f", e->ranges.spread) << "&#215;</title></rect>";
  }
  int yt = y(r.spread_threshold);
  o << "<line x1='" << x0 << "' x2='" << w << "' y1='" << yt << "' y2='" << yt
    << "' stroke='#c82828' stroke-dasharray='4,3'/><text x='" << w - 4 << "' y='" << yt - 3
    << "' text-anchor='end' fill='#c82828'>threshold " << fmt("%g", r.spread_threshold) << "&#215;</text>"
    << "<text x='" << x0 << "' y='" << y0 + h + 16 << "'>InnerProduct layers in execution order (hover for names)</text>"
    << "</svg>";
  return o.str();
}
}  // namespace

// Tooltip of the HTML table's z column (plain text: a title attribute).
const char* const kZTitle =
    "z = share of (16-output-channel group, k) rows of W[K, N] that are all zero (group g = output channels "
    "16g..16g+15, the last one partial when N is not a multiple of 16). An AMX K-gather kernel skips these rows: "
    "it gathers only the k rows that are non-zero in some channel of the group, so its work is about (1 - z) of "
    "dense. Bitwise zeros, as the executor and the packing count them (-0.0 is non-zero; the note column gives "
    "z by value). Random 1x4 blocks at sparsity s: z ~ s^4; 4x1: z ~ s^16; 1x16 pruning: z = s.";

std::string html_report(const Report& r) {
  int nip = 0, nsp = 0, nrisky = 0;
  for (const auto& e : r.weights)
    if (e.inner_product) nip++, nsp += e.decision.sparse, nrisky += e.ranges.risky;
  std::ostringstream o;
  o << "<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>neural_engine_inspect: " << html_esc(r.source)
    << "</title>\n<style>body{font:13px/1.4 sans-serif;margin:16px;color:#222}table{border-collapse:collapse}"
       "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right;white-space:nowrap}td.l,th.l{text-align:left}"
       "tr.sparse td.run{background:#dff0d8}tr.risky td.spread{background:#f8d7da}th{background:#eee;position:sticky;top:0}"
       ".card{display:inline-block;vertical-align:top;margin:6px;padding:6px;border:1px solid #ddd}"
       ".card img{image-rendering:pixelated;display:block}.legend{display:inline-block;width:160px;height:12px;"
       "background:linear-gradient(to right,rgb(247,251,255),rgb(107,174,214),rgb(8,48,107));border:1px solid #888;"
       "vertical-align:middle}code{background:#f4f4f4}</style></head><body>\n";
  o << "<h1>Weight inspection</h1>\n<p>Model <code>" << html_esc(r.source) << "</code>; sparse threshold "
    << pct(r.threshold)
    << " (above it a weight's sparse kernel is a candidate: with the default measured dispatch it is timed against "
       "oneDNN dense at plan time, per M class, and the faster runs; <code>neural_engine --profile</code> shows what "
       "ran; the 'runs' column is the threshold rule's answer); CPU ISA "
    << html_esc(r.isa) << ".<br>" << nip << " InnerProduct weights: " << nsp << " sparse, " << nip - nsp
    << " dense; " << nrisky << " with per-output-channel range spread above " << fmt("%g", r.spread_threshold)
    << "&#215; (risky for per-tensor int8).</p>\n";
  o << "<h2>Weights</h2>\n<p>Sparsity = all-zero blocks / blocks (1x4: 1 input &#215; 4 output channels; 4x1: 4 "
       "input &#215; 1 output; 2:4: share of 4-row groups per column with &le; 2 non-zeros; channel: all-zero input "
       "channels), as the executor measures it (bitwise zeros, so -0.0 is non-zero; see the note column). W is [K, N] = [input, output channels]. "
       "z (AMX) = share of (16-output-channel group, k) rows that are all zero: the k rows an AMX K-gather kernel "
       "skips (random 1x4 blocks at sparsity s give z &asymp; s<sup>4</sup>, 4x1 &asymp; s<sup>16</sup>, 1x16 = s). Spread = widest / narrowest per-output-channel range "
       "(max &minus; min), all-zero channels left out.</p>\n<table><tr><th class='l'>tensor</th><th class='l'>op</th>"
       "<th>shape K&#215;N</th><th>elements 0</th><th>1x4</th><th>4x1</th><th>2:4</th><th>channel</th><th title='"
    << kZTitle << "'>z (AMX)</th><th>best</th>"
       "<th>runs</th><th class='l'>kernel</th><th class='l'>reason</th><th>spread</th><th class='l'>note</th></tr>\n";
  for (const auto& e : r.weights) {
    const SparseDecision& d = e.decision;
    o << "<tr class='" << (d.sparse ? "sparse" : "dense") << (e.ranges.risky ? " risky" : "") << "'><td class='l'><a href='#"
      << html_esc(safe_name(e.tensor)) << "'>" << html_esc(e.tensor) << "</a></td><td class='l'>" << html_esc(e.op)
      << (e.inner_product ? "" : " (" + html_esc(e.op_type) + ")") << "</td><td>" << shape_str(e) << "</td><td>"
      << pct(d.element_sparsity) << "</td>";
    for (int p = 0; p < sparse::kNumPatterns; ++p) o << "<td>" << pct(d.sparsity[p]) << "</td>";
    o << "<td class='z' title='" << kZTitle << "'>" << pct(e.z16) << "</td>";
    o << "<td>" << sparse::pattern_name(d.best) << "</td><td class='run'>" << run_str(e) << "</td><td class='l'>"
      << html_esc(e.inner_product ? d.kernel : "") << "</td><td class='l'>"
      << html_esc(e.inner_product ? d.reason : "not an InnerProduct weight") << "</td><td class='spread'>"
      << (e.inner_product && e.ranges.spread > 0 ? fmt("%.1f&#215;", e.ranges.spread) : "") << "</td><td class='l'>";
    if (e.negative_zeros)
      o << "<b style='color:#c82828'>" << pct(double(e.negative_zeros) / (double(e.K) * e.N))
        << " of elements are -0.0</b> (the executor counts them as zero, as here); by value: 1x4 " << pct(e.value_sparsity[0])
        << ", 4x1 " << pct(e.value_sparsity[1]) << ", 2:4 " << pct(e.value_sparsity[2]) << ", channel "
        << pct(e.value_sparsity[3]) << ", z " << pct(e.value_z16);
    o << "</td></tr>\n";
  }
  o << "</table>\n";
  o << "<h2>Per-output-channel ranges</h2>\n<p>Each InnerProduct layer's spread across output channels (log "
       "scale). Rule: a layer is <b>risky for per-tensor int8</b> when spread &gt; "
    << fmt("%g", r.spread_threshold)
    << "&#215;: one scale for the whole tensor is set by the widest channel, so the narrowest keeps fewer than "
       "1/" << fmt("%g", r.spread_threshold)
    << " of the 255 levels. Use per-channel scales (the engine's default) or Cross-Layer Equalization.</p>\n"
    << spread_svg(r) << "\n";
  o << "<h2>Heatmaps and ranges per weight</h2>\n<p>Heatmap: where the non-zero blocks are, at the block "
       "resolution of the weight's best pattern by value (-0.0 counts as zero here) (1x4: K rows &#215; N/4 columns; 4x1: K/4 &#215; N), rows = input "
       "channels, columns = output channels; big weights are downscaled by averaging the share of non-zero blocks. "
       "Scale: <span class='legend'></span> 0% &rarr; 100% of blocks non-zero. Range plot: per output channel, a bar "
       "from min to max (black line: 0; red: risky layer).</p>\n";
  for (const auto& e : r.weights) {
    o << "<div class='card' id='" << html_esc(safe_name(e.tensor)) << "'><b>" << html_esc(e.tensor) << "</b> "
      << html_esc(e.op) << " [" << shape_str(e) << "], " << sparse::pattern_name(e.heatmap_pattern) << " blocks "
      << e.grid_rows << "&#215;" << e.grid_cols;
    if (e.cell_rows > 1 || e.cell_cols > 1) o << " (" << e.cell_rows << "&#215;" << e.cell_cols << " blocks per pixel)";
    o << ", " << pct(e.value_sparsity[int(e.heatmap_pattern)]) << " zero<br>";
    if (!e.heatmap_png.empty())
      o << "<img alt='heatmap " << html_esc(e.tensor) << "' data-file='" << html_esc(e.heatmap_file)
        << "' src='data:image/png;base64," << base64(e.heatmap_png) << "'>";
    if (!e.ranges_png.empty())
      o << "ranges: " << fmt("%.4g", e.ranges.narrowest) << " .. " << fmt("%.4g", e.ranges.widest) << " (spread "
        << fmt("%.1f", e.ranges.spread) << "&#215;" << (e.ranges.risky ? ", <b style='color:#c82828'>risky</b>" : "")
        << ")<br><img alt='ranges " << html_esc(e.tensor) << "' data-file='" << html_esc(e.ranges_file)
        << "' src='data:image/png;base64," << base64(e.ranges_png) << "'>";
    o << "</div>\n";
  }
  o << "</body></html>\n";
  return o.str();
}

std::string summary_text(const Report& r, const std::string& dir) {
  std::ostringstream o;
  size_t wt = 6, wo = 2;
  for (const auto& e : r.weights) wt = std::max(wt, e.tensor.size()), wo = std::max(wo, e.op.size());
  wt = std::min<size_t>(wt, 40), wo = std::min<size_t>(wo, 40);
  char b[512];
  std::snprintf(b, sizeof b, "%-*s %-*s %11s %6s %6s %6s %6s %6s %6s %4s %-10s %-36s %7s\n", int(wt), "tensor", int(wo),
                "op", "shape", "elem0", "1x4", "4x1", "2:4", "chan", "z16", "best", "runs", "kernel", "spread");
  o << b;
  int nip = 0, nsp = 0, n14 = 0, n41 = 0, nrisky = 0, nneg = 0;
  double bytes = 0, nzbytes = 0, zrows_all = 0, zrows_zero = 0;
  std::vector<std::string> risky;
  for (const auto& e : r.weights) {
    const SparseDecision& d = e.decision;
    auto cut = [](const std::string& s, size_t w) { return s.size() <= w ? s : "~" + s.substr(s.size() - w + 1); };
    std::snprintf(b, sizeof b, "%-*s %-*s %11s %5.1f%% %5.1f%% %5.1f%% %5.1f%% %5.1f%% %5.1f%% %4s %-10s %-36s %6s\n",
                  int(wt), cut(e.tensor, wt).c_str(), int(wo), cut(e.op, wo).c_str(), shape_str(e).c_str(),
                  100 * d.element_sparsity, 100 * d.sparsity[0], 100 * d.sparsity[1], 100 * d.sparsity[2],
                  100 * d.sparsity[3], 100 * e.z16,
                  sparse::pattern_name(d.best), run_str(e).c_str(), e.inner_product ? d.kernel.c_str() : "",
                  e.inner_product && e.ranges.spread > 0 ? fmt("%.1fx", e.ranges.spread).c_str() : "");
    o << b;
    if (e.negative_zeros) {
      ++nneg;
      std::snprintf(b, sizeof b, "%*s   ^ %.1f%% of elements are -0.0, which the executor counts as zero; by value: "
                    "elem0 %.1f%%, 1x4 %.1f%%, 4x1 %.1f%%, 2:4 %.1f%%, channel %.1f%%, z16 %.1f%%\n", int(wt), "",
                    100.0 * double(e.negative_zeros) / (double(e.K) * e.N), 100 * e.value_element_sparsity,
                    100 * e.value_sparsity[0], 100 * e.value_sparsity[1], 100 * e.value_sparsity[2], 100 * e.value_sparsity[3],
                    100 * e.value_z16);
      o << b;
    }
    if (e.inner_product) {
      ++nip;
      if (d.sparse) ++nsp, (d.best == sparse::Pattern::p4x1 ? n41 : n14)++;
      double eb = double(e.K) * e.N * dtype_size(e.dtype);
      bytes += eb, nzbytes += eb * (1 - d.element_sparsity);
      const double rows = double((e.N + sparse::kZGroup - 1) / sparse::kZGroup) * e.K;
      zrows_all += rows, zrows_zero += rows * e.z16;
      if (e.ranges.risky) ++nrisky, risky.push_back(e.op.empty() ? e.tensor : e.op);
    }
  }
  std::snprintf(b, sizeof b,
                "InnerProduct weights: %d (threshold %.0f%%, ISA %s): %d sparse (1x4 %d, 4x1 %d), %d dense; %.1f MB, "
                "%.1f%% non-zero elements; AMX z16 %.1f%% of (16-channel group, k) rows all zero\n",
                nip, 100 * r.threshold, r.isa.c_str(), nsp, n14, n41, nip - nsp, bytes / 1e6,
                bytes > 0 ? 100 * nzbytes / bytes : 0.0, zrows_all > 0 ? 100 * zrows_zero / zrows_all : 0.0);
  o << b;
  std::snprintf(b, sizeof b, "Per-output-channel ranges: %d of %d layers spread > %gx (risky for per-tensor int8)", nrisky,
                nip, r.spread_threshold);
  o << b;
  for (size_t i = 0; i < risky.size() && i < 6; ++i) o << (i ? ", " : ": ") << risky[i];
  if (risky.size() > 6) o << ", ...";
  o << "\n";
  if (nneg)
    o << "NOTE: " << nneg << " weights hold -0.0 entries (pruning by a 0/1 mask leaves them); the executor counts "
      << "them as zero; tools that test zeros bitwise do not (ne::canonicalize_zeros at compile time makes them +0.0).\n";
  if (!dir.empty()) o << "Report: " << dir << "/report.html, " << dir << "/report.json\n";
  return o.str();
}

void write_report(const Report& r, const std::string& dir) {
  mkdirs(dir + "/heatmaps");
  mkdirs(dir + "/ranges");
  for (const auto& e : r.weights) {
    if (!e.heatmap_png.empty()) write_file(dir + "/" + e.heatmap_file, e.heatmap_png.data(), e.heatmap_png.size());
    if (!e.ranges_png.empty()) write_file(dir + "/" + e.ranges_file, e.ranges_png.data(), e.ranges_png.size());
  }
  std::string h = html_report(r), j = json_report(r);
  write_file(dir + "/report.html", h.data(), h.size());
  write_file(dir + "/report.json", j.data(), j.size());
}

}  // namespace ne::inspect
