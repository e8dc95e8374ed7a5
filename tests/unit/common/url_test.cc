#include "traceslo/common/url.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

namespace traceslo {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(ParseHttpUrlTest, SplitsSchemeHostPortAndTarget) {
  absl::StatusOr<HttpUrl> url = ParseHttpUrl("https://hooks.slack.com/services/T0/B0/xyz?a=b#f");
  ASSERT_TRUE(url.ok()) << url.status();
  EXPECT_TRUE(url->tls);
  EXPECT_EQ(url->host, "hooks.slack.com");
  EXPECT_EQ(url->port, 443);
  EXPECT_EQ(url->target, "/services/T0/B0/xyz?a=b");
  EXPECT_EQ(url->HostHeader(), "hooks.slack.com");

  url = ParseHttpUrl("http://127.0.0.1:9093");
  ASSERT_TRUE(url.ok()) << url.status();
  EXPECT_FALSE(url->tls);
  EXPECT_EQ(url->port, 9093);
  EXPECT_EQ(url->target, "/");
  EXPECT_EQ(url->HostHeader(), "127.0.0.1:9093");

  url = ParseHttpUrl("http://[::1]:8080?x");
  ASSERT_TRUE(url.ok()) << url.status();
  EXPECT_EQ(url->host, "::1");
  EXPECT_TRUE(url->host_is_ipv6);
  EXPECT_EQ(url->target, "/?x");
  EXPECT_EQ(url->HostHeader(), "[::1]:8080");
}

TEST(ParseHttpUrlTest, ErrorsNeverRepeatTheUrl) {
  const std::string secret = "T0KEN123";
  for (const std::string& bad :
       {"ftp://" + secret, "https://user:" + secret + "@host/", "http://" + secret + ":99999/",
        "https:///" + secret, "http://ho st/" + secret, "http://[::1/" + secret,
        "http://a_b!c/" + secret, "http://h:/" + secret, "http://[::1]x/" + secret, secret}) {
    absl::StatusOr<HttpUrl> url = ParseHttpUrl(bad);
    ASSERT_FALSE(url.ok()) << bad;
    EXPECT_EQ(url.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(url.status().message(), Not(HasSubstr(secret))) << bad;
    EXPECT_THAT(url.status().message(), HasSubstr("the URL ")) << bad;
  }
}

}  // namespace
}  // namespace traceslo
