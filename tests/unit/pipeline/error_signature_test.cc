#include "traceslo/pipeline/error_signature.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "traceslo/common/span.h"

namespace traceslo::pipeline {
namespace {

std::string Normalize(std::string_view message) {
  std::string out;
  NormalizeMessage(message, out);
  return out;
}

std::string Frame(std::string_view stacktrace) {
  std::string out;
  TopFrame(stacktrace, out);
  return out;
}

struct MaskCase {
  std::string_view input;
  std::string_view expected;
};

// Expected values are written from the rules in error_signature.h, not from the code's output.
constexpr MaskCase kMaskCases[] = {
    // The example: quotes, numbers, IPv4 with port, hex trace id.
    {"user 'bob' id=42 at 10.0.0.1:8080 trace 4bf92f3577b34da6a3ce929d0e0e4736",
     "user <str> id=<num> at <ip> trace <hex>"},
    // UUIDs.
    {"request 123e4567-e89b-12d3-a456-426614174000 failed", "request <uuid> failed"},
    {"id={F47AC10B-58CC-4372-A567-0E02B2C3D479}", "id={<uuid>}"},
    // URLs, up to whitespace, without trailing sentence punctuation.
    {"GET https://api.example.com/v1/users/42?x=1 failed", "GET <url> failed"},
    {"see http://x.io/a.", "see <url>."},
    {"url with ip http://10.0.0.1:8080/x end", "url with ip <url> end"},
    // E-mails; a host without a dotted domain is not one.
    {"mail alice.smith+tag@example.co.uk bounced", "mail <email> bounced"},
    {"login postgres@db failed", "login postgres@db failed"},
    {"user@10.0.0.1 denied", "user@<ip> denied"},
    // IPv4: plain, with port, with prefix; five dotted numbers are not an address.
    {"connect 192.168.1.20 refused", "connect <ip> refused"},
    {"dial tcp 10.1.2.3:5432: i/o timeout", "dial tcp <ip>: i/o timeout"},
    {"route 10.0.0.0/8 missing", "route <ip> missing"},
    {"status 1.2.3.4.5", "status <num>.<num>.<num>"},
    {"-10.0.0.1 odd", "-<ip> odd"},
    // IPv6: bracketed with port, compressed, full, IPv4-mapped; times and C++ scopes are not.
    {"dial tcp [2001:db8::1]:443: connection refused", "dial tcp <ip>: connection refused"},
    {"peer fe80::1ff:fe23:4567:890a unreachable", "peer <ip> unreachable"},
    {"addr 2001:0db8:85a3:0000:0000:8a2e:0370:7334 bad", "addr <ip> bad"},
    {"from ::ffff:10.0.0.1 denied", "from <ip> denied"},
    {"at 10:30:00 UTC", "at <num>:<num>:<num> UTC"},
    {"a::b and std::vector", "a::b and std::vector"},
    // Hex: 0x-prefixed, or >= 8 hex digits with a digit and a letter.
    {"ptr 0x7ffd5fbff8a0 freed", "ptr <hex> freed"},
    {"sha deadbeef12345678 mismatch", "sha <hex> mismatch"},
    {"commit abc1234 bad", "commit abc1234 bad"},
    {"token deadbeefcafebabe ok", "token deadbeefcafebabe ok"},
    {"order 12345678901 not found", "order <num> not found"},
    // Numbers: decimals, signs, glued units, digits later in a number-led word.
    {"took 123ms (limit 100.5ms)", "took <num>ms (limit <num>ms)"},
    {"delta -5 and +3", "delta <num> and <num>"},
    {"retry in 1h30m", "retry in <num>h<num>m"},
    {"deadline 2024-01-02T10:00:00.123Z passed",
     "deadline <num>-<num>-<num>T<num>:<num>:<num>Z passed"},
    {"version 1.2.3", "version <num>.<num>"},
    {"port :8080 value=NaN count=0", "port :<num> value=NaN count=<num>"},
    // Identifiers that merely contain digits are kept.
    {"utf8 ipv4 S3Client http2 user_42 v1 E1234", "utf8 ipv4 S3Client http2 user_42 v1 E1234"},
    // Quotes: all three kinds, quotes win over what is inside, apostrophes don't open or close.
    {"it's Bob's car 'x'", "it's Bob's car <str>"},
    {"key \"value with 'inner' quotes\" end", "key <str> end"},
    {"backtick `select 1` done", "backtick <str> done"},
    {"quoted url 'http://x.io/a b' end", "quoted url <str> end"},
    {"unterminated 'quote here 42", "unterminated 'quote here <num>"},
    {"Cannot read properties of undefined (reading 'id')",
     "Cannot read properties of undefined (reading <str>)"},
    // Unicode passes through; non-ASCII text is a boundary, so glued digits are masked.
    {"café 42 naïve", "café <num> naïve"},
    {"错误码42", "错误码<num>"},
    // Whitespace and control bytes collapse and are trimmed.
    {"  many   spaces\t\nand\r\nlines  ", "many spaces and lines"},
    {std::string_view("nul\0byte 7", 10), "nul byte <num>"},
    // Placeholders already present are kept.
    {"placeholder <num> and <str> stay", "placeholder <num> and <str> stay"},
    {"", ""},
};

TEST(NormalizeMessageTest, MasksTable) {
  for (const MaskCase& c : kMaskCases) {
    EXPECT_EQ(Normalize(c.input), c.expected) << "input: " << c.input;
  }
}

TEST(NormalizeMessageTest, IsIdempotent) {
  for (const MaskCase& c : kMaskCases) {
    const std::string once = Normalize(c.input);
    EXPECT_EQ(Normalize(once), once) << "input: " << c.input;
  }
}

// Inputs where a value glued to a word is not masked, but a number inside it is: a second pass
// must not then see an address in what is left (found by the fuzz target).
TEST(NormalizeMessageTest, IsIdempotentAroundGluedNumbers) {
  EXPECT_EQ(Normalize("fe80::1P7"), "fe80::<num>P<num>");
  EXPECT_EQ(Normalize("fe80::<num>P<num>"), "fe80::<num>P<num>");
  EXPECT_EQ(Normalize("ff1::ffff:1000aIn"), "ff1::ffff:<num>aIn");
  EXPECT_EQ(Normalize("ff1::ffff:<num>aIn"), "ff1::ffff:<num>aIn");
  EXPECT_EQ(Normalize("10.0.0.1.5"), "<num>.<num>.<num>");
}

TEST(NormalizeMessageTest, ReturnsViewOfOutAndReusesIt) {
  std::string out = "previous content that must go";
  const std::string_view view = NormalizeMessage("id 42", out);
  EXPECT_EQ(out, "id <num>");
  EXPECT_EQ(view.data(), out.data());
  EXPECT_EQ(view.size(), out.size());
  const size_t capacity = out.capacity();
  NormalizeMessage("another message 7", out);
  EXPECT_EQ(out, "another message <num>");
  EXPECT_EQ(out.capacity(), capacity);  // no growth: the first call reserved the cap
}

TEST(NormalizeMessageTest, CapsOutput) {
  EXPECT_EQ(Normalize(std::string(2000, 'x')), std::string(kMaxNormalizedMessageBytes, 'x'));
  // Never cuts a UTF-8 character: 1 + 255 * 2 bytes fit in 512, the 256th 'é' does not.
  std::string accents = "a";
  for (int i = 0; i < 300; ++i) accents += "é";
  std::string expected = "a";
  for (int i = 0; i < 255; ++i) expected += "é";
  EXPECT_EQ(Normalize(accents), expected);
  // Never cuts a placeholder: 102 * "<num> " is 612 bytes; 85 whole "<num>" and 84 spaces
  // (509 bytes) fit, the 86th would need 515.
  std::string numbers;
  for (int i = 0; i < 102; ++i) numbers += "1 ";
  std::string masked = "<num>";
  for (int i = 1; i < 85; ++i) masked += " <num>";
  EXPECT_EQ(Normalize(numbers), masked);
}

TEST(NormalizeMessageTest, ScansOnlyTheFirstKibibyte) {
  // 1020 spaces, then "abc 42": only "abc " is within the first 1024 bytes.
  EXPECT_EQ(Normalize(std::string(1020, ' ') + "abc 42"), "abc");
  // A character straddling byte 1024 is dropped whole.
  EXPECT_EQ(Normalize(std::string(1023, ' ') + "é"), "");
}

TEST(TopFrameTest, Java) {
  constexpr std::string_view kTrace =
      "java.lang.IllegalStateException: cart 42 is empty\n"
      "\tat java.base/java.util.Objects.requireNonNull(Objects.java:233)\n"
      "\tat com.acme.checkout.CartService.total(CartService.java:42)\n"
      "\tat com.acme.checkout.Api.handle(Api.java:17)\n"
      "\tat org.springframework.web.servlet.FrameworkServlet.service(FrameworkServlet.java:897)\n"
      "Caused by: java.io.IOException: reset\n"
      "\t... 12 more\n";
  EXPECT_EQ(Frame(kTrace), "com.acme.checkout.CartService.total (CartService.java)");
}

TEST(TopFrameTest, PythonTakesTheMostRecentApplicationFrame) {
  constexpr std::string_view kTrace =
      "Traceback (most recent call last):\n"
      "  File \"/app/server.py\", line 88, in dispatch\n"
      "    return handler(request)\n"
      "  File \"/app/handlers/cart.py\", line 12, in handler\n"
      "    total = compute(cart)\n"
      "  File \"/usr/local/lib/python3.11/site-packages/pydantic/main.py\", line 341, in "
      "validate\n"
      "    raise ValidationError(errors)\n"
      "pydantic.ValidationError: 1 validation error for Cart\n";
  EXPECT_EQ(Frame(kTrace), "handler (/app/handlers/cart.py)");
}

TEST(TopFrameTest, PythonWithOnlyLibraryFramesTakesTheLast) {
  constexpr std::string_view kTrace =
      "Traceback (most recent call last):\n"
      "  File \"/usr/lib/python3/dist-packages/a.py\", line 1, in outer\n"
      "  File \"/usr/lib/python3/dist-packages/b.py\", line 2, in inner\n"
      "KeyError: 'x'\n";
  EXPECT_EQ(Frame(kTrace), "inner (/usr/lib/python3/dist-packages/b.py)");
}

TEST(TopFrameTest, Node) {
  constexpr std::string_view kTrace =
      "TypeError: Cannot read properties of undefined (reading 'id')\n"
      "    at Layer.handle (/app/node_modules/express/lib/router/layer.js:95:5)\n"
      "    at getUser (/app/src/users.js:27:18)\n"
      "    at /app/src/routes.js:10:5\n"
      "    at process.processTicksAndRejections (node:internal/process/task_queues:95:5)\n";
  EXPECT_EQ(Frame(kTrace), "getUser (/app/src/users.js)");
}

TEST(TopFrameTest, NodeAnonymousFrame) {
  constexpr std::string_view kTrace =
      "Error: boom\n"
      "    at new Promise (<anonymous>)\n"
      "    at /app/src/index.js:3:9\n";
  EXPECT_EQ(Frame(kTrace), "/app/src/index.js");
}

TEST(TopFrameTest, Go) {
  constexpr std::string_view kTrace =
      "panic: runtime error: invalid memory address or nil pointer dereference\n"
      "[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x4a1b2c]\n"
      "\n"
      "goroutine 17 [running]:\n"
      "net/http.(*conn).serve.func1()\n"
      "\t/usr/local/go/src/net/http/server.go:1854 +0xbf\n"
      "panic({0x6c1e40, 0x8a3f90})\n"
      "\t/usr/local/go/src/runtime/panic.go:890 +0x263\n"
      "main.(*Server).handleCheckout(0xc0000a6000, {0x7f3c20, 0xc0001c2000}, 0xc0001b8000)\n"
      "\t/app/server.go:42 +0x1d\n"
      "net/http.HandlerFunc.ServeHTTP(0x0?, {0x7f3c20?, 0xc0001c2000?}, 0x0?)\n"
      "\t/usr/local/go/src/net/http/server.go:2122 +0x2f\n";
  EXPECT_EQ(Frame(kTrace), "main.(*Server).handleCheckout (/app/server.go)");
}

TEST(TopFrameTest, DotNet) {
  constexpr std::string_view kTrace =
      "System.InvalidOperationException: Sequence contains no elements\n"
      "   at System.Linq.ThrowHelper.ThrowNoElementsException()\n"
      "   at System.Linq.Enumerable.First[TSource](IEnumerable`1 source)\n"
      "   at Acme.Orders.OrderService.Place(Order order) in "
      "C:\\src\\Acme.Orders\\OrderService.cs:line 42\n"
      "   at Acme.Api.OrdersController.Post(OrderDto dto) in "
      "C:\\src\\Acme.Api\\OrdersController.cs:line 18\n";
  EXPECT_EQ(Frame(kTrace),
            "Acme.Orders.OrderService.Place(Order order) "
            "(C:\\src\\Acme.Orders\\OrderService.cs)");
}

TEST(TopFrameTest, Ruby) {
  constexpr std::string_view kTrace =
      "/usr/local/bundle/gems/activesupport-7.0.4/lib/x.rb:5:in `y': undefined method `+' for "
      "nil (NoMethodError)\n"
      "\tfrom /app/app/services/cart.rb:12:in `total'\n"
      "\tfrom /app/app/controllers/carts_controller.rb:8:in `show'\n";
  EXPECT_EQ(Frame(kTrace), "total (/app/app/services/cart.rb)");
  // Ruby 3.4 quotes with ' on both sides and qualifies the method.
  EXPECT_EQ(Frame("/app/cart.rb:12:in 'Cart#total': boom (RuntimeError)\n"),
            "Cart#total (/app/cart.rb)");
}

TEST(TopFrameTest, LineNumbersAndAddressesDoNotMatter) {
  const std::vector<std::pair<std::string_view, std::string_view>> pairs = {
      {"\tat com.acme.A.run(A.java:10)\n", "\tat com.acme.A.run(A.java:311)\n"},
      {"  File \"/app/a.py\", line 3, in run\n", "  File \"/app/a.py\", line 97, in run\n"},
      {"    at run (/app/a.js:1:2)\n", "    at run (/app/a.js:40:17)\n"},
      {"main.run(0xc000010000)\n\t/app/a.go:5 +0x1d\n",
       "main.run(0xc000099999)\n\t/app/a.go:8 +0x3f\n"},
      {"   at A.B.Run() in /src/a.cs:line 5\n", "   at A.B.Run() in /src/a.cs:line 50\n"},
      {"/app/a.rb:1:in `run'\n", "/app/a.rb:22:in `run'\n"},
  };
  for (const auto& [before, after] : pairs) {
    EXPECT_EQ(Frame(before), Frame(after)) << before;
    EXPECT_FALSE(Frame(before).empty()) << before;
  }
}

TEST(TopFrameTest, UnknownFormatIsTheFirstLineNormalized) {
  EXPECT_EQ(Frame("\n\n  Something failed at step 3 for 'bob'\nsecond line\n"),
            "Something failed at step <num> for <str>");
  EXPECT_EQ(Frame(""), "");
  EXPECT_EQ(Frame("\n \t\n"), "");
}

TEST(TopFrameTest, CapsOutput) {
  const std::string trace = "\tat com.acme." + std::string(1000, 'x') + ".run(A.java:1)\n";
  const std::string frame = Frame(trace);
  EXPECT_EQ(frame, "com.acme." + std::string(kMaxTopFrameBytes - 9, 'x'));
}

// ---- Signatures ----

struct TestSpan {
  std::string service = "checkout";
  std::string operation = "POST /cart";
  std::string exception_type = "java.lang.IllegalStateException";
  std::string exception_message = "cart 42 is empty";
  std::string status_message;
  std::string stacktrace =
      "java.lang.IllegalStateException: cart 42 is empty\n"
      "\tat java.base/java.util.Objects.requireNonNull(Objects.java:233)\n"
      "\tat com.acme.checkout.CartService.total(CartService.java:42)\n";
  int32_t http_status = 500;
  int32_t rpc_status = -1;
};

uint64_t IdOf(const TestSpan& t) {
  SpanBatch batch;
  Span span;
  span.service = batch.Add(t.service, kMaxNameBytes);
  span.name = batch.Add(t.operation, kMaxNameBytes);
  span.exception_type = batch.Add(t.exception_type, kMaxMessageBytes);
  span.exception_message = batch.Add(t.exception_message, kMaxMessageBytes);
  span.status_message = batch.Add(t.status_message, kMaxMessageBytes);
  span.exception_stacktrace = batch.Add(t.stacktrace, kMaxStacktraceBytes);
  span.http_status = t.http_status;
  span.rpc_status = t.rpc_status;
  span.status = StatusCode::kError;
  SignatureScratch scratch;
  return SignatureOfSpan(span, batch.strings, scratch).id;
}

TEST(SignatureTest, SameErrorWithDifferentValuesIsOneSignature) {
  TestSpan a;
  a.exception_message =
      "user 'bob' id=42 at 10.0.0.1:8080 trace 4bf92f3577b34da6a3ce929d0e0e4736 "
      "req 123e4567-e89b-12d3-a456-426614174000";
  TestSpan b = a;
  b.exception_message =
      "user 'alice' id=7 at 10.0.0.2:9090 trace 0af7651916cd43dd8448eb211c80319c "
      "req f47ac10b-58cc-4372-a567-0e02b2c3d479";
  b.stacktrace =
      "java.lang.IllegalStateException: other text here\n"
      "\tat java.base/java.util.Objects.requireNonNull(Objects.java:240)\n"
      "\tat com.acme.checkout.CartService.total(CartService.java:57)\n";
  EXPECT_EQ(IdOf(a), IdOf(b));
}

TEST(SignatureTest, EachFieldSeparatesSignatures) {
  std::vector<TestSpan> variants(1);
  variants.emplace_back().exception_type = "java.lang.NullPointerException";
  variants.emplace_back().stacktrace =
      "\tat com.acme.checkout.CartService.add(CartService.java:42)";
  variants.emplace_back().service = "cart";
  variants.emplace_back().operation = "GET /cart";
  variants.emplace_back().http_status = 503;
  variants.emplace_back().rpc_status = 14;
  variants.emplace_back().exception_message = "cart 42 is full";
  std::set<uint64_t> ids;
  for (const TestSpan& v : variants) ids.insert(IdOf(v));
  EXPECT_EQ(ids.size(), variants.size());
}

TEST(SignatureTest, MessageComesFromTheExceptionElseTheStatus) {
  TestSpan exception;
  exception.exception_message = "timeout after 30s";
  exception.status_message = "ignored 1";
  TestSpan other_status = exception;
  other_status.status_message = "ignored too";
  EXPECT_EQ(IdOf(exception), IdOf(other_status));

  TestSpan status_only = exception;
  status_only.exception_message = "";
  status_only.status_message = "timeout after 5s";
  EXPECT_EQ(IdOf(status_only), IdOf(exception));  // both "timeout after <num>s"
  status_only.status_message = "ignored 1";
  EXPECT_NE(IdOf(status_only), IdOf(exception));
}

TEST(SignatureTest, FieldsAreLengthPrefixed) {
  const SignatureInput ab_c{.service = "ab", .operation = "c"};
  const SignatureInput a_bc{.service = "a", .operation = "bc"};
  EXPECT_NE(ComputeSignature(ab_c), ComputeSignature(a_bc));
  const SignatureInput message_frame{.message = "x", .top_frame = "y"};
  const SignatureInput frame_only{.top_frame = "xy"};
  EXPECT_NE(ComputeSignature(message_frame), ComputeSignature(frame_only));
}

// Golden ids, derived independently of this code with a Python implementation of the hash
// documented in error_signature.h (FNV-1a 64 over 0x01, five (uint32 LE length, bytes) fields,
// http and rpc status as int32 LE):
//   def fnv1a64(data):
//       h = 0xcbf29ce484222325
//       for b in data: h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
//       return h
//   def sig(service, op, exc, msg, frame, http=0, rpc=-1):
//       enc = b'\x01'
//       for f in (service, op, exc, msg, frame):
//           enc += struct.pack('<I', len(f.encode())) + f.encode()
//       return '%016x' % fnv1a64(enc + struct.pack('<i', http) + struct.pack('<i', rpc))
// If one of these fails, the algorithm or the encoding changed: every stored and linked
// signature id would change with it.
TEST(SignatureTest, GoldenIds) {
  EXPECT_EQ(SignatureIdHex(ComputeSignature({.service = "checkout",
                                             .operation = "POST /cart",
                                             .exception_type = "java.lang.IllegalStateException",
                                             .message = "cart <num> is empty",
                                             .top_frame = "com.acme.checkout.CartService.total "
                                                          "(CartService.java)",
                                             .http_status = 500,
                                             .rpc_status = -1})
                               .id),
            "65a3e4a9e4cf19ad");
  EXPECT_EQ(SignatureIdHex(ComputeSignature({}).id), "25a2c64406475ec8");
  EXPECT_EQ(SignatureIdHex(ComputeSignature({.service = "payments",
                                             .operation = "/acme.Pay/Charge",
                                             .message = "user <str> id=<num> at <ip> trace <hex>",
                                             .rpc_status = 14})
                               .id),
            "b4f31acc1382ae0e");
  EXPECT_EQ(SignatureIdHex(
                ComputeSignature({.service = "web",
                                  .operation = "GET /users/{id}",
                                  .exception_type = "TypeError",
                                  .message = "Cannot read properties of undefined (reading <str>)",
                                  .top_frame = "getUser (/app/src/users.js)",
                                  .http_status = 502,
                                  .rpc_status = 2})
                    .id),
            "9051b380cc23fa27");
}

TEST(SignatureTest, GoldenIdThroughASpan) {
  // The default TestSpan normalizes to the first golden input above.
  EXPECT_EQ(SignatureIdHex(IdOf(TestSpan{})), "65a3e4a9e4cf19ad");
}

TEST(SignatureTest, ScratchHoldsTheDisplayParts) {
  SpanBatch batch;
  Span span;
  span.status_message = batch.Add("deadline exceeded after 250ms", kMaxMessageBytes);
  span.exception_stacktrace = batch.Add("\tat com.acme.A.run(A.java:10)", kMaxStacktraceBytes);
  SignatureScratch scratch;
  SignatureOfSpan(span, batch.strings, scratch);
  EXPECT_EQ(scratch.message, "deadline exceeded after <num>ms");
  EXPECT_EQ(scratch.frame, "com.acme.A.run (A.java)");
}

TEST(SignatureIdTest, FormatsAndParses) {
  EXPECT_EQ(SignatureIdHex(0x0123456789abcdefULL), "0123456789abcdef");
  EXPECT_EQ(SignatureIdHex(0), "0000000000000000");
  EXPECT_EQ(SignatureIdHex(~0ULL), "ffffffffffffffff");
  EXPECT_EQ(ParseSignatureId("0123456789abcdef"), 0x0123456789abcdefULL);
  EXPECT_EQ(ParseSignatureId("0123456789ABCDEF"), 0x0123456789abcdefULL);
  EXPECT_EQ(ParseSignatureId("0123456789abcde"), std::nullopt);
  EXPECT_EQ(ParseSignatureId("0123456789abcdef0"), std::nullopt);
  EXPECT_EQ(ParseSignatureId("0123456789abcdeg"), std::nullopt);
  EXPECT_EQ(ParseSignatureId(""), std::nullopt);
}

}  // namespace
}  // namespace traceslo::pipeline
