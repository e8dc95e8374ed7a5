// The replay engine: time follows the recorded spans (never backwards, jumps capped), ticks and
// evaluations fall on their grids, and the timeline is in time order, then service, SLO and
// severity, with the top error signatures of the short window on each firing alert.
#include "traceslo/slo/replay.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "traceslo/slo/rule_file.h"

namespace traceslo::slo {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr int64_t kSecond = 1'000'000'000;
constexpr int64_t kT0 = 1'700'000'040 * kSecond;  // a whole minute

int64_t UnixNanos(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

// One request's spans: each a root SERVER span of its own trace.
class Request {
 public:
  Request& Span(std::string_view service, int64_t end_unix_nano, std::string_view exception = {},
                std::string_view operation = "GET /") {
    traceslo::Span span;
    ++next_id_;
    span.trace_id[0] = 0x5a;
    for (int i = 0; i < 8; ++i) span.trace_id[8 + i] = static_cast<uint8_t>(next_id_ >> (8 * i));
    span.span_id = next_id_;
    span.end_unix_nano = static_cast<uint64_t>(end_unix_nano);
    span.start_unix_nano = span.end_unix_nano - 1'000'000;
    span.service = batch_.Add(service, kMaxNameBytes);
    span.name = batch_.Add(operation, kMaxNameBytes);
    span.kind = SpanKind::kServer;
    if (!exception.empty()) {
      span.status = StatusCode::kError;
      span.exception_type = batch_.Add(exception, kMaxMessageBytes);
      span.exception_message = batch_.Add("it broke", kMaxMessageBytes);
    }
    batch_.spans.push_back(span);
    return *this;
  }
  SpanBatch& batch() { return batch_; }

 private:
  SpanBatch batch_;
  static inline uint64_t next_id_ = 0;
};

std::vector<Slo> Rules(const std::vector<std::string>& yaml_files) {
  std::vector<Slo> slos;
  for (size_t i = 0; i < yaml_files.size(); ++i) {
    std::vector<Diagnostic> diagnostics;
    auto file = ParseRuleFile(yaml_files[i], "rules" + std::to_string(i) + ".yaml", diagnostics);
    EXPECT_TRUE(file.ok()) << file.status();
    if (file.ok()) slos.insert(slos.end(), file->slos.begin(), file->slos.end());
  }
  return slos;
}

// An availability SLO that pages at 50 % errors over 1m and 20s.
std::string Availability(std::string_view service) {
  return "service: " + std::string(service) +
         "\n"
         "slos:\n"
         "  - name: availability\n"
         "    objective: 90\n"
         "    window: 1h\n"
         "    sli: {errors: {}}\n"
         "    alerting:\n"
         "      page: {windows: [{long: 1m, short: 20s, burn_rate: 5}]}\n"
         "      ticket: {enabled: false}\n"
         "      min_events: 1\n";
}

config::PipelineConfig Pipeline() {
  config::PipelineConfig pipeline;
  pipeline.shards = 3;
  pipeline.tick_interval = milliseconds(1'000);
  return pipeline;
}

TEST(ReplayTest, TimeFollowsTheLatestSpanEndNeverBackwardsOnItsGrids) {
  Replayer replayer(Pipeline(),
                    ReplayOptions{.evaluation_interval = seconds(10),
                                  .drain = seconds(30),
                                  .max_gap = std::chrono::hours(1)},
                    Rules({Availability("checkout")}));
  // The first request starts the replay at its latest span end.
  Request first;
  first.Span("checkout", kT0 + 1'500'000'000).Span("checkout", kT0 + 200'000'000);
  replayer.Feed(first.batch());
  EXPECT_TRUE(first.batch().spans.empty()) << "consumed";
  EXPECT_EQ(UnixNanos(replayer.Now()), kT0 + 1'500'000'000);
  EXPECT_EQ(replayer.stats().first_unix_nano, kT0 + 1'500'000'000);
  EXPECT_EQ(replayer.stats().ticks, 0u);

  // An older request does not move time back.
  Request older;
  older.Span("checkout", kT0);
  replayer.Feed(older.batch());
  EXPECT_EQ(UnixNanos(replayer.Now()), kT0 + 1'500'000'000);

  // A newer one runs the ticks (every whole second) and evaluations (every whole 10 s) before it.
  Request newer;
  newer.Span("checkout", kT0 + 25 * kSecond);
  replayer.Feed(newer.batch());
  EXPECT_EQ(UnixNanos(replayer.Now()), kT0 + 25 * kSecond);
  EXPECT_EQ(replayer.stats().ticks, 24u) << "T0+2s .. T0+25s";
  EXPECT_EQ(replayer.stats().evaluations, 2u) << "T0+10s and T0+20s";

  // A request without spans moves nothing.
  Request empty;
  replayer.Feed(empty.batch());
  EXPECT_EQ(UnixNanos(replayer.Now()), kT0 + 25 * kSecond);

  // A wild end time moves time by max_gap at most.
  Request wild;
  wild.Span("checkout", kT0 + 10 * 3600 * kSecond);
  replayer.Feed(wild.batch());
  EXPECT_EQ(UnixNanos(replayer.Now()), kT0 + 25 * kSecond + 3600 * kSecond);
  EXPECT_EQ(replayer.stats().time_jumps_capped, 1u);
  EXPECT_EQ(replayer.stats().last_unix_nano, kT0 + 3625 * kSecond);
  EXPECT_EQ(replayer.stats().evaluations, 2u + 360u);

  replayer.Finish();
  EXPECT_EQ(replayer.stats().end_unix_nano, kT0 + 3655 * kSecond) << "the 30 s drain";
  EXPECT_EQ(replayer.stats().evaluations, 2u + 360u + 3u);
  EXPECT_EQ(replayer.stats().requests, 5u);
  EXPECT_EQ(replayer.stats().spans, 5u);
  EXPECT_EQ(replayer.PipelineTotals().clock_skew_spans, 1u)
      << "the wild span, counted at the replay time";
}

// Two services fail together from +60 s to +120 s; each has its own signatures, and alpha had
// one failure long before.
std::vector<TimelineEntry> ReplayIncident(const std::vector<Slo>& slos, size_t top_signatures) {
  Replayer replayer(Pipeline(),
                    ReplayOptions{.evaluation_interval = seconds(10),
                                  .drain = seconds(60),
                                  .top_signatures = top_signatures},
                    slos);
  for (int s = 1; s <= 180; ++s) {
    Request request;
    const int64_t end = kT0 + s * kSecond;
    const bool incident = s >= 60 && s < 120;
    request.Span(
        "alpha", end,
        incident ? (s % 3 == 0 ? "RefusedError" : "TimeoutError") : (s == 20 ? "OldError" : ""));
    request.Span("zeta", end, incident ? "ZetaError" : "", "POST /zeta");
    replayer.Feed(request.batch());
  }
  replayer.Finish();
  EXPECT_EQ(replayer.stats().alerts_fired, 2u);
  EXPECT_EQ(replayer.stats().alerts_resolved, 2u);
  return replayer.timeline();
}

TEST(ReplayTest, TimelineInTimeOrderThenServiceWithTheShortWindowsSignatures) {
  // zeta's rules come first; the timeline still puts alpha first within an evaluation.
  const std::vector<Slo> slos = Rules({Availability("zeta"), Availability("alpha")});
  const std::vector<TimelineEntry> timeline = ReplayIncident(slos, 2);
  ASSERT_EQ(timeline.size(), 4u);
  for (size_t i = 0; i < timeline.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(timeline[i].unix_nano % (10 * kSecond), 0) << "on the evaluation grid";
    if (i > 0) {
      EXPECT_GE(timeline[i].unix_nano, timeline[i - 1].unix_nano);
    }
    EXPECT_EQ(timeline[i].alert.slo, "availability");
    EXPECT_FALSE(timeline[i].in_drain);
  }
  // Both fire at once (the same traffic), alpha first; both resolve at once, alpha first.
  EXPECT_EQ(timeline[0].unix_nano, timeline[1].unix_nano);
  EXPECT_EQ(timeline[0].alert.service, "alpha");
  EXPECT_EQ(timeline[1].alert.service, "zeta");
  EXPECT_EQ(timeline[2].unix_nano, timeline[3].unix_nano);
  EXPECT_EQ(timeline[2].alert.service, "alpha");
  EXPECT_EQ(timeline[3].alert.service, "zeta");
  for (int i : {0, 1}) {
    EXPECT_EQ(timeline[i].from, AlertState::kInactive);
    EXPECT_EQ(timeline[i].alert.state, AlertState::kFiring);
    EXPECT_GE(timeline[i].burn_rate_long, 5);
    EXPECT_GE(timeline[i].burn_rate_short, 5);
  }
  for (int i : {2, 3}) {
    EXPECT_EQ(timeline[i].from, AlertState::kFiring);
    EXPECT_EQ(timeline[i].alert.state, AlertState::kResolved);
    EXPECT_LT(timeline[i].burn_rate_short, 5) << "the rate that let it resolve";
    EXPECT_TRUE(timeline[i].signatures.empty());
  }
  // Fired once the 1m window was half errors: 30 s into the incident, give or take a bucket.
  const int64_t fired = (timeline[0].unix_nano - kT0) / kSecond;
  EXPECT_GE(fired, 80);
  EXPECT_LE(fired, 100);
  // Resolved once the 20 s window holds under 50 % errors.
  const int64_t resolved = (timeline[2].unix_nano - kT0) / kSecond;
  EXPECT_GE(resolved, 120);
  EXPECT_LE(resolved, 140);

  // Signatures of the service only, counted over the short window: every error whose span ended
  // in [fired - 20 s, fired) (published at the tick after it arrived). OldError is older.
  const TimelineEntry& alpha = timeline[0];
  EXPECT_EQ(alpha.signature_window, seconds(20));
  uint64_t timeouts = 0;
  uint64_t refused = 0;
  for (int64_t s = fired - 20; s < fired; ++s) {
    if (s < 60 || s >= 120) continue;
    (s % 3 == 0 ? refused : timeouts) += 1;
  }
  ASSERT_EQ(alpha.signatures.size(), 2u);
  EXPECT_EQ(alpha.signatures[0].exception_type, "TimeoutError");
  EXPECT_EQ(alpha.signatures[0].count, timeouts);
  EXPECT_EQ(alpha.signatures[0].operation, "GET /");
  EXPECT_EQ(alpha.signatures[1].exception_type, "RefusedError");
  EXPECT_EQ(alpha.signatures[1].count, refused);
  const TimelineEntry& zeta = timeline[1];
  ASSERT_EQ(zeta.signatures.size(), 1u);
  EXPECT_EQ(zeta.signatures[0].exception_type, "ZetaError");
  EXPECT_EQ(zeta.signatures[0].operation, "POST /zeta");
  EXPECT_EQ(zeta.signatures[0].count, timeouts + refused);

  // At most top_signatures, the highest counts.
  const std::vector<TimelineEntry> top1 = ReplayIncident(slos, 1);
  ASSERT_EQ(top1[0].signatures.size(), 1u);
  EXPECT_EQ(top1[0].signatures[0].exception_type, "TimeoutError");
}

TEST(ReplayTest, SameInputSameTimeline) {
  const std::vector<Slo> slos = Rules({Availability("alpha"), Availability("zeta")});
  const std::vector<TimelineEntry> a = ReplayIncident(slos, 3);
  const std::vector<TimelineEntry> b = ReplayIncident(slos, 3);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].unix_nano, b[i].unix_nano);
    EXPECT_EQ(a[i].alert.service, b[i].alert.service);
    EXPECT_EQ(a[i].alert.state, b[i].alert.state);
    EXPECT_EQ(a[i].burn_rate_long, b[i].burn_rate_long);
    EXPECT_EQ(a[i].burn_rate_short, b[i].burn_rate_short);
    ASSERT_EQ(a[i].signatures.size(), b[i].signatures.size());
    for (size_t j = 0; j < a[i].signatures.size(); ++j) {
      EXPECT_EQ(a[i].signatures[j].id, b[i].signatures[j].id);
      EXPECT_EQ(a[i].signatures[j].count, b[i].signatures[j].count);
    }
  }
}

TEST(ReplayTest, TheDrainResolvesWhatTheRecordingLeftFiring) {
  Replayer replayer(Pipeline(),
                    ReplayOptions{.evaluation_interval = seconds(10), .drain = seconds(60)},
                    Rules({Availability("alpha")}));
  for (int s = 1; s <= 90; ++s) {
    Request request;
    request.Span("alpha", kT0 + s * kSecond, s >= 30 ? "TimeoutError" : "");
    replayer.Feed(request.batch());
  }
  replayer.Finish();
  const std::vector<TimelineEntry>& timeline = replayer.timeline();
  ASSERT_EQ(timeline.size(), 2u);
  EXPECT_EQ(timeline[0].alert.state, AlertState::kFiring);
  EXPECT_FALSE(timeline[0].in_drain);
  EXPECT_EQ(timeline[1].alert.state, AlertState::kResolved);
  EXPECT_TRUE(timeline[1].in_drain) << "resolved because the recording ended";
  EXPECT_GT(timeline[1].unix_nano, replayer.stats().last_unix_nano);
}

TEST(ReplayTest, DefaultDrain) {
  config::PipelineConfig pipeline;
  pipeline.trace_max_age = milliseconds(60'000);
  pipeline.tick_interval = milliseconds(1'000);
  // 60 s + 2 × 1 s + the longest short window (20 s) + 2 × 10 s = 102 s, in whole 10 s.
  EXPECT_EQ(DefaultReplayDrain(pipeline, seconds(10), Rules({Availability("alpha")})),
            seconds(110));
  // Without rules: only the traces.
  EXPECT_EQ(DefaultReplayDrain(pipeline, seconds(10), {}), seconds(90));
}

}  // namespace
}  // namespace traceslo::slo
