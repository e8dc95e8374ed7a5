// The only translation unit that includes Boost.Beast for sending requests.
#include "traceslo/http/client.h"

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cctype>
#include <optional>

#include "absl/status/status.h"
#include "traceslo/common/url.h"

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

std::string FormatTimeout(std::chrono::milliseconds timeout) {
  if (timeout.count() % 1000 == 0) return std::to_string(timeout.count() / 1000) + "s";
  return std::to_string(timeout.count()) + "ms";
}

}  // namespace

std::string_view ClientResponse::Header(std::string_view lower_name) const {
  for (const auto& [name, value] : headers) {
    if (name == lower_name) return value;
  }
  return {};
}

struct BeastHttpClient::Tls {
  ssl::context context{ssl::context::tls_client};
};

BeastHttpClient::BeastHttpClient(const HttpClientOptions& options, std::unique_ptr<Tls> tls)
    : options_(options), tls_(std::move(tls)) {}

BeastHttpClient::~BeastHttpClient() = default;

absl::StatusOr<std::unique_ptr<BeastHttpClient>> BeastHttpClient::Create(
    const HttpClientOptions& options) {
  auto tls = std::make_unique<Tls>();
  beast::error_code ec;
  tls->context.set_verify_mode(ssl::verify_peer, ec);
  if (!ec) {
    if (options.ca_file.empty()) {
      tls->context.set_default_verify_paths(ec);
    } else {
      tls->context.load_verify_file(options.ca_file, ec);
    }
  }
  if (ec) {
    return absl::InvalidArgumentError(
        (options.ca_file.empty() ? std::string("cannot load the system's CA certificates")
                                 : "cannot load the CA file \"" + options.ca_file + "\"") +
        ": " + ec.message());
  }
  SSL_CTX_set_min_proto_version(tls->context.native_handle(), TLS1_2_VERSION);
  return std::unique_ptr<BeastHttpClient>(new BeastHttpClient(options, std::move(tls)));
}

absl::StatusOr<ClientResponse> BeastHttpClient::Send(const ClientRequest& request) {
  absl::StatusOr<HttpUrl> url = ParseHttpUrl(request.url);
  if (!url.ok()) return url.status();
  const bhttp::verb verb = bhttp::string_to_verb(request.method);
  if (verb == bhttp::verb::unknown) {
    return absl::InvalidArgumentError("unknown HTTP method \"" + request.method + "\"");
  }
  try {
    net::io_context ioc;
    tcp::resolver resolver(ioc);
    beast::ssl_stream<beast::tcp_stream> stream(ioc, tls_->context);

    bhttp::request<bhttp::string_body> req(verb, url->target, 11);
    req.set(bhttp::field::host, url->HostHeader());
    req.set(bhttp::field::user_agent, options_.user_agent);
    req.set(bhttp::field::connection, "close");
    for (const auto& [name, value] : request.headers) req.insert(name, value);
    req.body() = request.body;
    req.prepare_payload();

    bhttp::response_parser<bhttp::string_body> parser;
    parser.header_limit(static_cast<uint32_t>(options_.max_response_header_bytes));
    parser.body_limit(options_.max_response_body_bytes);
    beast::flat_buffer buffer;

    std::optional<absl::Status> failure;
    bool done = false;
    bool truncated = false;
    auto fail = [&](std::string_view what, const beast::error_code& ec) {
      if (!failure) failure = absl::UnavailableError(std::string(what) + ": " + ec.message());
    };
    auto read_handler = [&](const beast::error_code& ec, size_t) {
      if (ec == bhttp::error::body_limit && parser.is_header_done()) {
        truncated = true;  // the status and headers are what matter; the rest is discarded
      } else if (ec == bhttp::error::header_limit) {
        if (!failure) {
          failure =
              absl::UnavailableError("the answer's headers are larger than " +
                                     std::to_string(options_.max_response_header_bytes) + " bytes");
        }
        return;
      } else if (ec) {
        return fail("reading the answer", ec);
      }
      done = true;
    };
    auto exchange = [&](auto& s) {
      bhttp::async_write(s, req, [&](const beast::error_code& ec, size_t) {
        if (ec) return fail("sending the request", ec);
        bhttp::async_read(s, buffer, parser, read_handler);
      });
    };

    if (url->tls) {
      SSL* native = stream.native_handle();
      beast::error_code address_ec;
      net::ip::make_address(url->host, address_ec);
      // SNI for names only (RFC 6066 forbids addresses); names and addresses are both verified.
      if (address_ec) SSL_set_tlsext_host_name(native, url->host.c_str());
      stream.set_verify_callback(ssl::host_name_verification(url->host));
    }
    resolver.async_resolve(
        url->host, std::to_string(url->port),
        [&](const beast::error_code& ec, const tcp::resolver::results_type& results) {
          if (ec) return fail("cannot resolve the host", ec);
          beast::get_lowest_layer(stream).async_connect(
              results, [&](const beast::error_code& connect_ec, const tcp::endpoint&) {
                if (connect_ec) return fail("cannot connect", connect_ec);
                if (!url->tls) return exchange(stream.next_layer());
                stream.async_handshake(
                    ssl::stream_base::client, [&](const beast::error_code& tls_ec) {
                      if (!tls_ec) return exchange(stream);
                      const long verify = SSL_get_verify_result(stream.native_handle());
                      if (verify != X509_V_OK) {
                        failure =
                            absl::UnavailableError(std::string("TLS certificate not accepted: ") +
                                                   X509_verify_cert_error_string(verify));
                        return;
                      }
                      fail("TLS handshake failed", tls_ec);
                    });
              });
        });
    ioc.run_for(options_.timeout);
    if (!done && !failure) {
      failure =
          absl::UnavailableError("no complete answer within " + FormatTimeout(options_.timeout));
      resolver.cancel();
      beast::error_code ignored;
      beast::get_lowest_layer(stream).socket().close(ignored);
      ioc.restart();
      ioc.run();  // lets the cancelled operations finish before their state goes away
    }
    if (failure) return *failure;

    ClientResponse response;
    bhttp::response<bhttp::string_body>& answer = parser.get();
    response.status = static_cast<int>(answer.result_int());
    for (const auto& field : answer) {
      response.headers.emplace_back(Lower(field.name_string()), std::string(field.value()));
    }
    response.body = std::move(answer.body());
    response.body_truncated = truncated;
    return response;
  } catch (const std::exception& e) {
    // Asio throws only for resource exhaustion (no file descriptors, no memory).
    return absl::UnavailableError(std::string("cannot send the request: ") + e.what());
  }
}

}  // namespace traceslo::http
