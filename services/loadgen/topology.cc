#include "services/loadgen/topology.h"

#include <algorithm>
#include <cmath>
#include <unordered_set>
#include <utility>

namespace traceslo::loadgen {
namespace {

constexpr std::string_view kCheckoutRoute = "POST /api/checkout";
constexpr std::string_view kProductsRoute = "GET /api/products";
constexpr std::string_view kCartRoute = "GET /api/cart";
constexpr std::string_view kPlaceOrder = "POST /checkout";
constexpr std::string_view kGetCart = "GET /cart";
constexpr std::string_view kCharge = "payment.Payment/Charge";
constexpr std::string_view kReserve = "inventory.Inventory/Reserve";
constexpr std::string_view kListProducts = "inventory.Inventory/ListProducts";
constexpr std::string_view kUpdateStock = "UPDATE stock";
constexpr std::string_view kSelectProducts = "SELECT products";
constexpr std::string_view kSelectCart = "SELECT cart";
constexpr std::string_view kPublish = "orders publish";
constexpr std::string_view kProcess = "orders process";

constexpr std::array<std::string_view, 3> kGatewayOps = {kCheckoutRoute, kProductsRoute,
                                                         kCartRoute};
constexpr std::array<std::string_view, 2> kCheckoutOps = {kPlaceOrder, kGetCart};
constexpr std::array<std::string_view, 1> kPaymentOps = {kCharge};
constexpr std::array<std::string_view, 2> kInventoryOps = {kReserve, kListProducts};
constexpr std::array<std::string_view, 3> kDatabaseOps = {kUpdateStock, kSelectProducts,
                                                          kSelectCart};
constexpr std::array<std::string_view, 1> kConsumerOps = {kProcess};

// Mix of entry operations at gateway, and the expected span count of each as a function of the
// mean fan-out F: checkout 13 + 4F, products 4 + 2F, cart 5. Mean: 6.9 + 2.2 F.
constexpr double kCheckoutShare = 0.3;
constexpr double kProductsShare = 0.5;
constexpr double kBaseSpans = 6.9;
constexpr double kSpansPerFanout = 2.2;

// Background behaviour without incidents: rare transient payment failures (gRPC UNAVAILABLE,
// status UNSET: an error by its code only) and carts that do not exist (HTTP 404: no error).
constexpr double kPaymentUnavailable = 0.0005;
constexpr double kCartNotFound = 0.02;

constexpr int64_t kMaxStepUs = 60'000'000;

enum class Protocol : uint8_t { kHttp, kGrpc, kDatabase, kMessaging };

Protocol ProtocolOf(uint8_t service) {
  switch (service) {
    case kGateway:
    case kCheckout:
      return Protocol::kHttp;
    case kPayment:
    case kInventory:
      return Protocol::kGrpc;
    case kDatabase:
      return Protocol::kDatabase;
    default:
      return Protocol::kMessaging;
  }
}

// A stack trace in the style of the language each service is written in (the top frame is part
// of the error signature).
std::string_view StackOf(uint8_t service) {
  switch (service) {
    case kGateway:
      return "goroutine 41 [running]:\nmain.(*Router).ServeHTTP(...)\n"
             "\t/src/gateway/router.go:88 +0x1d4\nnet/http.serverHandler.ServeHTTP(...)\n"
             "\t/usr/local/go/src/net/http/server.go:2936 +0x316";
    case kCheckout:
      return "Traceback (most recent call last):\n"
             "  File \"/app/checkout/orders.py\", line 142, in place_order\n"
             "    reservation = inventory.reserve(items)\n"
             "  File \"/app/checkout/clients.py\", line 57, in reserve\n"
             "    raise ServiceError(response.status)";
    case kPayment:
      return "com.shop.payment.ChargeException\n"
             "\tat com.shop.payment.ChargeService.charge(ChargeService.java:214)\n"
             "\tat com.shop.payment.PaymentGrpc$PaymentImplBase.invoke(PaymentGrpc.java:88)";
    case kInventory:
      return "goroutine 17 [running]:\nshop/inventory.(*Store).Reserve(...)\n"
             "\t/src/inventory/store.go:131 +0x2a1\nshop/inventory.(*Server).Reserve(...)\n"
             "\t/src/inventory/server.go:64 +0x88";
    case kDatabase:
      return "ERROR:  could not serialize access due to concurrent update\n"
             "STATEMENT:  UPDATE stock SET reserved = reserved + $1 WHERE sku = $2";
    case kEmail:
      return "Error: send failed\n    at SmtpClient.send (/app/email/smtp.js:77:11)\n"
             "    at OrderConsumer.process (/app/email/consumer.js:31:5)";
    default:
      return "Traceback (most recent call last):\n"
             "  File \"/app/analytics/consumer.py\", line 48, in process\n"
             "    self.sink.write(event)";
  }
}

// How an entry span ended, as its caller sees it.
struct Outcome {
  bool failed = false;          // an error by traceslo's definition
  bool explicit_error = false;  // status ERROR (else a failure code with status UNSET)
  int32_t http = 0;             // the HTTP status answered (HTTP services)
  int32_t rpc = -1;             // the gRPC code answered (gRPC services)
};

class Builder {
 public:
  Builder(Random& random, const Effects& effects, std::vector<uint64_t>& affected,
          GeneratedTrace& trace, int64_t max_fanout)
      : random_(random),
        effects_(effects),
        affected_(affected),
        trace_(trace),
        max_fanout_(max_fanout) {
    factor_.fill(1.0);
    add_us_.fill(0);
    for (const auto& [service, effect] : effects.latency) {
      factor_[service] *= effect.factor;
      add_us_[service] += effect.add_us;
    }
  }

  void Build() {
    uint64_t hi = 0, lo = 0;
    while (hi == 0 && lo == 0) {
      hi = random_.Next();
      lo = random_.Next();
    }
    for (int i = 0; i < 8; ++i) {
      trace_.trace_id[i] = static_cast<uint8_t>(hi >> (56 - 8 * i));
      trace_.trace_id[8 + i] = static_cast<uint8_t>(lo >> (56 - 8 * i));
    }
    const double pick = random_.Uniform();
    std::string_view route = pick < kCheckoutShare                    ? kCheckoutRoute
                             : pick < kCheckoutShare + kProductsShare ? kProductsRoute
                                                                      : kCartRoute;
    ServeGateway(route);
    ApplyBreaks();
    ApplyDrops();
  }

 private:
  // --- spans -------------------------------------------------------------------------------

  uint64_t NewId() {
    for (;;) {
      const uint64_t id = random_.NonZero();
      if (used_ids_.insert(id).second) return id;
    }
  }

  size_t Open(uint8_t service, SpanKind kind, std::string_view name, int64_t parent,
              int64_t start_us) {
    GeneratedSpan& span = trace_.spans.emplace_back();
    span.span_id = NewId();
    span.parent_span_id = parent < 0 ? 0 : trace_.spans[static_cast<size_t>(parent)].span_id;
    span.service = service;
    span.kind = kind;
    span.name = name;
    span.start_us = start_us;
    span.end_us = start_us;
    return trace_.spans.size() - 1;
  }
  GeneratedSpan& At(size_t i) { return trace_.spans[i]; }

  void Str(size_t span, std::string_view key, std::string value) {
    At(span).attributes.push_back(Attribute{.key = key, .string_value = std::move(value)});
  }
  void Int(size_t span, std::string_view key, int64_t value) {
    At(span).attributes.push_back(Attribute{.key = key, .int_value = value, .is_int = true});
  }

  // --- time --------------------------------------------------------------------------------

  // Time the service spends itself: log-normal, scaled by the latency regressions on it.
  int64_t Work(uint8_t service, double median_us, double sigma) {
    const double value = std::min<double>(random_.LogNormal(median_us, sigma), kMaxStepUs);
    return std::max<int64_t>(1, std::llround(value * factor_[service]));
  }
  // One network traversal: nobody's own time.
  int64_t Hop() {
    return std::clamp<int64_t>(std::llround(random_.LogNormal(250, 0.4)), 20, kMaxStepUs);
  }
  // Time a message waits in the queue before a consumer takes it.
  int64_t QueueDelay() {
    return std::clamp<int64_t>(std::llround(random_.LogNormal(8'000, 1.0)), 100, kMaxStepUs);
  }
  int64_t Fanout() { return random_.UniformInt(1, max_fanout_); }

  // --- entry spans and calls -----------------------------------------------------------------

  enum class Baseline { kNone, kUnavailable, kNotFound };

  // Ends entry span `index` at `end_us` (plus the latency regressions' `add`) and decides how it
  // ended: an injected error (error_burst), a background outcome, or the failure of a call it
  // made.
  // Returns the span's end and the outcome.
  std::pair<int64_t, Outcome> FinishEntry(size_t index, int64_t end_us, const Outcome& children,
                                          Baseline baseline) {
    const uint8_t service = At(index).service;
    for (const auto& [target, effect] : effects_.latency) {
      if (target == service) ++affected_[effect.incident];
    }
    end_us += add_us_[service];

    Outcome out;
    if (baseline == Baseline::kUnavailable && random_.Bernoulli(kPaymentUnavailable)) {
      out.failed = true;
    } else if (baseline == Baseline::kNotFound && random_.Bernoulli(kCartNotFound)) {
      out.http = 404;
    }
    const ErrorEffect* injected = nullptr;
    for (const ErrorEffect& effect : effects_.errors) {
      if (effect.service != service) continue;
      if (!effect.operation.empty() && effect.operation != At(index).name) continue;
      if (random_.Bernoulli(effect.ratio)) {
        injected = &effect;
        break;
      }
    }
    if (injected != nullptr) {
      out = Outcome{.failed = true, .explicit_error = true};
      ++affected_[injected->incident];
    } else if (!out.failed && children.failed) {
      out = Outcome{.failed = true, .explicit_error = children.explicit_error};
    } else if (!out.failed && out.http == 0 && children.http >= 400 && children.http < 500) {
      out.http = children.http;
    }

    GeneratedSpan& span = At(index);
    span.end_us = end_us;
    switch (ProtocolOf(service)) {
      case Protocol::kHttp:
        if (out.failed) out.http = out.explicit_error ? 500 : 503;
        if (out.http == 0) out.http = 200;
        span.http_status = out.http;
        break;
      case Protocol::kGrpc:
        out.rpc = out.failed ? (out.explicit_error ? 13 : 14) : 0;
        span.rpc_status = out.rpc;
        break;
      default:
        break;
    }
    if (out.explicit_error) {
      span.status = SpanStatus::kError;
      if (injected != nullptr) {
        std::string message = RenderMessage(injected->message_template, random_);
        span.status_message = message;
        span.exception = ExceptionEvent{.type = std::string(injected->exception_type),
                                        .message = std::move(message),
                                        .stacktrace = std::string(StackOf(service))};
      } else {
        span.status_message = "downstream call failed";
      }
    }
    return {end_us, out};
  }

  void AddCallAttributes(size_t client, size_t server, uint8_t callee, std::string_view op) {
    const std::string address = std::string(kServiceNames[callee]) + ".shop.svc";
    switch (ProtocolOf(callee)) {
      case Protocol::kHttp: {
        const size_t space = op.find(' ');
        const std::string method(op.substr(0, space));
        const std::string path(op.substr(space + 1));
        Str(client, "http.request.method", method);
        Str(client, "server.address", address);
        Str(client, "url.full", "http://" + address + path);
        Str(server, "http.request.method", method);
        Str(server, "http.route", path);
        Str(server, "url.path", path);
        break;
      }
      case Protocol::kGrpc: {
        const size_t slash = op.find('/');
        for (size_t span : {client, server}) {
          Str(span, "rpc.system", "grpc");
          Str(span, "rpc.service", std::string(op.substr(0, slash)));
          Str(span, "rpc.method", std::string(op.substr(slash + 1)));
        }
        Str(client, "server.address", address);
        break;
      }
      case Protocol::kDatabase: {
        const size_t space = op.find(' ');
        for (size_t span : {client, server}) {
          Str(span, "db.system", "postgresql");
          Str(span, "db.operation.name", std::string(op.substr(0, space)));
          Str(span, "db.collection.name", std::string(op.substr(space + 1)));
        }
        Str(client, "server.address", address);
        break;
      }
      case Protocol::kMessaging:
        break;
    }
  }

  // A synchronous call from span `caller` to `callee`: the caller's CLIENT span wraps the
  // callee's SERVER span (`serve` lays it out and finishes it) and one network hop each way.
  // Returns when the CLIENT span ends and how the call ended.
  template <typename Serve>
  std::pair<int64_t, Outcome> Call(size_t caller, uint8_t callee, std::string_view op,
                                   int64_t start_us, Serve&& serve) {
    const size_t client =
        Open(At(caller).service, SpanKind::kClient, op, static_cast<int64_t>(caller), start_us);
    const int64_t server_start = start_us + Hop();
    const size_t server =
        Open(callee, SpanKind::kServer, op, static_cast<int64_t>(client), server_start);
    AddCallAttributes(client, server, callee, op);
    auto [server_end, outcome] = serve(server, server_start);
    const int64_t end = server_end + Hop();
    GeneratedSpan& span = At(client);
    span.end_us = end;
    if (ProtocolOf(callee) == Protocol::kHttp) span.http_status = outcome.http;
    if (ProtocolOf(callee) == Protocol::kGrpc) span.rpc_status = outcome.rpc;
    if (outcome.explicit_error) {
      span.status = SpanStatus::kError;
      span.status_message = std::string(kServiceNames[callee]) + " answered with an error";
    }
    return {end, outcome};
  }

  static Outcome Merge(Outcome a, const Outcome& b) {
    if (b.failed && !a.failed) return b;
    if (!a.failed && a.http == 0) a.http = b.http;
    return a;
  }

  // --- the services ----------------------------------------------------------------------------

  void ServeGateway(std::string_view route) {
    const size_t root = Open(kGateway, SpanKind::kServer, route, -1, 0);
    const size_t space = route.find(' ');
    Str(root, "http.request.method", std::string(route.substr(0, space)));
    Str(root, "http.route", std::string(route.substr(space + 1)));
    Str(root, "url.path", std::string(route.substr(space + 1)));
    int64_t t = Work(kGateway, 300, 0.5);
    const size_t auth = Open(kGateway, SpanKind::kInternal, "authenticate", root, t);
    t += Work(kGateway, 1'200, 0.6);
    At(auth).end_us = t;
    t += Work(kGateway, 100, 0.5);

    std::pair<int64_t, Outcome> call;
    if (route == kCheckoutRoute) {
      call = Call(root, kCheckout, kPlaceOrder, t,
                  [&](size_t span, int64_t start) { return ServePlaceOrder(span, start); });
    } else if (route == kProductsRoute) {
      call = Call(root, kInventory, kListProducts, t,
                  [&](size_t span, int64_t start) { return ServeListProducts(span, start); });
    } else {
      call = Call(root, kCheckout, kGetCart, t,
                  [&](size_t span, int64_t start) { return ServeGetCart(span, start); });
    }
    t = call.first + Work(kGateway, 200, 0.5);
    FinishEntry(root, t, call.second, Baseline::kNone);
  }

  std::pair<int64_t, Outcome> ServePlaceOrder(size_t entry, int64_t start) {
    int64_t t = start + Work(kCheckout, 400, 0.5);
    const size_t load = Open(kCheckout, SpanKind::kInternal, "load cart", entry, t);
    t += Work(kCheckout, 2'500, 0.7);
    At(load).end_us = t;

    // One Reserve per item, issued in parallel a few microseconds apart.
    Outcome children;
    const int64_t items = Fanout();
    int64_t issue = t;
    int64_t joined = t;
    for (int64_t i = 0; i < items; ++i) {
      issue += Work(kCheckout, 40, 0.3);
      auto [end, outcome] = Call(entry, kInventory, kReserve, issue,
                                 [&](size_t span, int64_t s) { return ServeReserve(span, s); });
      joined = std::max(joined, end);
      children = Merge(children, outcome);
    }
    t = joined + Work(kCheckout, 200, 0.4);

    auto [charged, payment] = Call(entry, kPayment, kCharge, t,
                                   [&](size_t span, int64_t s) { return ServeCharge(span, s); });
    children = Merge(children, payment);
    t = charged + Work(kCheckout, 150, 0.4);

    if (!children.failed) {
      // The order is published; email and analytics consume it after the producer is done.
      const size_t producer = Open(kCheckout, SpanKind::kProducer, kPublish, entry, t);
      Str(producer, "messaging.system", "kafka");
      Str(producer, "messaging.destination.name", "orders");
      Str(producer, "messaging.operation.type", "publish");
      t += Work(kCheckout, 600, 0.5);
      At(producer).end_us = t;
      const int64_t published = t;
      Consume(kEmail, producer, published);
      Consume(kAnalytics, producer, published);
      t += Work(kCheckout, 100, 0.4);
    }
    return FinishEntry(entry, t, children, Baseline::kNone);
  }

  void Consume(uint8_t service, size_t producer, int64_t published) {
    int64_t t = published + QueueDelay();
    const size_t entry =
        Open(service, SpanKind::kConsumer, kProcess, static_cast<int64_t>(producer), t);
    Str(entry, "messaging.system", "kafka");
    Str(entry, "messaging.destination.name", "orders");
    Str(entry, "messaging.operation.type", "process");
    Str(entry, "messaging.consumer.group.name", std::string(kServiceNames[service]));
    t += Work(service, 300, 0.5);
    if (service == kEmail) {
      const size_t smtp = Open(kEmail, SpanKind::kClient, "smtp send", entry, t);
      Str(smtp, "server.address", "smtp.mail.example");
      Int(smtp, "server.port", 587);
      t += Work(kEmail, 15'000, 0.6);
      At(smtp).end_us = t;
    } else {
      const size_t aggregate = Open(service, SpanKind::kInternal, "aggregate order", entry, t);
      t += Work(service, 2'000, 0.7);
      At(aggregate).end_us = t;
    }
    t += Work(service, 200, 0.4);
    FinishEntry(entry, t, Outcome{}, Baseline::kNone);
  }

  std::pair<int64_t, Outcome> ServeReserve(size_t entry, int64_t start) {
    int64_t t = start + Work(kInventory, 300, 0.5);
    Int(entry, "app.item.quantity", random_.UniformInt(1, 4));
    auto [end, db] = Call(entry, kDatabase, kUpdateStock, t,
                          [&](size_t span, int64_t s) { return ServeQuery(span, s, 3'000, 0.8); });
    t = end + Work(kInventory, 150, 0.4);
    return FinishEntry(entry, t, db, Baseline::kNone);
  }

  std::pair<int64_t, Outcome> ServeListProducts(size_t entry, int64_t start) {
    int64_t t = start + Work(kInventory, 200, 0.5);
    const size_t cache = Open(kInventory, SpanKind::kInternal, "cache lookup", entry, t);
    t += Work(kInventory, 500, 0.6);
    At(cache).end_us = t;
    Outcome children;
    const int64_t pages = Fanout();
    Int(entry, "app.page.count", pages);
    for (int64_t i = 0; i < pages; ++i) {
      t += Work(kInventory, 30, 0.3);
      auto [end, db] = Call(entry, kDatabase, kSelectProducts, t, [&](size_t span, int64_t s) {
        return ServeQuery(span, s, 2'000, 0.9);
      });
      t = end;
      children = Merge(children, db);
    }
    t += Work(kInventory, 200, 0.4);
    return FinishEntry(entry, t, children, Baseline::kNone);
  }

  std::pair<int64_t, Outcome> ServeGetCart(size_t entry, int64_t start) {
    int64_t t = start + Work(kCheckout, 300, 0.5);
    auto [end, db] = Call(entry, kDatabase, kSelectCart, t,
                          [&](size_t span, int64_t s) { return ServeQuery(span, s, 1'500, 0.6); });
    t = end + Work(kCheckout, 250, 0.5);
    return FinishEntry(entry, t, db, Baseline::kNotFound);
  }

  std::pair<int64_t, Outcome> ServeCharge(size_t entry, int64_t start) {
    int64_t t = start + Work(kPayment, 2'000, 0.5);
    const size_t fraud = Open(kPayment, SpanKind::kInternal, "fraud score", entry, t);
    t += Work(kPayment, 8'000, 0.6);
    At(fraud).end_us = t;
    t += Work(kPayment, 25'000, 0.5);  // the card network
    Str(entry, "app.payment.currency", "EUR");
    return FinishEntry(entry, t, Outcome{}, Baseline::kUnavailable);
  }

  std::pair<int64_t, Outcome> ServeQuery(size_t entry, int64_t start, double median_us,
                                         double sigma) {
    const int64_t t = start + Work(kDatabase, median_us, sigma);
    return FinishEntry(entry, t, Outcome{}, Baseline::kNone);
  }

  // --- after the layout ------------------------------------------------------------------------

  void ApplyBreaks() {
    for (const RatioEffect& effect : effects_.breaks) {
      for (size_t i = 0; i < trace_.spans.size(); ++i) {
        GeneratedSpan& span = trace_.spans[i];
        if (span.service != effect.service || span.orphaned) continue;
        if (span.kind != SpanKind::kServer && span.kind != SpanKind::kConsumer) continue;
        if (!random_.Bernoulli(effect.ratio)) continue;
        // The context did not arrive: the span points at a parent nobody sends.
        trace_.spans[i].parent_span_id = NewId();
        trace_.spans[i].orphaned = true;
        ++affected_[effect.incident];
      }
    }
  }

  void ApplyDrops() {
    for (const RatioEffect& effect : effects_.drops) {
      if (random_.Bernoulli(effect.ratio)) {
        trace_.dropped = true;
        ++affected_[effect.incident];
        return;
      }
    }
  }

  Random& random_;
  const Effects& effects_;
  std::vector<uint64_t>& affected_;
  GeneratedTrace& trace_;
  const int64_t max_fanout_;
  std::array<double, kServiceCount> factor_;
  std::array<int64_t, kServiceCount> add_us_;
  std::unordered_set<uint64_t> used_ids_;
};

}  // namespace

std::optional<uint8_t> FindService(std::string_view name) {
  for (size_t i = 0; i < kServiceNames.size(); ++i) {
    if (kServiceNames[i] == name) return static_cast<uint8_t>(i);
  }
  return std::nullopt;
}

std::span<const std::string_view> EntryOperations(uint8_t service) {
  switch (service) {
    case kGateway:
      return kGatewayOps;
    case kCheckout:
      return kCheckoutOps;
    case kPayment:
      return kPaymentOps;
    case kInventory:
      return kInventoryOps;
    case kDatabase:
      return kDatabaseOps;
    default:
      return kConsumerOps;
  }
}

std::string ServiceList() {
  std::string out;
  for (std::string_view name : kServiceNames) {
    if (!out.empty()) out += ", ";
    out += name;
  }
  return out;
}

std::string RenderMessage(std::string_view s, Random& random) {
  constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(s.size() + 32);
  auto hex = [&](int digits) {
    for (int i = 0; i < digits; ++i) out += kHex[random.UniformInt(0, 15)];
  };
  while (!s.empty()) {
    if (s.starts_with("{int}")) {
      out += std::to_string(random.UniformInt(1, 99'999));
      s.remove_prefix(5);
    } else if (s.starts_with("{hex}")) {
      hex(16);
      s.remove_prefix(5);
    } else if (s.starts_with("{uuid}")) {
      for (int group : {8, 4, 4, 4, 12}) {
        if (group != 8) out += '-';
        hex(group);
      }
      s.remove_prefix(6);
    } else {
      out += s.front();
      s.remove_prefix(1);
    }
  }
  return out;
}

TraceGenerator::TraceGenerator(const TopologyOptions& options) {
  // Items per checkout and queries per product page are uniform in [1, K], mean (1 + K) / 2.
  const double fanout =
      std::max(1.0, (static_cast<double>(options.spans_per_trace) - kBaseSpans) / kSpansPerFanout);
  max_fanout_ = std::max<int64_t>(1, std::llround(2 * fanout - 1));
}

GeneratedTrace TraceGenerator::Generate(uint64_t index, Random& random, const Effects& effects,
                                        std::vector<uint64_t>& affected) const {
  GeneratedTrace trace;
  trace.index = index;
  Builder(random, effects, affected, trace, max_fanout_).Build();
  return trace;
}

}  // namespace traceslo::loadgen
