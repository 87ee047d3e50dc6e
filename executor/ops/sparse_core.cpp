#include "executor/ops/sparse_core.hpp"

#include <cstring>

#include "common/error.hpp"

namespace ne {

SparseGemmCore::SparseGemmCore(const std::string& op_name, const void* W, sparse::DType wdt, int K, int N,
                               sparse::Pattern p, sparse::Blocking b, uint64_t weight_hash)
    : op_name_(op_name) {
  const std::string key = std::string("bsgemm:") + sparse::dtype_name(wdt) + ":" + sparse::pattern_name(p) +
                          (b == sparse::Blocking::amx_kgather ? ":kgather" : "") + ":" + std::to_string(K) + "x" +
                          std::to_string(N) + ":" + hex64(weight_hash);
  buf_ = find_packed(key);
  if (!buf_) {
    sparse::PackedWeight tmp = sparse::PackedWeight::pack(W, wdt, K, N, p, 0, b);
    buf_ = get_packed(key, tmp.pack_size(), [&](uint8_t* dst) { std::memcpy(dst, tmp.pack_bytes(), tmp.pack_size()); });
  }
  w_ = sparse::PackedWeight::from_bytes(buf_->data(), buf_->size());
}

const sparse::KernelInfo& SparseGemmCore::kernel_for(const sparse::GemmArgs& a) {
  std::lock_guard<std::mutex> g(mu_);
  auto it = by_m_.find(a.M);
  if (it != by_m_.end()) return *it->second;
  auto ch = sparse::choose_kernel(a, w_);
  NE_CHECK(ch.kernel, "operator '", op_name_, "': no sparse kernel can run M=", a.M, ": ", ch.summary());
  if (by_m_.size() > 64) by_m_.clear();  // bounded (M varies with batch x seq)
  by_m_.emplace(a.M, ch.kernel);
  return *ch.kernel;
}

bool sparse_epilogue(const std::vector<IpPostKind>& post, sparse::Act* act, bool* sum, std::string* why) {
  *act = sparse::Act::none;
  *sum = false;
  for (IpPostKind k : post) {
    if (k == IpPostKind::sum) {
      if (*sum) {
        *why = "two sum post-ops";
        return false;
      }
      *sum = true;
      continue;
    }
    if (*sum || *act != sparse::Act::none) {
      *why = std::string("post-op order not supported by the sparse epilogue (") + ip_post_name(k) + ")";
      return false;
    }
    switch (k) {
      case IpPostKind::relu: *act = sparse::Act::relu; break;
      case IpPostKind::gelu_erf: *act = sparse::Act::gelu_erf; break;
      case IpPostKind::gelu_tanh: *act = sparse::Act::gelu_tanh; break;
      case IpPostKind::tanh: *act = sparse::Act::tanh; break;
      default: *why = std::string("post-op ") + ip_post_name(k) + " not in the sparse epilogue"; return false;
    }
  }
  return true;
}

}  // namespace ne
