// Precision passes on the fused IR (docs/OPS.md "Precision: int8 and bf16 InnerProduct, Quantize"):
//  - int8: every InnerProduct with a constant fp32 2-D weight becomes the s8 variant: weight s8
//    per output channel, symmetric (w_scale[n] = max|W[:,n]| / 127, so zeros stay zeros and the
//    sparsity survives), `weight_scale` fp32 [N] right after the weight; src quantized with a
//    static scale / zero point from calibration (u8 asymmetric by default, or s8 symmetric), or
//    `src_scale: dynamic`. Every other op (attention Matmul, Softmax, LayerNorm, Gelu outside an
//    InnerProduct, ...) stays fp32.
//  - bf16: InnerProduct weights rounded to bf16 (RNE); src is rounded by the op; the rest fp32.
//  - calibration: the fp32 model run by ne::Executor with every InnerProduct src added as an
//    extra model output; per tensor min/max (or percentile) over all calibration sets.
//  - emulation: an fp32 model with the same numerics (fake-quant chains of generic ops), used by
//    the tests and by the accuracy study while (or besides) the executor runs the real thing.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "common/ir.hpp"
#include "executor/executor.hpp"

namespace ne {

using InputSet = std::map<std::string, HostTensor>;

struct QuantOptions {
  bool dynamic = false;           // src_scale: dynamic (no calibration)
  DType src_dtype = DType::u8;    // u8 asymmetric, or s8 symmetric
  std::string calib_method = "minmax";  // minmax | percentile
  double percentile = 99.99;      // percentile method: [100 - p, p] of the values seen
};

struct ActRange {
  float min = 0, max = 0;
};

// Per-output-channel symmetric s8 quantization of W[K, N] (row-major): scale[n] = max|W[:,n]|/127
// (1 for an all-zero column), q = saturate(round_half_even(W / scale)) in [-127, 127].
void quantize_weight_s8(const float* w, int64_t K, int64_t N, std::vector<int8_t>* q,
                        std::vector<float>* scale);
// Scale and zero point of an activation range, as ONNX Runtime computes them (range widened
// to include 0; u8: scale = (max - min) / 255, zp = round(-min / scale); s8 symmetric:
// scale = max(|min|, |max|) / 127, zp = 0; scale 1, zp 0 for an empty range).
void act_qparams(ActRange r, DType dt, float* scale, int* zero_point);

// The src tensors of the InnerProducts `quantize_int8` would rewrite (unique, model order).
std::vector<std::string> quantizable_srcs(const Model& m);

// Calibration inputs: DIR/*.npy is one set; else each subdirectory of DIR holding .npy files
// is one set (sorted by name). Files are named by the model's input names; every model input
// must be present (ints are converted to the declared integer dtype).
std::vector<InputSet> load_calib_sets(const std::string& dir, const Model& m);
// Generated inputs as bin/neural_engine makes them: ids uniform in the vocabulary (the rows of
// the embedding table they index), masks ones, token types zero; `count` sets of [batch, seq].
std::vector<InputSet> generated_calib_sets(const Model& m, int count = 4, int batch = 2,
                                           int seq = 128, int seed = 1);
// Runs the fp32 model over the sets and returns the range of each tensor in `tensors`.
std::map<std::string, ActRange> calibrate(const Model& m, const std::vector<InputSet>& sets,
                                          const std::vector<std::string>& tensors,
                                          const QuantOptions& q = {});

// Rewrites the fp32 InnerProducts with constant weights to s8 (ranges: required unless
// q.dynamic; a src without a range is left fp32 with a warning). Returns the count.
int quantize_int8(Model& m, const std::map<std::string, ActRange>& ranges, const QuantOptions& q);
// InnerProduct weights fp32 -> bf16 (RNE). Returns the count.
int convert_bf16(Model& m);
// int8 static: an s8 InnerProduct whose output only feeds another static s8 InnerProduct's src
// (BERT's FFN1 -> FFN2) writes that src already quantized: output_dtype u8/s8 with the
// consumer's src_scale / src_zero_point as dst_scale / dst_zero_point (no fp32 round trip).
// Returns the count.
int chain_int8(Model& m);
// int8 static: an fp32 tensor read as src by several static s8 InnerProducts with the same
// src dtype / scale / zero point (BERT's Q, K, V) is quantized once by a Quantize op they all
// read (was: each quantized it itself). Returns the count.
int share_src_quantization(Model& m);
// The inverse (for passes that match InnerProducts reading their fp32 src directly).
int unshare_src_quantization(Model& m);
// Matmuls of two activations (attention's Q·Kᵀ and P·V) get `compute_dtype: bf16`: bf16
// products, fp32 accumulation, fp32 in and out (int8 and bf16 precisions; see docs/OPS.md).
// Returns the count.
int mark_matmuls_bf16(Model& m);

// An fp32 model with the numerics of `m`: s8 InnerProducts become fake-quantized src (static:
// round/clip with the op's scale and zero point; dynamic: the same with scale and zero point
// computed from the tensor's min/max like ONNX DynamicQuantizeLinear) times the dequantized
// weight; bf16 InnerProducts round src through a bf16 Cast and use the widened weight;
// Quantize / Dequantize become round / clip / shift / scale. Everything else is copied.
Model emulate_fp32(const Model& m);

}  // namespace ne
