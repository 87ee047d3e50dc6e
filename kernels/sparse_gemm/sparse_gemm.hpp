// ne::sparse — block-sparse GEMM for structured-sparse weights (public API).
//
// Weight naming (ARCHITECTURE.md): W[K, N] row-major, K = input channels (rows),
// N = output channels (columns).
//
// Patterns and how their sparsity is measured (block_sparsity, sparsity.hpp):
//   "1x4"     block = 1 input channel x 4 consecutive output channels (W[k, 4j..4j+3]).
//   "4x1"     block = 4 consecutive input channels x 1 output channel (W[4i..4i+3, n]).
//   "2:4"     NOT a block ratio: fraction of the 4-groups along K (per output column,
//             W[4i..4i+3, n]) that have <= 2 non-zeros. 1.0 = the weight is 2:4-pruned.
//             There is no dedicated 2:4 kernel: such a weight is packed and run as 1x4.
//   "channel" fraction of input channels (rows of W) that are entirely zero. Packed and
//             run as 1x4 (zero rows are skipped outright).
//   Tails: a partial block (K or N not a multiple of 4) counts as one block, padded
//   with zeros. "Zero" is bitwise zero (so -0.0 counts as a non-zero value; this makes
//   pack -> unpack exact to the bit).
//
// Orientations:
//   token_major:   Y[M, N]  = X[M, K] . W[K, N]    X row-major, ld_src >= K; Y ld_dst >= N
//   feature_major: Yt[N, M] = Wt[N, K] . Xt[K, M]  Xt row-major [K, M], ld_src >= M;
//                                                   Yt row-major [N, M], ld_dst >= M
//   Activations are always in plain layout, also int8 feature-major (the kernels do the
//   VNNI interleave in registers / per-thread panels). reorder_to_vnni4()/from_vnni4()
//   convert [K, M] u8 <-> VNNI order [ceil(K/4), M, 4] for code that keeps VNNI order.
//
// Data types (weight -> activation -> accumulate):
//   f32 : X f32  x W f32 -> f32 (FMA)
//   bf16: X bf16 (uint16_t storage) x W bf16 -> f32 accumulate (vdpbf16ps)
//   s8  : X u8 (or s8, via +128 shift and a column-sum compensation) x W s8 -> s32 (vpdpbusd)
//
// Epilogue, fused, in this order:  acc * scale[n] (only if scale != nullptr; int8:
//   scale[n] = x_scale * w_scale[n])  + bias[n]  -> activation  + residual (fp32, same
//   layout as Y, own ld)  -> store as f32 / bf16 / u8 / s8. For u8/s8 output:
//   q = saturate(nearbyint(y / dst_scale) + dst_zero_point).
//
// Packed format (PackedWeight): one flat, position-independent byte buffer (offsets,
// never pointers) starting with a 128-byte header (magic "NESP", version, pattern,
// dtype, K, N, blocking, counts, section offsets); sections are 64-byte aligned, so the
// buffer can be written to a file or shared memory and used in place by many processes
// via PackedWeight::from_bytes() (no copy, no per-process state).
//   Layout: output channels are split into groups of `nb` columns; group g has a list
//   of "steps" (group_ptr[g]..group_ptr[g+1]); a step = `kq` input-channel indices
//   (kidx) and nb x kq weights stored [nb][kq] (so one output channel's kq weights are
//   one dword for int8 / bf16 = one VNNI quad / pair).
//   - 1x4 (and 2:4, channel): nb = 4 (one 1x4 column group), kq = 1 (f32), 2 (bf16),
//     4 (s8). The group's non-zero rows k are listed in order and grouped kq at a time
//     (last step padded with a repeated k and zero weights): the kernel gathers kq
//     activation rows and interleaves them in registers into VNNI pairs/quads, then one
//     activation vector feeds nb = 4 dot products (4 output channels share each k).
//   - 4x1: nb = 1, kq = 4, the k's are the aligned quad 4i..4i+3: for int8 that is
//     exactly one vpdpbusd quad against an activation panel in VNNI order.
//   - s8 adds colsum[n] (int32) for the s8-activation compensation.
//   - AMX K-gather (Blocking::amx_kgather, s8 and bf16 only; any pattern, the header keeps
//     the pattern the sparsity is reported in): nb = 16, kq = 4 (s8) / 2 (bf16). Group g =
//     16 output channels; its steps list, in increasing k, the union of the k rows that are
//     non-zero in any of the 16 channels ("z" = the fraction of (group, k) rows left out),
//     padded to a multiple of 16 steps (64 gathered k for s8, 32 for bf16: one AMX tile)
//     with the group's last row repeated and zero weights. Values are tile-major: per 16
//     steps, [16 channels][16 steps][kq] = 1024 bytes = one AMX A tile (row = channel, 64
//     bytes = the tile's gathered k in order), read with tileloadd, stride 64, straight
//     from the buffer (never rebuilt per call). Header version 2 (version 1 = nb 1 / 4 only,
//     still accepted).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kernels/cpu_features.hpp"
#include "kernels/sparse_gemm/sparsity.hpp"

namespace ne::sparse {

// Pattern, kNumPatterns, DType and the sparsity measures (block_sparsity, z16, negative zeros):
// kernels/sparse_gemm/sparsity.hpp.
const char* pattern_name(Pattern p);             // "1x4", "4x1", "2:4", "channel"
bool parse_pattern(const char* s, Pattern* out);

const char* dtype_name(DType d);
size_t dtype_size(DType d);

// bf16 helpers (round to nearest even; NaN kept quiet).
uint16_t f32_to_bf16(float f);
float bf16_to_f32(uint16_t h);

// How a weight's non-zeros are blocked in the packed buffer (see the format note above).
//   standard:   the pattern's own blocking (1x4 family: nb 4; 4x1: nb 1).
//   amx_kgather: 16-channel groups, the union of their non-zero k rows, AMX A-tile values
//                (s8 and bf16 only): consumed by the *_kgather_16x64__amx kernels.
enum class Blocking : uint8_t { standard = 0, amx_kgather = 1 };

class PackedWeight {
 public:
  PackedWeight() = default;
  // Pack once at load. W row-major [K, N], row stride ldw (0 = N). dt in {f32, bf16, s8}
  // (amx_kgather: bf16, s8).
  static PackedWeight pack(const void* W, DType dt, int K, int N, Pattern p, int64_t ldw = 0,
                           Blocking b = Blocking::standard);
  static PackedWeight pack(const float* W, int K, int N, Pattern p, int64_t ldw = 0) {
    return pack(W, DType::f32, K, N, p, ldw);
  }
  // View over bytes produced by pack_bytes() (e.g. in an mmap'd file); no copy. The
  // bytes must outlive the view and be 64-byte aligned for best speed (any alignment
  // works). Throws std::runtime_error on a bad header / size.
  static PackedWeight from_bytes(const void* data, size_t size);

  const uint8_t* pack_bytes() const { return data_; }
  size_t pack_size() const { return size_; }
  bool empty() const { return data_ == nullptr; }

  // Rebuild W[K, N] (row stride ldw, 0 = N) exactly (bitwise).
  void unpack(void* W, int64_t ldw = 0) const;

  int K() const;
  int N() const;
  DType dtype() const;
  Pattern pattern() const;
  int64_t nonzero_blocks() const;   // blocks of the pattern that are non-zero
  int64_t total_blocks() const;
  double sparsity() const;          // 1 - nonzero_blocks / total_blocks
  int64_t steps() const;            // kernel steps (see the format note above)
  Blocking blocking() const;
  // K-gather blocking: the fraction of (16-channel group, k) rows that are all zero (the
  // "z" of ARCHITECTURE.md; what an AMX K-gather kernel skips). Other blockings: 0.
  double kgather_z() const;

 private:
  std::shared_ptr<const void> owner_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

enum class Layout : uint8_t { token_major = 0, feature_major = 1 };
enum class Act : uint8_t { none = 0, relu, gelu_erf, gelu_tanh, tanh };
const char* act_name(Act a);

struct PostOps {
  const float* scale = nullptr;     // [N] or nullptr (= 1)
  const float* bias = nullptr;      // [N] or nullptr
  Act act = Act::none;
  const float* residual = nullptr;  // fp32, same layout as dst, or nullptr
  int64_t ld_residual = 0;          // 0 = same as ld_dst
  DType dst_dtype = DType::f32;     // f32, bf16, u8, s8
  float dst_scale = 1.f;            // u8/s8 output: q = sat(nearbyint(y / dst_scale) + zp)
  int32_t dst_zero_point = 0;
};

struct GemmArgs {
  Layout layout = Layout::token_major;
  int M = 0;                        // tokens (batch x seq)
  const void* src = nullptr;        // X[M, K] (token-major) or Xt[K, M] (feature-major)
  int64_t ld_src = 0;               // 0 = dense (K or M)
  DType src_dtype = DType::f32;     // f32 | bf16 | u8 | s8 (must match the weight's family)
  void* dst = nullptr;              // Y[M, N] or Yt[N, M]
  int64_t ld_dst = 0;               // 0 = dense (N or M)
  PostOps post;
  int num_threads = 0;              // 0 = omp_get_max_threads()
};

// One entry of the kernel list (kernels/sparse_gemm/bsgemm_kernels.inc).
struct KernelInfo {
  const char* name;                 // e.g. "bsgemm_u8s8s32_1x4_4x64__avx512vnni"
  DType wdtype;                     // weight dtype family: f32, bf16, s8
  int nb, kq;                       // packed blocking it consumes (see format note)
  ne::cpu::Isa isa;                 // lowest ISA level it needs
  bool amx;                         // needs AMX tiles
  void (*fn)(const GemmArgs&, const void* packed_header, int nthreads);
  int max_m;                        // chosen by gemm() only for M <= max_m (0 = any M)
};

const std::vector<KernelInfo>& kernel_list();   // best first, generic last

struct KernelChoice {
  const KernelInfo* kernel = nullptr;          // nullptr: nothing can run (bad args)
  std::vector<std::string> declined;           // "<name>: <reason>" for each declined entry
  std::string summary() const;                 // one line: chosen + reasons
};
// Which kernel gemm() would run for these args on this CPU (respecting NE_MAX_ISA).
KernelChoice choose_kernel(const GemmArgs& a, const PackedWeight& w);
// The same before packing: for a weight of dtype `wdt` that pack() would pack under pattern `p`.
KernelChoice choose_kernel(const GemmArgs& a, DType wdt, Pattern p);
// The blocking (nb x kq steps, see the format note) pack() uses for a pattern and weight dtype.
void pattern_blocking(Pattern p, DType wdt, int* nb, int* kq);
// Why this kernel cannot run these args here ("" = it can).
std::string why_not(const KernelInfo& k, const GemmArgs& a, const PackedWeight& w);

// Run. Returns the kernel that ran. Throws std::invalid_argument on bad arguments.
// NE_SPARSE_VERBOSE=1 prints the choice and the reasons to stderr (once per kernel).
const KernelInfo& gemm(const GemmArgs& a, const PackedWeight& w);
// Run one particular kernel (tests, benchmark); throws if it cannot run here.
void gemm_with(const KernelInfo& k, const GemmArgs& a, const PackedWeight& w);

// Reorder helpers for int8 feature-major activations:
//   plain [K, M] (ld >= M)  <->  VNNI order [ceil(K/4)][M][4] (dense, tail k zero-padded).
void reorder_to_vnni4(const uint8_t* src, int K, int M, int64_t ld, uint8_t* dst);
void reorder_from_vnni4(const uint8_t* src, int K, int M, uint8_t* dst, int64_t ld);

}  // namespace ne::sparse
