#include "executor/executor.hpp"

#include "executor/op_attrs.hpp"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <mutex>
#include <set>
#include <unordered_map>

namespace ne {

namespace {

struct AlignedBuf {
  void* p = nullptr;
  size_t n = 0;
  AlignedBuf() = default;
  explicit AlignedBuf(size_t bytes) { reserve(bytes); }
  AlignedBuf(const AlignedBuf&) = delete;
  AlignedBuf(AlignedBuf&& o) noexcept : p(o.p), n(o.n) { o.p = nullptr; o.n = 0; }
  AlignedBuf& operator=(AlignedBuf&& o) noexcept {
    std::swap(p, o.p);
    std::swap(n, o.n);
    return *this;
  }
  ~AlignedBuf() { std::free(p); }
  void reserve(size_t bytes) {
    if (bytes <= n && p) return;
    std::free(p);
    size_t sz = (std::max<size_t>(bytes, 64) + 63) / 64 * 64;
    p = std::aligned_alloc(64, sz);
    if (!p) fail("out of memory allocating ", sz, " bytes");
    n = sz;
  }
};

size_t align64(size_t x) { return (x + 63) / 64 * 64; }

constexpr uint64_t kMaxTensorBytes = uint64_t(1) << 40;

// Bytes of a tensor, checked against overflow and `limit` (so a shape from a bad model or input
// yields an error naming the tensor instead of a wrapped size or a huge allocation).
size_t checked_nbytes(const Tensor& t, uint64_t limit, const std::string& who) {
  uint64_t n = uint64_t(shape_numel(t.shape)), es = dtype_size(t.dtype);
  if (n > limit / es)
    throw ResourceError(str_cat(who, "tensor '", t.name, "' of shape ", shape_str(t.shape), " x ",
           dtype_name(t.dtype), " exceeds the activation memory limit of ", limit, " bytes"));
  return size_t(n * es);
}

}  // namespace

struct Executor::Impl {
  Model model;
  ExecOptions opt;

  std::vector<std::string> names;
  std::unordered_map<std::string, int> id;
  std::vector<Tensor> base;       // per tensor: weights carry data
  std::vector<bool> weight;       // tensor is a weight
  std::vector<AlignedBuf> weight_copies;  // weights realigned from unaligned offsets

  struct Node {
    std::unique_ptr<Operator> op;
    std::vector<int> in, out;  // tensor ids; -1 = optional input left out
    bool at_plan = false;      // computed at plan time (inputs all const, or shape-only)
    OpProfile prof;
  };
  std::vector<Node> nodes;
  std::vector<int> inputs, outputs;  // model inputs / outputs (tensor ids)
  std::vector<bool> plan_const;      // tensor is a weight or computed at plan time

  struct Plan {
    std::vector<Tensor> t;
    std::vector<AlignedBuf> const_store;
    std::vector<int64_t> offset;  // arena offset per tensor, -1 if not in arena
    size_t arena = 0, peak_live = 0;
    uint64_t used = 0;  // when it last ran (LRU)
  };
  // Plans by input shapes, at most opt.max_plans (the least recently used goes first): a client
  // that sends every sequence length cannot grow the executor without bound.
  std::map<std::string, std::unique_ptr<Plan>> plans;
  uint64_t tick = 0;
  Plan* last_plan = nullptr;
  AlignedBuf arena;
  // The arena follows the largest plan of the last kArenaWindow calls: it shrinks when it is more
  // than twice that (and 1 MiB more), so one long sequence does not hold its memory forever.
  static constexpr int kArenaWindow = 32;
  size_t window_max = 0;
  int window_calls = 0;

  int tensor_id(const std::string& n) {
    auto it = id.find(n);
    if (it != id.end()) return it->second;
    int i = int(names.size());
    names.push_back(n);
    id[n] = i;
    Tensor t;
    t.name = n;
    base.push_back(t);
    weight.push_back(false);
    return i;
  }

  // An op whose weight (input 1) is not fp32 is created from the variant registered as
  // "<type>.<dtype>" when there is one ("InnerProduct.s8", "InnerProduct.bf16"), else "<type>".
  std::unique_ptr<Operator> make_op(const OpInfo& op) const {
    if (op.inputs.size() > 1) {
      const TensorInfo* w = model.find(op.inputs[1]);
      if (w && w->is_weight && w->dtype != DType::fp32) {
        OpInfo v = op;
        v.type = op.type + "." + dtype_name(w->dtype);
        if (auto o = create_op(v)) return o;
      }
    }
    return create_op(op);
  }

  // Runs an operator's constructor or init(): its errors name the op and what is wrong; this adds
  // the file (the IR's conf.yaml, the ONNX model compiled) when the message does not start with it.
  template <class F>
  void with_source(F&& f) {
    try {
      f();
    } catch (const InputError&) {
      throw;
    } catch (const Error& e) {
      const std::string msg = e.what();
      if (model.source.empty() || msg.rfind(model.source, 0) == 0) throw;
      throw Error(model.source + ": " + msg);
    }
  }

  void build() {
    validate(model);
    // Unknown op types: one message listing all of them. Nothing is constructed before the
    // attribute check below, so an operator's own checks never run on attributes it does not know.
    std::map<std::string, std::vector<std::string>> unknown;
    const auto types = registered_op_types();
    for (auto& op : model.ops)
      if (!std::binary_search(types.begin(), types.end(), op.type)) unknown[op.type].push_back(op.name);
    if (!unknown.empty()) {
      std::string msg = model.source + ": unknown operator type(s): ";
      bool first = true;
      for (auto& kv : unknown) {
        msg += (first ? "" : "; ") + kv.first + " (";
        for (size_t i = 0; i < kv.second.size() && i < 5; ++i) msg += (i ? ", " : "") + kv.second[i];
        if (kv.second.size() > 5) msg += ", ...";
        msg += ")";
        first = false;
      }
      fail(msg);
    }
    // Every attribute of every op is one its type declares, with a value it can honour
    // (executor/op_attrs.cpp); then the Neural Engine's InnerProduct src1_perm is lowered.
    check_model_attrs(model);
    lower_inner_product_src1_perm(model);
    for (auto& kv : model.tensors) {
      const TensorInfo& ti = kv.second;
      if (!ti.is_weight) continue;
      int i = tensor_id(ti.name);
      weight[i] = true;
      Tensor& t = base[i];
      t.dtype = ti.dtype;
      t.shape = ti.shape;
      t.is_const = true;
      const uint8_t* d = ti.data;
      if (reinterpret_cast<uintptr_t>(d) % 64 != 0 && ti.nbytes > 0) {
        weight_copies.emplace_back(ti.nbytes);
        std::memcpy(weight_copies.back().p, d, ti.nbytes);
        d = static_cast<const uint8_t*>(weight_copies.back().p);
      }
      t.data = const_cast<uint8_t*>(d);
    }
    for (auto& n : model.input_names()) inputs.push_back(tensor_id(n));
    for (auto& n : model.output_names()) outputs.push_back(tensor_id(n));
    plan_const.assign(names.size(), false);
    for (size_t i = 0; i < names.size(); ++i) plan_const[i] = weight[i];
    for (auto& op : model.ops) {
      if (op.type == "Input" || op.type == "Output") continue;
      // Operators index their outputs from 0 without checking: a model must give one.
      NE_CHECK(!op.outputs.empty(), model.source, ": operator '", op.name, "' (", op.type, ") has no outputs");
      Node nd;
      with_source([&] { nd.op = make_op(op); });
      nd.op->set_config(opt.op);
      for (auto& n : op.inputs) nd.in.push_back(n.empty() ? -1 : tensor_id(n));
      for (auto& n : op.outputs) nd.out.push_back(tensor_id(n));
      plan_const.resize(names.size(), false);
      bool all_const = true;
      for (int i : nd.in)
        if (i >= 0 && !plan_const[i]) all_const = false;
      nd.at_plan = all_const || nd.op->shape_only();
      if (nd.at_plan)
        for (int o : nd.out) plan_const[o] = true;
      nd.prof.name = op.name;
      nd.prof.type = op.type;
      nodes.push_back(std::move(nd));
    }
    plan_const.resize(names.size(), false);
    // init(): weights visible.
    for (auto& nd : nodes) {
      TensorList in;
      std::vector<Tensor> tmp;
      tmp.reserve(nd.in.size());
      for (int i : nd.in) {
        if (i < 0) { in.push_back(nullptr); continue; }
        tmp.push_back(base[i]);
        in.push_back(&tmp.back());
      }
      with_source([&] { nd.op->init(in); });
      nd.prof.kernel = nd.op->kernel();
      nd.prof.reason = nd.op->reason();
    }
    // Weights were read (and packed) during init; pages of model.bin that the ops use in place
    // fault back in on first use, the rest (weights now held packed) stop counting as resident.
    if (model.blob) model.blob->release_resident();
  }

  TensorList list(Plan& p, const std::vector<int>& ids) {
    TensorList l;
    for (int i : ids) l.push_back(i < 0 ? nullptr : &p.t[i]);
    return l;
  }

  // Planning fails only for input shapes the model cannot take (its ops' shape checks): an
  // input error, with the operator's message unchanged; a configured limit stays a ResourceError.
  std::unique_ptr<Plan> make_plan_checked(const std::map<std::string, TensorView>& in) {
    try {
      return make_plan(in);
    } catch (const InputError&) {
      throw;
    } catch (const ResourceError&) {
      throw;
    } catch (const Error& e) {
      throw InputError(e.what());
    }
  }

  std::unique_ptr<Plan> make_plan(const std::map<std::string, TensorView>& in) {
    auto p = std::make_unique<Plan>();
    p->t = base;
    const uint64_t limit = opt.max_activation_bytes ? std::min<uint64_t>(opt.max_activation_bytes, kMaxTensorBytes)
                                                    : kMaxTensorBytes;
    uint64_t const_bytes = 0;
    for (int i : inputs) {
      const TensorView& h = in.at(names[i]);
      p->t[i].dtype = h.dtype;
      p->t[i].shape = h.shape;
      p->t[i].is_const = false;
      (void)checked_nbytes(p->t[i], limit, "input ");
    }
    // Shapes, and plan-time evaluation of constant / shape-derived chains.
    for (auto& nd : nodes) {
      TensorList ins = list(*p, nd.in), outs = list(*p, nd.out);
      try {
        nd.op->reshape(ins, outs);
      } catch (const Error&) {
        throw;
      } catch (const std::exception& e) {
        fail("operator '", nd.op->name(), "' (", nd.op->type(), "): ", e.what());
      }
      std::string who = "operator '" + nd.op->name() + "' (" + nd.op->type() + "): output ";
      for (Tensor* o : outs) {
        for (int64_t d : o->shape)
          NE_CHECK(d >= 0, who, "'", o->name, "' got invalid shape ", shape_str(o->shape));
        (void)checked_nbytes(*o, limit, who);  // overflow and size limit
      }
      if (nd.at_plan) {
        if (nd.op->is_view()) {
          outs[0]->data = ins[0]->data;
        } else {
          for (Tensor* o : outs) {
            const_bytes += align64(o->nbytes());
            if (const_bytes > limit)
              throw ResourceError(str_cat(who, "'", o->name, "': tensors computed at plan time need ", const_bytes,
                                          " bytes, over the activation memory limit of ", limit));
            p->const_store.emplace_back(o->nbytes());
            o->data = p->const_store.back().p;
          }
          nd.op->forward(ins, outs);
        }
        for (Tensor* o : outs) o->is_const = true;
      }
    }
    plan_memory(*p);
    if (opt.max_activation_bytes && p->arena > opt.max_activation_bytes)
      throw ResourceError(str_cat("the activation arena for input shapes ", shape_key(in), " needs ", p->arena,
                                  " bytes, over the limit of ", opt.max_activation_bytes));
    return p;
  }

  // Assigns arena offsets from tensor lifetimes: buffers shared by views and in-place ops,
  // placed greedily by size (largest first) at the lowest offset free during their lifetime.
  void plan_memory(Plan& p) {
    const int T = int(names.size()), N = int(nodes.size());
    const int END = N + 1;
    std::vector<int> last(T, -2), def(T, -2);
    for (int i : inputs) def[i] = -1;
    for (int j = 0; j < N; ++j) {
      if (nodes[j].at_plan) continue;
      for (int i : nodes[j].in)
        if (i >= 0) last[i] = std::max(last[i], j);
      for (int o : nodes[j].out) def[o] = j;
    }
    for (int o : outputs) last[o] = END;
    std::vector<int> buf(T, -1);
    // ext: a model input's buffer, the caller's memory (no arena space, never written).
    struct Buffer { size_t size = 0; int first = 0, last = 0; bool ext = false; };
    std::vector<Buffer> bufs;
    auto in_arena = [&](int i) { return i >= 0 && !p.t[i].is_const && buf[i] >= 0; };
    for (int i : inputs) {
      buf[i] = int(bufs.size());
      bufs.push_back({align64(p.t[i].nbytes()), -1, std::max(last[i], -1), true});
    }
    for (int j = 0; j < N; ++j) {
      Node& nd = nodes[j];
      if (nd.at_plan) continue;
      for (int i : nd.in)
        if (i >= 0 && !p.t[i].is_const && buf[i] < 0)
          fail("operator '", nd.op->name(), "' (", nd.op->type(), ") reads tensor '", names[i],
               "', which no operator computes before it");
      for (size_t k = 0; k < nd.out.size(); ++k) {
        int o = nd.out[k];
        size_t sz = align64(p.t[o].nbytes());
        int lo = std::max(last[o], j);
        int share = -1;
        if (k == 0 && nd.op->is_view() && in_arena(nd.in[0])) {
          share = buf[nd.in[0]];
        } else if (k == 0 && nd.op->inplace_input() >= 0) {
          int ii = nd.in[size_t(nd.op->inplace_input())];
          if (in_arena(ii) && !bufs[buf[ii]].ext && bufs[buf[ii]].last == j && bufs[buf[ii]].size >= sz &&
              std::find(outputs.begin(), outputs.end(), ii) == outputs.end() &&
              std::find(inputs.begin(), inputs.end(), ii) == inputs.end()) {
            int cnt = 0;
            for (int x : nd.in)
              if (x >= 0 && in_arena(x) && buf[x] == buf[ii]) ++cnt;
            if (cnt == 1) share = buf[ii];
          }
        }
        if (share >= 0) {
          buf[o] = share;
          if (!bufs[share].ext) bufs[share].size = std::max(bufs[share].size, sz);
          bufs[share].last = std::max(bufs[share].last, lo);
        } else {
          buf[o] = int(bufs.size());
          bufs.push_back({sz, j, lo});
        }
      }
    }
    // Greedy by size.
    std::vector<int> order(bufs.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = int(i);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return bufs[a].size > bufs[b].size; });
    std::vector<int64_t> boff(bufs.size(), -1);
    std::vector<int> placed;
    size_t arena = 0;
    for (int b : order) {
      if (bufs[b].ext) continue;
      std::vector<std::pair<size_t, size_t>> busy;
      for (int q : placed)
        if (!(bufs[q].last < bufs[b].first || bufs[b].last < bufs[q].first))
          busy.emplace_back(size_t(boff[q]), size_t(boff[q]) + bufs[q].size);
      std::sort(busy.begin(), busy.end());
      size_t off = 0;
      for (auto& r : busy) {
        if (off + bufs[b].size <= r.first) break;
        off = std::max(off, r.second);
      }
      boff[b] = int64_t(off);
      arena = std::max(arena, off + bufs[b].size);
      placed.push_back(b);
    }
    p.offset.assign(T, -1);
    for (int i = 0; i < T; ++i)
      if (buf[i] >= 0) p.offset[i] = boff[buf[i]];
    p.arena = arena;
    size_t peak = 0;
    for (int j = -1; j <= N; ++j) {
      size_t live = 0;
      for (auto& b : bufs)
        if (!b.ext && b.first <= j && j <= b.last) live += b.size;
      peak = std::max(peak, live);
    }
    p.peak_live = peak;
  }

  void check_inputs(const std::map<std::string, TensorView>& in) { check_model_inputs(model, in); }

  std::string shape_key(const std::map<std::string, TensorView>& in) {
    std::string key;
    for (int i : inputs) {
      const TensorView& h = in.at(names[i]);
      key += std::string(dtype_name(h.dtype)) + shape_str(h.shape) + ";";
    }
    return key;
  }

  std::mutex call_mu;  // one call at a time: the arena, the plans and the profile are shared

  // The checked inputs' plan, made (and cached) on first sight of their shapes. Under call_mu.
  Plan& plan_for(const std::map<std::string, TensorView>& in) {
    check_inputs(in);
    std::string key = shape_key(in);
    auto it = plans.find(key);
    if (it == plans.end()) {
      it = plans.emplace(key, make_plan_checked(in)).first;
      while (opt.max_plans && plans.size() > opt.max_plans) {
        auto victim = plans.end();
        for (auto j = plans.begin(); j != plans.end(); ++j)
          if (j != it && (victim == plans.end() || j->second->used < victim->second->used)) victim = j;
        if (victim->second.get() == last_plan) last_plan = nullptr;
        plans.erase(victim);
      }
    }
    it->second->used = ++tick;
    return *it->second;
  }

  void size_arena(size_t need) {
    window_max = std::max(window_max, need);
    if (++window_calls >= kArenaWindow) {
      if (arena.n > 2 * window_max + (size_t(1) << 20)) arena = AlignedBuf();
      window_max = need;
      window_calls = 0;
    }
    arena.reserve(need);
  }

  std::vector<HostTensor> run(const std::map<std::string, TensorView>& in) {
    std::lock_guard<std::mutex> lock(call_mu);
    Plan& p = plan_for(in);
    last_plan = &p;
    size_arena(p.arena);
    uint8_t* a = static_cast<uint8_t*>(arena.p);
    for (size_t i = 0; i < p.t.size(); ++i)
      if (p.offset[i] >= 0) p.t[i].data = a + p.offset[i];
    // Inputs are used in place: plan_memory gives them no arena space and never lets an
    // operator write into their buffers (nor into views of them).
    for (int i : inputs) p.t[i].data = const_cast<void*>(in.at(names[i]).data);
    using clk = std::chrono::steady_clock;
    for (auto& nd : nodes) {
      if (nd.at_plan) continue;
      TensorList ins = list(p, nd.in), outs = list(p, nd.out);
      if (nd.op->is_view()) {
        outs[0]->data = ins[0]->data;
        continue;
      }
      if (opt.profile) {
        auto t0 = clk::now();
        nd.op->forward(ins, outs);
        nd.prof.total_ms += std::chrono::duration<double, std::milli>(clk::now() - t0).count();
        nd.prof.calls++;
      } else {
        nd.op->forward(ins, outs);
      }
    }
    std::vector<HostTensor> res;
    for (int o : outputs) {
      HostTensor h;
      h.dtype = p.t[o].dtype;
      h.shape = p.t[o].shape;
      h.bytes.resize(p.t[o].nbytes());
      if (!h.bytes.empty()) std::memcpy(h.bytes.data(), p.t[o].data, h.bytes.size());
      res.push_back(std::move(h));
    }
    return res;
  }
};

namespace {
// Views of owned host tensors (the HostTensor entry points run on views).
std::map<std::string, TensorView> views_of(const std::map<std::string, HostTensor>& in) {
  std::map<std::string, TensorView> v;
  for (auto& kv : in)
    v[kv.first] = TensorView{kv.second.dtype, kv.second.shape, kv.second.bytes.data(), kv.second.bytes.size()};
  return v;
}

template <class... A>
void input_check(bool cond, const A&... a) {
  if (!cond) throw InputError(str_cat(a...));
}
}  // namespace

void check_model_inputs(const Model& model, const std::map<std::string, TensorView>& in) {
  const std::vector<std::string> names = model.input_names();
  auto join_inputs = [&] {
    std::string s;
    for (auto& n : names) s += (s.empty() ? "" : ", ") + n;
    return s;
  };
  for (auto& kv : in)
    input_check(std::find(names.begin(), names.end(), kv.first) != names.end(), "input '", kv.first,
                "' is not an input of the model (inputs: ", join_inputs(), ")");
  for (auto& name : names) {
    auto it = in.find(name);
    input_check(it != in.end(), "model input '", name, "' was not given (inputs: ", join_inputs(), ")");
    const TensorView& h = it->second;
    bool neg = false;
    for (int64_t d : h.shape) neg |= d < 0;
    input_check(!neg, "input '", name, "': negative dimension in shape ", shape_str(h.shape));
    const int64_t numel = shape_numel(h.shape);
    input_check(uint64_t(numel) <= h.nbytes / dtype_size(h.dtype) && h.nbytes == size_t(numel) * dtype_size(h.dtype),
                "input '", name, "': ", h.nbytes, " bytes do not match shape ", shape_str(h.shape), " x ",
                dtype_name(h.dtype));
    input_check(h.nbytes == 0 || h.data, "input '", name, "': no data");
    input_check(h.nbytes == 0 || reinterpret_cast<uintptr_t>(h.data) % dtype_size(h.dtype) == 0, "input '", name,
                "': data not aligned to its ", dtype_size(h.dtype), "-byte elements");
    const TensorInfo* ti = model.find(name);
    if (!ti) continue;
    input_check(h.dtype == ti->dtype || (dtype_size(h.dtype) == 4 && (h.dtype == DType::int32 || h.dtype == DType::s32) &&
                                         (ti->dtype == DType::int32 || ti->dtype == DType::s32)),
                "input '", name, "': dtype ", dtype_name(h.dtype), " given, the model expects ", dtype_name(ti->dtype));
    if (ti->has_shape) {
      input_check(h.shape.size() == ti->shape.size(), "input '", name, "': rank ", h.shape.size(), " (shape ",
                  shape_str(h.shape), ") given, the model expects rank ", ti->shape.size(), " ", shape_str(ti->shape));
      for (size_t d = 0; d < h.shape.size(); ++d)
        input_check(ti->shape[d] < 0 || ti->shape[d] == h.shape[d], "input '", name, "': shape ", shape_str(h.shape),
                    " given, the model expects ", shape_str(ti->shape));
    }
  }
}

void check_model_inputs(const Model& model, const std::map<std::string, HostTensor>& in) {
  check_model_inputs(model, views_of(in));
}

Executor::Executor(Model model, ExecOptions opt) : impl_(new Impl) {
  impl_->model = std::move(model);
  impl_->opt = opt;
  impl_->build();
}
Executor::~Executor() = default;
const Model& Executor::model() const { return impl_->model; }
std::vector<HostTensor> Executor::run_views(const std::map<std::string, TensorView>& inputs) {
  return impl_->run(inputs);
}
std::vector<std::pair<DType, Shape>> Executor::output_types(const std::map<std::string, HostTensor>& inputs) {
  const std::map<std::string, TensorView> v = views_of(inputs);
  std::lock_guard<std::mutex> lock(impl_->call_mu);
  const auto& p = impl_->plan_for(v);
  std::vector<std::pair<DType, Shape>> r;
  for (int o : impl_->outputs) r.emplace_back(p.t[o].dtype, p.t[o].shape);
  return r;
}
std::vector<HostTensor> Executor::run(const std::map<std::string, HostTensor>& inputs) {
  return impl_->run(views_of(inputs));
}
std::vector<OpProfile> Executor::profile() const {
  std::vector<OpProfile> r;
  for (auto& nd : impl_->nodes) {
    OpProfile p = nd.prof;
    p.kernel = nd.at_plan ? "plan-time" : nd.op->is_view() ? "view" : nd.op->kernel();
    p.reason = nd.at_plan ? "inputs are constants or shapes" : nd.op->reason();
    r.push_back(p);
  }
  return r;
}
void Executor::set_profile(bool on) {
  std::lock_guard<std::mutex> lock(impl_->call_mu);
  impl_->opt.profile = on;
}
void Executor::reset_profile() {
  std::lock_guard<std::mutex> lock(impl_->call_mu);
  for (auto& nd : impl_->nodes) {
    nd.prof.total_ms = 0;
    nd.prof.calls = 0;
  }
}
MemoryStats Executor::memory() const {
  MemoryStats s;
  if (impl_->last_plan) {
    s.arena_bytes = impl_->last_plan->arena;
    s.peak_live_bytes = impl_->last_plan->peak_live;
  }
  for (auto& kv : impl_->model.tensors)
    if (kv.second.is_weight) s.weight_bytes += kv.second.nbytes;
  return s;
}

}  // namespace ne
