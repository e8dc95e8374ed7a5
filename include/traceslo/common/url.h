#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace traceslo {

// An absolute http:// or https:// URL, split for a client: where to connect and what to ask.
struct HttpUrl {
  bool tls = false;    // https
  std::string host;    // a name, an IPv4 address, or an IPv6 address without brackets
  uint16_t port = 0;   // 80 or 443 unless given
  std::string target;  // path and query, "/" at least; the fragment is dropped
  bool host_is_ipv6 = false;

  // "host:port" for a Host header: brackets around IPv6, the port only when not the default.
  std::string HostHeader() const;
};

// Parses an absolute http(s) URL. Receiver URLs carry secrets (Slack and webhook URLs are
// credentials), so the InvalidArgument messages never repeat any part of `url`; they say what is
// wrong ("must start with http:// or https://", "has no host", ...). User information
// (user:password@) is refused: credentials belong in headers.
absl::StatusOr<HttpUrl> ParseHttpUrl(std::string_view url);

}  // namespace traceslo
