#include "services/ingest/grpc_connection_gate.h"

#include <arpa/inet.h>
#include <grpcpp/server_builder.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "traceslo/http/server.h"

namespace traceslo::ingest {

absl::StatusOr<std::unique_ptr<GrpcConnectionGate>> GrpcConnectionGate::Listen(
    const std::string& address) {
  std::string host;
  uint16_t port = 0;
  if (auto status = http::SplitHostPort(address, host, port); !status.ok()) return status;
  host = http::ListenHost(host);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
  addrinfo* info = nullptr;
  const std::string port_text = std::to_string(port);
  if (getaddrinfo(host.c_str(), port_text.c_str(), &hints, &info) != 0 || info == nullptr) {
    return absl::InvalidArgumentError("listen address " + address + ": not an IP address");
  }
  int fd = socket(info->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  bool ok = fd >= 0 && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0 &&
            bind(fd, info->ai_addr, info->ai_addrlen) == 0 && listen(fd, SOMAXCONN) == 0;
  const int error = errno;
  freeaddrinfo(info);
  if (!ok) {
    if (fd >= 0) close(fd);
    return absl::UnavailableError("cannot listen for OTLP/gRPC on " + address + ": " +
                                  std::strerror(error));
  }
  sockaddr_storage bound{};
  socklen_t length = sizeof bound;
  getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &length);
  char text[INET6_ADDRSTRLEN] = {};
  uint16_t bound_port = 0;
  if (bound.ss_family == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&bound);
    inet_ntop(AF_INET6, &v6->sin6_addr, text, sizeof text);
    bound_port = ntohs(v6->sin6_port);
  } else {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(&bound);
    inet_ntop(AF_INET, &v4->sin_addr, text, sizeof text);
    bound_port = ntohs(v4->sin_port);
  }
  const std::string bound_address = http::JoinHostPort(text, bound_port);
  return std::unique_ptr<GrpcConnectionGate>(new GrpcConnectionGate(fd, bound_address));
}

GrpcConnectionGate::~GrpcConnectionGate() {
  Shutdown();
  close(listen_fd_);
}

void GrpcConnectionGate::Start(grpc::experimental::ExternalConnectionAcceptor& acceptor,
                               uint32_t max_connections,
                               std::function<uint64_t()> open_connections) {
  thread_ = std::thread([this, &acceptor, max_connections, open = std::move(open_connections)] {
    Run(acceptor, max_connections, open);
  });
}

void GrpcConnectionGate::Shutdown() {
  if (stopping_.exchange(true)) return;
  shutdown(listen_fd_, SHUT_RDWR);  // wakes accept() with an error
  if (thread_.joinable()) thread_.join();
}

void GrpcConnectionGate::Run(grpc::experimental::ExternalConnectionAcceptor& acceptor,
                             uint32_t max_connections,
                             const std::function<uint64_t()>& open_connections) {
  while (!stopping_.load()) {
    // gRPC's event engine expects non-blocking sockets.
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
      if (stopping_.load()) break;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        poll(nullptr, 0, 100);  // out of descriptors: let some close before trying again
      }
      continue;
    }
    if (open_connections() >= max_connections) {
      refused_.fetch_add(1, std::memory_order_relaxed);
      close(fd);
      continue;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    grpc::experimental::ExternalConnectionAcceptor::NewConnectionParameters params;
    params.listener_fd = listen_fd_;
    params.fd = fd;
    acceptor.HandleNewConnection(&params);
  }
}

}  // namespace traceslo::ingest
