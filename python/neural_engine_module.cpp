// The `neural_engine` Python module: compile, load, run, benchmark, profile and inspect from
// Python with numpy arrays in and out, over the same library as bin/neural_engine.
//
//   import neural_engine as ne
//   g = ne.compile("model.onnx", precision="int8")      # or ne.load("ir/conf.yaml", "ir/model.bin")
//   out = g.inference({"input_ids": ids, "attention_mask": mask})   # dict: output name -> ndarray
//
// Inputs of the model's dtype that are C-contiguous and aligned are read in place (no copy);
// anything else is converted first (numpy.ascontiguousarray / astype for Python lists and for
// integer inputs given as another integer type, arrays of the other byte order: '>f4', '>i8'). Outputs
// are new arrays the caller owns (the executor's output buffer is handed to numpy, not copied again).
// The GIL is released while the engine runs. One Graph used from several threads is safe: calls (and
// the first computation of Graph.outputs, cached after) are serialised under the Graph's mutex, taken
// with the GIL released (one activation arena per Graph); for parallel calls use one Graph per thread
// (weight_sharing=True shares the packed weights between them). threads=N: the Graph's executor is
// built and every call runs with N OpenMP threads, whichever Python thread calls it (OpenMP's thread
// count is a per-thread setting: it is set for the call and restored after); 0: the calling thread's
// OpenMP default (OMP_NUM_THREADS).
//
// Errors: ne::InputError (bad input names, dtypes, ranks, shapes) and errors reading files or
// models -> ValueError; other engine errors -> RuntimeError; the message is the one line the
// command line prints after "error: ".
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <omp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "report/cpu_report.hpp"
#include "report/run_report.hpp"
#include "common/error.hpp"
#include "common/ir.hpp"
#include "common/npy.hpp"
#include "compile/ne_dialect.hpp"
#include "compile/compile.hpp"
#include "executor/executor.hpp"
#include "executor/input_gen.hpp"
#include "tools/inspect/inspect.hpp"

namespace py = pybind11;

namespace {

// Errors raised while loading or compiling (a file, a model): ValueError.
struct LoadError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

py::object json_to_py(const nlohmann::ordered_json& j) {
  py::object loads = py::module_::import("json").attr("loads");
  return loads(j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace));
}

py::dtype numpy_dtype(ne::DType d) {
  switch (d) {
    case ne::DType::fp32: return py::dtype("float32");
    case ne::DType::fp16: return py::dtype("float16");
    case ne::DType::bf16: return py::dtype("uint16");  // numpy has no bfloat16: raw bits
    case ne::DType::s8: return py::dtype("int8");
    case ne::DType::u8: return py::dtype("uint8");
    case ne::DType::s32:
    case ne::DType::int32: return py::dtype("int32");
    case ne::DType::int64: return py::dtype("int64");
    case ne::DType::boolean: return py::dtype("bool");
  }
  return py::dtype("float32");
}

std::string dtype_str(ne::DType d) {
  if (d == ne::DType::bf16) return "bfloat16";
  return py::str(numpy_dtype(d)).cast<std::string>();
}

// The engine dtype of a numpy array, or false when it has none.
bool engine_dtype(const py::dtype& dt, ne::DType* out) {
  const char k = dt.kind();
  const size_t n = size_t(dt.itemsize());
  if (k == 'f' && n == 4) *out = ne::DType::fp32;
  else if (k == 'f' && n == 2) *out = ne::DType::fp16;
  else if (k == 'i' && n == 1) *out = ne::DType::s8;
  else if (k == 'u' && n == 1) *out = ne::DType::u8;
  else if (k == 'i' && n == 4) *out = ne::DType::int32;
  else if (k == 'i' && n == 8) *out = ne::DType::int64;
  else if (k == 'b' && n == 1) *out = ne::DType::boolean;
  else return false;
  return true;
}

// An output HostTensor handed to numpy without a copy: the capsule owns the bytes.
py::array to_numpy(ne::HostTensor&& h) {
  auto* bytes = new std::vector<uint8_t>(std::move(h.bytes));
  py::capsule owner(bytes, [](void* p) { delete static_cast<std::vector<uint8_t>*>(p); });
  py::dtype dt = numpy_dtype(h.dtype);
  std::vector<py::ssize_t> shape(h.shape.begin(), h.shape.end());
  std::vector<py::ssize_t> strides(shape.size());
  py::ssize_t st = dt.itemsize();
  for (size_t i = shape.size(); i-- > 0;) {
    strides[i] = st;
    st *= std::max<py::ssize_t>(shape[i], 1);
  }
  return py::array(dt, shape, strides, bytes->data(), owner);
}

// OpenMP threads for one call: omp_set_num_threads sets the calling thread's count (each thread has
// its own), so it is set in the thread that runs and the previous value restored after.
class OmpThreads {
 public:
  explicit OmpThreads(int n) : prev_(omp_get_max_threads()), set_(n > 0) {
    if (set_) omp_set_num_threads(n);
  }
  ~OmpThreads() {
    if (set_) omp_set_num_threads(prev_);
  }
  OmpThreads(const OmpThreads&) = delete;
  OmpThreads& operator=(const OmpThreads&) = delete;

 private:
  int prev_;
  bool set_;
};

// Arrays of the other byte order ('>f4', '>i8' on x86) as native-order copies: the engine reads
// native (little-endian) values, so such an array would be misread in place.
py::array native_byte_order(py::array a) {
  py::dtype dt = a.dtype();
  if (dt.attr("isnative").cast<bool>()) return a;
  return a.attr("astype")(dt.attr("newbyteorder")("=")).cast<py::array>();
}

// A temporary directory (mkdtemp), removed with everything in it (std::filesystem) when done.
struct TempDir {
  std::string path;
  TempDir() {
    const char* t = std::getenv("TMPDIR");
    std::string tmpl = std::string(t && *t ? t : "/tmp") + "/neural_engine_py.XXXXXX";
    std::vector<char> b(tmpl.begin(), tmpl.end());
    b.push_back(0);
    if (!::mkdtemp(b.data())) throw std::runtime_error("cannot create a temporary directory under " + tmpl);
    path = b.data();
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
    if (ec) std::fprintf(stderr, "warning: could not remove %s: %s\n", path.c_str(), ec.message().c_str());
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
};

class Graph {
 public:
  // Called with the GIL released. The executor picks kernels and thread splits for the thread
  // count it sees when built (omp_get_max_threads): built under the Graph's.
  Graph(ne::Model model, ne::ExecOptions eo, std::string mapped_path, int threads)
      : mapped_path_(std::move(mapped_path)), eo_(eo), threads_(threads) {
    OmpThreads t(threads_);
    ex_ = std::make_unique<ne::Executor>(std::move(model), eo_);
  }

  const ne::Model& model() const { return ex_->model(); }

  py::list io_list(const std::vector<std::string>& names) const {
    py::list l;
    for (auto& n : names) {
      py::dict d;
      d["name"] = n;
      const ne::TensorInfo* ti = model().find(n);
      if (ti) {
        d["dtype"] = dtype_str(ti->dtype);
        if (ti->has_shape) d["shape"] = py::cast(ti->shape);
        else d["shape"] = py::none();
      } else {
        d["dtype"] = py::none();
        d["shape"] = py::none();
      }
      l.append(d);
    }
    return l;
  }
  py::list inputs() const { return io_list(model().input_names()); }

  // Outputs: dtype and shape from the declared info where the IR has it, else from planning two
  // generated input shapes (batch 1 x seq 8 and batch 2 x seq 5): a dimension that differs
  // between them is dynamic (-1). Computed once, by the first caller (others wait on mu_, taken
  // with the GIL released so that the one computing never waits for the GIL it does not need).
  py::list outputs() {
    const std::vector<std::string> names = model().output_names();
    {
      py::gil_scoped_release release;
      std::lock_guard<std::mutex> lock(mu_);
      if (!out_known_) compute_out_types();
    }
    py::list l = io_list(names);
    for (size_t i = 0; i < names.size() && i < out_types_.size(); ++i) {
      py::dict d = l[i].cast<py::dict>();
      const ne::TensorInfo* ti = model().find(names[i]);
      if (!ti || d["dtype"].is_none()) d["dtype"] = dtype_str(out_types_[i].first);
      if (!ti || !ti->has_shape) d["shape"] = py::cast(out_types_[i].second);
    }
    return l;
  }

 private:
  // Under mu_, without the GIL. out_types_ is written here only, once; read after out_known_.
  void compute_out_types() {
    OmpThreads t(threads_);
    try {
      std::mt19937 r1{1}, r2{2};
      auto a = ex_->output_types(ne::generate_inputs(model(), 1, 8, r1));
      auto b = ex_->output_types(ne::generate_inputs(model(), 2, 5, r2));
      for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
        ne::Shape s = a[i].second;
        if (b[i].second.size() != s.size()) s.assign(s.size(), -1);
        for (size_t d = 0; d < s.size() && d < b[i].second.size(); ++d)
          if (s[d] != b[i].second[d]) s[d] = -1;
        out_types_.emplace_back(a[i].first, s);
      }
    } catch (const std::exception&) {
      out_types_.clear();  // inputs cannot be generated for this model: declared info only
    }
    out_known_ = true;
  }

 public:
  // Runs on numpy inputs (list in model input order, or dict by name); dict of outputs.
  py::dict inference(py::object inputs) {
    const std::vector<std::string> names = model().input_names();
    std::vector<std::pair<std::string, py::object>> given;
    if (py::isinstance<py::dict>(inputs)) {
      for (auto kv : inputs.cast<py::dict>()) {
        if (!py::isinstance<py::str>(kv.first))
          throw ne::InputError("inputs: dict keys must be input names (str), got " +
                               std::string(py::str(py::type::of(kv.first).attr("__name__"))));
        given.emplace_back(kv.first.cast<std::string>(), py::reinterpret_borrow<py::object>(kv.second));
      }
    } else if (py::isinstance<py::list>(inputs) || py::isinstance<py::tuple>(inputs)) {
      py::sequence seq = inputs.cast<py::sequence>();
      if (size_t(py::len(seq)) != names.size()) {
        std::string all;
        for (auto& n : names) all += (all.empty() ? "" : ", ") + n;
        throw ne::InputError(ne::str_cat("inputs: ", py::len(seq), " arrays given, the model has ", names.size(),
                                         " inputs (", all, ")"));
      }
      for (size_t i = 0; i < names.size(); ++i) given.emplace_back(names[i], seq[i]);
    } else {
      throw ne::InputError("inputs: expected a list (in the model's input order) or a dict of numpy arrays, got " +
                           std::string(py::str(py::type::of(inputs).attr("__name__"))));
    }
    std::vector<std::string> copied;  // inputs converted or copied before the run
    std::vector<py::array> keep;  // the arrays read in place, alive until run() returns
    keep.reserve(given.size());
    std::map<std::string, ne::TensorView> views;
    py::module_ np = py::module_::import("numpy");
    for (auto& g : given) {
      const ne::TensorInfo* ti = model().find(g.first);
      py::array a;
      if (py::isinstance<py::array>(g.second)) {
        a = native_byte_order(g.second.cast<py::array>());
      } else {
        // A Python list / scalar: the model's dtype.
        py::object want = ti ? py::object(numpy_dtype(ti->dtype)) : py::object(py::none());
        a = np.attr("asarray")(g.second, want).cast<py::array>();
      }
      ne::DType dt;
      if (!engine_dtype(a.dtype(), &dt))
        throw ne::InputError(ne::str_cat("input '", g.first, "': numpy dtype ", std::string(py::str(a.dtype())),
                                         " is not one the engine takes",
                                         ti ? " (the model expects " + dtype_str(ti->dtype) + ")" : std::string()));
      // Integer ids given as another integer type (int64 from torch / numpy defaults): converted
      // when every value fits; anything else must match the model.
      if (ti && dt != ti->dtype && a.dtype().kind() == 'i' &&
          (ti->dtype == ne::DType::int32 || ti->dtype == ne::DType::int64)) {
        py::array conv = a.attr("astype")(numpy_dtype(ti->dtype)).cast<py::array>();
        if (!np.attr("array_equal")(conv, a).cast<bool>())
          throw ne::InputError(ne::str_cat("input '", g.first, "': values do not fit the model's dtype ",
                                           dtype_str(ti->dtype)));
        a = conv;
        dt = ti->dtype;
      }
      const bool contiguous = (a.flags() & py::array::c_style) && a.attr("flags").attr("aligned").cast<bool>();
      if (!contiguous) a = np.attr("ascontiguousarray")(a).cast<py::array>();
      if (!contiguous || !a.is(g.second)) copied.push_back(g.first);
      ne::TensorView v;
      v.dtype = dt;
      v.shape.assign(a.shape(), a.shape() + a.ndim());
      v.data = a.data();
      v.nbytes = size_t(a.nbytes());
      keep.push_back(a);
      views[g.first] = std::move(v);
    }
    std::vector<ne::HostTensor> outs;
    {
      py::gil_scoped_release release;
      std::lock_guard<std::mutex> lock(mu_);
      OmpThreads t(threads_);
      outs = ex_->run_views(views);
    }
    copied_ = std::move(copied);
    py::dict r;
    const std::vector<std::string> on = model().output_names();
    for (size_t i = 0; i < outs.size(); ++i) r[py::str(on[i])] = to_numpy(std::move(outs[i]));
    return r;
  }

  std::map<std::string, ne::HostTensor> generated(int batch, int seq, int seed) {
    if (batch <= 0 || seq <= 0) throw ne::InputError("batch_size and seq_len must be positive");
    std::mt19937 rng{uint32_t(seed)};
    return ne::generate_inputs(model(), batch, seq, rng);
  }

  // The inputs `neural_engine --batch_size --seq_len --seed` generates, as numpy arrays.
  py::dict generate_inputs(int batch, int seq, int seed) {
    auto in = generated(batch, seq, seed);
    py::dict d;
    for (auto& kv : in) d[py::str(kv.first)] = to_numpy(std::move(kv.second));
    return d;
  }

  // Timed iterations on generated inputs: the same dict as `neural_engine --report_json`.
  py::object benchmark(int batch, int seq, int iterations, int warmup, int seed, bool profile) {
    if (iterations < 0 || warmup < 0) throw ne::InputError("iterations and warmup must be >= 0");
    auto in = generated(batch, seq, seed);
    nlohmann::ordered_json j;
    {
      // The whole sequence under mu_: another thread's call must not land among the timed runs
      // or switch profiling between them.
      py::gil_scoped_release release;
      std::lock_guard<std::mutex> lock(mu_);
      OmpThreads t(threads_);
      ex_->set_profile(profile);
      for (int i = 0; i < warmup; ++i) ex_->run(in);
      ex_->reset_profile();
      std::vector<double> lat;
      using clk = std::chrono::steady_clock;
      for (int i = 0; i < iterations; ++i) {
        auto t0 = clk::now();
        ex_->run(in);
        lat.push_back(std::chrono::duration<double, std::milli>(clk::now() - t0).count());
      }
      j = ne::run_report(*ex_, batch, seq, iterations, lat, mapped_path_);
      ex_->set_profile(eo_.profile);
    }
    return json_to_py(j);
  }

  // The per-operator table (kernel that ran, why, ms per iteration, share) of a timed run.
  py::object profile(int batch, int seq, int iterations, int warmup, int seed) {
    py::object rep = benchmark(batch, seq, iterations, warmup, seed, true);
    return rep["profile"];
  }

  void save(const std::string& dir) {
    ::mkdir(dir.c_str(), 0755);
    ne::save_ir(model(), dir);
  }

  std::vector<std::string> copied_inputs() const { return copied_; }
  std::string source() const { return model().source; }
  int threads() const { return threads_; }

 private:
  std::unique_ptr<ne::Executor> ex_;
  std::string mapped_path_;
  ne::ExecOptions eo_;
  int threads_ = 0;  // OpenMP threads of this Graph's calls; 0: the calling thread's default
  std::vector<std::string> copied_;  // written and read with the GIL held
  // Serialises the Graph's calls, benchmark sequences and the lazy outputs below. Always taken
  // after releasing the GIL (never wait for it while holding the GIL: the holder may need the GIL).
  std::mutex mu_;
  bool out_known_ = false;  // under mu_
  std::vector<std::pair<ne::DType, ne::Shape>> out_types_;  // written once under mu_
};

// A model the executor refuses (unknown operators, inconsistent shapes) is a bad file: ValueError.
std::unique_ptr<Graph> make_graph(ne::Model m, const ne::ExecOptions& eo, const std::string& mapped, int threads) {
  try {
    return std::make_unique<Graph>(std::move(m), eo, mapped, threads);
  } catch (const ne::Error& e) {
    throw LoadError(e.what());
  }
}

ne::ExecOptions exec_options(py::object sparse_threshold, int threads) {
  if (threads < 0) throw ne::InputError("threads must be >= 0 (0: OMP_NUM_THREADS), got " + std::to_string(threads));
  ne::ExecOptions eo = ne::ExecOptions::from_env();  // NE_SPARSE_THRESHOLD, NE_VERBOSE
  if (!sparse_threshold.is_none()) {
    double t = sparse_threshold.cast<double>();
    if (!(t >= 0)) throw ne::InputError("sparse_threshold must be >= 0");
    eo.op.sparse_threshold = float(t);
  }
  return eo;
}

void set_weight_sharing(bool on) {
  if (on) ::setenv("WEIGHT_SHARING", "1", 1);
}

// Writes calibration sets (a list of dicts of arrays) as DIR/<set>/<input>.npy.
void write_calib(const py::list& sets, const std::string& dir) {
  py::module_ np = py::module_::import("numpy");
  int k = 0;
  for (auto s : sets) {
    if (!py::isinstance<py::dict>(s)) throw ne::InputError("calib_inputs: expected a list of dicts of arrays");
    std::string sd = dir + "/set_" + std::to_string(k++);
    ::mkdir(sd.c_str(), 0755);
    for (auto kv : s.cast<py::dict>()) {
      std::string name = kv.first.cast<std::string>();
      // Native byte order: the engine's .npy reader takes little-endian arrays only.
      py::array a = native_byte_order(np.attr("ascontiguousarray")(kv.second).cast<py::array>());
      np.attr("save")(sd + "/" + name + ".npy", a);
    }
  }
}

std::unique_ptr<Graph> compile_model(py::object src, const std::string& precision, py::object calib_dir,
                                     py::object calib_inputs, bool slim, bool transpose, py::object attention_dtype,
                                     py::object sparse_threshold, int threads, bool group_channels) {
  ne::CompileOptions co;
  std::string prec = precision;
  if (prec == "int8_dynamic") {
    co.precision = "int8";
    co.int8_mode = "dynamic";
  } else if (prec == "fp32" || prec == "int8" || prec == "bf16") {
    co.precision = prec;
  } else {
    throw ne::InputError("precision: expected fp32, int8, int8_dynamic or bf16, got '" + prec + "'");
  }
  co.slim = slim;
  co.group_channels = group_channels;
  co.transpose = transpose;
  if (!attention_dtype.is_none()) co.attention_dtype = attention_dtype.cast<std::string>();
  std::unique_ptr<TempDir> tmp;
  if (!calib_dir.is_none()) co.calib_dir = py::str(calib_dir).cast<std::string>();
  if (!calib_inputs.is_none()) {
    if (!co.calib_dir.empty()) throw ne::InputError("give calib_dir or calib_inputs, not both");
    tmp = std::make_unique<TempDir>();
    std::string d = tmp->path + "/calib";
    ::mkdir(d.c_str(), 0755);
    write_calib(calib_inputs.cast<py::list>(), d);
    co.calib_dir = d;
  }
  std::string path;
  if (py::isinstance<py::bytes>(src)) {
    if (!tmp) tmp = std::make_unique<TempDir>();
    path = tmp->path + "/model.onnx";
    std::string b = src.cast<std::string>();
    std::ofstream f(path, std::ios::binary);
    f.write(b.data(), std::streamsize(b.size()));
    f.close();
    if (!f.good()) throw std::runtime_error("cannot write " + path);
  } else {
    path = py::str(src).cast<std::string>();  // str or os.PathLike
  }
  ne::ExecOptions eo = exec_options(sparse_threshold, threads);
  ne::Model m;
  {
    py::gil_scoped_release release;
    OmpThreads t(threads);  // int8 calibration runs the model
    try {
      m = ne::compile_onnx(path, co);
    } catch (const ne::InputError&) {
      throw;
    } catch (const ne::Error& e) {
      throw LoadError(e.what());
    }
  }
  if (py::isinstance<py::bytes>(src)) m.source = "<onnx bytes>";
  py::gil_scoped_release release;
  return make_graph(std::move(m), eo, "", threads);
}

std::unique_ptr<Graph> load_model(const std::string& conf, const std::string& bin, bool weight_sharing,
                                  py::object sparse_threshold, int threads) {
  set_weight_sharing(weight_sharing);
  ne::ExecOptions eo = exec_options(sparse_threshold, threads);
  py::gil_scoped_release release;
  ne::Model m;
  try {
    m = ne::load_model_ir(conf, bin);
  } catch (const ne::Error& e) {
    throw LoadError(e.what());
  }
  return make_graph(std::move(m), eo, bin, threads);
}

py::object inspect_any(py::object what, py::object weight, py::object sparse_threshold) {
  ne::Model owned;
  const ne::Model* m = nullptr;
  if (py::isinstance<Graph>(what)) {
    m = &what.cast<Graph&>().model();
  } else {
    std::string p = py::str(what).cast<std::string>();
    try {
      if (!weight.is_none()) owned = ne::load_model_ir(p, py::str(weight).cast<std::string>());
      else owned = ne::compile_onnx(p, {});
    } catch (const ne::Error& e) {
      throw LoadError(e.what());
    }
    m = &owned;
  }
  ne::inspect::Options o;
  o.images = false;
  if (!sparse_threshold.is_none()) o.op.sparse_threshold = sparse_threshold.cast<float>();
  ne::inspect::Report r = ne::inspect::inspect_model(*m, o);
  return py::module_::import("json").attr("loads")(ne::inspect::json_report(r));
}

}  // namespace

// Messages can carry bytes from a model (names): invalid UTF-8 is replaced, never an error.
void set_error(PyObject* type, const char* msg) {
  PyObject* u = PyUnicode_DecodeUTF8(msg, Py_ssize_t(std::strlen(msg)), "replace");
  if (!u) {
    PyErr_Clear();
    PyErr_SetString(type, "(message not decodable)");
    return;
  }
  PyErr_SetObject(type, u);
  Py_DECREF(u);
}

PYBIND11_MODULE(neural_engine, m) {
  m.doc() = "Structured-sparse transformer inference on x86 CPUs (compile ONNX, load IR, run, benchmark).";
  m.attr("__version__") = "0.4.0";

  // Exceptions: the engine's one-line messages, as the command line prints them.
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const ne::InputError& e) {
      set_error(PyExc_ValueError, e.what());
    } catch (const LoadError& e) {
      set_error(PyExc_ValueError, e.what());
    } catch (const std::bad_alloc&) {
      PyErr_SetString(PyExc_MemoryError, "out of memory");
    } catch (const std::exception& e) {
      set_error(PyExc_RuntimeError, e.what());
    }
  });

  py::class_<Graph>(m, "Graph", "A compiled or loaded model with its executor (one activation arena).")
      .def("inference", &Graph::inference, py::arg("inputs"),
           "Runs the model. inputs: list of arrays in the model's input order, or dict name -> array.\n"
           "Returns a dict output name -> numpy array (owned by the caller).")
      .def("__call__", &Graph::inference, py::arg("inputs"))
      .def_property_readonly("inputs", &Graph::inputs, "[{name, dtype, shape}] (-1 = dynamic)")
      .def_property_readonly("outputs", &Graph::outputs, "[{name, dtype, shape}] (-1 = dynamic)")
      .def_property_readonly("source", &Graph::source)
      .def_property_readonly("threads", &Graph::threads,
                             "OpenMP threads of this Graph's calls (threads=); 0: the calling thread's default.")
      .def("__repr__",
           [](const Graph& g) {
             std::string s = "<neural_engine.Graph '" + g.source() + "' inputs:";
             for (auto& n : g.model().input_names()) s += " " + n;
             return s + ">";
           })
      .def_property_readonly("copied_inputs", &Graph::copied_inputs,
                             "Names of the inputs of the last call that were converted or copied (not C-contiguous,\n"
                             "or of another integer dtype, or not arrays); the others were read in place.")
      .def("benchmark", &Graph::benchmark, py::arg("batch_size") = 1, py::arg("seq_len") = 128,
           py::arg("iterations") = 10, py::arg("warmup") = 2, py::arg("seed") = 1, py::arg("profile") = true,
           "Timed runs on generated inputs; the dict `neural_engine --report_json` writes.\n"
           "profile=False: no per-operator timing (its clock reads; ms_per_iter 0).")
      .def("profile", &Graph::profile, py::arg("batch_size") = 1, py::arg("seq_len") = 128,
           py::arg("iterations") = 10, py::arg("warmup") = 2, py::arg("seed") = 1,
           "Per-operator table of a timed run: [{name, type, kernel, reason, ms_per_iter, share}].")
      .def("generate_inputs", &Graph::generate_inputs, py::arg("batch_size") = 1, py::arg("seq_len") = 128,
           py::arg("seed") = 1,
           "The inputs `neural_engine --batch_size --seq_len --seed` generates (ids within the embedding table,\n"
           "masks all ones, token types zero), as a dict of numpy arrays.")
      .def("save", &Graph::save, py::arg("dir"), "Writes DIR/conf.yaml and DIR/model.bin.");

  m.def("compile", &compile_model, py::arg("model"), py::arg("precision") = "fp32", py::arg("calib_dir") = py::none(),
        py::arg("calib_inputs") = py::none(), py::arg("slim") = false, py::arg("transpose") = false,
        py::arg("attention_dtype") = py::none(), py::arg("sparse_threshold") = py::none(), py::arg("threads") = 0,
        py::arg("group_channels") = false,
        "Compiles an ONNX model (a path, or the model's bytes) into a Graph.\n"
        "precision: fp32 | int8 (static, calibrated on calib_dir / calib_inputs or generated inputs) |\n"
        "int8_dynamic | bf16. threads: OpenMP threads this Graph runs with, whichever Python thread calls it\n"
        "(0: OMP_NUM_THREADS).\n"
        "group_channels: permute output channels for AMX z16 (neural_engine_compile --group_channels).");
  m.def("load", &load_model, py::arg("config"), py::arg("weight"), py::arg("weight_sharing") = false,
        py::arg("sparse_threshold") = py::none(), py::arg("threads") = 0,
        "Loads an IR (conf.yaml + model.bin). weight_sharing: packed weights in NE_CACHE_DIR, shared between\n"
        "Graphs and processes (sets WEIGHT_SHARING=1 for this process). threads: as in compile().");
  m.def("inspect", &inspect_any, py::arg("model"), py::arg("weight") = py::none(),
        py::arg("sparse_threshold") = py::none(),
        "The sparsity report's data (as neural_engine_inspect's report.json) of a Graph, an ONNX path, or an\n"
        "IR (conf.yaml path + weight=model.bin path).");
  m.def("cpu", []() { return json_to_py(ne::cpu_report()); }, "{model, isa, isa_detected, amx}");
}
