// ne::sparse — the sparsity measures of a weight, defined once: the compiler (canonicalize_zeros,
// channel grouping), the executor (sparse/dense decision, AMX K-gather rule) and
// neural_engine_inspect all call these, so their figures cannot drift apart.
//
// W[K, N] row-major (ARCHITECTURE.md "Sparse patterns": K input channels = rows, N output
// channels = columns), row stride ldw elements (0 = N), dtype f32, bf16 (uint16 storage) or s8.
// "Zero" is bitwise zero, the packing's rule (pack -> unpack is exact to the bit): -0.0 is a
// non-zero. Pruning by mask multiplication (torch.nn.utils.prune, gen_bert.py) leaves -0.0 where
// negative weights were zeroed; canonical_zeros makes them +0.0 (the products are the same), and
// the measures then count them as zeros.
//
// No ISA flags; depends on nothing of the engine.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace ne::sparse {

// The sparse patterns (sparse_gemm.hpp: pattern_name, and how each is packed and run).
enum class Pattern : uint8_t { p1x4 = 0, p4x1 = 1, p2of4 = 2, channel = 3 };
constexpr int kNumPatterns = 4;
// Element types of the family (weights: f32, bf16, s8; sparse_gemm.hpp: dtype_name, dtype_size).
enum class DType : uint8_t { f32 = 0, bf16 = 1, s8 = 2, u8 = 3, s32 = 4 };

// ---- Negative zero (f32 0x80000000, bf16 0x8000; other dtypes have none).
// Returns W itself when its n elements hold no -0.0, else a copy in *storage with every -0.0
// made +0.0. *replaced (when given): how many -0.0 were made +0.0 (0 when W is returned).
const void* canonical_zeros(const void* W, DType dt, size_t n, std::vector<uint8_t>* storage,
                            int64_t* replaced = nullptr);

// ---- Element and block sparsity.
// All-zero elements / n (0 for n == 0).
double element_sparsity(const void* W, DType dt, size_t n);
// All-zero blocks of W under p and all blocks (sparsity = zero / total; see sparse_gemm.hpp for
// the patterns: 1x4, 4x1, 2:4 = 4-groups along K with <= 2 non-zeros, channel = all-zero rows).
// A partial block at a K or N tail counts as one block.
void count_zero_blocks(const void* W, DType dt, int K, int N, Pattern p, int64_t ldw, int64_t* zero,
                       int64_t* total);
// zero / total of count_zero_blocks (0 for an empty weight). Throws std::invalid_argument for a
// dtype other than f32, bf16, s8.
double block_sparsity(const void* W, DType dt, int K, int N, Pattern p, int64_t ldw = 0);
double block_sparsity(const float* W, int K, int N, Pattern p, int64_t ldw = 0);
double block_sparsity(const uint16_t* W_bf16, int K, int N, Pattern p, int64_t ldw = 0);
double block_sparsity(const int8_t* W, int K, int N, Pattern p, int64_t ldw = 0);

// ---- z16 (ARCHITECTURE.md): the share of (16-output-channel group, k) rows that are all zero,
// group g = output channels 16g..16g+15, the last one partial when N % 16 != 0. These are the k
// rows an AMX K-gather kernel skips (PackedWeight::kgather_z of the amx_kgather packing).
// Random 1x4 blocks at sparsity s: z16 ~ s^4; 4x1: s^16; 1x16: s.
constexpr int kZGroup = 16;
// All-zero (group, k) rows of W, groups of `group` consecutive output channels (the last one
// partial); 0 for an empty weight.
int64_t zero_group_rows(const void* W, DType dt, int K, int N, int group = kZGroup, int64_t ldw = 0);
// zero_group_rows / (ceil(N / 16) * K); 0 for an empty weight.
double z16(const void* W, DType dt, int K, int N, int64_t ldw = 0);

}  // namespace ne::sparse
