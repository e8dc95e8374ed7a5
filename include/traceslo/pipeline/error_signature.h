#pragma once

// Error signatures (Sentry-style): what names the cause of an error in alerts and is the default
// grouping key. A signature is a stable 64-bit hash of
//   service + operation + exception type + normalized message + top stack frame
//   + HTTP status + gRPC status,
// where the message is normalized so that ids, numbers, addresses and quoted values do not split
// one cause into many signatures, and the top frame carries no line numbers so a redeploy that
// shifts lines keeps the signature.
//
// Everything here is pure: no state, no locks, no I/O. Thread-safe (callers own the scratch
// strings). Allocation-light: the outputs go into caller-provided strings that are cleared and
// reused, and never grow past the documented caps.

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "traceslo/common/span.h"

namespace traceslo::pipeline {

// Bytes of a message that NormalizeMessage looks at; the rest is ignored (cut back to a UTF-8
// character boundary).
inline constexpr size_t kMaxSignatureMessageScanBytes = 1024;
// NormalizeMessage's output never exceeds this; it is cut between two tokens (never inside a
// placeholder or a UTF-8 character).
inline constexpr size_t kMaxNormalizedMessageBytes = 512;
// Bytes of a stack trace that TopFrame looks at.
inline constexpr size_t kMaxStacktraceScanBytes = 4096;
// TopFrame's output never exceeds this.
inline constexpr size_t kMaxTopFrameBytes = 256;

// Writes `message` into `out` (cleared first) with variable parts masked, and returns a view of
// `out`. One left-to-right pass, no regular expressions, linear time.
//
// Placeholders: <str> <url> <email> <uuid> <ip> <hex> <num>.
//
// A "word" byte is an ASCII letter, digit or '_'. A token starts where the previous byte was not
// a word byte (bytes >= 0x80 count as boundaries, so digits glued to non-ASCII text are masked).
// Masks apply only to whole tokens, so identifiers that merely contain digits (utf8, ipv4,
// S3Client, http2, user_42) are kept. At each position the first rule that matches wins:
//  1. ASCII whitespace and control bytes: runs collapse to one space; trimmed at both ends.
//  2. A placeholder already in the input is kept as is (this makes normalization idempotent).
//  3. Quoted value ('...', "...", `...`) opening at a token start, up to the next quote of the
//     same kind (backslashes don't escape) -> <str>. A closing ' must not be followed by an
//     ASCII letter or '<' (so "it's" and "Bob's" don't close); an unterminated quote is kept
//     literally. Quotes come first: whatever is inside one is a single value.
//  4. At a token start, the first of:
//     - URL: scheme "://" then everything up to whitespace, a quote, '<' or '>', minus trailing
//       sentence punctuation (.,;:!?)]}) -> <url>
//     - e-mail: local@domain.tld (dotted domain, alphabetic TLD of >= 2 letters) -> <email>
//     - UUID: 8-4-4-4-12 hex digits -> <uuid>
//     - IPv6: hex groups with "::" or exactly 8 groups, at least one decimal digit, optional
//       dotted IPv4 tail, optionally bracketed "[...]:port" -> <ip>
//     - IPv4: four dotted octets <= 255, optional ":port" or "/prefix" -> <ip>
//     - hex: "0x" + hex digits, or >= 8 hex digits with at least one digit and one letter
//       (trace ids, hashes) -> <hex>. A run of only decimal digits is a number.
//     - number: optional sign (when a digit follows), digits, optional ".digits" -> <num>.
//     UUIDs, addresses, e-mails and hex must end at a token boundary (a non-word byte other
//     than '<'); otherwise the next rule is tried.
//  5. Letters glued to a number are kept as its unit (123ms -> <num>ms), and digits later in
//     the same word are masked too (1h30m -> <num>h<num>m, 2024-01-02T10:00 ->
//     <num>-<num>-<num>T<num>:<num>).
//  6. Everything else is copied byte for byte (UTF-8 passes through).
//
// Example: user 'bob' id=42 at 10.0.0.1:8080 trace 4bf92f3577b34da6a3ce929d0e0e4736
//       -> user <str> id=<num> at <ip> trace <hex>
// Idempotent: NormalizeMessage(NormalizeMessage(m)) == NormalizeMessage(m) whenever the first
// output was not cut at kMaxNormalizedMessageBytes.
std::string_view NormalizeMessage(std::string_view message, std::string& out);

// Writes the first application frame of `stacktrace` into `out` (cleared first), as
// "function (file)" without line or column numbers, and returns a view of `out`. Recognized:
//   Java     "\tat com.x.Y.method(Y.java:42)"             -> "com.x.Y.method (Y.java)"
//   .NET     "   at Ns.C.M(String s) in C:\x.cs:line 42"  -> "Ns.C.M(String s) (C:\x.cs)"
//   Node/JS  "    at handler (/app/x.js:10:5)"            -> "handler (/app/x.js)"
//            "    at /app/x.js:10:5"                       -> "/app/x.js"
//   Python   "  File \"app.py\", line 12, in handler"     -> "handler (app.py)"
//   Go       "main.handler(0x1)\n\t/app/x.go:42 +0x1d"    -> "main.handler (/app/x.go)"
//   Ruby     "app.rb:12:in 'handler'" (or `handler')       -> "handler (app.rb)"
// The first recognized frame decides the format. Library frames (JDK, java/javax/jakarta, Spring,
// Netty, System./Microsoft., node: and node_modules, site-packages, Go runtime and module cache,
// gems) are skipped; when every frame is a library frame, the top one is used. Python prints the
// most recent call last, so its last application frame is taken. Pieces are then normalized like
// a message (addresses, uuids, numbers masked). Unknown formats: the first non-empty line,
// normalized like a message. Empty input -> empty output.
std::string_view TopFrame(std::string_view stacktrace, std::string& out);

// What a signature is computed from. `message` and `top_frame` are already normalized
// (NormalizeMessage, TopFrame). Views must stay valid for the ComputeSignature call only.
struct SignatureInput {
  std::string_view service;
  std::string_view operation;
  std::string_view exception_type;
  std::string_view message;
  std::string_view top_frame;
  int32_t http_status = 0;  // 0: absent
  int32_t rpc_status = -1;  // -1: absent
};

struct ErrorSignature {
  uint64_t id = 0;

  friend bool operator==(const ErrorSignature&, const ErrorSignature&) = default;
};

// The signature of `input`, stable across processes, machines, builds and releases (a change of
// the algorithm below changes every id and must be treated as a breaking change):
//   id = FNV-1a 64 (offset basis 0xcbf29ce484222325, prime 0x100000001b3) over the bytes
//     0x01                                   (encoding version)
//     for service, operation, exception_type, message, top_frame in this order:
//       byte length as uint32 little-endian, then the bytes
//     http_status as int32 little-endian (two's complement)
//     rpc_status  as int32 little-endian (two's complement)
// The length prefixes make the encoding unambiguous: ("ab", "c") and ("a", "bc") differ.
ErrorSignature ComputeSignature(const SignatureInput& input);

// Scratch space for SignatureOfSpan; reuse one per thread so repeated calls don't allocate.
struct SignatureScratch {
  std::string message;  // after SignatureOfSpan: the normalized message
  std::string frame;    // after SignatureOfSpan: the top frame
};

// The signature of an error span whose strings live in `strings` (the batch's arena). The
// message is the exception message when non-empty, else the status message. On return
// `scratch.message` and `scratch.frame` hold the normalized message and top frame (for display).
ErrorSignature SignatureOfSpan(const Span& span, std::string_view strings,
                               SignatureScratch& scratch);

// 16 lower-case hex characters, most significant first (for labels and URLs).
inline constexpr size_t kSignatureIdHexChars = 16;
std::array<char, kSignatureIdHexChars> FormatSignatureId(uint64_t id);
std::string SignatureIdHex(uint64_t id);
// Parses exactly 16 hex characters (either case); nullopt otherwise.
std::optional<uint64_t> ParseSignatureId(std::string_view hex);

}  // namespace traceslo::pipeline
