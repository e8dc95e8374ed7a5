// The alert history (table alert_history, migration 3) on a real SqliteStore in a temporary
// directory: entries from the evaluator's transitions, newest first, pruned by age.
#include "traceslo/alerting/alert_history.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "tests/unit/alerting/alerting_test_util.h"
#include "traceslo/slo/evaluator.h"
#include "traceslo/storage/sqlite_store.h"

namespace traceslo::alerting {
namespace {

using storage::SqliteStore;
using ::testing::IsEmpty;
using ::testing::SizeIs;
using testing_util::Json;
using testing_util::ScratchDir;

std::unique_ptr<SqliteStore> Open(const std::string& path) {
  absl::StatusOr<std::unique_ptr<SqliteStore>> store = SqliteStore::Open(path);
  EXPECT_TRUE(store.ok()) << store.status();
  return store.ok() ? std::move(*store) : nullptr;
}

AlertHistoryEntry Entry(std::string slo, std::string to, int64_t at) {
  return AlertHistoryEntry{.service = "payment",
                           .slo = std::move(slo),
                           .severity = "page",
                           .from = "pending",
                           .to = std::move(to),
                           .at_unix_nano = at,
                           .burn_rate_long = 15.5,
                           .burn_rate_short = 20.25,
                           .threshold_burn_rate = 14.4};
}

TEST(AlertHistoryTest, EntryOfATransitionCarriesItsStatesRatesAndCauses) {
  slo::AlertTransition transition;
  transition.status.service = "payment";
  transition.status.slo = "availability";
  transition.status.severity = slo::Severity::kTicket;
  transition.status.no_data = true;
  transition.status.state = slo::AlertState::kFiring;
  transition.status.burn_rate_long = 3.5;
  transition.status.burn_rate_short = 4;
  transition.status.threshold_burn_rate = 3;
  transition.from = slo::AlertState::kPending;
  const Cause cause{.kind = Cause::Kind::kSlowOperation,
                    .id = "GET /pay",
                    .title = "GET /pay",
                    .sample_message = "",
                    .count = 12,
                    .share = 0.5,
                    .trace_ids = {std::string(testing_util::kTrace1)}};
  const AlertHistoryEntry e = HistoryEntryOf(transition, 123, {cause});
  EXPECT_EQ(e.service, "payment");
  EXPECT_EQ(e.slo, "availability");
  EXPECT_EQ(e.severity, "ticket");
  EXPECT_TRUE(e.no_data);
  EXPECT_EQ(e.from, "pending");
  EXPECT_EQ(e.to, "firing");
  EXPECT_EQ(e.at_unix_nano, 123);
  EXPECT_EQ(e.burn_rate_long, 3.5);
  EXPECT_EQ(e.burn_rate_short, 4);
  EXPECT_EQ(e.threshold_burn_rate, 3);
  EXPECT_EQ(Json(e.causes_json), Json(R"([{"kind":"slow_operation","id":"GET /pay",
      "title":"GET /pay","sampleMessage":"","count":12,"share":0.5,
      "traceIds":["4bf92f3577b34da6a3ce929d0e0e4736"]}])"));
  EXPECT_EQ(HistoryEntryOf(transition, 1).causes_json, "[]");
}

TEST(AlertHistoryTest, AppendRecentPrune) {
  ScratchDir dir;
  auto db = Open(dir.File("traceslo.db"));
  SqliteAlertHistory history(*db);
  absl::StatusOr<std::vector<AlertHistoryEntry>> none = history.Recent(10);
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_THAT(*none, IsEmpty());
  ASSERT_TRUE(history.Append({}).ok());

  AlertHistoryEntry with_causes = Entry("availability", "firing", 2'000);
  with_causes.causes_json = CausesJson({Cause{.id = "3f2a9c0d1e2b4a5f", .title = "TimeoutError"}});
  ASSERT_TRUE(history.Append({Entry("availability", "pending", 1'000), with_causes}).ok());
  ASSERT_TRUE(
      history.Append({Entry("latency", "pending", 2'000), Entry("availability", "resolved", 3'000)})
          .ok());

  absl::StatusOr<std::vector<AlertHistoryEntry>> recent = history.Recent(3);
  ASSERT_TRUE(recent.ok()) << recent.status();
  ASSERT_THAT(*recent, SizeIs(3));
  // Newest first; at the same time, the one appended later first.
  EXPECT_EQ((*recent)[0].to, "resolved");
  EXPECT_EQ((*recent)[1].slo, "latency");
  EXPECT_EQ((*recent)[2].slo, "availability");
  EXPECT_EQ((*recent)[2].to, "firing");
  EXPECT_GT((*recent)[1].id, (*recent)[2].id);
  AlertHistoryEntry want = with_causes;
  want.id = (*recent)[2].id;
  EXPECT_EQ((*recent)[2], want);
  EXPECT_EQ(Json((*recent)[2].causes_json).as_array()[0].as_object().at("kind").as_string(),
            "signature");

  EXPECT_THAT(*history.Recent(100), SizeIs(4));
  EXPECT_THAT(*history.Recent(0), IsEmpty());

  absl::StatusOr<uint64_t> pruned = history.Prune(2'000);
  ASSERT_TRUE(pruned.ok()) << pruned.status();
  EXPECT_EQ(*pruned, 1u);
  recent = history.Recent(100);
  ASSERT_TRUE(recent.ok());
  ASSERT_THAT(*recent, SizeIs(3));
  EXPECT_EQ(recent->back().at_unix_nano, 2'000);
}

TEST(AlertHistoryTest, NanBurnRatesRoundTrip) {
  ScratchDir dir;
  auto db = Open(dir.File("traceslo.db"));
  SqliteAlertHistory history(*db);
  AlertHistoryEntry e = Entry("availability", "firing", 1);
  e.burn_rate_long = std::numeric_limits<double>::quiet_NaN();
  e.burn_rate_short = std::numeric_limits<double>::infinity();
  ASSERT_TRUE(history.Append({e}).ok());
  absl::StatusOr<std::vector<AlertHistoryEntry>> recent = history.Recent(1);
  ASSERT_TRUE(recent.ok()) << recent.status();
  ASSERT_THAT(*recent, SizeIs(1));
  EXPECT_TRUE(std::isnan((*recent)[0].burn_rate_long));
  EXPECT_EQ((*recent)[0].burn_rate_short, std::numeric_limits<double>::infinity());
  EXPECT_EQ((*recent)[0].threshold_burn_rate, 14.4);
}

TEST(AlertHistoryTest, AppendsSurviveReopening) {
  ScratchDir dir;
  const std::string path = dir.File("traceslo.db");
  {
    auto db = Open(path);
    SqliteAlertHistory history(*db);
    ASSERT_TRUE(history.Append({Entry("availability", "firing", 5)}).ok());
  }
  auto db = Open(path);
  SqliteAlertHistory history(*db);
  absl::StatusOr<std::vector<AlertHistoryEntry>> recent = history.Recent(10);
  ASSERT_TRUE(recent.ok());
  ASSERT_THAT(*recent, SizeIs(1));
  EXPECT_EQ((*recent)[0].slo, "availability");
}

}  // namespace
}  // namespace traceslo::alerting
