#pragma once

// Checks shared by the page tests: what any page must hold under the strict CSP, and a decoder
// of HTML character references so a test can find untrusted text in a page.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <map>
#include <regex>
#include <string>
#include <string_view>

#include "services/web/html.h"

namespace traceslo::web::page_test {

inline std::string Between(const std::string& text, std::string_view open, std::string_view close) {
  const size_t start = text.find(open);
  if (start == std::string::npos) return "";
  const size_t from = start + open.size();
  const size_t end = text.find(close, from);
  return end == std::string::npos ? "" : text.substr(from, end - from);
}

// No scripts, style attributes, event handlers or anything loaded from elsewhere; one <title>,
// a viewport for phones, the shared stylesheet and the navigation.
inline void ExpectSelfContained(const std::string& page) {
  using ::testing::HasSubstr;
  using ::testing::Not;
  EXPECT_TRUE(page.starts_with("<!DOCTYPE html>\n"));
  EXPECT_THAT(page, HasSubstr("<meta name=\"viewport\" content=\"width=device-width"));
  EXPECT_THAT(page, HasSubstr("<meta charset=\"utf-8\">"));
  EXPECT_THAT(page, Not(HasSubstr("<script")));
  EXPECT_THAT(page, Not(HasSubstr("<link")));
  EXPECT_THAT(page, Not(HasSubstr("<img")));
  EXPECT_THAT(page, Not(HasSubstr("<iframe")));
  EXPECT_THAT(page, Not(HasSubstr("<form")));
  EXPECT_FALSE(
      std::regex_search(page, std::regex("<[^>]*\\s(on[a-z]+|style|src)\\s*=", std::regex::icase)));
  EXPECT_EQ(Between(page, "<style>", "</style>"), PageStylesheet());
  EXPECT_FALSE(Between(page, "<title>", "</title>").empty());
  EXPECT_THAT(page, HasSubstr("<nav aria-label=\"traceslo\">"));
  EXPECT_TRUE(page.ends_with("</html>\n"));
}

// Undoes HTML character references (named ones for & < > " ' and numeric ones), so a test can
// find the original text in a page without depending on which reference the page chose.
inline std::string DecodeHtml(std::string_view html) {
  static const std::map<std::string, std::string, std::less<>> kNamed = {
      {"amp", "&"}, {"lt", "<"}, {"gt", ">"}, {"quot", "\""}, {"apos", "'"}};
  std::string out;
  for (size_t i = 0; i < html.size();) {
    const size_t semi = html[i] == '&' ? html.find(';', i) : std::string_view::npos;
    if (semi == std::string_view::npos || semi - i > 10) {
      out += html[i++];
      continue;
    }
    const std::string_view ref = html.substr(i + 1, semi - i - 1);
    if (auto it = kNamed.find(ref); it != kNamed.end()) {
      out += it->second;
    } else if (ref.size() > 1 && ref[0] == '#') {
      const bool hex = ref[1] == 'x' || ref[1] == 'X';
      const unsigned long code =
          std::stoul(std::string(ref.substr(hex ? 2 : 1)), nullptr, hex ? 16 : 10);
      EXPECT_LT(code, 0x80u) << "only ASCII is referenced here: " << ref;
      out += static_cast<char>(code);
    } else {
      out += html.substr(i, semi - i + 1);
    }
    i = semi + 1;
  }
  return out;
}

// The raw untrusted text must not survive in the markup: no tag it opens, no quote that could
// end an attribute.
inline void ExpectNoRawEvil(const std::string& page) {
  using ::testing::HasSubstr;
  using ::testing::Not;
  EXPECT_THAT(page, Not(HasSubstr("<script")));
  EXPECT_THAT(page, Not(HasSubstr("</textarea><b>")));
  EXPECT_THAT(page, Not(HasSubstr("\"quoted\"")));
  EXPECT_THAT(page, Not(HasSubstr("'single'")));
}

// A JSON body, parsed (a failure is a test failure).
inline boost::json::value ParseJson(const std::string& body) {
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(body, ec);
  EXPECT_FALSE(ec) << ec.message() << ": " << body;
  return v;
}

// Names an OTLP producer or a rule author chose: everything HTML must not take literally.
inline constexpr std::string_view kEvil =
    "<script>alert(1)</script></textarea><b>\"quoted\" 'single' & more";

}  // namespace traceslo::web::page_test
