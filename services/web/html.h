#pragma once

#include <string>
#include <string_view>

namespace traceslo::web {

// Helpers shared by the server-rendered pages. Everything a page shows that came from outside
// (span and service names, messages, exception types, frames, ids typed into a URL) goes through
// AppendEscaped, in text and in quoted attribute values alike.

// Appends `text` for HTML text or a quoted attribute value: & < > " ' become character
// references, byte sequences that are not valid UTF-8 and control characters other than tab, LF
// and CR become U+FFFD. The result cannot close an element, an attribute or a comment.
void AppendEscaped(std::string& out, std::string_view text);
std::string Escape(std::string_view text);

// `text` with every byte that does not start a valid UTF-8 sequence (overlong forms, surrogates
// and code points above U+10FFFF included) replaced by U+FFFD; other bytes as they are. For
// untrusted bytes bound for JSON, whose parsers refuse invalid UTF-8.
std::string ValidUtf8(std::string_view text);

// Every page uses one stylesheet, inlined in <head>, and no scripts, images or other assets.
// Serve pages with this Content-Security-Policy: the stylesheet is allowed by its hash, and
// nothing else loads (tests/unit/web/trace_page_test.cc checks the hash against the stylesheet).
inline constexpr std::string_view kPageContentType = "text/html; charset=utf-8";
inline constexpr std::string_view kPageContentSecurityPolicy =
    "default-src 'none'; style-src 'sha256-C5v2lGM1i7cmYUjlIPYbvN117ydRPyV1N3V765Qjofk='; img-src "
    "'none'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
// The stylesheet, exactly as it appears between <style> and </style>.
std::string_view PageStylesheet();

// Appends "<!DOCTYPE html>" through "<body>": charset, viewport for phones, the escaped title and
// the stylesheet. EndPage closes the document.
void BeginPage(std::string& out, std::string_view title);
void EndPage(std::string& out);

}  // namespace traceslo::web
