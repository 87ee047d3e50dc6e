// Output-channel grouping (see channel_group.hpp).
#include "compile/passes/channel_group.hpp"

#include <chrono>
#include <cstdio>

#include "compile/passes/graph.hpp"
#include "compile/passes/layer_match.hpp"
#include "compile/passes/passes.hpp"
#include "kernels/sparse_gemm/sparsity.hpp"

namespace ne {

namespace {

using pass::Graph;
using Bits = std::vector<uint64_t>;

int popcount(uint64_t x) { return __builtin_popcountll(x); }

// Support bitsets of the `n_units` column units of W[K, N] starting at column c0: unit u's k bit
// is set when any of its `unit` columns is non-zero in row k (bitwise, as the packing counts).
// Unit u's bits go to out[u * stride + w0 ...].
void supports(const TensorInfo& w, int64_t c0, int64_t n_units, int64_t unit, Bits& out, int64_t stride,
              int64_t w0) {
  const int64_t K = w.shape[0], N = w.shape[1];
  const uint32_t* p = w.as<uint32_t>();
  for (int64_t k = 0; k < K; ++k) {
    const uint32_t* row = p + k * N + c0;
    const uint64_t bit = uint64_t(1) << (k % 64);
    for (int64_t u = 0; u < n_units; ++u) {
      uint32_t any = 0;
      for (int64_t j = 0; j < unit; ++j) any |= row[u * unit + j];
      if (any) out[size_t(u * stride + w0 + k / 64)] |= bit;
    }
  }
}

// Non-zero rows summed over the groups of `order` (`per_group` units each, the last one partial),
// counting only words [w0, w1) of each unit's `stride` words.
int64_t nonzero_rows(const Bits& b, int64_t stride, const std::vector<int64_t>& order, int64_t per_group,
                     int64_t w0, int64_t w1) {
  int64_t total = 0;
  Bits uni(size_t(w1 - w0));
  for (size_t g = 0; g < order.size(); g += size_t(per_group)) {
    std::fill(uni.begin(), uni.end(), 0);
    for (size_t i = g; i < std::min(order.size(), g + size_t(per_group)); ++i)
      for (int64_t w = w0; w < w1; ++w) uni[size_t(w - w0)] |= b[size_t(order[i] * stride + w)];
    for (uint64_t x : uni) total += popcount(x);
  }
  return total;
}
int64_t groups_of(int64_t units, int64_t per_group) { return (units + per_group - 1) / per_group; }

// All-zero (group, k) rows of output channels c0 .. c0 + n - 1 of the fp32 weight w, `group`
// channels to a group (the z16 count, kernels/sparse_gemm/sparsity.hpp): the figure before any
// permutation. The counts after one come from the support bitsets (nonzero_rows).
int64_t zero_rows(const TensorInfo& w, int64_t c0, int64_t n, int group) {
  return sparse::zero_group_rows(w.as<float>() + c0, sparse::DType::f32, int(w.shape[0]), int(n), group, w.shape[1]);
}

std::vector<int64_t> identity(int64_t n) {
  std::vector<int64_t> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[size_t(i)] = i;
  return v;
}

// Unit order -> channel permutation, appended to `perm` (channels offset by c0).
void append_channels(const std::vector<int64_t>& order, int64_t unit, int64_t c0, std::vector<int64_t>* perm) {
  for (int64_t u : order)
    for (int64_t j = 0; j < unit; ++j) perm->push_back(c0 + u * unit + j);
}

int64_t unit_for(int64_t n, const ChannelGroupOptions& opt) {
  const int64_t u = opt.unit > 0 ? opt.unit : 1;
  return (n % u == 0 && opt.group % u == 0) ? u : 1;
}

std::vector<int64_t> group_order(const Bits& b, int64_t units, int64_t words, int64_t per_group,
                                 const ChannelGroupOptions& opt) {
  std::vector<int64_t> order = pass::greedy_group_order(b, units, words, per_group);
  pass::refine_group_order(b, units, words, per_group, &order, opt.refine_passes);
  return order;
}

std::string pct(int64_t zero, int64_t rows) {
  char b[32];
  std::snprintf(b, sizeof b, "%.1f%%", rows ? 100.0 * double(zero) / double(rows) : 0.0);
  return b;
}

// ------------------------------------------------------------------------------------ FFN
void group_ffn(Graph& g, OpInfo& ip2, ChannelGroupStats& st, const ChannelGroupOptions& opt) {
  Model& m = g.m;
  pass::FfnMatch f;
  if (!pass::match_ffn(g, ip2, &f)) return;
  ++st.ffn_blocks;
  const int64_t K = f.w1->shape[0], F = f.F;
  const int64_t unit = unit_for(F, opt), per_group = opt.group / unit, U = F / unit, words = (K + 63) / 64;
  Bits b(size_t(U * words));
  supports(*f.w1, 0, U, unit, b, words, 0);
  const int64_t rows = groups_of(U, per_group) * K;
  const int64_t before = zero_rows(*f.w1, 0, F, opt.group);
  std::vector<int64_t> order = group_order(b, U, words, per_group, opt);
  const int64_t after = rows - nonzero_rows(b, words, order, per_group, 0, words);
  auto& s = st.ffn1;
  ++s.weights;
  s.rows += rows;
  s.zero_before += before;
  const bool take = after > before;
  s.zero_after += take ? after : before;
  std::string line = "ffn " + f.ip1->name + " -> " + ip2.name + ": z16 " + pct(before, rows) + " -> " +
                     pct(take ? after : before, rows);
  if (!take) {
    st.log.push_back(line + " (no gain: left alone)");
    return;
  }
  std::vector<int64_t> perm;
  append_channels(order, unit, 0, &perm);
  pass::keep_cols(m, f.ip1->inputs[1], perm);
  if (f.b1) pass::keep_rows(m, f.ip1->inputs[size_t(f.b1_index)], perm);
  pass::keep_rows(m, ip2.inputs[1], perm);
  ++s.permuted;
  st.perms.emplace_back(f.ip1->inputs[1], perm);
  st.log.push_back(line);
}

// ------------------------------------------------------------------------------ attention
void group_attention(Graph& g, OpInfo& pv, ChannelGroupStats& st, const ChannelGroupOptions& opt) {
  Model& m = g.m;
  pass::AttentionMatch a;
  if (!pass::match_attention(g, pv, &a)) return;
  ++st.attention_blocks;
  const int64_t D = a.D, H = a.H, HD = a.HD;
  const TensorInfo *wq = a.w[0], *wk = a.w[1], *wv = a.w[2];
  const int64_t Kq = wq->shape[0], Kk = wk->shape[0], Kv = wv->shape[0];
  if (D % opt.group != 0 || D == opt.group) {
    // Groups would straddle heads, or a head is one group: nothing to gain inside a head.
    ChannelGroupStats::Kind* kinds[3] = {&st.q, &st.k, &st.v};
    for (int i = 0; i < 3; ++i) {
      const int64_t rows = groups_of(HD, opt.group) * a.w[i]->shape[0];
      const int64_t z = zero_rows(*a.w[i], 0, HD, opt.group);
      kinds[i]->weights++;
      kinds[i]->rows += rows;
      kinds[i]->zero_before += z;
      kinds[i]->zero_after += z;
    }
    st.log.push_back("attention " + pv.name + ": head dim " + std::to_string(D) +
                     (D == opt.group ? " is one group of " : " is not a multiple of ") + std::to_string(opt.group) +
                     ": left alone");
    return;
  }
  const int64_t unit = unit_for(D, opt), per_group = opt.group / unit, UH = D / unit;
  const int64_t gph = groups_of(UH, per_group);  // groups per head
  const int64_t wq_w = (Kq + 63) / 64, wk_w = (Kk + 63) / 64, wv_w = (Kv + 63) / 64, wqk = wq_w + wk_w;
  std::vector<int64_t> perm_v, perm_qk;
  int64_t zb[3] = {0, 0, 0}, za[3] = {0, 0, 0};  // q, k, v zero rows before / after
  bool moved_v = false, moved_qk = false;
  for (int64_t h = 0; h < H; ++h) {
    const std::vector<int64_t> id = identity(UH);
    // V: its own support sets.
    Bits bv(size_t(UH * wv_w));
    supports(*wv, h * D, UH, unit, bv, wv_w, 0);
    const int64_t rv = gph * Kv;
    const int64_t v0 = zero_rows(*wv, h * D, D, opt.group);
    std::vector<int64_t> ov = group_order(bv, UH, wv_w, per_group, opt);
    const int64_t v1 = rv - nonzero_rows(bv, wv_w, ov, per_group, 0, wv_w);
    if (v1 > v0) {
      moved_v = true;
    } else {
      ov = id;
    }
    zb[2] += v0;
    za[2] += std::max(v0, v1);
    append_channels(ov, unit, h * D, &perm_v);
    // Q and K: one order on the concatenated supports (new rows in Q's union + in K's).
    Bits bqk(size_t(UH * wqk));
    supports(*wq, h * D, UH, unit, bqk, wqk, 0);
    supports(*wk, h * D, UH, unit, bqk, wqk, wq_w);
    const int64_t q0 = zero_rows(*wq, h * D, D, opt.group), k0 = zero_rows(*wk, h * D, D, opt.group);
    std::vector<int64_t> oqk = group_order(bqk, UH, wqk, per_group, opt);
    const int64_t q1 = gph * Kq - nonzero_rows(bqk, wqk, oqk, per_group, 0, wq_w);
    const int64_t k1 = gph * Kk - nonzero_rows(bqk, wqk, oqk, per_group, wq_w, wqk);
    zb[0] += q0;
    zb[1] += k0;
    if (q1 >= q0 && k1 >= k0 && q1 + k1 > q0 + k0) {
      moved_qk = true;
      za[0] += q1;
      za[1] += k1;
    } else {
      oqk = id;
      za[0] += q0;
      za[1] += k0;
    }
    append_channels(oqk, unit, h * D, &perm_qk);
  }
  ChannelGroupStats::Kind* kinds[3] = {&st.q, &st.k, &st.v};
  const int64_t Ks[3] = {Kq, Kk, Kv};
  const bool moved[3] = {moved_qk, moved_qk, moved_v};
  std::string line = "attention " + pv.name + ":";
  for (int i = 0; i < 3; ++i) {
    const int64_t rows = H * gph * Ks[i];
    kinds[i]->weights++;
    kinds[i]->rows += rows;
    kinds[i]->zero_before += zb[i];
    kinds[i]->zero_after += za[i];
    kinds[i]->permuted += moved[i];
    line += std::string(i ? "," : "") + " " + "qkv"[i] + " z16 " + pct(zb[i], rows) + " -> " + pct(za[i], rows);
  }
  (void)HD;
  if (moved_qk) {
    for (int i = 0; i < 2; ++i) {
      pass::keep_cols(m, a.ip[i]->inputs[1], perm_qk);
      if (a.bias[i]) pass::keep_rows(m, a.ip[i]->inputs[size_t(a.bias_idx[i])], perm_qk);
      st.perms.emplace_back(a.ip[i]->inputs[1], perm_qk);
    }
  }
  if (moved_v) {
    pass::keep_cols(m, a.ip[2]->inputs[1], perm_v);
    if (a.bias[2]) pass::keep_rows(m, a.ip[2]->inputs[size_t(a.bias_idx[2])], perm_v);
    pass::keep_rows(m, a.ipo->inputs[1], perm_v);
    st.perms.emplace_back(a.ip[2]->inputs[1], perm_v);
  }
  if (!moved_qk && !moved_v) line += " (no gain: left alone)";
  st.log.push_back(line);
}

std::string kind_str(const char* name, const ChannelGroupStats::Kind& k) {
  char b[160];
  std::snprintf(b, sizeof b, "%s z16 %.1f%% -> %.1f%% (%d of %d permuted)", name, 100 * k.z16_before(),
                100 * k.z16_after(), k.permuted, k.weights);
  return b;
}

std::string seconds_str(double s) {
  char b[32];
  std::snprintf(b, sizeof b, "%.2f s", s);
  return b;
}

}  // namespace

namespace pass {
std::vector<int64_t> greedy_group_order(const std::vector<uint64_t>& bits, int64_t units, int64_t words,
                                        int64_t per_group) {
  std::vector<int64_t> order;
  order.reserve(size_t(units));
  std::vector<int> pop(static_cast<size_t>(units), 0);
  for (int64_t u = 0; u < units; ++u)
    for (int64_t w = 0; w < words; ++w) pop[size_t(u)] += popcount(bits[size_t(u * words + w)]);
  std::vector<char> used(static_cast<size_t>(units), 0);
  Bits uni(static_cast<size_t>(words));
  int64_t left = units;
  while (left > 0) {
    // Seed: the unassigned unit with the largest support (small ones fit anywhere later).
    int64_t seed = -1;
    // (Smallest-first and first-unassigned seeds measured the same on BERT-base 1x4 90%.)
    for (int64_t u = 0; u < units; ++u)
      if (!used[size_t(u)] && (seed < 0 || pop[size_t(u)] > pop[size_t(seed)])) seed = u;
    used[size_t(seed)] = 1;
    --left;
    order.push_back(seed);
    for (int64_t w = 0; w < words; ++w) uni[size_t(w)] = bits[size_t(seed * words + w)];
    for (int64_t t = 1; t < per_group && left > 0; ++t) {
      // The unit adding the fewest new rows; ties: the larger support (more overlap).
      int64_t best = -1, best_new = 0;
      for (int64_t u = 0; u < units; ++u) {
        if (used[size_t(u)]) continue;
        int64_t nw = 0;
        const uint64_t* p = &bits[size_t(u * words)];
        for (int64_t w = 0; w < words && (best < 0 || nw <= best_new); ++w) nw += popcount(p[w] & ~uni[size_t(w)]);
        if (best < 0 || nw < best_new || (nw == best_new && pop[size_t(u)] > pop[size_t(best)])) best = u, best_new = nw;
      }
      used[size_t(best)] = 1;
      --left;
      order.push_back(best);
      for (int64_t w = 0; w < words; ++w) uni[size_t(w)] |= bits[size_t(best * words + w)];
    }
  }
  return order;
}

int64_t refine_group_order(const std::vector<uint64_t>& bits, int64_t units, int64_t words, int64_t per_group,
                           std::vector<int64_t>* order, int max_passes) {
  std::vector<int64_t>& o = *order;
  const int64_t G = groups_of(units, per_group);
  if (G < 2 || per_group < 1) return 0;
  // Per group: the union of its units' rows and the rows covered at least twice.
  Bits uni(size_t(G * words)), multi(size_t(G * words));
  auto rebuild = [&](int64_t g) {
    uint64_t* u = &uni[size_t(g * words)];
    uint64_t* mu = &multi[size_t(g * words)];
    std::fill(u, u + words, 0);
    std::fill(mu, mu + words, 0);
    for (int64_t i = g * per_group; i < std::min(units, (g + 1) * per_group); ++i) {
      const uint64_t* p = &bits[size_t(o[size_t(i)] * words)];
      for (int64_t w = 0; w < words; ++w) {
        mu[w] |= u[w] & p[w];
        u[w] |= p[w];
      }
    }
  };
  auto pop_of = [&](const uint64_t* p) {
    int64_t c = 0;
    for (int64_t w = 0; w < words; ++w) c += popcount(p[w]);
    return c;
  };
  for (int64_t g = 0; g < G; ++g) rebuild(g);
  std::vector<int64_t> cost(static_cast<size_t>(G));
  for (int64_t g = 0; g < G; ++g) cost[size_t(g)] = pop_of(&uni[size_t(g * words)]);
  int64_t swaps = 0;
  for (int pass_i = 0; pass_i < max_passes; ++pass_i) {
    int64_t made = 0;
    for (int64_t g1 = 0; g1 < G; ++g1)
      for (int64_t g2 = g1 + 1; g2 < G; ++g2) {
        // First improving swap of a unit of g1 with a unit of g2, repeated while one exists.
        bool again = true;
        while (again) {
          again = false;
          const uint64_t *u1 = &uni[size_t(g1 * words)], *m1 = &multi[size_t(g1 * words)];
          const uint64_t *u2 = &uni[size_t(g2 * words)], *m2 = &multi[size_t(g2 * words)];
          const int64_t old_cost = cost[size_t(g1)] + cost[size_t(g2)];
          for (int64_t i = g1 * per_group; i < std::min(units, (g1 + 1) * per_group) && !again; ++i)
            for (int64_t j = g2 * per_group; j < std::min(units, (g2 + 1) * per_group) && !again; ++j) {
              const uint64_t* a = &bits[size_t(o[size_t(i)] * words)];
              const uint64_t* b = &bits[size_t(o[size_t(j)] * words)];
              int64_t c = 0;
              for (int64_t w = 0; w < words && c < old_cost; ++w) {
                // g1 without a (rows only a covered go), with b; g2 likewise.
                c += popcount((u1[w] & ~(a[w] & ~m1[w])) | b[w]);
                c += popcount((u2[w] & ~(b[w] & ~m2[w])) | a[w]);
              }
              if (c < old_cost) {
                std::swap(o[size_t(i)], o[size_t(j)]);
                rebuild(g1);
                rebuild(g2);
                cost[size_t(g1)] = pop_of(&uni[size_t(g1 * words)]);
                cost[size_t(g2)] = pop_of(&uni[size_t(g2 * words)]);
                ++made;
                again = true;
              }
            }
        }
      }
    swaps += made;
    if (!made) break;
  }
  return swaps;
}
}  // namespace pass

std::string ChannelGroupStats::summary() const {
  if (!ffn_blocks && !attention_blocks)
    return "group_channels: no FFN or attention block with fp32 weights used once found: model left unchanged";
  return "group_channels: " + kind_str("ffn1", ffn1) + "; " + kind_str("q", q) + "; " + kind_str("k", k) + "; " +
         kind_str("v", v) + " (" + std::to_string(ffn_blocks) + " FFN, " + std::to_string(attention_blocks) +
         " attention blocks, " + seconds_str(seconds) + ")";
}

void group_channels(Model& m, ChannelGroupStats* stats, const ChannelGroupOptions& opt) {
  ChannelGroupStats local;
  ChannelGroupStats& st = stats ? *stats : local;
  st = ChannelGroupStats();
  NE_CHECK(opt.group > 0, "group_channels: group must be positive, got ", opt.group);
  const auto t0 = std::chrono::steady_clock::now();
  const int fused_attention = pass::unfuse_attention_op(m);  // heads are found on the 3-op form
  {
    Graph g(m);
    // Only weights are replaced (same names, same shapes): the Graph's maps stay valid.
    for (size_t i = 0; i < m.ops.size(); ++i)
      if (m.ops[i].type == "Matmul") group_attention(g, m.ops[i], st, opt);
    for (size_t i = 0; i < m.ops.size(); ++i)
      if (m.ops[i].type == "InnerProduct") group_ffn(g, m.ops[i], st, opt);
  }
  if (fused_attention) pass::fuse_attention_op(m);
  st.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace ne
