// Packing / unpacking of block-sparse weights, names of patterns and dtypes. No ISA flags.
// (The sparsity measures are in sparsity.cpp.)
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

#include "kernels/sparse_gemm/bsgemm_internal.hpp"
#include "kernels/sparse_gemm/weight_view.hpp"

namespace ne::sparse {

const char* pattern_name(Pattern p) {
  switch (p) {
    case Pattern::p1x4: return "1x4";
    case Pattern::p4x1: return "4x1";
    case Pattern::p2of4: return "2:4";
    case Pattern::channel: return "channel";
  }
  return "?";
}

bool parse_pattern(const char* s, Pattern* out) {
  for (int i = 0; i < kNumPatterns; ++i)
    if (!std::strcmp(s, pattern_name(Pattern(i)))) { *out = Pattern(i); return true; }
  return false;
}

const char* dtype_name(DType d) {
  switch (d) {
    case DType::f32: return "f32";
    case DType::bf16: return "bf16";
    case DType::s8: return "s8";
    case DType::u8: return "u8";
    case DType::s32: return "s32";
  }
  return "?";
}

size_t dtype_size(DType d) {
  switch (d) {
    case DType::f32: case DType::s32: return 4;
    case DType::bf16: return 2;
    default: return 1;
  }
}

const char* act_name(Act a) {
  switch (a) {
    case Act::none: return "none";
    case Act::relu: return "relu";
    case Act::gelu_erf: return "gelu_erf";
    case Act::gelu_tanh: return "gelu_tanh";
    case Act::tanh: return "tanh";
  }
  return "?";
}

uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

float bf16_to_f32(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

namespace {

constexpr int64_t align64(int64_t x) { return (x + 63) & ~int64_t(63); }

}  // namespace

void pattern_blocking(Pattern p, DType dt, int* nb, int* kq) {
  const int kq_by_dt = dt == DType::f32 ? 1 : dt == DType::bf16 ? 2 : 4;
  const bool quad = p == Pattern::p4x1;
  *nb = quad ? 1 : 4;
  *kq = quad ? 4 : kq_by_dt;
}

PackedWeight PackedWeight::pack(const void* Wv, DType dt, int K, int N, Pattern p, int64_t ldw, Blocking blk) {
  check_dtype(dt);
  if (K <= 0 || N <= 0) throw std::invalid_argument("pack: K and N must be > 0");
  if (!Wv) throw std::invalid_argument("pack: null weight");
  const bool kg = blk == Blocking::amx_kgather;
  if (kg && dt == DType::f32) throw std::invalid_argument("pack: the AMX K-gather blocking takes bf16 or s8 weights");
  const size_t es = dtype_size(dt);
  WView w{static_cast<const uint8_t*>(Wv), dt, ldw ? ldw : N, es};
  const int kq_by_dt = dt == DType::f32 ? 1 : dt == DType::bf16 ? 2 : 4;
  const bool quad = !kg && p == Pattern::p4x1;
  const int nb = kg ? kKgNb : quad ? 1 : 4;
  const int kq = quad ? 4 : kq_by_dt;
  const int G = (N + nb - 1) / nb;

  // Pass 1: list the steps (k indices) per group.
  std::vector<int64_t> gptr(G + 1, 0);
  std::vector<int32_t> kidx;
  std::vector<int32_t> rows;
  std::vector<int64_t> real_end(G, 0);  // K-gather: end of the group's real entries in kidx
  int64_t kg_rows = 0;
  for (int g = 0; g < G; ++g) {
    if (kg) {
      const size_t start = kidx.size();
      for (int k = 0; k < K; ++k) {
        bool any = false;
        for (int n = g * nb; n < g * nb + nb && n < N && !any; ++n) any = w.nz(k, n);
        if (any) kidx.push_back(k);
      }
      real_end[g] = int64_t(kidx.size());
      kg_rows += int64_t(kidx.size() - start);
      const size_t tile_k = size_t(kKgTile) * kq;
      while (kidx.size() > start && (kidx.size() - start) % tile_k) kidx.push_back(kidx.back());  // padding
    } else if (quad) {
      const int n = g;
      for (int k0 = 0; k0 < K; k0 += 4) {
        bool any = false;
        for (int k = k0; k < k0 + 4 && k < K && !any; ++k) any = w.nz(k, n);
        if (any)
          for (int j = 0; j < 4; ++j) kidx.push_back(k0 + j);
      }
    } else {
      rows.clear();
      for (int k = 0; k < K; ++k) {
        bool any = false;
        for (int n = g * 4; n < g * 4 + 4 && n < N && !any; ++n) any = w.nz(k, n);
        if (any) rows.push_back(k);
      }
      for (size_t i = 0; i < rows.size(); ++i) kidx.push_back(rows[i]);
      while (!rows.empty() && kidx.size() % kq) kidx.push_back(rows.back());  // padding
    }
    gptr[g + 1] = int64_t(kidx.size() / kq);
  }
  const int64_t steps = gptr[G];

  PackedHeader h{};
  h.magic = kPackMagic;
  h.version = kPackVersion;
  h.pattern = uint8_t(p);
  h.dtype = uint8_t(dt);
  h.K = K;
  h.N = N;
  h.nb = nb;
  h.kq = kq;
  h.groups = G;
  h.steps = steps;
  h.kg_rows = kg_rows;
  {
    int64_t z, t;
    count_zero_blocks(Wv, dt, K, N, p, ldw, &z, &t);
    h.total_blocks = t;
    h.nonzero_blocks = t - z;
  }
  int64_t off = sizeof(PackedHeader);
  h.off_group_ptr = off;
  off = align64(off + int64_t(sizeof(int64_t)) * (G + 1));
  h.off_kidx = off;
  off = align64(off + int64_t(sizeof(int32_t)) * steps * kq);
  h.off_values = off;
  off = align64(off + int64_t(es) * steps * nb * kq);
  h.off_colsum = 0;
  if (dt == DType::s8) {
    h.off_colsum = off;
    off = align64(off + int64_t(sizeof(int32_t)) * G * nb);
  }
  // 64 spare bytes at the end so vector loads of the last values never leave the buffer.
  h.total_size = off + 64;

  void* mem = std::aligned_alloc(64, size_t(h.total_size));
  if (!mem) throw std::bad_alloc();
  std::shared_ptr<void> owner(mem, std::free);
  uint8_t* b = static_cast<uint8_t*>(mem);
  std::memset(b, 0, size_t(h.total_size));
  std::memcpy(b, &h, sizeof(h));
  std::memcpy(b + h.off_group_ptr, gptr.data(), sizeof(int64_t) * (G + 1));
  if (!kidx.empty()) std::memcpy(b + h.off_kidx, kidx.data(), sizeof(int32_t) * kidx.size());
  uint8_t* vals = b + h.off_values;
  int32_t* colsum = dt == DType::s8 ? reinterpret_cast<int32_t*>(b + h.off_colsum) : nullptr;
  for (int g = 0; g < G && kg; ++g)
    for (int64_t e = gptr[g] * kq; e < real_end[g]; ++e) {  // padding entries stay zero
      const int64_t s = e / kq;
      const int j = int(e % kq), k = kidx[e];
      for (int i = 0; i < nb && g * nb + i < N; ++i)
        std::memcpy(vals + h.value_index(s, i, j) * es, w.p + (size_t(k) * w.ld + g * nb + i) * es, es);
    }
  for (int g = 0; g < G && !kg; ++g) {
    for (int64_t s = gptr[g]; s < gptr[g + 1]; ++s) {
      for (int i = 0; i < nb; ++i) {
        const int n = g * nb + i;
        for (int j = 0; j < kq; ++j) {
          const int k = kidx[s * kq + j];
          // padding entries (repeated k) and out-of-range k/n stay zero
          bool pad = !quad && j > 0 && k == kidx[s * kq + j - 1];
          if (n >= N || k >= K || pad) continue;
          std::memcpy(vals + ((s * nb + i) * kq + j) * es, w.p + (size_t(k) * w.ld + n) * es, es);
        }
      }
    }
  }
  if (colsum)
    for (int n = 0; n < N; ++n) {
      int32_t sum = 0;
      for (int k = 0; k < K; ++k) sum += int8_t(w.p[size_t(k) * w.ld + n]);
      colsum[n] = sum;
    }
  PackedWeight pw;
  pw.owner_ = owner;
  pw.data_ = b;
  pw.size_ = size_t(h.total_size);
  return pw;
}

PackedWeight PackedWeight::from_bytes(const void* data, size_t size) {
  if (!data || size < sizeof(PackedHeader))
    throw std::runtime_error("PackedWeight::from_bytes: buffer smaller than the header");
  PackedHeader h;
  std::memcpy(&h, data, sizeof(h));
  if (h.magic != kPackMagic) throw std::runtime_error("PackedWeight::from_bytes: bad magic");
  if (h.version < 1 || h.version > kPackVersion)
    throw std::runtime_error("PackedWeight::from_bytes: version " + std::to_string(h.version) +
                             ", expected 1.." + std::to_string(kPackVersion));
  if (h.total_size < 0 || size_t(h.total_size) > size)
    throw std::runtime_error("PackedWeight::from_bytes: buffer of " + std::to_string(size) +
                             " bytes, header says " + std::to_string(h.total_size));
  if (h.K <= 0 || h.N <= 0 || (h.nb != 1 && h.nb != 4 && h.nb != kKgNb) || h.kq < 1 || h.kq > 4 ||
      h.groups != (h.N + h.nb - 1) / h.nb || h.pattern >= kNumPatterns)
    throw std::runtime_error("PackedWeight::from_bytes: inconsistent header");
  if (h.dtype != uint8_t(DType::f32) && h.dtype != uint8_t(DType::bf16) && h.dtype != uint8_t(DType::s8))
    throw std::runtime_error("PackedWeight::from_bytes: bad dtype");
  if (h.nb == kKgNb &&
      (h.version < 2 || h.dtype == uint8_t(DType::f32) || h.kq != (h.dtype == uint8_t(DType::s8) ? 4 : 2) ||
       h.kg_rows < 0 || h.kg_rows > int64_t(h.groups) * h.K || (h.off_values & 63) != 0))
    throw std::runtime_error("PackedWeight::from_bytes: inconsistent K-gather header");
  // Sections inside the buffer; group pointers monotone; k indices in range. Checked
  // once at load so a corrupt or truncated file can never make a kernel read outside.
  const int64_t es = int64_t(dtype_size(DType(h.dtype)));
  auto inside = [&](int64_t off, int64_t bytes) { return off >= int64_t(sizeof(PackedHeader)) && bytes >= 0 && off + bytes <= h.total_size; };
  if (h.steps < 0 || !inside(h.off_group_ptr, 8 * (int64_t(h.groups) + 1)) || !inside(h.off_kidx, 4 * h.steps * h.kq) ||
      !inside(h.off_values, es * h.steps * h.nb * h.kq) ||
      (h.dtype == uint8_t(DType::s8) && !inside(h.off_colsum, 4 * int64_t(h.groups) * h.nb)))
    throw std::runtime_error("PackedWeight::from_bytes: section outside the buffer");
  const uint8_t* b = static_cast<const uint8_t*>(data);
  std::vector<int64_t> gp(size_t(h.groups) + 1);
  std::memcpy(gp.data(), b + h.off_group_ptr, gp.size() * 8);
  if (gp[0] != 0 || gp[h.groups] != h.steps)
    throw std::runtime_error("PackedWeight::from_bytes: group pointers do not cover the steps");
  for (int g = 0; g < h.groups; ++g)
    if (gp[g + 1] < gp[g] || (h.nb == kKgNb && (gp[g + 1] - gp[g]) % kKgTile != 0))
      throw std::runtime_error("PackedWeight::from_bytes: group pointers not monotone (or not whole AMX tiles)");
  const int32_t kpad = (h.K + 3) & ~3;
  for (int64_t i = 0; i < h.steps * h.kq; ++i) {
    int32_t k;
    std::memcpy(&k, b + h.off_kidx + 4 * i, 4);
    if (k < 0 || k >= kpad || (h.nb != 1 && k >= h.K) || (h.nb == 1 && (i % 4 == 0) && (k % 4) != 0))
      throw std::runtime_error("PackedWeight::from_bytes: k index out of range");
  }
  PackedWeight pw;
  pw.data_ = b;
  pw.size_ = size_t(h.total_size);
  return pw;
}

static const PackedHeader& hdr(const uint8_t* d) {
  if (!d) throw std::logic_error("empty PackedWeight");
  return *reinterpret_cast<const PackedHeader*>(d);
}

int PackedWeight::K() const { return hdr(data_).K; }
int PackedWeight::N() const { return hdr(data_).N; }
DType PackedWeight::dtype() const { return DType(hdr(data_).dtype); }
Pattern PackedWeight::pattern() const { return Pattern(hdr(data_).pattern); }
int64_t PackedWeight::nonzero_blocks() const { return hdr(data_).nonzero_blocks; }
int64_t PackedWeight::total_blocks() const { return hdr(data_).total_blocks; }
int64_t PackedWeight::steps() const { return hdr(data_).steps; }
Blocking PackedWeight::blocking() const { return hdr(data_).kgather() ? Blocking::amx_kgather : Blocking::standard; }
double PackedWeight::kgather_z() const {
  const PackedHeader& h = hdr(data_);
  if (!h.kgather()) return 0.0;
  return 1.0 - double(h.kg_rows) / (double(h.groups) * h.K);
}
double PackedWeight::sparsity() const {
  const PackedHeader& h = hdr(data_);
  return h.total_blocks ? 1.0 - double(h.nonzero_blocks) / double(h.total_blocks) : 0.0;
}

void PackedWeight::unpack(void* Wv, int64_t ldw) const {
  const PackedHeader& h = hdr(data_);
  const size_t es = dtype_size(DType(h.dtype));
  if (!ldw) ldw = h.N;
  uint8_t* W = static_cast<uint8_t*>(Wv);
  for (int k = 0; k < h.K; ++k) std::memset(W + size_t(k) * ldw * es, 0, size_t(h.N) * es);
  const int64_t* gp = h.group_ptr();
  const int32_t* ki = h.kidx();
  const uint8_t* vals = static_cast<const uint8_t*>(h.values());
  static const uint8_t zero[4] = {0, 0, 0, 0};
  for (int g = 0; g < h.groups; ++g)
    for (int64_t s = gp[g]; s < gp[g + 1]; ++s)
      for (int i = 0; i < h.nb; ++i) {
        const int n = g * h.nb + i;
        if (n >= h.N) continue;
        for (int j = 0; j < h.kq; ++j) {
          const int k = ki[s * h.kq + j];
          const uint8_t* v = vals + h.value_index(s, i, j) * es;
          if (k >= h.K || std::memcmp(v, zero, es) == 0) continue;  // zero bits: nothing to write
          std::memcpy(W + (size_t(k) * ldw + n) * es, v, es);
        }
      }
}

void reorder_to_vnni4(const uint8_t* src, int K, int M, int64_t ld, uint8_t* dst) {
  if (!ld) ld = M;
  const int Kq = (K + 3) / 4;
  for (int q = 0; q < Kq; ++q)
    for (int m = 0; m < M; ++m)
      for (int j = 0; j < 4; ++j) {
        const int k = 4 * q + j;
        dst[(size_t(q) * M + m) * 4 + j] = k < K ? src[size_t(k) * ld + m] : 0;
      }
}

void reorder_from_vnni4(const uint8_t* src, int K, int M, uint8_t* dst, int64_t ld) {
  if (!ld) ld = M;
  for (int k = 0; k < K; ++k)
    for (int m = 0; m < M; ++m) dst[size_t(k) * ld + m] = src[(size_t(k / 4) * M + m) * 4 + k % 4];
}

}  // namespace ne::sparse
