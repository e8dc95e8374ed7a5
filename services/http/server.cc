// The only translation unit that includes Boost.Beast for serving (Beast headers are heavy).
#include "traceslo/http/server.h"

#include <array>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cctype>
#include <charconv>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>

namespace traceslo::http {
namespace {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = boost::asio::ip::tcp;

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// State the sessions share with the server; sessions may outlive the Server object briefly
// while the io_context destroys them.
// What Shutdown asks of every open connection, on the connection's own strand.
class SessionBase {
 public:
  virtual ~SessionBase() = default;
  // Closes the connection now if no request is being handled; otherwise it closes after
  // writing the response.
  virtual void CloseWhenIdle() = 0;
};

struct Shared {
  ServerOptions options;
  Handler* handler = nullptr;
  Logger* logger = nullptr;
  std::atomic<uint32_t> open_connections{0};
  std::atomic<uint64_t> refused{0};
  std::atomic<bool> stopping{false};
  std::mutex mu;
  std::condition_variable closed;                    // a session ended
  std::vector<std::weak_ptr<SessionBase>> sessions;  // guarded by mu; pruned as they expire

  void Track(const std::shared_ptr<SessionBase>& session) {
    std::lock_guard<std::mutex> lock(mu);
    if (sessions.size() > 2 * static_cast<size_t>(open_connections.load()) + 16) {
      std::erase_if(sessions, [](const auto& w) { return w.expired(); });
    }
    sessions.push_back(session);
  }
};

template <typename Stream>
class Session final : public SessionBase, public std::enable_shared_from_this<Session<Stream>> {
 public:
  Session(std::shared_ptr<Shared> shared, Stream stream)
      : shared_(std::move(shared)), stream_(std::move(stream)) {
    // Unreserved, Beast reads 512 bytes per recvmsg; 64 KiB cut the server's CPU per request
    // ~20x in the receiver benchmark.
    buffer_.reserve(64 * 1024);
  }
  ~Session() override {
    {
      std::lock_guard<std::mutex> lock(shared_->mu);
      shared_->open_connections.fetch_sub(1);
    }
    shared_->closed.notify_all();
  }

  void CloseWhenIdle() override {
    net::post(stream_.get_executor(), [self = this->shared_from_this()] {
      if (self->busy_) return;  // Respond() closes after the response
      beast::error_code ignored;
      beast::get_lowest_layer(self->stream_).socket().shutdown(tcp::socket::shutdown_both, ignored);
      beast::get_lowest_layer(self->stream_).close();
    });
  }

  void Start() {
    if constexpr (std::is_same_v<Stream, beast::ssl_stream<beast::tcp_stream>>) {
      beast::get_lowest_layer(stream_).expires_after(shared_->options.idle_timeout);
      stream_.async_handshake(ssl::stream_base::server,
                              [self = this->shared_from_this()](beast::error_code ec) {
                                if (!ec) self->Read();
                              });
    } else {
      Read();
    }
  }

 private:
  void Close() {
    beast::error_code ignored;
    beast::get_lowest_layer(stream_).socket().shutdown(tcp::socket::shutdown_both, ignored);
    beast::get_lowest_layer(stream_).close();
  }

  void Read() {
    if (shared_->stopping.load()) {  // Shutdown may have passed while this one was busy
      Close();
      return;
    }
    parser_.emplace();
    // Reusing the last body's memory avoids faulting in fresh pages for every request.
    parser_->get().body() = std::move(spare_body_);
    parser_->get().body().clear();
    parser_->body_limit(shared_->options.body_limit);
    beast::get_lowest_layer(stream_).expires_after(shared_->options.idle_timeout);
    // Headers first: the handler may refuse (auth, media type, size) before a body is read.
    bhttp::async_read_header(
        stream_, buffer_, *parser_,
        [self = this->shared_from_this()](beast::error_code ec, size_t) { self->OnHeader(ec); });
  }

  void OnHeader(beast::error_code ec) {
    const bool too_large = ec == bhttp::error::body_limit;
    if (ec && !too_large) return;  // closed, timed out or malformed: drop the connection
    busy_ = true;
    auto& message = parser_->get();
    request_ = Request{};
    request_.method = std::string(message.method_string());
    request_.target = std::string(message.target());
    for (const auto& field : message) {
      request_.headers.emplace_back(Lower(field.name_string()), std::string(field.value()));
    }
    if (too_large) {
      request_.body_too_large = true;
      Respond(Call([&] { return shared_->handler->Handle(request_); }), false);
      return;
    }
    std::optional<Response> refusal =
        Call([&] { return shared_->handler->CheckHeaders(request_); });
    if (refusal) {
      // The body is never read; closing the connection discards it.
      Respond(std::move(*refusal), false);
      return;
    }
    bhttp::async_read(
        stream_, buffer_, *parser_,
        [self = this->shared_from_this()](beast::error_code ec, size_t) { self->OnBody(ec); });
  }

  void OnBody(beast::error_code ec) {
    const bool too_large = ec == bhttp::error::body_limit;
    if (ec && !too_large) return;
    auto& message = parser_->get();
    request_.body_too_large = too_large;
    if (!too_large) request_.body = std::move(message.body());
    const bool keep_alive = !too_large && message.keep_alive();
    Response response = Call([&] { return shared_->handler->Handle(request_); });
    // Kept for the next request on this connection, unless large (idle connections would
    // otherwise pin a big buffer each).
    if (request_.body.capacity() <= kMaxSpareBodyBytes) spare_body_ = std::move(request_.body);
    Respond(std::move(response), keep_alive);
  }

  // Runs a handler call; an exception (a bug) becomes a 500 and a log line.
  template <typename F>
  auto Call(F&& f) -> decltype(f()) {
    try {
      return f();
    } catch (const std::exception& e) {
      shared_->logger->Error("http handler threw",
                             {{"listener", shared_->options.name}, {"error", e.what()}});
      return Response{500, "text/plain; charset=utf-8", {}, "internal error\n"};
    }
  }

  void Respond(Response response, bool keep_alive) {
    auto out = std::make_shared<bhttp::response<bhttp::string_body>>(
        static_cast<bhttp::status>(response.status), parser_->get().version());
    out->set(bhttp::field::server, "traceslo");
    out->set(bhttp::field::content_type, response.content_type);
    for (auto& [name, value] : response.headers) out->set(name, value);
    // 1xx, 204 and 304 carry no body (Beast throws on one); HEAD gets the length, not the body.
    const int status = response.status;
    if (status < 200 || status == 204 || status == 304) response.body.clear();
    keep_alive = keep_alive && !shared_->stopping.load();
    out->keep_alive(keep_alive);
    if (parser_->get().method() == bhttp::verb::head) {
      out->content_length(response.body.size());
    } else {
      out->body() = std::move(response.body);
      out->prepare_payload();
    }
    bhttp::async_write(
        stream_, *out,
        [self = this->shared_from_this(), out, keep_alive](beast::error_code ec, size_t) {
          self->busy_ = false;
          if (ec) return;
          if (keep_alive) {
            self->Read();
          } else {
            beast::error_code ignored;
            beast::get_lowest_layer(self->stream_)
                .socket()
                .shutdown(tcp::socket::shutdown_send, ignored);
            self->Linger();
          }
        });
  }

  // After an answer that ends the connection (often before the body was read), keep reading
  // and discarding for a while: closing with unread data makes the kernel send a reset, which
  // can reach the client before it has read the answer (it then sees EPIPE / ECONNRESET
  // instead of a 413 or 401). Bounded in time and bytes.
  void Linger() {
    beast::get_lowest_layer(stream_).expires_after(kLingerTime);
    linger_buffer_ = std::make_unique<std::array<char, 16384>>();
    Discard();
  }

  void Discard() {
    stream_.async_read_some(net::buffer(*linger_buffer_),
                            [self = this->shared_from_this()](beast::error_code ec, size_t n) {
                              self->lingered_bytes_ += n;
                              if (ec || self->lingered_bytes_ > kMaxLingerBytes)
                                return;  // EOF, timeout or enough
                              self->Discard();
                            });
  }

  static constexpr size_t kMaxSpareBodyBytes = 256 * 1024;
  static constexpr std::chrono::seconds kLingerTime{2};
  static constexpr size_t kMaxLingerBytes = 64u << 20;

  std::shared_ptr<Shared> shared_;
  Stream stream_;
  beast::flat_buffer buffer_;
  std::string spare_body_;
  Request request_;
  bool busy_ = false;  // a request is being handled (touched only on the session's strand)
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  std::unique_ptr<std::array<char, 16384>> linger_buffer_;
  size_t lingered_bytes_ = 0;
};

class BeastServer final : public Server {
 public:
  explicit BeastServer(std::shared_ptr<Shared> shared)
      : shared_(std::move(shared)), acceptor_(net::make_strand(ioc_)) {}
  ~BeastServer() override { Shutdown(std::chrono::steady_clock::time_point::min()); }

  absl::Status Start() {
    const ServerOptions& options = shared_->options;
    std::string host;
    uint16_t port = 0;
    if (auto status = SplitHostPort(options.listen_address, host, port); !status.ok()) {
      return status;
    }
    if (!options.tls.cert_file.empty()) {
      tls_.emplace(ssl::context::tls_server);
      beast::error_code ec;
      tls_->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                        ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
      tls_->use_certificate_chain_file(options.tls.cert_file, ec);
      if (ec)
        return absl::InvalidArgumentError("tls cert_file " + options.tls.cert_file + ": " +
                                          ec.message());
      tls_->use_private_key_file(options.tls.key_file, ssl::context::pem, ec);
      if (ec)
        return absl::InvalidArgumentError("tls key_file " + options.tls.key_file + ": " +
                                          ec.message());
      if (!options.tls.client_ca_file.empty()) {
        tls_->load_verify_file(options.tls.client_ca_file, ec);
        if (ec) {
          return absl::InvalidArgumentError("tls client_ca_file " + options.tls.client_ca_file +
                                            ": " + ec.message());
        }
        tls_->set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
      }
    }
    beast::error_code ec;
    auto address = net::ip::make_address(ListenHost(host), ec);
    if (ec)
      return absl::InvalidArgumentError("listen address " + options.listen_address +
                                        ": not an IP address");
    tcp::endpoint endpoint(address, port);
    acceptor_.open(endpoint.protocol(), ec);
    if (!ec) acceptor_.set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(endpoint, ec);
    if (!ec) acceptor_.listen(net::socket_base::max_listen_connections, ec);
    if (ec) {
      return absl::UnavailableError("cannot listen on " + options.listen_address + ": " +
                                    ec.message());
    }
    auto bound = acceptor_.local_endpoint();
    address_ = JoinHostPort(bound.address().to_string(), bound.port());
    Accept();
    // Without it, run() returns once no operation is pending (every connection lingering to
    // EOF, the acceptor closed), and what Shutdown posts afterwards never runs: the sessions
    // it holds would keep the server waiting for the whole grace period.
    work_.emplace(ioc_.get_executor());
    for (uint32_t i = 0; i < std::max(1u, options.threads); ++i) {
      threads_.emplace_back([this] { ioc_.run(); });
    }
    return absl::OkStatus();
  }

  std::string address() const override { return address_; }
  uint64_t connections_refused() const override { return shared_->refused.load(); }
  uint32_t open_connections() const override { return shared_->open_connections.load(); }

  void Shutdown(std::chrono::steady_clock::time_point deadline) override {
    if (stopped_.exchange(true)) return;
    shared_->stopping.store(true);
    if (!threads_.empty()) {
      net::post(acceptor_.get_executor(), [this] {
        beast::error_code ignored;
        acceptor_.close(ignored);
      });
      std::vector<std::shared_ptr<SessionBase>> live;
      {
        std::lock_guard<std::mutex> lock(shared_->mu);
        for (auto& weak : shared_->sessions) {
          if (auto session = weak.lock()) live.push_back(std::move(session));
        }
      }
      for (auto& session : live) session->CloseWhenIdle();
      live.clear();
      // Requests in flight get their responses; idle connections are closed at once.
      std::unique_lock<std::mutex> lock(shared_->mu);
      shared_->closed.wait_until(lock, deadline,
                                 [&] { return shared_->open_connections.load() == 0; });
    }
    work_.reset();
    ioc_.stop();
    for (auto& t : threads_) t.join();
    threads_.clear();
    beast::error_code ignored;
    acceptor_.close(ignored);
  }

 private:
  void Accept() {
    acceptor_.async_accept(net::make_strand(ioc_), [this](beast::error_code ec,
                                                          tcp::socket socket) {
      if (ec == net::error::operation_aborted || !acceptor_.is_open() || shared_->stopping.load())
        return;
      if (!ec) OnAccept(std::move(socket));
      Accept();
    });
  }

  void OnAccept(tcp::socket socket) {
    if (shared_->open_connections.fetch_add(1) >= shared_->options.max_connections) {
      shared_->open_connections.fetch_sub(1);
      shared_->refused.fetch_add(1);
      beast::error_code ignored;
      socket.close(ignored);
      return;
    }
    if (tls_) {
      auto session = std::make_shared<Session<beast::ssl_stream<beast::tcp_stream>>>(
          shared_,
          beast::ssl_stream<beast::tcp_stream>(beast::tcp_stream(std::move(socket)), *tls_));
      shared_->Track(session);
      session->Start();
      if (shared_->stopping.load()) session->CloseWhenIdle();  // raced Shutdown's snapshot
    } else {
      auto session = std::make_shared<Session<beast::tcp_stream>>(
          shared_, beast::tcp_stream(std::move(socket)));
      shared_->Track(session);
      session->Start();
      if (shared_->stopping.load()) session->CloseWhenIdle();  // raced Shutdown's snapshot
    }
  }

  std::shared_ptr<Shared> shared_;
  std::optional<ssl::context> tls_;
  net::io_context ioc_;
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work_;
  tcp::acceptor acceptor_;
  std::string address_;
  std::vector<std::thread> threads_;
  std::atomic<bool> stopped_{false};
};

}  // namespace

std::string_view Request::Header(std::string_view lower_name) const {
  for (const auto& [name, value] : headers) {
    if (name == lower_name) return value;
  }
  return {};
}

std::string_view Request::Path() const {
  std::string_view t = target;
  return t.substr(0, t.find('?'));
}

absl::Status SplitHostPort(std::string_view address, std::string& host, uint16_t& port) {
  size_t colon;
  if (!address.empty() && address.front() == '[') {
    size_t close = address.find(']');
    if (close == std::string_view::npos || close + 1 >= address.size() ||
        address[close + 1] != ':') {
      return absl::InvalidArgumentError("listen address \"" + std::string(address) +
                                        "\" must be [ipv6]:port");
    }
    host = std::string(address.substr(1, close - 1));
    colon = close + 1;
  } else {
    colon = address.rfind(':');
    if (colon == std::string_view::npos || colon == 0) {
      return absl::InvalidArgumentError("listen address \"" + std::string(address) +
                                        "\" must be host:port");
    }
    host = std::string(address.substr(0, colon));
  }
  std::string_view port_text = address.substr(colon + 1);
  unsigned value = 0;
  auto [ptr, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), value);
  if (ec != std::errc() || ptr != port_text.data() + port_text.size() || value > 65535) {
    return absl::InvalidArgumentError("listen address \"" + std::string(address) +
                                      "\" has an invalid port");
  }
  port = static_cast<uint16_t>(value);
  return absl::OkStatus();
}

std::string ListenHost(std::string_view host) {
  if (host.empty()) return "0.0.0.0";
  if (host == "localhost") return "127.0.0.1";
  return std::string(host);
}

std::string JoinHostPort(std::string_view host, uint16_t port) {
  const bool v6 = host.find(':') != std::string_view::npos;
  std::string out = v6 ? "[" + std::string(host) + "]" : std::string(host);
  return out + ":" + std::to_string(port);
}

absl::StatusOr<std::unique_ptr<Server>> Server::Create(const ServerOptions& options,
                                                       Handler& handler, Logger& logger) {
  auto shared = std::make_shared<Shared>();
  shared->options = options;
  shared->handler = &handler;
  shared->logger = &logger;
  auto server = std::make_unique<BeastServer>(shared);
  try {
    if (auto status = server->Start(); !status.ok()) return status;
  } catch (const std::exception& e) {
    return absl::InternalError("http server " + options.name + ": " + e.what());
  }
  return server;
}

}  // namespace traceslo::http
