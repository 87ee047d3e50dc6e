// The worker side of neural_engine_server (see worker.cpp and frame.hpp).
#pragma once

namespace ne {
namespace server {
// The value of the hidden --worker=FD flag (-1: not a worker).
int worker_fd_flag();
// Runs a worker on the socket `fd` until the front end closes it; returns the exit status.
int worker_main(int fd);
}  // namespace server
}  // namespace ne
