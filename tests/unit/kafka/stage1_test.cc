// Stage 1 on one partition without Kafka: records in, sealed epochs out. The property that makes
// a rebalance or a crash harmless: a new owner that resumes from any commit point the old one
// took (reading from L, suppressing epochs up to E) publishes exactly the epochs the old one did
// not, with exactly the content a single uninterrupted run gives them.
#include "traceslo/kafka/stage1.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "tests/unit/kafka/kafka_test_util.h"
#include "traceslo/kafka/delta_batch.h"

namespace traceslo::kafka {
namespace {

using testutil::Content;
using testutil::Encode;
using testutil::EpochContent;
using testutil::ExpectSameContent;
using testutil::kBaseMs;
using testutil::PbSpan;
using testutil::TestSpan;
using testutil::TraceIdOf;
using Recorder = fakes::RecordingEpochPublisher;

constexpr int32_t kDstPartitions = 3;
constexpr uint64_t kTraceIdHigh = 0x5eed;  // the high 8 bytes of every trace id

struct Record {
  int64_t offset = 0;
  int64_t timestamp_ms = 0;
  std::string value;
};

// A partition's records: traces of 2-6 spans over 4 services (some with errors, some missing
// their root), each span exported at its end, 1-3 spans per record, record timestamps increasing
// (LogAppendTime) with a few idle gaps. No span arrives after its trace was idle for the idle
// timeout, unless `late_every` > 0: then every `late_every`-th trace gets one more SERVER span,
// a child of its root, exported 5 s after the trace ended (when its trace completed long ago: a
// late span, which a new owner recognises only through the seed range).
std::vector<Record> Corpus(uint64_t seed, int traces, int late_every = 0) {
  std::mt19937_64 random(seed);
  const std::vector<std::string> services = {"gateway", "checkout", "payment", "inventory"};
  std::vector<TestSpan> spans;
  uint64_t next_id = 1;
  int64_t start = kBaseMs;
  for (int t = 0; t < traces; ++t) {
    start += 50 + static_cast<int64_t>(random() % 250);
    if (random() % 40 == 0) start += 4'000;  // a quiet spell
    const int n = 2 + static_cast<int>(random() % 5);
    const bool fails = random() % 8 == 0;
    const bool rootless = random() % 15 == 0;
    std::vector<TestSpan> trace;
    for (int j = 0; j < n; ++j) {
      TestSpan s;
      s.trace = TraceIdOf(kTraceIdHigh, static_cast<uint64_t>(t) + 1);
      s.id = next_id++;
      s.parent = j == 0 ? 0 : trace[static_cast<size_t>((j - 1) / 2)].id;
      s.service = services[(static_cast<size_t>(t) + static_cast<size_t>(j)) % services.size()];
      s.name = "op" + std::to_string(j % 3);
      s.kind = j % 2 == 0 ? PbSpan::SPAN_KIND_SERVER : PbSpan::SPAN_KIND_CLIENT;
      s.start_ms = start + 5 * j;
      s.end_ms = start + 400 - 20 * j + static_cast<int64_t>(random() % 15);
      s.error = fails && j == n - 1;
      trace.push_back(s);
    }
    if (late_every > 0 && t % late_every == 0) {
      TestSpan late = trace[0];
      late.id = next_id++;
      late.parent = trace[0].id;
      late.name = "late";
      late.start_ms = start + 5'350;
      late.end_ms = start + 5'400;
      late.error = false;
      trace.push_back(late);
    }
    if (rootless) trace.erase(trace.begin());
    spans.insert(spans.end(), trace.begin(), trace.end());
  }
  std::stable_sort(spans.begin(), spans.end(),
                   [](const TestSpan& a, const TestSpan& b) { return a.end_ms < b.end_ms; });
  std::vector<Record> records;
  int64_t timestamp = kBaseMs;
  for (size_t i = 0; i < spans.size();) {
    // A Collector batches what ended within a short while (its batch timeout): spans more than
    // 300 ms apart go to separate records, so no span arrives after its trace went idle.
    size_t n = 1;
    const size_t want = 1 + random() % 3;
    while (n < want && i + n < spans.size() && spans[i + n].end_ms - spans[i].end_ms <= 300) ++n;
    std::vector<TestSpan> group(spans.begin() + static_cast<std::ptrdiff_t>(i),
                                spans.begin() + static_cast<std::ptrdiff_t>(i + n));
    i += n;
    timestamp = std::max(timestamp, group.back().end_ms) + static_cast<int64_t>(random() % 3);
    records.push_back(
        {static_cast<int64_t>(records.size()), timestamp, Encode(group, "card 4411 declined")});
  }
  return records;
}

Stage1Options Options() {
  Stage1Options options;
  options.partition = 5;
  options.dst_partitions = kDstPartitions;
  options.config_hash = 0xc0ffee;
  options.epoch_length = std::chrono::milliseconds(1'000);
  options.sli.trace_idle_timeout = std::chrono::seconds(2);
  options.sli.trace_max_age = std::chrono::seconds(20);
  return options;
}

// A 50 ms SERVER span of checkout / op in trace `trace`.
TestSpan CheckoutSpan(uint64_t trace, uint64_t id, uint64_t parent, int64_t end_ms) {
  return TestSpan{.trace = TraceIdOf(kTraceIdHigh, trace),
                  .id = id,
                  .parent = parent,
                  .service = "checkout",
                  .name = "op",
                  .kind = PbSpan::SPAN_KIND_SERVER,
                  .start_ms = end_ms - 50,
                  .end_ms = end_ms};
}

// Every epoch of `want`, and no other, is in `got` with the same content.
void ExpectSameEpochs(const std::map<int64_t, EpochContent>& got,
                      const std::map<int64_t, EpochContent>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (const auto& [epoch, content] : want) {
    auto it = got.find(epoch);
    ASSERT_NE(it, got.end()) << what << ": epoch " << epoch << " missing";
    ExpectSameContent(it->second, content, what + ", epoch " + std::to_string(epoch));
  }
}

// Feeds `records` from `from_offset` on and runs stream time 60 s past the last, so every trace
// completes; acknowledges with `lag`. `at_offset` is called after each record.
template <typename Each>
void Feed(Stage1Partition& stage, Recorder& recorder, const std::vector<Record>& records,
          int64_t from_offset, size_t until, int lag, Each at_offset) {
  for (const Record& r : records) {
    if (r.offset < from_offset || static_cast<size_t>(r.offset) >= until) continue;
    stage.Process(r.offset, r.timestamp_ms, r.value);
    if (!recorder.published.empty()) {
      recorder.AcknowledgeUpTo(stage, recorder.published.rbegin()->first - lag);
    }
    at_offset(r.offset);
  }
}

// What one owner that never stops publishes for `records`, stream time run to `end_ms`;
// `counters`: its counters.
std::map<int64_t, EpochContent> Uninterrupted(pipeline::SeriesRegistry& registry,
                                              const std::vector<Record>& records, int64_t end_ms,
                                              Stage1Counters* counters = nullptr) {
  Recorder single(kDstPartitions);
  Stage1Partition whole(Options(), registry, single, CommitPoint{});
  Feed(whole, single, records, 0, records.size(), 0, [](int64_t) {});
  whole.AdvanceTo(end_ms);
  if (counters != nullptr) *counters = whole.counters();
  std::map<int64_t, EpochContent> out;
  for (const auto& [epoch, r] : single.published) out[epoch] = Content(r);
  return out;
}

// An owner that reads `records` up to a random crash point, commits after a random earlier
// record and acknowledges with a random lag of 0-3 epochs: what it published and its last
// commit point.
struct CrashedOwner {
  std::unique_ptr<Recorder> published;
  CommitPoint commit;
  std::string what;  // the trial, for messages
};
CrashedOwner CrashAtRandom(std::mt19937_64& random, pipeline::SeriesRegistry& registry,
                           const std::vector<Record>& records, int trial) {
  const size_t crash = 1 + random() % (records.size() - 1);
  const size_t commit_after = random() % crash;
  const int lag = static_cast<int>(random() % 4);
  CrashedOwner out{.published = std::make_unique<Recorder>(kDstPartitions)};
  Stage1Partition before(Options(), registry, *out.published, CommitPoint{});
  Feed(before, *out.published, records, 0, crash, lag, [&](int64_t offset) {
    if (static_cast<size_t>(offset) == commit_after) out.commit = before.Commit();
  });
  out.what = "trial " + std::to_string(trial) + ": crash at " + std::to_string(crash) +
             ", commit (L " + std::to_string(out.commit.offset) + ", E " +
             std::to_string(out.commit.last_epoch) + ", S " +
             std::to_string(out.commit.seed_offset) + ")";
  return out;
}

TEST(Stage1Test, ResumingFromAnyCommitPointRepublishesExactlyTheMissingEpochs) {
  const std::vector<Record> records = Corpus(11, 400);
  ASSERT_GT(records.size(), 500u);
  const int64_t end_ms = records.back().timestamp_ms + 60'000;

  pipeline::SeriesRegistry registry(1000, 1000);
  Stage1Counters whole;
  std::map<int64_t, EpochContent> want = Uninterrupted(registry, records, end_ms, &whole);
  ASSERT_GT(want.size(), 80u);
  EXPECT_EQ(whole.records, records.size());
  EXPECT_EQ(whole.bad_records, 0u);
  uint64_t traces = 0;
  for (const auto& [epoch, content] : want) {
    for (const auto& [key, counts] : content.services) traces += counts[0];
  }
  EXPECT_GT(traces, 400u) << "traces complete and are counted per service they touch";

  std::mt19937_64 random(99);
  int replays_from_the_middle = 0;
  for (int trial = 0; trial < 25; ++trial) {
    const CrashedOwner crashed = CrashAtRandom(random, registry, records, trial);
    const Recorder& old_owner = *crashed.published;
    const CommitPoint& commit = crashed.commit;
    const std::string& what = crashed.what;
    if (commit.offset > 0 && commit.last_epoch >= 0) ++replays_from_the_middle;

    Recorder new_owner(kDstPartitions);
    Stage1Partition after(Options(), registry, new_owner, commit);
    // From S: the seed range first.
    Feed(after, new_owner, records, commit.seed_offset, records.size(), 0, [](int64_t) {});
    after.AdvanceTo(end_ms);

    // Up to E from the old owner (all of it was acknowledged), after E from the new one.
    std::map<int64_t, EpochContent> got;
    for (const auto& [epoch, r] : old_owner.published) {
      if (epoch <= commit.last_epoch) got[epoch] = Content(r);
    }
    for (const auto& [epoch, r] : new_owner.published) {
      EXPECT_GT(epoch, commit.last_epoch) << what << ": epoch " << epoch << " republished";
      got[epoch] = Content(r);
    }
    ExpectSameEpochs(got, want, what);
    // What the old owner published past E (a duplicate stage 2 drops) is the same too.
    for (const auto& [epoch, r] : old_owner.published) {
      if (epoch > commit.last_epoch) {
        ExpectSameContent(Content(r), want[epoch],
                          what + ", old owner's epoch " + std::to_string(epoch));
      }
    }
    if (HasFailure()) break;
  }
  EXPECT_GE(replays_from_the_middle, 10) << "most trials resume mid-stream, not from the start";
}

// Over all of `epochs`: traces, partial traces (summed over the services they touch) and late
// spans.
std::array<uint64_t, 3> Totals(const std::map<int64_t, EpochContent>& epochs) {
  std::array<uint64_t, 3> out{};
  for (const auto& [epoch, content] : epochs) {
    for (const auto& [key, counts] : content.services) {
      out[0] += counts[0];
      out[1] += counts[3];
    }
    out[2] += content.counters[0];
  }
  return out;
}

// The epochs after `commit.last_epoch` that a new owner publishes resumed from `commit`, fed from
// `from` (S with a seed range, L without), with the old owner's epochs up to E.
std::map<int64_t, EpochContent> Resumed(pipeline::SeriesRegistry& registry,
                                        const Recorder& old_owner, const CommitPoint& commit,
                                        int64_t from, const std::vector<Record>& records,
                                        int64_t end_ms, Stage1Counters* counters) {
  Recorder new_owner(kDstPartitions);
  Stage1Partition after(Options(), registry, new_owner, commit);
  Feed(after, new_owner, records, from, records.size(), 0, [](int64_t) {});
  after.AdvanceTo(end_ms);
  std::map<int64_t, EpochContent> got;
  for (const auto& [epoch, r] : old_owner.published) {
    if (epoch <= commit.last_epoch) got[epoch] = Content(r);
  }
  for (const auto& [epoch, r] : new_owner.published) {
    EXPECT_GT(epoch, commit.last_epoch) << "epoch " << epoch << " republished";
    got[epoch] = Content(r);
  }
  *counters = after.counters();
  return got;
}

// Trace 1 completes (idle) before the commit point L; a late span of it arrives after L. Resumed
// with the seed range, the new owner counts it late, as the uninterrupted run does; resumed from
// L alone (the metadata older versions commit) it counts one more trace, partial, and one late
// span less.
TEST(Stage1Test, ALateSpanOfATraceClosedBeforeTheCommitPointStaysLateAfterAResume) {
  const auto span = CheckoutSpan;
  const std::vector<Record> records = {
      {0, kBaseMs + 100, Encode({span(1, 1, 0, kBaseMs + 100)})},
      {1, kBaseMs + 400, Encode({span(1, 2, 1, kBaseMs + 400)})},  // trace 1 completes at +3 s
      {2, kBaseMs + 3'500, Encode({span(2, 3, 0, kBaseMs + 3'500)})},
      {3, kBaseMs + 7'000, Encode({span(3, 4, 0, kBaseMs + 7'000)})},  // commit here
      {4, kBaseMs + 8'000, Encode({span(1, 5, 1, kBaseMs + 8'000)})},  // trace 1's late span
      {5, kBaseMs + 9'000, Encode({span(4, 6, 0, kBaseMs + 9'000)})},
  };
  const int64_t end_ms = kBaseMs + 60'000;
  pipeline::SeriesRegistry registry(100, 100);

  const std::map<int64_t, EpochContent> want = Uninterrupted(registry, records, end_ms);
  ASSERT_EQ(Totals(want), (std::array<uint64_t, 3>{4, 0, 1})) << "4 traces, one late span";

  Recorder old_owner(kDstPartitions);
  Stage1Partition before(Options(), registry, old_owner, CommitPoint{});
  Feed(before, old_owner, records, 0, 4, 0, [](int64_t) {});
  const CommitPoint commit = before.Commit();
  // Trace 3 (offset 3) is open; everything before it is within the seed horizon.
  ASSERT_EQ(commit, (CommitPoint{.offset = 3, .last_epoch = kBaseMs / 1000 + 6, .seed_offset = 0}));

  Stage1Counters counters;
  const std::map<int64_t, EpochContent> seeded =
      Resumed(registry, old_owner, commit, commit.seed_offset, records, end_ms, &counters);
  ExpectSameEpochs(seeded, want, "seeded");
  EXPECT_EQ(counters.seed_records, 3u);
  EXPECT_EQ(counters.records, 3u);
  EXPECT_EQ(counters.late_spans_after_replay, 1u);
  EXPECT_EQ(counters.seed_overflow, 0u);

  const CommitPoint old_form{.offset = commit.offset, .last_epoch = commit.last_epoch};
  const std::map<int64_t, EpochContent> unseeded =
      Resumed(registry, old_owner, old_form, old_form.offset, records, end_ms, &counters);
  EXPECT_EQ(Totals(unseeded), (std::array<uint64_t, 3>{5, 1, 0}))
      << "without the seed range: one more trace, partial, instead of a late span";
  EXPECT_EQ(counters.seed_records, 0u);
  EXPECT_EQ(counters.late_spans_after_replay, 0u);
}

// A trace with a record before L can still be open when the record at L is processed (it
// completes by the seal of E): here L is held back to trace 2's first record by trace 2, open at
// the commit, while trace 1 began before it and goes on after it. Seeded as open, trace 1 takes
// its span at offset 2 (not late) and completes at the same tick as in the uninterrupted run, so
// only its span after that counts as a late span after the replay.
TEST(Stage1Test, ASeededTraceStillOpenAtLTakesItsSpansUntilItCompletes) {
  const auto span = CheckoutSpan;
  const std::vector<Record> records = {
      {0, kBaseMs + 100, Encode({span(1, 1, 0, kBaseMs + 100)})},
      {1, kBaseMs + 200, Encode({span(2, 2, 0, kBaseMs + 200)})},
      {2, kBaseMs + 1'500, Encode({span(1, 3, 1, kBaseMs + 1'500)})},  // trace 1: done at +4 s
      {3, kBaseMs + 1'800, Encode({span(2, 4, 2, kBaseMs + 1'800)})},
      {4, kBaseMs + 3'500, Encode({span(2, 5, 2, kBaseMs + 3'500)})},
      {5, kBaseMs + 5'000, Encode({span(2, 6, 2, kBaseMs + 5'000)})},  // commit here
      {6, kBaseMs + 6'500, Encode({span(2, 7, 2, kBaseMs + 6'500)})},
      {7, kBaseMs + 7'000, Encode({span(1, 8, 1, kBaseMs + 7'000)})},  // trace 1's late span
  };
  const int64_t end_ms = kBaseMs + 60'000;
  pipeline::SeriesRegistry registry(100, 100);

  const std::map<int64_t, EpochContent> want = Uninterrupted(registry, records, end_ms);
  ASSERT_EQ(Totals(want), (std::array<uint64_t, 3>{2, 0, 1}));

  Recorder old_owner(kDstPartitions);
  Stage1Partition before(Options(), registry, old_owner, CommitPoint{});
  Feed(before, old_owner, records, 0, 6, 0, [](int64_t) {});
  const CommitPoint commit = before.Commit();
  ASSERT_EQ(commit, (CommitPoint{.offset = 1, .last_epoch = kBaseMs / 1000 + 4, .seed_offset = 0}));

  Stage1Counters counters;
  const std::map<int64_t, EpochContent> seeded =
      Resumed(registry, old_owner, commit, commit.seed_offset, records, end_ms, &counters);
  ExpectSameEpochs(seeded, want, "seeded");
  EXPECT_EQ(counters.seed_records, 1u);
  EXPECT_EQ(counters.late_spans_after_replay, 1u) << "offset 7 only; offset 2 extends trace 1";
}

// The property of ResumingFromAnyCommitPointRepublishesExactlyTheMissingEpochs with late spans:
// with the seed range the union of the epochs is exactly the uninterrupted run's; without it
// some resume counts a late span as a new trace.
TEST(Stage1Test, WithLateSpansOnlyTheSeedRangeKeepsEveryResumeExact) {
  const std::vector<Record> records = Corpus(23, 400, /*late_every=*/4);
  const int64_t end_ms = records.back().timestamp_ms + 60'000;
  pipeline::SeriesRegistry registry(1000, 1000);
  const std::map<int64_t, EpochContent> want = Uninterrupted(registry, records, end_ms);
  ASSERT_GE(Totals(want)[2], 90u) << "the late spans are late in the uninterrupted run";

  std::mt19937_64 random(7);
  uint64_t late_after_replay = 0;
  int diverged_without_seeds = 0;
  for (int trial = 0; trial < 25; ++trial) {
    const CrashedOwner crashed = CrashAtRandom(random, registry, records, trial);
    const Recorder& old_owner = *crashed.published;
    const CommitPoint& commit = crashed.commit;
    const std::string& what = crashed.what;
    Stage1Counters counters;
    std::map<int64_t, EpochContent> got =
        Resumed(registry, old_owner, commit, commit.seed_offset, records, end_ms, &counters);
    late_after_replay += counters.late_spans_after_replay;
    ExpectSameEpochs(got, want, what);
    if (HasFailure()) break;

    const CommitPoint old_form{.offset = commit.offset, .last_epoch = commit.last_epoch};
    const std::map<int64_t, EpochContent> unseeded =
        Resumed(registry, old_owner, old_form, old_form.offset, records, end_ms, &counters);
    if (Totals(unseeded) != Totals(want)) ++diverged_without_seeds;
  }
  EXPECT_GT(late_after_replay, 0u);
  EXPECT_GT(diverged_without_seeds, 0) << "the late spans make resumes from L alone diverge";
}

// L is the first record of the oldest trace still open: a replay rebuilds it whole.
TEST(Stage1Test, CommitPointWaitsForTheOldestOpenTrace) {
  pipeline::SeriesRegistry registry(100, 100);
  Recorder recorder(kDstPartitions);
  Stage1Partition stage(Options(), registry, recorder, CommitPoint{});
  auto span = [](uint64_t trace, uint64_t id, uint64_t parent, int64_t end_ms) {
    return TestSpan{.trace = TraceIdOf(kTraceIdHigh, trace),
                    .id = id,
                    .parent = parent,
                    .service = "checkout",
                    .name = "op",
                    .start_ms = end_ms - 100,
                    .end_ms = end_ms};
  };
  // Trace 1 starts at offset 0 and goes on; trace 2 comes and goes.
  stage.Process(0, kBaseMs + 100, Encode({span(1, 1, 100, kBaseMs + 100)}));
  stage.Process(1, kBaseMs + 600, Encode({span(2, 2, 0, kBaseMs + 600)}));
  stage.Process(2, kBaseMs + 1'700, Encode({span(1, 3, 100, kBaseMs + 1'700)}));
  stage.Process(3, kBaseMs + 2'900, Encode({span(1, 4, 100, kBaseMs + 2'900)}));
  ASSERT_EQ(recorder.published.size(), 2u);  // epochs +0 s and +1 s
  recorder.AcknowledgeUpTo(stage, recorder.published.rbegin()->first);
  // Trace 2 is idle since +0.6 s but completes only at the tick of +3 s; trace 1 (offset 0) is
  // open either way.
  // S: everything read so far (the seed horizon, 2 x (20 s + 1 s), reaches back past it).
  EXPECT_EQ(stage.Commit(),
            (CommitPoint{.offset = 0, .last_epoch = recorder.acked, .seed_offset = 0}));
  stage.Process(4, kBaseMs + 5'500, Encode({span(3, 5, 0, kBaseMs + 5'500)}));
  recorder.AcknowledgeUpTo(stage, recorder.published.rbegin()->first);
  // The ticks of +3, +4 and +5 s completed trace 2 and trace 1 (idle since +2.9 s); trace 3
  // (offset 4) is open.
  EXPECT_EQ(stage.Commit().offset, 4);
  stage.AdvanceTo(kBaseMs + 9'000);  // trace 3 completes at the tick of +8 s
  recorder.AcknowledgeUpTo(stage, recorder.published.rbegin()->first);
  EXPECT_EQ(stage.Commit(),
            (CommitPoint{.offset = 5, .last_epoch = recorder.acked, .seed_offset = 0}));
}

TEST(Stage1Test, RecordsThatAreNotExportRequestsAreCountedAndSkipped) {
  pipeline::SeriesRegistry registry(100, 100);
  Recorder recorder(kDstPartitions);
  Stage1Partition stage(Options(), registry, recorder, CommitPoint{});
  stage.Process(0, kBaseMs, "\xff\xff not protobuf");
  stage.Process(1, kBaseMs + 10,
                Encode({TestSpan{.trace = TraceIdOf(kTraceIdHigh, 1),
                                 .id = 1,
                                 .service = "a",
                                 .name = "b",
                                 .start_ms = kBaseMs,
                                 .end_ms = kBaseMs + 5}}));
  EXPECT_EQ(stage.counters().records, 2u);
  EXPECT_EQ(stage.counters().bad_records, 1u);
  EXPECT_EQ(stage.counters().spans, 1u);
  stage.AdvanceTo(kBaseMs + 10'000);
  EXPECT_EQ(recorder.published.size(), 10u);  // every epoch, empty ones too
}

// A record stamped a year ahead (a producer's clock) moves stream time by max_stream_jump only,
// counted; so does the first record after a resume, measured from where the resume starts.
TEST(Stage1Test, ARecordFarAheadMovesStreamTimeByTheMaximumJumpOnly) {
  pipeline::SeriesRegistry registry(100, 100);
  Stage1Options options = Options();
  options.max_stream_jump = std::chrono::seconds(30);
  Recorder recorder(kDstPartitions);
  Stage1Partition stage(options, registry, recorder, CommitPoint{});
  stage.Process(0, kBaseMs, "");
  constexpr int64_t kYearMs = 365LL * 86'400'000;
  stage.Process(1, kBaseMs + kYearMs, "");
  EXPECT_EQ(stage.stream_time_ms(), kBaseMs + 30'000);
  EXPECT_EQ(stage.counters().clamped_timestamps, 1u);
  EXPECT_EQ(recorder.published.size(), 30u);  // the epochs of 30 s, not of a year
  stage.Process(2, kBaseMs + 40'000, "");     // within 30 s of stream time: as stamped
  EXPECT_EQ(stage.stream_time_ms(), kBaseMs + 40'000);
  EXPECT_EQ(stage.counters().clamped_timestamps, 1u);

  Recorder resumed_recorder(kDstPartitions);
  const int64_t last_epoch = kBaseMs / 1000 + 39;
  Stage1Partition resumed(options, registry, resumed_recorder,
                          CommitPoint{.offset = 3, .last_epoch = last_epoch});
  resumed.Process(3, kBaseMs + kYearMs, "");
  EXPECT_EQ(resumed.stream_time_ms(), (last_epoch + 1) * 1000 + 30'000);
  EXPECT_EQ(resumed.counters().clamped_timestamps, 1u);
}

}  // namespace
}  // namespace traceslo::kafka
