// Element-wise Where (select under broadcasting) and Cast, with ONNX semantics.
#include <cmath>
#include <type_traits>

#include "executor/ops/generic_elementwise.hpp"
#include "executor/ops/generic_util.hpp"

namespace ne {
namespace generic {
namespace {

// ---------------------------------------------------------------- Where
class WhereOp : public GenericOp {
 public:
  using GenericOp::GenericOp;

  void reshape(const TensorList& in, const TensorList& out) override {
    expect_inputs(in, 3, 3);
    if (in[0]->dtype != DType::boolean)
      op_error("condition '", in[0]->name, "' must be bool, got ", dtype_name(in[0]->dtype));
    if (in[1]->dtype != in[2]->dtype)
      op_error("'", in[1]->name, "' and '", in[2]->name, "' must have the same dtype, got ",
               dtype_name(in[1]->dtype), " and ", dtype_name(in[2]->dtype));
    Shape s;
    if (!broadcast_shape(in[0]->shape, in[1]->shape, &s) || !broadcast_shape(s, in[2]->shape, &s))
      op_error("shapes ", shape_str(in[0]->shape), ", ", shape_str(in[1]->shape), " and ",
               shape_str(in[2]->shape), " do not broadcast");
    out[0]->shape = s;
    out[0]->dtype = in[1]->dtype;
  }

  void forward(const TensorList& in, const TensorList& out) override {
    Shape s;
    broadcast_shape(in[0]->shape, in[1]->shape, &s);
    broadcast_shape(s, in[2]->shape, &s);
    auto p = make_bcast_plan<3>({&in[0]->shape, &in[1]->shape, &in[2]->shape}, s);
    const int64_t sc = p.inner_stride(0), sx = p.inner_stride(1), sy = p.inner_stride(2);
    const uint8_t* c = in[0]->ptr<uint8_t>();
    dispatch_bytes(in[1]->dtype, [&](auto tag) {
      using T = typename decltype(tag)::type;
      const T *x = in[1]->ptr<T>(), *y = in[2]->ptr<T>();
      T* o = out[0]->ptr<T>();
      bcast_run<3>(p, [&](const int64_t* off, int64_t oo, int64_t n) {
        const uint8_t* cc = c + off[0];
        const T *xx = x + off[1], *yy = y + off[2];
        T* z = o + oo;
        if (sc && sx && sy) {
#pragma omp simd
          for (int64_t i = 0; i < n; ++i) z[i] = cc[i] ? xx[i] : yy[i];
        } else {
          for (int64_t i = 0; i < n; ++i) z[i] = cc[i * sc] ? xx[i * sx] : yy[i * sy];
        }
      });
    });
  }
};

// ---------------------------------------------------------------- Cast
// Sources are read as float (fp32/bf16/fp16) or int64 (integers, bool), then stored.
template <class D>
void store_from_float(const float* v, D* d, int64_t n, DType to) {
  flat_loop(n, [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) {
      const float f = v[i];
      if (to == DType::boolean) d[i] = D(f != 0.f);
      else if (to == DType::bf16) d[i] = D(fp32_to_bf16(f));
      else if (to == DType::fp16) d[i] = D(fp32_to_fp16(f));
      else if constexpr (std::is_floating_point_v<D>) d[i] = f;
      else d[i] = clamp_cast<D>(f);  // truncates toward zero; NaN -> 0; saturates
    }
  });
}

class CastOp : public GenericOp {
 public:
  explicit CastOp(const OpInfo& i) : GenericOp(i) {
    if (!i.has_attr("to")) op_error("attribute 'to' is required (a dtype name)");
    if (!parse_dtype(i.attr("to"), &to_))
      op_error("unknown dtype '", i.attr("to"),
               "' in 'to' (expected fp32 bf16 fp16 s8 u8 int32 int64 bool)");
  }

  void reshape(const TensorList& in, const TensorList& out) override {
    expect_inputs(in, 1, 1);
    out[0]->shape = in[0]->shape;
    out[0]->dtype = to_;
  }

  void forward(const TensorList& in, const TensorList& out) override {
    const Tensor& x = *in[0];
    Tensor& y = *out[0];
    const int64_t n = x.numel();
    if (n == 0) return;
    if (x.dtype == y.dtype || (is_integer(x.dtype) && is_integer(y.dtype) &&
                               dtype_size(x.dtype) == 4 && dtype_size(y.dtype) == 4)) {
      std::memcpy(y.data, x.data, x.nbytes());
      return;
    }
    const bool src_float = x.dtype == DType::fp32 || x.dtype == DType::bf16 || x.dtype == DType::fp16;
    if (src_float) {
      std::vector<float> tmp;
      const float* f = x.ptr<float>();
      if (x.dtype != DType::fp32) {
        tmp.resize(size_t(n));
        const uint16_t* h = x.ptr<uint16_t>();
        const bool bf = x.dtype == DType::bf16;
        flat_loop(n, [&](int64_t s, int64_t e) {
          for (int64_t i = s; i < e; ++i) tmp[i] = bf ? bf16_to_fp32(h[i]) : fp16_to_fp32(h[i]);
        });
        f = tmp.data();
      }
      switch (y.dtype) {
        case DType::fp32: std::memcpy(y.data, f, size_t(n) * 4); break;
        case DType::bf16: case DType::fp16: store_from_float(f, y.ptr<uint16_t>(), n, y.dtype); break;
        case DType::boolean: store_from_float(f, y.ptr<uint8_t>(), n, y.dtype); break;
        case DType::s8: store_from_float(f, y.ptr<int8_t>(), n, y.dtype); break;
        case DType::u8: store_from_float(f, y.ptr<uint8_t>(), n, y.dtype); break;
        case DType::int32: case DType::s32: store_from_float(f, y.ptr<int32_t>(), n, y.dtype); break;
        case DType::int64: store_from_float(f, y.ptr<int64_t>(), n, y.dtype); break;
      }
      return;
    }
    // Integer / bool source.
    auto load = [&](auto tag) {
      using S = typename decltype(tag)::type;
      const S* s = x.ptr<S>();
      auto put = [&](auto dtag) {
        using D = typename decltype(dtag)::type;
        D* d = y.ptr<D>();
        const DType to = y.dtype;
        flat_loop(n, [&](int64_t b, int64_t e) {
          for (int64_t i = b; i < e; ++i) {
            const int64_t v = int64_t(s[i]);
            if (to == DType::boolean) d[i] = D(v != 0);
            else if (to == DType::bf16) d[i] = D(fp32_to_bf16(float(v)));
            else if (to == DType::fp16) d[i] = D(fp32_to_fp16(float(v)));
            else d[i] = D(v);  // integers wrap (two's complement), floats round to nearest
          }
        });
      };
      switch (y.dtype) {
        case DType::fp32: put(Tag<float>{}); break;
        case DType::bf16: case DType::fp16: put(Tag<uint16_t>{}); break;
        case DType::boolean: case DType::u8: put(Tag<uint8_t>{}); break;
        case DType::s8: put(Tag<int8_t>{}); break;
        case DType::int32: case DType::s32: put(Tag<int32_t>{}); break;
        case DType::int64: put(Tag<int64_t>{}); break;
      }
    };
    switch (x.dtype) {
      case DType::boolean: case DType::u8: load(Tag<uint8_t>{}); break;
      case DType::s8: load(Tag<int8_t>{}); break;
      case DType::int32: case DType::s32: load(Tag<int32_t>{}); break;
      default: load(Tag<int64_t>{}); break;
    }
  }

 private:
  DType to_ = DType::fp32;
};

}  // namespace

NE_REGISTER_OP("Where", WhereOp);
NE_REGISTER_OP("Cast", CastOp);

}  // namespace generic
}  // namespace ne
