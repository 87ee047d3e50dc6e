// neural_engine_server's connections: cpp-httplib parses and routes requests; this layer owns
// the sockets (it replaces httplib::Server's per-connection loop, the one virtual it offers) so
// that no client can hold the server:
//   - a limit on open connections: beyond it a connection is answered 503 at once and closed
//     (HTTPS: closed), on one of a few spare threads;
//   - a deadline on the whole request, headers and body, from its first byte: a client that
//     trickles bytes is dropped when it passes (408), not only one that stops sending;
//   - a timeout on each read and write, and on idle keep-alive connections;
//   - optional TLS (OpenSSL): the handshake is under the request deadline too.
// Sockets are non-blocking; every wait is a poll() with the time left.
#pragma once
#include <httplib.h>

#include <atomic>
#include <cstdint>
#include <string>

typedef struct ssl_ctx_st SSL_CTX;

namespace ne {
namespace server {

struct ConnOptions {
  int max_connections = 256;       // open connections served at once
  int request_timeout_ms = 30000;  // a whole request (headers + body), from its first byte
  int io_timeout_ms = 30000;       // each read or write
  int keep_alive_s = 5;            // an idle keep-alive connection is closed after this
  std::string tls_cert, tls_key;   // PEM files; both or neither
};

struct ConnStats {
  std::atomic<int64_t> open{0};              // connections now
  std::atomic<uint64_t> accepted{0};         // connections served
  std::atomic<uint64_t> refused{0};          // over the limit (503)
  std::atomic<uint64_t> deadline{0};         // requests not received within the deadline
  std::atomic<uint64_t> tls_failed{0};       // TLS handshakes that failed
};

class HttpServer : public httplib::Server {
 public:
  // Throws ne::Error naming the file when the certificate or key cannot be used.
  explicit HttpServer(ConnOptions o);
  ~HttpServer() override;
  const ConnStats& stats() const { return st_; }
  bool tls() const { return ctx_ != nullptr; }

  // For handlers, on the connection's thread: close the connection after this response (a
  // request refused before its body was read).
  static void close_after_response();
  // For the error handler: the request being read on this thread passed its deadline.
  static bool deadline_passed();

 private:
  bool process_and_close_socket(socket_t sock) override;
  void refuse(socket_t sock);

  ConnOptions o_;
  SSL_CTX* ctx_ = nullptr;
  ConnStats st_;
};

}  // namespace server
}  // namespace ne
