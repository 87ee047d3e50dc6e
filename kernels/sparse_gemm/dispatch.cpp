// The single entry point: picks the best kernel of the list for this call and CPU.
#include <omp.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>

#include "kernels/env.hpp"
#include "kernels/sparse_gemm/bsgemm_internal.hpp"

namespace ne::sparse {

const std::vector<KernelInfo>& kernel_list() {
  static const std::vector<KernelInfo> list = {
#define BSGEMM_KERNEL(name, wdt, nb, kq, isa, amx, max_m) \
  KernelInfo{#name, DType::wdt, nb, kq, ne::cpu::Isa::isa, amx, &name, max_m},
#include "kernels/sparse_gemm/bsgemm_kernels.inc"
#undef BSGEMM_KERNEL
  };
  return list;
}

namespace {

void validate(const GemmArgs& a, const PackedWeight& w) {
  if (w.empty()) throw std::invalid_argument("sparse gemm: empty packed weight");
  const int K = w.K(), N = w.N();
  auto fail = [&](const std::string& m) {
    throw std::invalid_argument("sparse gemm (K=" + std::to_string(K) + ", N=" + std::to_string(N) +
                                ", M=" + std::to_string(a.M) + "): " + m);
  };
  if (a.M < 0) fail("M < 0");
  if (a.M > 0 && (!a.src || !a.dst)) fail("null src/dst");
  const bool tm = a.layout == Layout::token_major;
  const int64_t src_row = tm ? K : a.M, dst_row = tm ? N : a.M;
  if (a.ld_src && a.ld_src < src_row) fail("ld_src " + std::to_string(a.ld_src) + " < " + std::to_string(src_row));
  if (a.ld_dst && a.ld_dst < dst_row) fail("ld_dst " + std::to_string(a.ld_dst) + " < " + std::to_string(dst_row));
  if (a.post.residual && a.post.ld_residual && a.post.ld_residual < dst_row) fail("ld_residual too small");
  const DType wd = w.dtype();
  const bool src_ok = (wd == DType::f32 && a.src_dtype == DType::f32) ||
                      (wd == DType::bf16 && a.src_dtype == DType::bf16) ||
                      (wd == DType::s8 && (a.src_dtype == DType::u8 || a.src_dtype == DType::s8));
  if (!src_ok)
    fail(std::string("src dtype ") + dtype_name(a.src_dtype) + " does not go with " + dtype_name(wd) + " weights");
  const DType od = a.post.dst_dtype;
  if (od != DType::f32 && od != DType::bf16 && od != DType::u8 && od != DType::s8)
    fail(std::string("dst dtype ") + dtype_name(od) + " unsupported");
  if ((od == DType::u8 || od == DType::s8) && !(a.post.dst_scale > 0.f)) fail("dst_scale must be > 0");
}

GemmArgs normalized(const GemmArgs& a, const PackedWeight& w) {
  GemmArgs n = a;
  const bool tm = a.layout == Layout::token_major;
  if (!n.ld_src) n.ld_src = tm ? w.K() : a.M;
  if (!n.ld_dst) n.ld_dst = tm ? w.N() : a.M;
  if (!n.post.ld_residual) n.post.ld_residual = n.ld_dst;
  if (n.num_threads <= 0) n.num_threads = omp_get_max_threads();
  return n;
}

}  // namespace

namespace {
std::string why_not_blocking(const KernelInfo& k, DType wdt, Pattern p, int nb, int kq) {
  if (k.wdtype != wdt) return std::string("weights are ") + dtype_name(wdt) + ", kernel takes " + dtype_name(k.wdtype);
  if (k.nb == kKgNb && nb != kKgNb)
    return std::string("takes the AMX K-gather packing (Blocking::amx_kgather); this weight is packed ") +
           pattern_name(p) + " as " + std::to_string(nb) + "x" + std::to_string(kq) + " steps";
  if (k.nb && (k.nb != nb || k.kq != kq))
    return std::string("pattern ") + pattern_name(p) + " packs as " + std::to_string(nb) + "x" + std::to_string(kq) +
           " steps, kernel takes " + std::to_string(k.nb) + "x" + std::to_string(k.kq);
  std::string isa = ne::cpu::why_not(k.isa);
  if (!isa.empty()) return "ISA: " + isa;
  return "";
}

KernelChoice choose(const GemmArgs& a, DType wdt, Pattern p, int nb, int kq) {
  KernelChoice c;
  for (const KernelInfo& k : kernel_list()) {
    std::string r = why_not_blocking(k, wdt, p, nb, kq);
    if (r.empty() && k.max_m && a.M > k.max_m)  // a preference, not a limit (gemm_with runs it)
      r = "M=" + std::to_string(a.M) + " > " + std::to_string(k.max_m) + ": a wider token tile is faster";
    if (r.empty()) {
      c.kernel = &k;
      break;
    }
    if (k.wdtype == wdt) c.declined.push_back(std::string(k.name) + ": " + r);
  }
  return c;
}
}  // namespace

std::string why_not(const KernelInfo& k, const GemmArgs& a, const PackedWeight& w) {
  (void)a;
  const auto& h = *reinterpret_cast<const PackedHeader*>(w.pack_bytes());
  return why_not_blocking(k, w.dtype(), w.pattern(), h.nb, h.kq);
}

std::string KernelChoice::summary() const {
  std::string s = kernel ? std::string("chose ") + kernel->name : std::string("no kernel");
  if (!declined.empty()) {
    s += "; declined:";
    for (auto& d : declined) s += " [" + d + "]";
  }
  return s;
}

KernelChoice choose_kernel(const GemmArgs& a, const PackedWeight& w) {
  if (w.empty()) return KernelChoice();
  const auto& h = *reinterpret_cast<const PackedHeader*>(w.pack_bytes());
  return choose(a, w.dtype(), w.pattern(), h.nb, h.kq);
}

KernelChoice choose_kernel(const GemmArgs& a, DType wdt, Pattern p) {
  int nb, kq;
  pattern_blocking(p, wdt, &nb, &kq);
  return choose(a, wdt, p, nb, kq);
}

void gemm_with(const KernelInfo& k, const GemmArgs& a, const PackedWeight& w) {
  validate(a, w);
  std::string r = why_not(k, a, w);
  if (!r.empty()) throw std::invalid_argument(std::string(k.name) + " cannot run: " + r);
  GemmArgs n = normalized(a, w);
  if (n.M == 0) return;
  k.fn(n, w.pack_bytes(), n.num_threads);
}

const KernelInfo& gemm(const GemmArgs& a, const PackedWeight& w) {
  validate(a, w);
  KernelChoice c = choose_kernel(a, w);
  if (!c.kernel) throw std::invalid_argument("sparse gemm: no kernel for these arguments");
  if (ne::kernels::env::sparse_verbose()) {
    static std::mutex mu;
    static std::set<std::string> seen;
    std::lock_guard<std::mutex> lock(mu);
    std::string line = std::string(pattern_name(w.pattern())) + "/" + dtype_name(w.dtype()) + ": " + c.summary();
    if (seen.insert(line).second) std::fprintf(stderr, "[ne::sparse] %s\n", line.c_str());
  }
  GemmArgs n = normalized(a, w);
  if (n.M > 0) c.kernel->fn(n, w.pack_bytes(), n.num_threads);
  return *c.kernel;
}

}  // namespace ne::sparse
