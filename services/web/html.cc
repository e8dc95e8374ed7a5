#include "services/web/html.h"

#include <cmath>
#include <cstddef>
#include <cstdio>

namespace traceslo::web {
namespace {

constexpr std::string_view kReplacement = "\xef\xbf\xbd";  // U+FFFD

// The length of the valid UTF-8 sequence that starts at `s[i]` (i < s.size()), or 0.
size_t Utf8SequenceAt(std::string_view s, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = byte(i);
  if (c < 0x80) return 1;
  size_t n = 0;
  unsigned char low = 0x80;  // bounds of the second byte (no overlongs, surrogates, > U+10FFFF)
  unsigned char high = 0xbf;
  if (c >= 0xc2 && c <= 0xdf) {
    n = 2;
  } else if (c == 0xe0) {
    n = 3;
    low = 0xa0;
  } else if (c == 0xed) {
    n = 3;
    high = 0x9f;
  } else if (c >= 0xe1 && c <= 0xef) {
    n = 3;
  } else if (c == 0xf0) {
    n = 4;
    low = 0x90;
  } else if (c >= 0xf1 && c <= 0xf3) {
    n = 4;
  } else if (c == 0xf4) {
    n = 4;
    high = 0x8f;
  } else {
    return 0;
  }
  if (s.size() - i < n) return 0;
  if (byte(i + 1) < low || byte(i + 1) > high) return 0;
  for (size_t k = 2; k < n; ++k) {
    if ((byte(i + k) & 0xc0) != 0x80) return 0;
  }
  return n;
}

// Appends the valid UTF-8 sequence that starts at `text[i]` (i < text.size()) and moves `i` past
// it, or appends U+FFFD for the byte at `i` and moves past that byte.
void AppendSequenceAt(std::string& out, std::string_view text, size_t& i) {
  const size_t n = Utf8SequenceAt(text, i);
  if (n == 0) {
    out += kReplacement;
    ++i;
  } else {
    out.append(text.substr(i, n));
    i += n;
  }
}

// One stylesheet for every page (its hash is in kPageContentSecurityPolicy). Colours c0-c9 are a
// fixed palette for services; d1-d15 indent span rows by tree depth. Below 640 px the waterfall
// bar moves under the span's name, and rows of table.stack become blocks whose cells are labelled
// by their data-label (the overview, alerts and signatures pages on a phone).
constexpr std::string_view kStylesheet =
    ":root{--ind:1.1em;--fg:#1f2328;--muted:#59636e;--line:#d1d9e0;--err:#cf222e}"
    "*{box-sizing:border-box}"
    "body{margin:0;padding:.75rem 1rem;font:14px/1.45 system-ui,-apple-system,\"Segoe UI\","
    "Roboto,sans-serif;color:var(--fg);background:#fff}"
    "h1{font-size:1.2rem;margin:0 0 .3rem;overflow-wrap:anywhere}"
    "code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.9em}"
    "a{color:#0969da}"
    "p{margin:.3rem 0}"
    ".meta{color:var(--muted)}"
    ".summary{font-weight:600}"
    ".notice{max-width:42rem}"
    ".legend{list-style:none;padding:0;margin:.5rem 0;display:flex;flex-wrap:wrap;gap:.2rem 1rem}"
    ".sw{width:.8em;height:.8em;margin-right:.3em;vertical-align:-.05em}"
    ".axis{display:flex;justify-content:space-between;margin:.6rem 0 0 40%;padding:0 0 .1rem;"
    "color:var(--muted);font-size:.75rem;border-bottom:1px solid var(--line)}"
    ".spans{list-style:none;padding:0;margin:0}"
    ".span{display:grid;grid-template-columns:40% 60%;align-items:center;padding:.25rem 0;"
    "border-bottom:1px solid #eef1f4}"
    ".label{min-width:0;padding-right:.5rem;overflow-wrap:anywhere}"
    ".op{font-weight:600}"
    ".svc,.dur,.at{color:var(--muted);font-size:.85em;margin-right:.4em}"
    ".dur{color:var(--fg)}"
    ".bar{display:block;width:100%;height:14px}"
    ".bar rect{stroke-width:1px;vector-effect:non-scaling-stroke}"
    ".bar line{stroke-width:2px}"
    ".span.error{background:#fff1f0;box-shadow:-3px 0 var(--err)}"
    ".flag{display:inline-block;font-size:.75rem;font-weight:700;padding:0 .35em;"
    "border-radius:.25em;margin-right:.3em}"
    ".flag.err{background:var(--err);color:#fff}"
    ".flag.broken{background:#fff8c5;color:#6c4400;border:1px solid #d4a72c}"
    ".exc{margin:.15rem 0 0;font-size:.85em;color:#82071e}"
    ".exc code{color:var(--muted)}"
    ".more{font-style:italic;color:var(--muted)}"
    ".c0{fill:#4e79a7;stroke:#4e79a7}.c1{fill:#f28e2b;stroke:#f28e2b}"
    ".c2{fill:#59a14f;stroke:#59a14f}.c3{fill:#b07aa1;stroke:#b07aa1}"
    ".c4{fill:#76b7b2;stroke:#76b7b2}.c5{fill:#edc948;stroke:#edc948}"
    ".c6{fill:#9c755f;stroke:#9c755f}.c7{fill:#ff9da7;stroke:#ff9da7}"
    ".c8{fill:#bab0ac;stroke:#bab0ac}.c9{fill:#17becf;stroke:#17becf}"
    ".d1{padding-left:calc(1*var(--ind))}.d2{padding-left:calc(2*var(--ind))}"
    ".d3{padding-left:calc(3*var(--ind))}.d4{padding-left:calc(4*var(--ind))}"
    ".d5{padding-left:calc(5*var(--ind))}.d6{padding-left:calc(6*var(--ind))}"
    ".d7{padding-left:calc(7*var(--ind))}.d8{padding-left:calc(8*var(--ind))}"
    ".d9{padding-left:calc(9*var(--ind))}.d10{padding-left:calc(10*var(--ind))}"
    ".d11{padding-left:calc(11*var(--ind))}.d12{padding-left:calc(12*var(--ind))}"
    ".d13{padding-left:calc(13*var(--ind))}.d14{padding-left:calc(14*var(--ind))}"
    ".d15{padding-left:calc(15*var(--ind))}"
    "@media (max-width:640px){:root{--ind:.55em}body{padding:.5rem}"
    ".span{grid-template-columns:100%}.axis{margin-left:0}.bar{margin-top:.15rem}}"
    "nav{display:flex;flex-wrap:wrap;gap:.2rem 1rem;padding:0 0 .4rem;margin:0 0 .6rem;"
    "border-bottom:1px solid var(--line)}"
    "nav a{text-decoration:none;font-weight:600}nav a[aria-current]{color:var(--fg)}"
    "h2{font-size:1.05rem;margin:1rem 0 .3rem}"
    ".scroll{overflow-x:auto;max-width:100%}"
    "table{border-collapse:collapse;min-width:100%}"
    "th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #eef1f4;"
    "vertical-align:top}"
    "th{color:var(--muted);font-size:.85em;white-space:nowrap}"
    ".num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}"
    ".state{display:inline-block;font-size:.75rem;font-weight:700;padding:0 .35em;"
    "border-radius:.25em;background:#eef1f4;color:var(--muted)}"
    ".state.firing{background:var(--err);color:#fff}"
    ".state.pending{background:#fff8c5;color:#6c4400}"
    ".state.ok{background:#dafbe1;color:#116329}"
    ".plain{list-style:none;margin:0;padding:0}"
    ".msg{overflow-wrap:anywhere;max-width:40rem}"
    ".group{border:1px solid var(--line);border-radius:.4rem;padding:.5rem .75rem;margin:.6rem 0}"
    ".group.acked{border-style:dashed}"
    ".group-key{overflow-wrap:anywhere}"
    ".alert{margin:.4rem 0;padding:.3rem 0;border-top:1px solid #eef1f4}"
    ".help{color:var(--muted);font-size:.85em;overflow-wrap:anywhere}"
    "meter{width:5rem;vertical-align:middle}"
    "@media (max-width:640px){table.stack thead{display:none}"
    "table.stack tr{display:block;border-bottom:1px solid var(--line);padding:.3rem 0}"
    "table.stack td{display:block;border:0;padding:.1rem 0;text-align:left}"
    "table.stack td[data-label]::before{content:attr(data-label) \": \";color:var(--muted);"
    "font-size:.85em}}";

}  // namespace

void AppendEscaped(std::string& out, std::string_view text) {
  out.reserve(out.size() + text.size());
  for (size_t i = 0; i < text.size();) {
    const char c = text[i];
    switch (c) {
      case '&':
        out += "&amp;";
        ++i;
        continue;
      case '<':
        out += "&lt;";
        ++i;
        continue;
      case '>':
        out += "&gt;";
        ++i;
        continue;
      case '"':
        out += "&quot;";
        ++i;
        continue;
      case '\'':
        out += "&#39;";
        ++i;
        continue;
      default:
        break;
    }
    const auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\t' && c != '\n' && c != '\r') || u == 0x7f) {
      out += kReplacement;
      ++i;
      continue;
    }
    AppendSequenceAt(out, text, i);
  }
}

std::string Escape(std::string_view text) {
  std::string out;
  AppendEscaped(out, text);
  return out;
}

std::string ValidUtf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    AppendSequenceAt(out, text, i);
  }
  return out;
}

std::string_view PageStylesheet() { return kStylesheet; }

void BeginPage(std::string& out, std::string_view title) {
  out +=
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
      "<meta name=\"referrer\" content=\"no-referrer\">\n<title>";
  AppendEscaped(out, title);
  out += "</title>\n<style>";
  out += kStylesheet;
  out += "</style>\n</head>\n<body>\n";
}

void EndPage(std::string& out) { out += "</body>\n</html>\n"; }

std::string PageBaseUrl(std::string_view external_url) {
  std::string base(external_url);
  while (!base.empty() && base.back() == '/') base.pop_back();
  return base;
}

void AppendNav(std::string& out, std::string_view external_url, NavPage current) {
  const std::string base = PageBaseUrl(external_url);
  out += "<nav aria-label=\"traceslo\">";
  const auto link = [&](NavPage page, std::string_view path, std::string_view id,
                        std::string_view text) {
    out += "<a id=\"";
    out += id;
    out += "\" href=\"";
    AppendEscaped(out, base + std::string(path));
    out += "\"";
    if (page == current) out += " aria-current=\"page\"";
    out += ">";
    out += text;
    out += "</a>";
  };
  link(NavPage::kOverview, "/", "nav-overview", "Overview");
  link(NavPage::kAlerts, "/alerts", "nav-alerts", "Alerts");
  link(NavPage::kSignatures, "/signatures", "nav-signatures", "Signatures");
  out += "</nav>\n";
}

std::string Format(const char* format, double value) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, value);
  return buf;
}

std::string BurnText(double burn_rate) {
  if (!std::isfinite(burn_rate)) return "\xe2\x80\x94";
  return Format("%.2f\xc3\x97", burn_rate);
}

std::string TraceUrl(std::string_view base, std::string_view trace_id) {
  return std::string(base) + "/traces/" + std::string(trace_id);
}

}  // namespace traceslo::web
