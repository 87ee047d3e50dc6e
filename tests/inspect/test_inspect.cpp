// neural_engine_inspect: figures against gen_bert.py's own (meta.json), the decision against
// ne::decide_sparse, the AMX z against hand-built weights and against the K-gather packing's
// own figure, the PNGs (decode, CRC, not blank), the HTML (self-contained, every image), and a
// render in headless Chromium.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <fstream>
#include <random>
#include <set>
#include <sstream>

#include "kernels/cpu_features.hpp"
#include "executor/sparse_dispatch.hpp"
#include "tests/inspect/mini_json.hpp"
#include "tools/inspect/inspect.hpp"
#include "tools/inspect/png.hpp"
#ifdef NE_HAVE_COMPILE
#include "compile/compile.hpp"
#include "compile/passes/slim.hpp"
#endif

namespace {

using ne::inspect::Image;

std::string read_text(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}
std::vector<uint8_t> read_bytes(const std::string& p) {
  std::string s = read_text(p);
  return std::vector<uint8_t>(s.begin(), s.end());
}
std::string tmp_dir(const std::string& name) {
  std::string d = ::testing::TempDir() + "ne_inspect_" + name;
  std::string cmd = "rm -rf '" + d + "' && mkdir -p '" + d + "'";
  EXPECT_EQ(std::system(cmd.c_str()), 0);
  return d;
}
std::string model_dir(const std::string& n) { return std::string(NE_TEST_DATA) + "/models/" + n; }

// ------------------------------------------------------------------------------------ PNG
TEST(Png, ChecksumsKnownValues) {
  const std::string a = "123456789", b = "Wikipedia";
  EXPECT_EQ(ne::inspect::crc32(reinterpret_cast<const uint8_t*>(a.data()), a.size()), 0xCBF43926u);
  EXPECT_EQ(ne::inspect::adler32(reinterpret_cast<const uint8_t*>(b.data()), b.size()), 0x11E60398u);
}

TEST(Png, RoundTripAndCorruption) {
  std::mt19937 rng(7);  // seed 7
  for (auto wh : {std::pair<int, int>{1, 1}, {3, 5}, {257, 130}}) {
    Image img(wh.first, wh.second);
    for (auto& v : img.rgb) v = uint8_t(rng());
    std::vector<uint8_t> png = ne::inspect::encode_png(img);
    Image back;
    std::string err;
    ASSERT_TRUE(ne::inspect::decode_png(png, &back, &err)) << err;
    EXPECT_EQ(back.width, img.width);
    EXPECT_EQ(back.height, img.height);
    EXPECT_EQ(back.rgb, img.rgb);
    // Every truncation is refused with a message, never a crash.
    for (size_t n = 0; n < png.size(); n += std::max<size_t>(1, png.size() / 40)) {
      std::vector<uint8_t> cut(png.begin(), png.begin() + long(n));
      err.clear();
      EXPECT_FALSE(ne::inspect::decode_png(cut, &back, &err)) << n;
      EXPECT_FALSE(err.empty()) << n;
    }
    png[png.size() / 2] ^= 0x40;  // inside IDAT: its CRC no longer matches
    EXPECT_FALSE(ne::inspect::decode_png(png, &back, &err));
  }
}

// --------------------------------------------------------------------------- vs meta.json
#ifdef NE_HAVE_COMPILE
struct Case {
  const char* fixture;
  bool has_negative_zeros;  // gen_bert's 1x4/4x1 pruning multiplies by a mask: -0.0 stays
};

class InspectFixture : public ::testing::TestWithParam<Case> {};

void expect_decision_eq(const ne::SparseDecision& a, const ne::SparseDecision& b, const std::string& what) {
  for (int p = 0; p < ne::sparse::kNumPatterns; ++p) EXPECT_EQ(a.sparsity[p], b.sparsity[p]) << what;
  EXPECT_EQ(a.element_sparsity, b.element_sparsity) << what;
  EXPECT_EQ(a.best, b.best) << what;
  EXPECT_EQ(a.sparse, b.sparse) << what;
  EXPECT_EQ(a.kernel, b.kernel) << what;
  EXPECT_EQ(a.reason, b.reason) << what;
}

TEST_P(InspectFixture, FiguresMatchGeneratorAndDecisionMatchesExecutor) {
  const Case c = GetParam();
  const std::string dir = model_dir(c.fixture);
  ne::Model m = ne::compile_onnx(dir + "/model.onnx");
  mini_json::Value meta = mini_json::parse(read_text(dir + "/meta.json"));
  for (float thr : {0.7f, 0.3f}) {
    ne::inspect::Options o;
    o.op.sparse_threshold = thr;
    o.images = false;
    ne::inspect::Report r = ne::inspect::inspect_model(m, o);
    const auto& ws = meta["weights"].arr;
    ASSERT_FALSE(ws.empty());
    int matched = 0;
    for (const auto& w : ws) {
      // The compiler keeps the ONNX initializer's name for the InnerProduct weight.
      const std::string init = w["onnx_initializer"].str;
      const ne::inspect::WeightEntry* e = nullptr;
      for (const auto& x : r.weights)
        if (x.tensor == init) e = &x;
      ASSERT_NE(e, nullptr) << c.fixture << ": no report entry for " << init << " (" << w["name"].str << ")";
      ++matched;
      EXPECT_TRUE(e->inner_product) << init;
      EXPECT_EQ(e->K, int(w["shape"][0].num));
      EXPECT_EQ(e->N, int(w["shape"][1].num));
      for (int p = 0; p < ne::sparse::kNumPatterns; ++p) {
        const char* pn = ne::sparse::pattern_name(ne::sparse::Pattern(p));
        double want = w["sparsity"][pn].num;
        // Value figures (-0.0 counted as zero, as numpy's w != 0 does) always match.
        EXPECT_NEAR(e->value_sparsity[p], want, 1e-12) << c.fixture << " " << w["name"].str << " " << pn;
        // The executor's figures match too: compile_onnx turns the -0.0 that pruning leaves into
        // +0, and decide_sparse counts -0.0 as zero anyway.
        EXPECT_NEAR(e->decision.sparsity[p], want, 1e-12) << c.fixture << " " << w["name"].str << " " << pn;
      }
      // z: the generator's z16 (by value; = its 1x16 figure) equals both of ours (no -0.0 left).
      const double want_z = w["sparsity"]["z16"].num;
      EXPECT_NEAR(e->value_z16, want_z, 1e-12) << c.fixture << " " << w["name"].str << " z16";
      EXPECT_NEAR(e->z16, want_z, 1e-12) << c.fixture << " " << w["name"].str << " z16";
      EXPECT_NEAR(want_z, w["sparsity"]["1x16"].num, 1e-12) << c.fixture << " " << w["name"].str;
      if (std::string(c.fixture) == "tiny_1x16_90") {  // 1x16 pruning at s: z = s (to round(s * blocks))
        EXPECT_NEAR(e->z16, 0.9, 0.002) << w["name"].str;
      }
      EXPECT_EQ(e->negative_zeros, 0) << init;
      // Same decision as the executor's, with the same OpConfig.
      const ne::TensorInfo* t = m.find(init);
      ne::OpConfig cfg;
      cfg.sparse_threshold = thr;
      ne::SparseDecision d = ne::decide_sparse(t->data, ne::sparse::DType::f32, e->K, e->N, cfg);
      expect_decision_eq(e->decision, d, init);
    }
    EXPECT_EQ(matched, int(ws.size()));
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, InspectFixture,
                         ::testing::Values(Case{"tiny_1x4_90", true}, Case{"tiny_4x1_90", true},
                                           Case{"tiny_1x16_90", true}, Case{"tiny_channel_50", false}),
                         [](const auto& i) { return std::string(i.param.fixture); });

// After canonicalize_zeros the executor's own figures equal the generator's, and the 90%
// weights go sparse.
TEST(Inspect, CanonicalizedZerosMatchGenerator) {
  const std::string dir = model_dir("tiny_1x4_90");
  ne::Model m = ne::compile_onnx(dir + "/model.onnx");
  EXPECT_EQ(ne::canonicalize_zeros(m), 0);  // compile_onnx already did it
  ne::inspect::Options o;
  o.images = false;
  ne::inspect::Report r = ne::inspect::inspect_model(m, o);
  mini_json::Value meta = mini_json::parse(read_text(dir + "/meta.json"));
  for (const auto& w : meta["weights"].arr) {
    for (const auto& e : r.weights) {
      if (e.tensor != w["onnx_initializer"].str) continue;
      EXPECT_EQ(e.negative_zeros, 0);
      EXPECT_NEAR(e.decision.sparsity[0], w["sparsity"]["1x4"].num, 1e-12);
      if (ne::cpu::mayiuse(ne::cpu::Isa::avx512_core)) {
        EXPECT_TRUE(e.decision.sparse) << e.tensor << ": " << e.decision.reason;
      } else {  // only the scalar reference sparse kernel on this CPU: dense, saying why
        EXPECT_FALSE(e.decision.sparse) << e.tensor << ": " << e.decision.reason;
        EXPECT_NE(e.decision.reason.find("scalar reference"), std::string::npos) << e.decision.reason;
      }
    }
  }
}

// ------------------------------------------------------------------------ files and HTML
bool same(const uint8_t* p, const uint8_t c[3]) { return p[0] == c[0] && p[1] == c[1] && p[2] == c[2]; }

TEST(Inspect, ReportFilesHeatmapsAndHtml) {
  const std::string out = tmp_dir("report");
  ne::Model m = ne::compile_onnx(model_dir("tiny_channel_50") + "/model.onnx");
  ne::inspect::Options o;
  ne::inspect::Report r = ne::inspect::inspect_model(m, o);
  ne::inspect::write_report(r, out);
  const std::string html = read_text(out + "/report.html");
  ASSERT_FALSE(html.empty());
  // Self-contained: no external resources (the SVG namespace URI is not fetched).
  for (const char* bad : {"src='http", "src=\"http", "href='http", "href=\"http", "url(http", "@import", "<script src"})
    EXPECT_EQ(html.find(bad), std::string::npos) << bad;
  uint8_t empty[3], full[3];
  ne::inspect::density_colour(0, empty);
  ne::inspect::density_colour(1, full);
  int heatmaps = 0;
  for (const auto& e : r.weights) {
    SCOPED_TRACE(e.tensor);
    ASSERT_FALSE(e.heatmap_file.empty());
    std::vector<uint8_t> bytes = read_bytes(out + "/" + e.heatmap_file);
    ASSERT_FALSE(bytes.empty());
    EXPECT_EQ(bytes, e.heatmap_png);
    Image img;
    std::string err;
    ASSERT_TRUE(ne::inspect::decode_png(bytes, &img, &err)) << err;
    // The map region: pixels of the "all blocks zero" colour and of non-zero blocks.
    const int mw = (e.grid_cols + e.cell_cols - 1) / e.cell_cols * e.px_cols;
    const int mh = (e.grid_rows + e.cell_rows - 1) / e.cell_rows * e.px_rows;
    ASSERT_LE(ne::inspect::kMapX + mw, img.width);
    ASSERT_LE(ne::inspect::kMapY + mh, img.height);
    int64_t n_empty = 0, n_nz = 0, n_full = 0;
    for (int y = 0; y < mh; ++y)
      for (int x = 0; x < mw; ++x) {
        const uint8_t* p = img.px(ne::inspect::kMapX + x, ne::inspect::kMapY + y);
        same(p, empty) ? ++n_empty : ++n_nz;
        n_full += same(p, full);
      }
    if (e.inner_product) {  // channel-pruned at 50%: both kinds present, exactly by the figures
      EXPECT_GT(n_empty, 0);
      EXPECT_GT(n_full, 0);
      const double zero_share = double(n_empty) / double(n_empty + n_nz);
      EXPECT_NEAR(zero_share, e.value_sparsity[int(e.heatmap_pattern)], 1e-9);
    } else {
      EXPECT_GT(n_nz, 0);
    }
    // The HTML embeds this very image and names its file.
    EXPECT_NE(html.find("data-file='" + e.heatmap_file + "'"), std::string::npos);
    EXPECT_NE(html.find("data:image/png;base64," + ne::inspect::base64(bytes)), std::string::npos);
    ++heatmaps;
    if (e.inner_product) {
      std::vector<uint8_t> rb = read_bytes(out + "/" + e.ranges_file);
      Image ri;
      ASSERT_TRUE(ne::inspect::decode_png(rb, &ri, &err)) << err;
      std::set<uint32_t> colours;
      for (int i = 0; i < ri.width * ri.height; ++i)
        colours.insert(uint32_t(ri.rgb[size_t(i) * 3]) << 16 | uint32_t(ri.rgb[size_t(i) * 3 + 1]) << 8 | ri.rgb[size_t(i) * 3 + 2]);
      EXPECT_GE(colours.size(), 3u);  // background, bars, zero line
      EXPECT_NE(html.find("data:image/png;base64," + ne::inspect::base64(rb)), std::string::npos);
      // Ranges: per output channel min <= max, spread = widest / narrowest.
      ASSERT_EQ(int(e.ranges.min.size()), e.N);
      for (int n = 0; n < e.N; ++n) EXPECT_LE(e.ranges.min[size_t(n)], e.ranges.max[size_t(n)]);
      EXPECT_NEAR(e.ranges.spread, e.ranges.widest / e.ranges.narrowest, 1e-9);
      EXPECT_EQ(e.ranges.risky, e.ranges.spread > o.spread_threshold);
    }
  }
  EXPECT_EQ(heatmaps, int(r.weights.size()));
  EXPECT_GE(heatmaps, 12);  // 12 InnerProducts + embedding tables
  // report.json parses and lists the same weights and figures.
  mini_json::Value j = mini_json::parse(read_text(out + "/report.json"));
  ASSERT_EQ(j["weights"].arr.size(), r.weights.size());
  for (size_t i = 0; i < r.weights.size(); ++i) {
    EXPECT_EQ(j["weights"][i]["tensor"].str, r.weights[i].tensor);
    EXPECT_NEAR(j["weights"][i]["sparsity"]["channel"].num, r.weights[i].decision.sparsity[3], 1e-8);
    EXPECT_EQ(j["weights"][i]["heatmap"]["file"].str, r.weights[i].heatmap_file);
    EXPECT_NEAR(j["weights"][i]["z16"].num, r.weights[i].z16, 1e-8);
    EXPECT_NEAR(j["weights"][i]["value_z16"].num, r.weights[i].value_z16, 1e-8);
  }
  // The z column, with its tooltip, in the table.
  EXPECT_NE(html.find("z (AMX)</th>"), std::string::npos);
  EXPECT_NE(html.find("<th title='z = share of (16-output-channel group, k) rows"), std::string::npos);
}

TEST(Inspect, CliWritesReportAndSummary) {
  const std::string out = tmp_dir("cli");
  std::string cmd = std::string(NE_BIN_DIR) + "/neural_engine_inspect --model " + model_dir("tiny_4x1_90") +
                    "/model.onnx --output_dir " + out + " --threshold 0.5 > " + out + "/stdout.txt 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << read_text(out + "/stdout.txt");
  std::string s = read_text(out + "/stdout.txt");
  EXPECT_NE(s.find("InnerProduct weights: 12 (threshold 50%"), std::string::npos) << s;
  // compile_onnx turned the generator's -0.0 into +0: every 90% 4x1 weight runs sparse.
  EXPECT_EQ(s.find("WARNING"), std::string::npos) << s;
  // (On a CPU without AVX-512 only the scalar reference sparse kernel exists: all run dense.)
  EXPECT_NE(s.find(ne::cpu::mayiuse(ne::cpu::Isa::avx512_core) ? "12 sparse" : "0 sparse"), std::string::npos) << s;
  EXPECT_NE(s.find(" z16 "), std::string::npos) << s;  // the column header
  EXPECT_NE(s.find("; AMX z16 "), std::string::npos) << s;
  struct stat st;
  EXPECT_EQ(::stat((out + "/report.html").c_str(), &st), 0);
  EXPECT_EQ(::stat((out + "/report.json").c_str(), &st), 0);
  // A bad path is one error line and exit 1.
  std::string bad = std::string(NE_BIN_DIR) + "/neural_engine_inspect --model /nonexistent.onnx --output_dir " + out +
                    " > " + out + "/err.txt 2>&1";
  EXPECT_NE(std::system(bad.c_str()), 0);
  EXPECT_EQ(read_text(out + "/err.txt").rfind("error:", 0), 0u) << read_text(out + "/err.txt");
}

// --------------------------------------------------------------------------- Chromium
std::string find_chromium() {
  for (const char* c : {"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"}) {
    std::string cmd = std::string("command -v ") + c + " > /dev/null 2>&1";
    if (std::system(cmd.c_str()) == 0) return c;
  }
  return "";
}

TEST(Inspect, HtmlRendersInHeadlessChromium) {
  const std::string chromium = find_chromium();
  if (chromium.empty()) GTEST_SKIP() << "chromium is not installed (apt-get install -y chromium)";
  if (!ne::inspect::png_compression_available())
    GTEST_SKIP() << "built without zlib: Chromium's compressed screenshot cannot be decoded";
  const std::string out = tmp_dir("chromium");
  ne::Model m = ne::compile_onnx(model_dir("tiny_channel_50") + "/model.onnx");
  ne::inspect::write_report(ne::inspect::inspect_model(m, {}), out);
  const std::string shot = out + "/shot.png";
  // Own profile dir and no network: the page must render offline.
  std::string cmd = "cd '" + out + "' && timeout 90 " + chromium +
                    " --headless --disable-gpu --no-sandbox --no-first-run --disable-extensions"
                    " --user-data-dir='" + out + "/profile' --screenshot='" + shot +
                    "' --window-size=1200,2000 'file://" + out + "/report.html' > chromium.log 2>&1";
  int rc = std::system(cmd.c_str());
  ASSERT_EQ(rc, 0) << read_text(out + "/chromium.log");
  Image img;
  std::string err;
  ASSERT_TRUE(ne::inspect::decode_png(read_bytes(shot), &img, &err)) << err;
  EXPECT_EQ(img.width, 1200);
  EXPECT_EQ(img.height, 2000);
  // Not blank: many pixels are not white, and the heatmaps' dark blue is on screen.
  int64_t nonwhite = 0, blue = 0;
  uint8_t full[3];
  ne::inspect::density_colour(1, full);
  for (int i = 0; i < img.width * img.height; ++i) {
    const uint8_t* p = &img.rgb[size_t(i) * 3];
    nonwhite += p[0] < 240 || p[1] < 240 || p[2] < 240;
    blue += std::abs(p[0] - full[0]) < 12 && std::abs(p[1] - full[1]) < 12 && std::abs(p[2] - full[2]) < 12;
  }
  EXPECT_GT(nonwhite, int64_t(img.width) * img.height / 100) << "screenshot looks blank";
  EXPECT_GT(blue, 100) << "no heatmap colour in the screenshot";
}
#endif  // NE_HAVE_COMPILE

// ------------------------------------------------------------------------------ AMX z
// z = all-zero (16-output-channel group, k) rows / (ceil(N / 16) * K), checked on hand-built
// weights whose answer is known by construction, and against the K-gather packing's own count.
// Values are stored as `float` and written in the weight's dtype; zeros are exact, so every
// figure is a ratio of small integers and compared to 1e-12 (the division's rounding).
std::vector<uint8_t> weight_bytes(ne::DType dt, const std::vector<float>& v) {
  std::vector<uint8_t> b(v.size() * ne::dtype_size(dt));
  for (size_t i = 0; i < v.size(); ++i) {
    if (dt == ne::DType::fp32) std::memcpy(&b[i * 4], &v[i], 4);
    else if (dt == ne::DType::bf16) {
      const uint16_t h = ne::sparse::f32_to_bf16(v[i]);
      std::memcpy(&b[i * 2], &h, 2);
    } else {  // s8: a non-zero stays non-zero (|q| in 1..127); -0.0 becomes 0 (s8 has no signed zero)
      const long q = v[i] == 0.f ? 0 : std::max(1L, std::min(127L, std::lround(std::fabs(v[i]) * 64)));
      b[i] = uint8_t(int8_t(v[i] < 0 ? -q : q));
    }
  }
  return b;
}

// One InnerProduct reading weight "w" [K, N]; the report's entry for it.
ne::inspect::WeightEntry inspect_weight(ne::DType dt, int K, int N, const std::vector<float>& v) {
  ne::Model m;
  m.add_weight("w", dt, {K, N}, weight_bytes(dt, v));
  ne::OpInfo op;
  op.name = "ip";
  op.type = "InnerProduct";
  op.inputs = {"x", "w"};
  op.outputs = {"y"};
  m.ops.push_back(op);
  ne::inspect::Options o;
  o.images = false;
  ne::inspect::Report r = ne::inspect::inspect_model(m, o);
  for (const auto& e : r.weights)
    if (e.tensor == "w") return e;
  ADD_FAILURE() << "no report entry for w";
  return {};
}

struct ZCase {
  const char* name;
  int K, N;
  std::vector<float> w;
  double z, value_z;  // expected, by construction
};

std::vector<ZCase> z_cases() {
  std::vector<ZCase> cs;
  {  // all zero, N not a multiple of 16: every row of both groups is zero
    cs.push_back({"all_zero_5x40", 5, 40, std::vector<float>(200, 0.f), 1.0, 1.0});
  }
  {  // dense: no zero row
    cs.push_back({"dense_7x33", 7, 33, std::vector<float>(7 * 33, 1.f), 0.0, 0.0});
  }
  {  // known 1x16 mask: (g, k) row non-zero iff (k + g) % 3 == 0, through ONE element of the
     // group (channel 16g + 7k % 16): a row is non-zero when any of its 16 elements is.
    const int K = 10, N = 48;
    std::vector<float> w(size_t(K) * N, 0.f);
    int nz_rows = 0;
    for (int g = 0; g < 3; ++g)
      for (int k = 0; k < K; ++k)
        if ((k + g) % 3 == 0) w[size_t(k) * N + 16 * g + (7 * k) % 16] = 0.5f, ++nz_rows;
    const double z = double(3 * K - nz_rows) / (3 * K);
    cs.push_back({"mask_1x16_10x48", K, N, w, z, z});
  }
  {  // partial last group (N = 20: channels 16..19): group 0 non-zero in rows 0, 1; group 1 only
     // in row 2, at its last channel 19. Zero rows: group 0 {2, 3}, group 1 {0, 1, 3} = 5 of 8.
    const int K = 4, N = 20;
    std::vector<float> w(size_t(K) * N, 0.f);
    w[0 * N + 0] = 1.f, w[1 * N + 15] = -2.f, w[2 * N + 19] = 3.f;
    cs.push_back({"partial_group_4x20", K, N, w, 5.0 / 8, 5.0 / 8});
  }
  {  // a last group of one channel (N = 17): non-zero only at (1, 16); group 0 dense
    const int K = 3, N = 17;
    std::vector<float> w(size_t(K) * N, 0.f);
    for (int k = 0; k < K; ++k)
      for (int n = 0; n < 16; ++n) w[size_t(k) * N + n] = 1.f;
    w[1 * N + 16] = 1.f;
    cs.push_back({"one_channel_group_3x17", K, N, w, 2.0 / 6, 2.0 / 6});
  }
  {  // -0.0: row 0 all +0, row 1 holds one -0.0, row 2 a 1. Bitwise (the executor's rule)
     // only row 0 is zero; by value rows 0 and 1.
    const int K = 3, N = 16;
    std::vector<float> w(size_t(K) * N, 0.f);
    w[1 * N + 5] = -0.0f;
    w[2 * N + 9] = 1.f;
    cs.push_back({"negative_zero_3x16", K, N, w, 1.0 / 3, 2.0 / 3});
  }
  {  // K below a group's rows and a single element
    cs.push_back({"one_element_zero", 1, 1, {0.f}, 1.0, 1.0});
    cs.push_back({"one_element", 1, 1, {2.f}, 0.0, 0.0});
  }
  return cs;
}

TEST(InspectZ, HandBuiltWeights) {
  for (ne::DType dt : {ne::DType::fp32, ne::DType::bf16, ne::DType::s8})
    for (const ZCase& c : z_cases()) {
      SCOPED_TRACE(std::string(c.name) + " dtype " + ne::dtype_name(dt));
      const ne::inspect::WeightEntry e = inspect_weight(dt, c.K, c.N, c.w);
      ASSERT_EQ(e.K, c.K);
      ASSERT_EQ(e.N, c.N);
      // s8 has no -0.0: there the bitwise and the value figure are the same.
      const bool signed_zero = dt != ne::DType::s8;
      EXPECT_NEAR(e.z16, signed_zero ? c.z : c.value_z, 1e-12);
      EXPECT_NEAR(e.value_z16, c.value_z, 1e-12);
      // Element sparsity by value, each -0.0 counted once (it was counted twice: 135% and more).
      int64_t zeros = 0;
      for (float x : c.w) zeros += x == 0.f;
      EXPECT_NEAR(e.value_element_sparsity, double(zeros) / double(c.w.size()), 1e-12);
      // The JSON and the terminal carry them.
      ne::inspect::Report r;
      r.weights.push_back(e);
      mini_json::Value j = mini_json::parse(ne::inspect::json_report(r));
      EXPECT_NEAR(j["weights"][0]["z16"].num, e.z16, 1e-8);
      EXPECT_NEAR(j["weights"][0]["value_z16"].num, e.value_z16, 1e-8);
      char want[32];
      std::snprintf(want, sizeof want, "%5.1f%%", 100 * e.z16);
      EXPECT_NE(ne::inspect::summary_text(r).find(want), std::string::npos) << ne::inspect::summary_text(r);
    }
  // Empty weight: defined as 0 (no rows).
  ne::TensorInfo t;
  t.dtype = ne::DType::fp32;
  EXPECT_EQ(ne::inspect::group_zero_rows(t, 0, 16, false), 0.0);
}

// Seeded random block masks (1x4, 4x1, 1x16) of W[K, N] at sparsity s: values 0.05..1 with a
// random sign, a block zero with probability s. Blocks are clipped at the edges (tails).
std::vector<float> random_blocks(int K, int N, int bh, int bw, double s, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> u(0.0, 1.0), mag(0.05, 1.0);
  std::vector<float> w(size_t(K) * N);
  for (auto& v : w) v = float(u(rng) < 0.5 ? -mag(rng) : mag(rng));
  for (int k0 = 0; k0 < K; k0 += bh)
    for (int n0 = 0; n0 < N; n0 += bw)
      if (u(rng) < s)
        for (int k = k0; k < std::min(K, k0 + bh); ++k)
          for (int n = n0; n < std::min(N, n0 + bw); ++n) w[size_t(k) * N + n] = 0.f;
  return w;
}

uint64_t z_seed() {
  const char* e = std::getenv("NE_TEST_SEED");
  return e ? std::strtoull(e, nullptr, 10) : 20261202ull;
}

// The statistic's meaning (ARCHITECTURE.md): random 1x4 blocks give z ~ s^4, 4x1 ~ s^16,
// 1x16 = s. 256 x 256 at s = 0.9: 4096 (group, k) rows, so the binomial standard deviation of
// z is <= sqrt(0.25 / 4096) = 0.008 (4x1's rows within one quad are correlated: 0.016 bound);
// the tolerance 0.05 is > 3 of those.
TEST(InspectZ, RandomBlocksFollowTheRule) {
  std::mt19937_64 rng(z_seed());
  SCOPED_TRACE("seed=" + std::to_string(z_seed()) + " (NE_TEST_SEED)");
  const double s = 0.9;
  struct P { const char* name; int bh, bw; double z; };
  for (const P& p : {P{"1x4", 1, 4, std::pow(s, 4)}, P{"4x1", 4, 1, std::pow(s, 16)}, P{"1x16", 1, 16, s}}) {
    SCOPED_TRACE(p.name);
    const ne::inspect::WeightEntry e = inspect_weight(ne::DType::fp32, 256, 256, random_blocks(256, 256, p.bh, p.bw, s, rng));
    EXPECT_NEAR(e.z16, p.z, 0.05);
    // 1x16 blocks: z is exactly the 1x16 block sparsity; a 1x16 block holds four 1x4 blocks.
    if (p.bw == 16) {
      EXPECT_NEAR(e.z16, e.decision.sparsity[int(ne::sparse::Pattern::p1x4)], 1e-12);
    }
  }
}

// Inspect's z equals PackedWeight::kgather_z() of a Blocking::amx_kgather packing of the same
// bytes (bf16 and s8: the dtypes that blocking takes; an fp32 weight against its bf16 copy, whose
// zeros are the same bits for these values), so the report and the kernels cannot drift apart.
// Packing is plain C++: it runs on any CPU (only the *_kgather_*__amx kernels need AMX).
TEST(InspectZ, EqualsPackedKgatherZ) {
  std::mt19937_64 rng(z_seed() + 1);
  SCOPED_TRACE("seed=" + std::to_string(z_seed() + 1) + " (NE_TEST_SEED)");
  const int shapes[][2] = {{1, 1}, {3, 5}, {7, 13}, {64, 48}, {97, 100}, {130, 33}, {200, 16}};
  const int blocks[][2] = {{1, 4}, {4, 1}, {1, 16}};
  int checked = 0;
  for (auto& sh : shapes)
    for (auto& bl : blocks)
      for (double s : {0.0, 0.5, 0.9, 0.99, 1.0}) {
        const int K = sh[0], N = sh[1];
        std::vector<float> w = random_blocks(K, N, bl[0], bl[1], s, rng);
        // A few -0.0 in place of +0: bitwise non-zero for the executor and the packing alike.
        for (size_t i = 0; i < w.size(); i += 37)
          if (w[i] == 0.f) w[i] = -0.0f;
        SCOPED_TRACE("K=" + std::to_string(K) + " N=" + std::to_string(N) + " block " + std::to_string(bl[0]) + "x" +
                     std::to_string(bl[1]) + " s=" + std::to_string(s));
        for (ne::DType dt : {ne::DType::bf16, ne::DType::s8, ne::DType::fp32}) {
          SCOPED_TRACE(ne::dtype_name(dt));
          const ne::inspect::WeightEntry e = inspect_weight(dt, K, N, w);
          const ne::sparse::DType pdt = dt == ne::DType::s8 ? ne::sparse::DType::s8 : ne::sparse::DType::bf16;
          const std::vector<uint8_t> bytes = weight_bytes(dt == ne::DType::s8 ? ne::DType::s8 : ne::DType::bf16, w);
          const ne::sparse::PackedWeight pw = ne::sparse::PackedWeight::pack(
              bytes.data(), pdt, K, N, ne::sparse::Pattern::p1x4, 0, ne::sparse::Blocking::amx_kgather);
          ASSERT_EQ(pw.blocking(), ne::sparse::Blocking::amx_kgather);
          EXPECT_NEAR(e.z16, pw.kgather_z(), 1e-12);
          EXPECT_GE(e.value_z16, e.z16);
          ++checked;
        }
      }
  EXPECT_EQ(checked, 7 * 3 * 5 * 3);
}

// IR path (conf.yaml + model.bin), no compiler needed.
TEST(Inspect, IrFixture) {
  const std::string d = std::string(NE_TEST_DATA) + "/hand_ir";
  ne::Model m = ne::load_ir(d + "/conf.yaml", d + "/model.bin");
  ne::inspect::Report r = ne::inspect::inspect_model(m, {});
  int ip = 0;
  for (const auto& e : r.weights) {
    ip += e.inner_product;
    EXPECT_FALSE(e.heatmap_png.empty());
  }
  EXPECT_GT(ip, 0);
  EXPECT_NE(ne::inspect::summary_text(r).find("InnerProduct weights:"), std::string::npos);
}

}  // namespace
