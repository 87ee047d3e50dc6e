// Weight inspection: per-weight sparsity under every pattern and the executor's sparse/dense
// decision (ne::decide_sparse), block-resolution heatmaps, per-output-channel weight ranges,
// and a self-contained HTML + JSON report (tools/inspect/README.md).
#pragma once
#include <string>
#include <vector>

#include "common/ir.hpp"
#include "executor/operator.hpp"
#include "executor/sparse_dispatch.hpp"
#include "tools/inspect/png.hpp"

namespace ne::inspect {

struct Options {
  OpConfig op;                    // the executor's settings (threshold, allow_sparse)
  double spread_threshold = 10;   // flag a layer risky for per-tensor int8 above this spread
  int max_image = 512;            // heatmap / range plot: at most this many pixels per axis
  int min_image = 128;            // small weights are scaled up (integer factors) to this
  bool images = true;             // build the PNGs (false: numbers only)
};

// Per output channel (column n of W[K, N]) min and max over the input channels.
struct ChannelRanges {
  std::vector<float> min, max;
  int zero_channels = 0;     // all-zero output channels (left out of the spread)
  double widest = 0, narrowest = 0;  // largest / smallest (max - min) over non-zero channels
  int widest_channel = -1, narrowest_channel = -1;
  double spread = 0;         // widest / narrowest (0 when fewer than 1 non-zero channel)
  bool risky = false;        // spread > Options::spread_threshold
};

struct WeightEntry {
  std::string tensor;        // IR tensor name
  std::string op, op_type;   // the consuming operator (InnerProduct: input 1)
  bool inner_product = false;
  std::string append_op;     // InnerProduct post-ops
  DType dtype = DType::fp32;
  int K = 0, N = 0;
  SparseDecision decision;   // sparsity figures always; sparse/kernel only for InnerProduct
  // Pruning by multiplying with a 0/1 mask (gen_bert.py 1x4/4x1, torch.nn.utils.prune) leaves
  // -0.0 where weights were negative; the executor's decision counts them as zero
  // (sparse::canonical_zeros), so these figures, with -0.0 counted as zero, are the decision's.
  int64_t negative_zeros = 0;
  double value_sparsity[sparse::kNumPatterns] = {0, 0, 0, 0};
  double value_element_sparsity = 0;
  // AMX z (ARCHITECTURE.md "Sparse patterns"): the fraction of (16-output-channel group, k) rows
  // of W that are all zero; group g = output channels 16g..16g+15, the last one partial when
  // N % 16 != 0. These are the k rows an AMX K-gather kernel skips (PackedWeight::kgather_z of
  // the Blocking::amx_kgather packing). z16 counts bitwise zeros, as the executor and the packing
  // do; value_z16 counts -0.0 as zero too. Random 1x4 blocks at sparsity s: z ~ s^4; 4x1:
  // z ~ s^16; 1x16: z = s.
  double z16 = 0, value_z16 = 0;
  ChannelRanges ranges;      // InnerProduct only
  sparse::Pattern heatmap_pattern = sparse::Pattern::p1x4;  // block resolution of the heatmap
  int grid_rows = 0, grid_cols = 0;   // blocks along K and N at that resolution
  int cell_rows = 1, cell_cols = 1;   // blocks averaged per pixel (downscaled), or
  int px_rows = 1, px_cols = 1;       // pixels per block (scaled up)
  std::string heatmap_file, ranges_file;   // relative to the output dir
  std::vector<uint8_t> heatmap_png, ranges_png;
};

struct Report {
  std::string source;
  float threshold = 0.7f;
  double spread_threshold = 10;
  std::vector<WeightEntry> weights;
  std::string isa;  // CPU the kernel choice was made for
};

// z16 of W[K, N] (row-major, dtype fp32 / bf16 / s8 as in TensorInfo; sparse::z16): all-zero
// (16-channel group, k) rows / (ceil(N / 16) * K); 0 for an empty weight. by_value: -0.0 counts
// as zero.
double group_zero_rows(const TensorInfo& t, int K, int N, bool by_value);

// The heatmap's layout, shared with the tests: the map starts at (kMapX, kMapY); colour of a
// pixel whose blocks are `density` (0..1) non-zero.
constexpr int kMapX = 6, kMapY = 6;
void density_colour(double density, uint8_t rgb[3]);

Report inspect_model(const Model& m, const Options& opt);
// Writes DIR/report.html, DIR/report.json, DIR/heatmaps/<tensor>.png, DIR/ranges/<tensor>.png.
void write_report(const Report& r, const std::string& dir);
std::string summary_text(const Report& r, const std::string& dir = "");
std::string html_report(const Report& r);
std::string json_report(const Report& r);
// File-name-safe version of a tensor name ("onnx::MatMul_328" -> "onnx__MatMul_328").
std::string safe_name(const std::string& tensor);

}  // namespace ne::inspect
