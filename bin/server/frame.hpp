// The front end <-> worker wire format over a socketpair (SOCK_STREAM): length-prefixed frames.
//
//   frame   = magic u32 "NEF1" | type u32 | payload_size u64 | payload
//   string  = size u32 | bytes
//   tensor  = name string | dtype u8 | rank u8 | dims i64[rank] | nbytes u64 | bytes
//
//   load   (front end -> worker)  n u32, n x (name string, conf string, weight string),
//                                 sparse_threshold f64, warmup string ("BxS,BxS"),
//                                 max_activation_bytes u64 (0: none)
//   ready  (worker -> front end)  pid u32, n u32, n x (m u32, m x output (name string, dtype u8
//                                 (255 unknown), rank u8 (255 unknown), dims i64[rank]))
//   run    (front end -> worker)  batch id u64, model u32, n u32, n x tensor
//   result (worker -> front end)  batch id u64, status u32 (0 ok, 1 ne::Error, 2 other, 3 over a
//                                 limit: ne::ResourceError), then
//                                 n u32, n x tensor (ok) or message string (error)
//   fatal  (worker -> front end)  message string (load failed; the worker exits)
// All integers little-endian (the host's order: both ends are the same binary on one machine).
// A reader checks every size against the bytes it has and throws ne::Error on a short or bad
// frame; a peer that closes mid-frame reads as end of stream.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "executor/executor.hpp"

namespace ne {
namespace server {

enum class FrameType : uint32_t { load = 1, ready = 2, run = 3, result = 4, fatal = 5 };

constexpr uint32_t kFrameMagic = 0x3146454e;  // "NEF1"
constexpr uint64_t kMaxFramePayload = uint64_t(1) << 36;

class FrameWriter {
 public:
  void u8(uint8_t v) { raw(&v, 1); }
  void u32(uint32_t v) { raw(&v, 4); }
  void u64(uint64_t v) { raw(&v, 8); }
  void f64(double v) { raw(&v, 8); }
  void str(const std::string& s);
  // A tensor whose bytes are written separately (begin_tensor, then raw() exactly nbytes).
  void tensor_header(const std::string& name, DType dt, const Shape& shape, uint64_t nbytes);
  void tensor(const std::string& name, const HostTensor& t);
  void raw(const void* p, size_t n) { buf_.append(static_cast<const char*>(p), n); }
  std::string& buffer() { return buf_; }

 private:
  std::string buf_;
};

class FrameReader {
 public:
  FrameReader(const std::string& payload) : p_(payload.data()), n_(payload.size()) {}
  uint8_t u8();
  uint32_t u32();
  uint64_t u64();
  double f64();
  std::string str();
  std::pair<std::string, HostTensor> tensor();
  bool done() const { return off_ == n_; }

 private:
  const void* take(size_t n);
  const char* p_;
  size_t n_, off_ = 0;
};

// Writes one frame (header + payload); false if the peer is gone (EPIPE, ECONNRESET).
bool write_frame(int fd, FrameType type, const std::string& payload);
// Reads one frame; false at end of stream (the peer closed or died, also mid-frame). Throws
// ne::Error on a bad magic or an oversized payload.
bool read_frame(int fd, FrameType* type, std::string* payload);
// The same within a deadline (null: none): false with *late set when it passed first.
bool read_frame_until(int fd, FrameType* type, std::string* payload, const std::chrono::steady_clock::time_point* deadline,
                      bool* late);

}  // namespace server
}  // namespace ne
