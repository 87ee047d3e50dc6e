#include "bin/server/http_conn.hpp"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jemalloc/jemalloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "bin/server/codec.hpp"
#include "common/error.hpp"

namespace ne {
namespace server {
namespace {

using Clock = std::chrono::steady_clock;

int ms_left(Clock::time_point t) {
  const auto d = std::chrono::ceil<std::chrono::milliseconds>(t - Clock::now()).count();
  return int(std::max<int64_t>(0, std::min<int64_t>(d, 1 << 30)));
}

// Waits until fd is ready for `events` or `ms` pass; false on timeout or error.
bool wait_fd(int fd, short events, int ms) {
  pollfd p{fd, events, 0};
  for (;;) {
    const int r = ::poll(&p, 1, ms);
    if (r > 0) return true;
    if (r == 0 || errno != EINTR) return false;
  }
}

std::string ssl_error() {
  char buf[256] = {0};
  const unsigned long e = ERR_get_error();
  if (!e) return "no OpenSSL error";
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

// One connection's byte stream for httplib (plain or TLS), with the request deadline.
class ConnStream : public httplib::Stream {
 public:
  ConnStream(int fd, SSL* ssl, const ConnOptions& o, ConnStats& st) : fd_(fd), ssl_(ssl), o_(o), st_(st) {}

  void begin_request() {
    timed_out_ = false;
    deadline_ = Clock::now() + std::chrono::milliseconds(o_.request_timeout_ms);
  }
  void close_after() { close_ = true; }
  bool closing() const { return close_; }
  bool timed_out() const { return timed_out_; }
  bool buffered() const { return pos_ < len_ || (ssl_ && SSL_pending(ssl_) > 0); }

  bool is_readable() const override { return buffered() || wait_fd(fd_, POLLIN, o_.io_timeout_ms); }
  bool is_writable() const override { return wait_fd(fd_, POLLOUT, o_.io_timeout_ms); }

  ssize_t read(char* p, size_t n) override {
    if (pos_ >= len_) {
      if (n >= sizeof buf_) return read_some(p, n);
      const ssize_t r = read_some(buf_, sizeof buf_);
      if (r <= 0) return r;
      pos_ = 0;
      len_ = size_t(r);
    }
    const size_t k = std::min(n, len_ - pos_);
    std::memcpy(p, buf_ + pos_, k);
    pos_ += k;
    return ssize_t(k);
  }

  ssize_t write(const char* p, size_t n) override {
    const auto until = Clock::now() + std::chrono::milliseconds(o_.io_timeout_ms);
    for (;;) {
      if (ssl_) {
        const int r = SSL_write(ssl_, p, int(std::min<size_t>(n, 1 << 30)));
        if (r > 0) return r;
        const int e = SSL_get_error(ssl_, r);
        if (e != SSL_ERROR_WANT_WRITE && e != SSL_ERROR_WANT_READ) return -1;
        if (!wait_fd(fd_, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, ms_left(until))) return -1;
      } else {
        const ssize_t r = ::send(fd_, p, n, MSG_NOSIGNAL);
        if (r >= 0) return r;
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) return -1;
        if (!wait_fd(fd_, POLLOUT, ms_left(until))) return -1;
      }
    }
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override { addr(false, ip, port); }
  void get_local_ip_and_port(std::string& ip, int& port) const override { addr(true, ip, port); }
  socket_t socket() const override { return fd_; }

 private:
  // Waits for readability within the per-read timeout and, while a request is being read, its
  // deadline; false when either passes (the deadline: counted, and timed_out()).
  bool wait_read(short events) {
    int ms = o_.io_timeout_ms;
    ms = std::min(ms, ms_left(deadline_));
    if (wait_fd(fd_, events, ms)) return true;
    if (Clock::now() >= deadline_ && !timed_out_) {
      timed_out_ = true;
      st_.deadline++;
    }
    return false;
  }

  ssize_t read_some(char* p, size_t n) {
    for (;;) {
      if (Clock::now() >= deadline_) {
        if (!timed_out_) st_.deadline++;
        timed_out_ = true;
        return -1;
      }
      if (ssl_) {
        const int r = SSL_read(ssl_, p, int(std::min<size_t>(n, 1 << 30)));
        if (r > 0) return r;
        const int e = SSL_get_error(ssl_, r);
        if (e == SSL_ERROR_ZERO_RETURN) return 0;
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) return -1;
        if (!wait_read(e == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN)) return -1;
      } else {
        const ssize_t r = ::recv(fd_, p, n, 0);
        if (r >= 0) return r;
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) return -1;
        if (!wait_read(POLLIN)) return -1;
      }
    }
  }

  void addr(bool local, std::string& ip, int& port) const {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    auto* sa = reinterpret_cast<sockaddr*>(&ss);
    if ((local ? getsockname(fd_, sa, &len) : getpeername(fd_, sa, &len)) != 0) return;
    char buf[INET6_ADDRSTRLEN] = {0};
    if (ss.ss_family == AF_INET) {
      auto* a = reinterpret_cast<sockaddr_in*>(&ss);
      inet_ntop(AF_INET, &a->sin_addr, buf, sizeof buf);
      port = ntohs(a->sin_port);
    } else if (ss.ss_family == AF_INET6) {
      auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
      inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof buf);
      port = ntohs(a->sin6_port);
    }
    ip = buf;
  }

  int fd_;
  SSL* ssl_;
  const ConnOptions& o_;
  ConnStats& st_;
  bool timed_out_ = false, close_ = false;
  Clock::time_point deadline_;
  char buf_[4096];
  size_t pos_ = 0, len_ = 0;
};

thread_local ConnStream* tl_conn = nullptr;

// The TLS handshake, non-blocking, within the request deadline.
bool tls_accept(SSL* ssl, int fd, int timeout_ms) {
  const auto until = Clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    const int r = SSL_accept(ssl);
    if (r == 1) return true;
    const int e = SSL_get_error(ssl, r);
    if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) return false;
    const int left = ms_left(until);
    if (left <= 0 || !wait_fd(fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, left)) return false;
  }
}

}  // namespace

HttpServer::HttpServer(ConnOptions o) : o_(std::move(o)) {
  NE_CHECK(o_.max_connections > 0, "--max_connections must be positive");
  NE_CHECK(o_.request_timeout_ms > 0 && o_.io_timeout_ms > 0, "--request_timeout_ms must be positive");
  NE_CHECK(o_.tls_cert.empty() == o_.tls_key.empty(), "give both --tls_cert and --tls_key, or neither");
  if (!o_.tls_cert.empty()) {
    ctx_ = SSL_CTX_new(TLS_server_method());
    NE_CHECK(ctx_, "TLS: cannot create an OpenSSL context: ", ssl_error());
    SSL_CTX_set_min_proto_version(ctx_, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx_, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (SSL_CTX_use_certificate_chain_file(ctx_, o_.tls_cert.c_str()) != 1) {
      const std::string e = ssl_error();
      SSL_CTX_free(ctx_);
      ctx_ = nullptr;
      fail("--tls_cert ", o_.tls_cert, ": not a readable PEM certificate (", e, ")");
    }
    if (SSL_CTX_use_PrivateKey_file(ctx_, o_.tls_key.c_str(), SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx_) != 1) {
      const std::string e = ssl_error();
      SSL_CTX_free(ctx_);
      ctx_ = nullptr;
      fail("--tls_key ", o_.tls_key, ": not a readable PEM private key matching --tls_cert (", e, ")");
    }
  }
  // One thread per connection up to the limit, and a few spare ones that answer the connections
  // beyond it (503) without waiting behind the ones being served.
  const size_t threads = size_t(o_.max_connections) + 8;
  new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  set_keep_alive_timeout(o_.keep_alive_s);
}

HttpServer::~HttpServer() {
  if (ctx_) SSL_CTX_free(ctx_);
}

void HttpServer::close_after_response() {
  if (tl_conn) tl_conn->close_after();
}

bool HttpServer::deadline_passed() { return tl_conn && tl_conn->timed_out(); }

void HttpServer::refuse(socket_t sock) {
  st_.refused++;
  if (!ctx_) {
    const std::string body = error_json(str_cat("the server is serving --max_connections ", o_.max_connections,
                                                " connections; try again later"));
    const std::string msg = str_cat("HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n",
                                    "Content-Length: ", body.size(), "\r\nRetry-After: 1\r\nConnection: close\r\n\r\n",
                                    body);
    if (wait_fd(sock, POLLOUT, 1000)) (void)::send(sock, msg.data(), msg.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    ::shutdown(sock, SHUT_WR);
    // Read what the client sent (briefly) so that closing does not reset the connection before
    // the client has read the answer.
    char junk[4096];
    const auto until = Clock::now() + std::chrono::milliseconds(200);
    while (wait_fd(sock, POLLIN, ms_left(until)) && ::recv(sock, junk, sizeof junk, MSG_DONTWAIT) > 0) {
    }
  }
  ::close(sock);
}

bool HttpServer::process_and_close_socket(socket_t sock) {
  struct Count {
    std::atomic<int64_t>& n;
    ~Count() { n--; }
  } count{st_.open};
  if (++st_.open > o_.max_connections) {
    refuse(sock);
    return false;
  }
  st_.accepted++;
  // jemalloc's per-thread caches hold freed memory per thread; over a pool of hundreds of
  // connection threads that grew the front end by ~100 MB in a minute of mixed requests. These
  // threads allocate request-sized buffers, where the cache buys nothing: off for them.
  static thread_local const bool tcache_off = [] {
    bool off = false;
    return mallctl("thread.tcache.enabled", nullptr, nullptr, &off, sizeof off) == 0;
  }();
  (void)tcache_off;
  const int fl = fcntl(sock, F_GETFL, 0);
  fcntl(sock, F_SETFL, fl | O_NONBLOCK);
  const int one = 1;
  setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  SSL* ssl = nullptr;
  if (ctx_) {
    ssl = SSL_new(ctx_);
    if (!ssl || SSL_set_fd(ssl, sock) != 1 || !tls_accept(ssl, sock, o_.request_timeout_ms)) {
      st_.tls_failed++;
      ERR_clear_error();
      if (ssl) SSL_free(ssl);
      ::close(sock);
      return false;
    }
  }
  ConnStream strm(sock, ssl, o_, st_);
  tl_conn = &strm;
  bool ok = true;
  const auto keep_alive = std::chrono::seconds(o_.keep_alive_s);
  for (;;) {
    // Wait for the next request (the first comes at once): idle connections close after
    // keep_alive_s, and all of them when the server stops.
    if (!strm.buffered()) {
      const auto until = Clock::now() + keep_alive;
      bool readable = false;
      while (!readable && svr_sock_ != INVALID_SOCKET && Clock::now() < until)
        readable = wait_fd(sock, POLLIN, std::min(100, ms_left(until)));
      if (!readable) break;
    }
    strm.begin_request();
    bool closed = false;
    ok = process_request(strm, false, closed, [](httplib::Request&) {});
    if (!ok || closed || strm.timed_out() || strm.closing()) break;
  }
  tl_conn = nullptr;
  if (ssl) {
    SSL_shutdown(ssl);  // one close_notify, no waiting for the client's
    SSL_free(ssl);
  }
  ERR_clear_error();
  ::shutdown(sock, SHUT_RDWR);
  ::close(sock);
  return ok;
}

}  // namespace server
}  // namespace ne
