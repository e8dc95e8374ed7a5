// Incidents: the --incident form, and what each type does to the generated traffic.
#include "services/loadgen/incidents.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <unordered_set>

#include "services/loadgen/expectations.h"

namespace traceslo::loadgen {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

Incident MustParse(std::string_view text) {
  absl::StatusOr<Incident> incident = ParseIncidentFlag(text, "--incident #1");
  EXPECT_TRUE(incident.ok()) << incident.status();
  return incident.ok() ? *incident : Incident{};
}

std::string ParseError(std::string_view text) {
  absl::StatusOr<Incident> incident = ParseIncidentFlag(text, "x");
  EXPECT_FALSE(incident.ok()) << text;
  return incident.ok() ? "" : std::string(incident.status().message());
}

// Traces generated under `incidents` (all active: offset 0).
std::vector<GeneratedTrace> Generate(uint64_t seed, size_t count,
                                     const std::vector<Incident>& incidents,
                                     std::vector<uint64_t>* affected_out = nullptr) {
  std::mt19937_64 engine(seed);
  Random random(engine);
  TraceGenerator generator(TopologyOptions{});
  std::vector<uint64_t> affected(incidents.size(), 0);
  const Effects effects = EffectsAt(incidents, std::chrono::nanoseconds(0));
  std::vector<GeneratedTrace> out;
  for (size_t i = 0; i < count; ++i)
    out.push_back(generator.Generate(i, random, effects, affected));
  if (affected_out != nullptr) *affected_out = affected;
  return out;
}

// |observed/n - p| within 5 standard deviations of a binomial proportion.
void ExpectRatio(uint64_t hits, uint64_t n, double p, std::string_view what) {
  ASSERT_GT(n, 100u) << what;
  const double observed = static_cast<double>(hits) / static_cast<double>(n);
  const double sigma = std::sqrt(p * (1 - p) / static_cast<double>(n));
  EXPECT_NEAR(observed, p, 5 * sigma + 1e-9) << what << ": " << hits << " of " << n;
}

TEST(IncidentFlagTest, CompactForm) {
  Incident i = MustParse(
      "error_burst:service=payment,operation=payment.Payment/Charge,ratio=0.25,start=10s,"
      "duration=1m,exception_type=CardDeclined,message=\"card {int}, declined \\\"now\\\"\"");
  EXPECT_EQ(i.type, IncidentType::kErrorBurst);
  EXPECT_EQ(i.service, kPayment);
  EXPECT_EQ(i.operation, "payment.Payment/Charge");
  EXPECT_EQ(i.ratio, 0.25);
  EXPECT_EQ(i.start, seconds(10));
  EXPECT_EQ(i.duration, std::optional<milliseconds>(seconds(60)));
  EXPECT_EQ(i.exception_type, "CardDeclined");
  EXPECT_EQ(i.message, "card {int}, declined \"now\"");
  EXPECT_EQ(i.origin, "--incident #1");

  i = MustParse("latency_regression:service=inventory,factor=2.5");
  EXPECT_EQ(i.factor, 2.5);
  EXPECT_FALSE(i.duration.has_value()) << "no duration: until the end of the run";
  i = MustParse("latency_regression:service=inventory,add=150ms");
  EXPECT_EQ(i.add, milliseconds(150));
  i = MustParse("propagation_break:service=checkout");
  EXPECT_EQ(i.ratio, 1.0) << "ratio defaults to 1";
  i = MustParse("traffic_drop:ratio=0.5,start=0s");
  EXPECT_EQ(i.type, IncidentType::kTrafficDrop);
}

TEST(IncidentFlagTest, ErrorsNameTheFlagAndTheProblem) {
  EXPECT_EQ(ParseError("error_burst:service=payment,ratio=1.5"),
            "--incident 'error_burst:service=payment,ratio=1.5': ratio must be between 0 and 1, "
            "got '1.5'");
  EXPECT_EQ(ParseError("meteor:service=payment"),
            "--incident 'meteor:service=payment': unknown incident type 'meteor' (expected one of "
            "error_burst, latency_regression, propagation_break, traffic_drop)");
  EXPECT_EQ(ParseError("error_burst:service=paymnet"),
            "--incident 'error_burst:service=paymnet': unknown service 'paymnet' (expected one "
            "of gateway, checkout, payment, inventory, database, email, analytics)");
  EXPECT_EQ(ParseError("traffic_drop:ratio=0.1,factor=2"),
            "--incident 'traffic_drop:ratio=0.1,factor=2': unknown key 'factor' for traffic_drop "
            "(expected one of type, start, duration, ratio)");
  EXPECT_EQ(ParseError("error_burst:ratio=0.1"),
            "--incident 'error_burst:ratio=0.1': error_burst needs a service (one of gateway, "
            "checkout, payment, inventory, database, email, analytics)");
  EXPECT_EQ(ParseError("latency_regression:service=payment,factor=2,add=1s"),
            "--incident 'latency_regression:service=payment,factor=2,add=1s': latency_regression "
            "needs exactly one of factor (e.g. 3) or add (e.g. 200ms)");
  EXPECT_EQ(ParseError("latency_regression:service=payment"),
            "--incident 'latency_regression:service=payment': latency_regression needs exactly "
            "one of factor (e.g. 3) or add (e.g. 200ms)");
  EXPECT_EQ(ParseError("error_burst:service=payment,operation=GET /x"),
            "--incident 'error_burst:service=payment,operation=GET /x': service payment has no "
            "entry operation 'GET /x' (expected one of 'payment.Payment/Charge')");
  EXPECT_EQ(ParseError("error_burst:service=payment,start=10"),
            "--incident 'error_burst:service=payment,start=10': start: invalid duration \"10\": "
            "a unit is required (ms, s, m, h, d), e.g. \"10s\"");
  EXPECT_EQ(ParseError("error_burst:service=payment,duration=0s"),
            "--incident 'error_burst:service=payment,duration=0s': duration must be greater than "
            "0 and at most 365d, got '0s'");
  EXPECT_EQ(ParseError("error_burst:service=payment,ratio"),
            "--incident 'error_burst:service=payment,ratio': expected key=value at 'ratio' "
            "(form: type:key=value,key=value)");
  EXPECT_EQ(ParseError("error_burst:service=payment,service=checkout"),
            "--incident 'error_burst:service=payment,service=checkout': duplicate key 'service'");
  EXPECT_EQ(ParseError("error_burst:service=payment,message=\"open"),
            "--incident 'error_burst:service=payment,message=\"open': unterminated quote in the "
            "value of message");
  EXPECT_EQ(
      ParseError("error_burst:service=payment,message=caf\xc3"),
      "--incident 'error_burst:service=payment,message=caf\\xc3': message is not valid UTF-8");
  EXPECT_TRUE(
      ParseIncidentFlag("error_burst:service=payment,message=caf\xc3\xa9 \xf0\x9f\x92\xb3", "")
          .ok());
  EXPECT_EQ(ParseError("latency_regression:service=payment,factor=nan"),
            "--incident 'latency_regression:service=payment,factor=nan': factor must be a number, "
            "got 'nan'");
}

TEST(IncidentScheduleTest, WindowsAreHalfOpen) {
  Incident i = MustParse("traffic_drop:start=10s,duration=5s");
  EXPECT_FALSE(i.ActiveAt(seconds(9)));
  EXPECT_TRUE(i.ActiveAt(seconds(10)));
  EXPECT_TRUE(i.ActiveAt(milliseconds(14'999)));
  EXPECT_FALSE(i.ActiveAt(seconds(15)));
  Incident forever = MustParse("traffic_drop:start=1s");
  EXPECT_TRUE(forever.ActiveAt(std::chrono::hours(1000)));

  const std::vector<Incident> incidents = {i, forever};
  EXPECT_TRUE(EffectsAt(incidents, seconds(0)).empty());
  EXPECT_EQ(EffectsAt(incidents, seconds(2)).drops.size(), 1u);
  EXPECT_EQ(EffectsAt(incidents, seconds(12)).drops.size(), 2u);
}

TEST(IncidentEffectTest, ErrorBurstHitsItsRatioOfEntrySpans) {
  const Incident burst = MustParse(
      "error_burst:service=inventory,operation=inventory.Inventory/Reserve,ratio=0.3,"
      "exception_type=OutOfStock,message=\"sku {int} has {int} left\"");
  std::vector<uint64_t> affected;
  uint64_t reserves = 0, failed = 0, listings_failed = 0, origins = 0, error_traces = 0;
  for (const GeneratedTrace& trace : Generate(21, 4000, {burst}, &affected)) {
    bool error_trace = false;
    for (const GeneratedSpan& s : trace.spans) {
      error_trace = error_trace || IsErrorSpan(s);
      if (s.kind != SpanKind::kServer || s.service != kInventory) continue;
      if (s.name == "inventory.Inventory/ListProducts") {
        listings_failed += IsErrorSpan(s);
        continue;
      }
      ++reserves;
      if (!IsErrorSpan(s)) continue;
      ++failed;
      ASSERT_TRUE(s.exception.has_value());
      EXPECT_EQ(s.exception->type, "OutOfStock");
      EXPECT_TRUE(s.exception->message.starts_with("sku ")) << s.exception->message;
      EXPECT_EQ(s.exception->message.find('{'), std::string::npos);
      EXPECT_EQ(s.status, SpanStatus::kError);
      EXPECT_EQ(s.rpc_status, 13);
    }
    if (error_trace) {
      ++error_traces;
      // Every error cascades to the gateway, which answers 5xx.
      EXPECT_GE(trace.spans[0].http_status, 500);
      Expectations e;
      std::vector<const GeneratedSpan*> spans;
      for (const GeneratedSpan& s : trace.spans) spans.push_back(&s);
      e.AddTrace(spans);
      EXPECT_EQ(e.services()[kGateway].error_traces_root, 1u);
      origins += e.services()[kInventory].error_traces_origin +
                 e.services()[kDatabase].error_traces_origin;
    }
  }
  ExpectRatio(failed, reserves, 0.3, "Reserve spans failed");
  EXPECT_EQ(listings_failed, 0u) << "the operation filter spares ListProducts";
  EXPECT_EQ(affected[0], failed);
  // The origin is the deepest error span: the failing Reserve (payment's rare UNAVAILABLE aside).
  EXPECT_NEAR(static_cast<double>(origins), static_cast<double>(error_traces), 5);
}

TEST(IncidentEffectTest, LatencyFactorScalesTheServicesOwnTime) {
  const std::vector<GeneratedTrace> base = Generate(33, 1500, {});
  const std::vector<GeneratedTrace> slow =
      Generate(33, 1500, {MustParse("latency_regression:service=payment,factor=3")});
  ASSERT_EQ(base.size(), slow.size());
  int charges = 0;
  for (size_t t = 0; t < base.size(); ++t) {
    ASSERT_EQ(base[t].spans.size(), slow[t].spans.size()) << "the same draws, the same shape";
    for (size_t i = 0; i < base[t].spans.size(); ++i) {
      const GeneratedSpan& b = base[t].spans[i];
      const GeneratedSpan& s = slow[t].spans[i];
      const int64_t before = b.end_us - b.start_us;
      const int64_t after = s.end_us - s.start_us;
      if (b.service == kPayment) {
        // Up to three pieces of own time, each rounded to a microsecond.
        EXPECT_NEAR(static_cast<double>(after), 3.0 * static_cast<double>(before), 6.0) << b.name;
        charges += b.kind == SpanKind::kServer;
      } else if (b.service == kDatabase || b.service == kInventory) {
        EXPECT_EQ(after, before) << "other services keep their latency: " << b.name;
      } else if (b.name == "POST /checkout" && b.kind == SpanKind::kServer) {
        EXPECT_GT(after, before) << "callers wait for the slower payment";
      }
    }
  }
  EXPECT_GT(charges, 300);
}

TEST(IncidentEffectTest, LatencyAddLengthensEachEntrySpan) {
  const std::vector<GeneratedTrace> base = Generate(34, 500, {});
  const std::vector<GeneratedTrace> slow =
      Generate(34, 500, {MustParse("latency_regression:service=database,add=40ms")});
  int queries = 0;
  for (size_t t = 0; t < base.size(); ++t) {
    for (size_t i = 0; i < base[t].spans.size(); ++i) {
      const GeneratedSpan& b = base[t].spans[i];
      const GeneratedSpan& s = slow[t].spans[i];
      if (b.service != kDatabase) continue;
      ++queries;
      EXPECT_EQ(s.end_us - s.start_us, b.end_us - b.start_us + 40'000);
    }
  }
  EXPECT_GT(queries, 500);
}

TEST(IncidentEffectTest, PropagationBreakOrphansEntrySpans) {
  uint64_t inventory_entries = 0, orphaned = 0;
  for (const GeneratedTrace& trace :
       Generate(44, 3000, {MustParse("propagation_break:service=inventory,ratio=0.4")})) {
    std::unordered_set<uint64_t> ids;
    for (const GeneratedSpan& s : trace.spans) ids.insert(s.span_id);
    for (const GeneratedSpan& s : trace.spans) {
      if (s.orphaned) {
        EXPECT_EQ(s.service, kInventory);
        EXPECT_EQ(s.kind, SpanKind::kServer);
        EXPECT_NE(s.parent_span_id, 0u);
        EXPECT_FALSE(ids.contains(s.parent_span_id)) << "its parent is never sent";
      } else if (s.parent_span_id != 0) {
        EXPECT_TRUE(ids.contains(s.parent_span_id));
      }
      if (s.service == kInventory && s.kind == SpanKind::kServer) {
        ++inventory_entries;
        orphaned += s.orphaned;
      }
    }
  }
  ExpectRatio(orphaned, inventory_entries, 0.4, "inventory entry spans orphaned");

  // Ratio 1 on the gateway: no trace keeps its root.
  for (const GeneratedTrace& trace :
       Generate(45, 100, {MustParse("propagation_break:service=gateway")})) {
    EXPECT_TRUE(trace.spans[0].orphaned);
    Expectations e;
    std::vector<const GeneratedSpan*> spans;
    for (const GeneratedSpan& s : trace.spans) spans.push_back(&s);
    e.AddTrace(spans);
    EXPECT_EQ(e.services()[kGateway].partial_traces, 1u);
    EXPECT_EQ(e.services()[kGateway].propagation_breaks, 1u);
  }
}

TEST(IncidentEffectTest, TrafficDropDropsItsRatioOfTraces) {
  std::vector<uint64_t> affected;
  uint64_t dropped = 0;
  const std::vector<GeneratedTrace> traces =
      Generate(55, 5000, {MustParse("traffic_drop:ratio=0.25")}, &affected);
  for (const GeneratedTrace& trace : traces) dropped += trace.dropped;
  ExpectRatio(dropped, traces.size(), 0.25, "traces dropped");
  EXPECT_EQ(affected[0], dropped);
}

}  // namespace
}  // namespace traceslo::loadgen
