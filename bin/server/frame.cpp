#include "bin/server/frame.hpp"

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

namespace ne {
namespace server {

void FrameWriter::str(const std::string& s) {
  u32(uint32_t(s.size()));
  raw(s.data(), s.size());
}

void FrameWriter::tensor_header(const std::string& name, DType dt, const Shape& shape, uint64_t nbytes) {
  str(name);
  u8(uint8_t(dt));
  u8(uint8_t(shape.size()));
  for (int64_t d : shape) u64(uint64_t(d));
  u64(nbytes);
}

void FrameWriter::tensor(const std::string& name, const HostTensor& t) {
  NE_CHECK(t.shape.size() < 256, "tensor '", name, "' has rank ", t.shape.size(), " (at most 255 can be framed)");
  tensor_header(name, t.dtype, t.shape, t.bytes.size());
  raw(t.bytes.data(), t.bytes.size());
}

const void* FrameReader::take(size_t n) {
  NE_CHECK(n <= n_ - off_, "worker frame truncated: needs ", n, " bytes at offset ", off_, " of ", n_);
  const void* r = p_ + off_;
  off_ += n;
  return r;
}

uint8_t FrameReader::u8() { return *static_cast<const uint8_t*>(take(1)); }
uint32_t FrameReader::u32() {
  uint32_t v;
  std::memcpy(&v, take(4), 4);
  return v;
}
uint64_t FrameReader::u64() {
  uint64_t v;
  std::memcpy(&v, take(8), 8);
  return v;
}
double FrameReader::f64() {
  double v;
  std::memcpy(&v, take(8), 8);
  return v;
}
std::string FrameReader::str() {
  const uint32_t n = u32();
  const char* p = static_cast<const char*>(take(n));
  return std::string(p, n);
}

std::pair<std::string, HostTensor> FrameReader::tensor() {
  std::pair<std::string, HostTensor> r;
  r.first = str();
  const uint8_t dt = u8();
  NE_CHECK(dt <= uint8_t(DType::boolean), "worker frame: tensor '", r.first, "' has bad dtype ", int(dt));
  r.second.dtype = DType(dt);
  const uint8_t rank = u8();
  for (uint8_t k = 0; k < rank; ++k) r.second.shape.push_back(int64_t(u64()));
  const uint64_t nbytes = u64();
  NE_CHECK(nbytes == uint64_t(r.second.numel()) * dtype_size(r.second.dtype), "worker frame: tensor '", r.first,
           "' has ", nbytes, " bytes for shape ", shape_str(r.second.shape));
  const uint8_t* p = static_cast<const uint8_t*>(take(size_t(nbytes)));
  r.second.bytes.assign(p, p + nbytes);
  return r;
}

namespace {
struct Header {
  uint32_t magic, type;
  uint64_t size;
};

// deadline: wait for each read until then (poll), or forever when null; *late is set when it passed.
bool read_exact(int fd, void* dst, size_t n, const std::chrono::steady_clock::time_point* deadline = nullptr,
                bool* late = nullptr) {
  char* p = static_cast<char*>(dst);
  while (n) {
    if (deadline) {
      const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - std::chrono::steady_clock::now());
      pollfd pf{fd, POLLIN, 0};
      const int r = ::poll(&pf, 1, int(std::max<int64_t>(0, std::min<int64_t>(ms.count(), 1 << 30))));
      if (r < 0 && errno == EINTR) continue;
      if (r == 0) {
        *late = true;
        return false;
      }
    }
    ssize_t k = ::read(fd, p, n);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return false;
    p += k;
    n -= size_t(k);
  }
  return true;
}
}  // namespace

bool write_frame(int fd, FrameType type, const std::string& payload) {
  Header h{kFrameMagic, uint32_t(type), payload.size()};
  iovec iov[2] = {{&h, sizeof h}, {const_cast<char*>(payload.data()), payload.size()}};
  size_t total = sizeof h + payload.size(), sent = 0;
  int idx = 0;
  while (sent < total) {
    msghdr m{};
    m.msg_iov = iov + idx;
    m.msg_iovlen = size_t(2 - idx);
    ssize_t k = ::sendmsg(fd, &m, MSG_NOSIGNAL);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return false;
    sent += size_t(k);
    size_t kk = size_t(k);
    while (idx < 2 && kk >= iov[idx].iov_len) {
      kk -= iov[idx].iov_len;
      ++idx;
    }
    if (idx < 2) {
      iov[idx].iov_base = static_cast<char*>(iov[idx].iov_base) + kk;
      iov[idx].iov_len -= kk;
    }
  }
  return true;
}

bool read_frame(int fd, FrameType* type, std::string* payload) {
  bool late = false;
  return read_frame_until(fd, type, payload, nullptr, &late);
}

bool read_frame_until(int fd, FrameType* type, std::string* payload, const std::chrono::steady_clock::time_point* deadline,
                      bool* late) {
  *late = false;
  Header h;
  if (!read_exact(fd, &h, sizeof h, deadline, late)) return false;
  NE_CHECK(h.magic == kFrameMagic, "worker frame: bad magic 0x", std::hex, h.magic);
  NE_CHECK(h.size <= kMaxFramePayload, "worker frame: payload of ", h.size, " bytes is too large");
  *type = FrameType(h.type);
  payload->resize(size_t(h.size));
  return read_exact(fd, payload->data(), payload->size(), deadline, late);
}

}  // namespace server
}  // namespace ne
