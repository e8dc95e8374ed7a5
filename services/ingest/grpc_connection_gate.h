#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"

namespace grpc::experimental {
class ExternalConnectionAcceptor;
}

namespace traceslo::ingest {

// Accepts TCP connections for the gRPC server and hands them over, refusing (closing at once)
// those that would exceed a cap: gRPC 1.51 has no limit on connections of its own.
// Owns one thread, the accept loop, from Start() until Shutdown(). Thread-safe.
class GrpcConnectionGate {
 public:
  // Binds and listens on host:port (port 0 picks one); InvalidArgument / Unavailable on failure.
  static absl::StatusOr<std::unique_ptr<GrpcConnectionGate>> Listen(const std::string& address);
  ~GrpcConnectionGate();

  std::string address() const { return address_; }

  // `acceptor` is borrowed and must stay valid until Shutdown(). `open_connections` tells how
  // many connections gRPC holds open now; it is asked once per accepted connection.
  void Start(grpc::experimental::ExternalConnectionAcceptor& acceptor, uint32_t max_connections,
             std::function<uint64_t()> open_connections);
  void Shutdown();

  uint64_t refused() const { return refused_.load(std::memory_order_relaxed); }

 private:
  GrpcConnectionGate(int listen_fd, std::string address)
      : listen_fd_(listen_fd), address_(std::move(address)) {}
  void Run(grpc::experimental::ExternalConnectionAcceptor& acceptor, uint32_t max_connections,
           const std::function<uint64_t()>& open_connections);

  const int listen_fd_;
  const std::string address_;
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> refused_{0};
  std::thread thread_;
};

}  // namespace traceslo::ingest
