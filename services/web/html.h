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
    "default-src 'none'; style-src 'sha256-lGVQ2Mdkx128fTNLawMM72WtoC4SqB+nCoU/3dm/oJw='; img-src "
    "'none'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
// The stylesheet, exactly as it appears between <style> and </style>.
std::string_view PageStylesheet();

// Appends "<!DOCTYPE html>" through "<body>": charset, viewport for phones, the escaped title and
// the stylesheet. EndPage closes the document.
void BeginPage(std::string& out, std::string_view title);
void EndPage(std::string& out);

// The pages the navigation links.
enum class NavPage { kOverview, kAlerts, kSignatures, kOther };

// `external_url` (web.external_url) without trailing slashes: the prefix of every link a page
// makes, so a path prefix behind a proxy works; empty gives root-relative links.
std::string PageBaseUrl(std::string_view external_url);

// Appends the navigation of every page (Overview, Alerts, Signatures) with `current` marked
// aria-current="page"; links under PageBaseUrl(external_url).
void AppendNav(std::string& out, std::string_view external_url, NavPage current);

// `value` through printf's `format` (one double conversion), e.g. Format("%.3f%%", 99.9).
std::string Format(const char* format, double value);
// A burn rate as "14.40×"; "—" when it is not finite.
std::string BurnText(double burn_rate);
// The built-in trace page of `trace_id` (32 hex digits) under `base` (web.external_url, or
// empty for a root-relative link).
std::string TraceUrl(std::string_view base, std::string_view trace_id);

}  // namespace traceslo::web
