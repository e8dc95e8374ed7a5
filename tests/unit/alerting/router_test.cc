// The alert router: routing, grouping by signature, dedup across SLOs and tiers, inhibition,
// group_wait / group_interval / repeat_interval on a fake clock, resolve-once, sequences and
// restarts over the state store.
#include "traceslo/alerting/router.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "tests/unit/alerting/router_test_util.h"

namespace traceslo::alerting {
namespace {

using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::SizeIs;
using testing_util::Fingerprints;
using testing_util::kSigA;
using testing_util::kSigB;
using testing_util::MakeAlert;
using testing_util::MemorySilenceStore;
using testing_util::MemoryStateStore;
using testing_util::RecordingSink;
using testing_util::RouterTest;

TEST_F(RouterTest, TwoSignaturesMakeExactlyTwoNotifications) {
  auto router = MakeRouter();
  Upsert(*router, MakeAlert("payment", "availability", "page", kSigA));
  Upsert(*router, MakeAlert("payment", "error-traces", "page", kSigB));
  AdvanceAndTick(*router, seconds(30));
  AdvanceAndTick(*router, minutes(10));

  ASSERT_THAT(sink_.sent, SizeIs(2));
  std::set<std::string> keys;
  for (const Notification& n : sink_.sent) {
    keys.insert(n.group_key);
    EXPECT_TRUE(n.firing);
    EXPECT_THAT(n.alerts, SizeIs(1));
    EXPECT_EQ(n.receiver, "log");
    EXPECT_EQ(n.external_url, "http://traceslo.example");
  }
  EXPECT_EQ(keys,
            (std::set<std::string>{"{}:{service=\"payment\",signature=\"3f2a9c0d1e2b4a5f\"}",
                                   "{}:{service=\"payment\",signature=\"9b1c7e2d4f6a8b0c\"}"}));
}

TEST_F(RouterTest, SameSignatureInTwoSlosIsOneNotificationWithBoth) {
  auto router = MakeRouter();
  Alert availability = MakeAlert("payment", "availability", "page", kSigA);
  Alert error_traces = MakeAlert("payment", "error-traces", "page", kSigA);
  Upsert(*router, availability);
  Upsert(*router, error_traces);
  AdvanceAndTick(*router, seconds(30));

  ASSERT_THAT(sink_.sent, SizeIs(1));
  const Notification& n = sink_.sent[0];
  EXPECT_EQ(Fingerprints(n), (std::set<std::string>{Fingerprint(availability.labels),
                                                    Fingerprint(error_traces.labels)}));
  EXPECT_EQ(n.group_labels, (Labels{{"service", "payment"}, {"signature", kSigA}}));
  EXPECT_EQ(n.common_labels,
            (Labels{{"service", "payment"}, {"severity", "page"}, {"signature", kSigA}}));
  EXPECT_EQ(n.common_annotations, Labels{});  // the summaries differ
}

TEST_F(RouterTest, GroupWaitBatchesAlertsThatJoinMeanwhile) {
  auto router = MakeRouter();
  Upsert(*router, MakeAlert("payment", "availability", "page", kSigA));
  AdvanceAndTick(*router, seconds(10));
  Upsert(*router, MakeAlert("payment", "error-traces", "page", kSigA));
  AdvanceAndTick(*router, seconds(19));
  EXPECT_THAT(sink_.sent, IsEmpty());

  AdvanceAndTick(*router, seconds(1));  // 30 s after the first alert
  ASSERT_THAT(sink_.sent, SizeIs(1));
  EXPECT_THAT(sink_.sent[0].alerts, SizeIs(2));

  // A third alert after the first notification waits for group_interval, counted from it.
  Upsert(*router, MakeAlert("payment", "latency", "page", kSigA));
  AdvanceAndTick(*router, minutes(5) - seconds(1));
  EXPECT_THAT(sink_.sent, SizeIs(1));
  AdvanceAndTick(*router, seconds(1));
  ASSERT_THAT(sink_.sent, SizeIs(2));
  EXPECT_THAT(sink_.sent[1].alerts, SizeIs(3));
}

// group_wait_start: warming. The evaluator syncs every 10 s; the alert warms (its short window
// burns) for 40 s before its long window confirms and it fires.
TEST_F(RouterTest, GroupWaitCountsFromTheFirstWarmingSync) {
  auto router = MakeRouter();
  const Alert alert = MakeAlert("payment", "availability", "page", kSigA);
  Alert warm = alert;
  warm.firing = false;
  for (int i = 0; i < 4; ++i) {
    router->Sync({}, {warm}, Now());
    AdvanceAndTick(*router, seconds(10));
  }
  // Warming alone opens no group and sends nothing.
  EXPECT_EQ(router->group_count(), 0u);
  EXPECT_THAT(sink_.sent, IsEmpty());

  // It fires 40 s after it began to warm, past group_wait (30 s): the page goes at once.
  const int64_t fired_at = Now();
  router->Sync({alert}, {}, Now());
  ASSERT_TRUE(router->Tick(Now()).ok());
  ASSERT_THAT(sink_.sent, SizeIs(1));
  EXPECT_EQ(sink_.sent[0].created_unix_nano, fired_at);
  EXPECT_EQ(Fingerprints(sink_.sent[0]), std::set<std::string>{Fingerprint(alert.labels)});
}

TEST_F(RouterTest, GroupWaitFromWarmingStillWaitsItsRest) {
  auto router = MakeRouter();
  const Alert alert = MakeAlert("payment", "availability", "page", kSigA);
  Alert warm = alert;
  warm.firing = false;
  const int64_t warm_at = Now();
  router->Sync({}, {warm}, Now());
  AdvanceAndTick(*router, seconds(10));
  router->Sync({alert}, {}, Now());  // fires 10 s after it began to warm
  AdvanceAndTick(*router, seconds(19));
  EXPECT_THAT(sink_.sent, IsEmpty());
  // A second SLO of the same cause joins within the wait and rides along.
  router->Sync({alert, MakeAlert("payment", "error-traces", "page", kSigA)}, {}, Now());
  AdvanceAndTick(*router, seconds(1));  // 30 s after the first warming sync
  ASSERT_THAT(sink_.sent, SizeIs(1));
  EXPECT_EQ(sink_.sent[0].created_unix_nano, warm_at + 30'000'000'000);
  EXPECT_THAT(sink_.sent[0].alerts, SizeIs(2));
}

TEST_F(RouterTest, WarmingThatStoppedDoesNotShortenALaterGroupWait) {
  auto router = MakeRouter();
  const Alert alert = MakeAlert("payment", "availability", "page", kSigA);
  Alert warm = alert;
  warm.firing = false;
  router->Sync({}, {warm}, Now());
  AdvanceAndTick(*router, seconds(10));
  router->Sync({}, {}, Now());  // cooled down
  AdvanceAndTick(*router, minutes(10));
  router->Sync({alert}, {}, Now());  // fires without warming first
  AdvanceAndTick(*router, seconds(29));
  EXPECT_THAT(sink_.sent, IsEmpty());
  AdvanceAndTick(*router, seconds(1));
  EXPECT_THAT(sink_.sent, SizeIs(1));
}

TEST_F(RouterTest, WarmingOfAnotherSignatureDoesNotShortenTheWait) {
  auto router = MakeRouter();
  Alert warm = MakeAlert("payment", "availability", "page", kSigB);
  warm.firing = false;
  for (int i = 0; i < 6; ++i) {
    router->Sync({}, {warm}, Now());
    AdvanceAndTick(*router, seconds(10));
  }
  router->Sync({MakeAlert("payment", "availability", "page", kSigA)}, {warm}, Now());
  AdvanceAndTick(*router, seconds(29));
  EXPECT_THAT(sink_.sent, IsEmpty());
  AdvanceAndTick(*router, seconds(1));
  ASSERT_THAT(sink_.sent, SizeIs(1));
  EXPECT_EQ(sink_.sent[0].group_labels, (Labels{{"service", "payment"}, {"signature", kSigA}}));
}

TEST_F(RouterTest, GroupWaitStartFiringIgnoresWarming) {
  options_.group_wait_from_warming = false;
  auto router = MakeRouter();
  const Alert alert = MakeAlert("payment", "availability", "page", kSigA);
  Alert warm = alert;
  warm.firing = false;
  for (int i = 0; i < 6; ++i) {
    router->Sync({}, {warm}, Now());
    AdvanceAndTick(*router, seconds(10));
  }
  router->Sync({alert}, {}, Now());
  AdvanceAndTick(*router, seconds(29));
  EXPECT_THAT(sink_.sent, IsEmpty());  // Alertmanager's timing: group_wait after firing
  AdvanceAndTick(*router, seconds(1));
  EXPECT_THAT(sink_.sent, SizeIs(1));
}

TEST_F(RouterTest, RepeatsOnlyAtRepeatInterval) {
  auto router = MakeRouter();
  Upsert(*router, MakeAlert("payment", "availability", "page", kSigA));
  AdvanceAndTick(*router, seconds(30));
  ASSERT_THAT(sink_.sent, SizeIs(1));

  // Ticks every group_interval, and the evaluator re-upserting the unchanged alert, send nothing.
  for (int i = 0; i < 47; ++i) {
    Upsert(*router, MakeAlert("payment", "availability", "page", kSigA));
    AdvanceAndTick(*router, minutes(5));
  }
  AdvanceAndTick(*router, minutes(5) - seconds(1));  // 4 h minus 1 s after the first
  EXPECT_THAT(sink_.sent, SizeIs(1));

  AdvanceAndTick(*router, seconds(1));
  ASSERT_THAT(sink_.sent, SizeIs(2));
  EXPECT_EQ(sink_.sent[1].group_key, sink_.sent[0].group_key);
  EXPECT_EQ(Fingerprints(sink_.sent[1]), Fingerprints(sink_.sent[0]));
  EXPECT_TRUE(sink_.sent[1].firing);
}

TEST_F(RouterTest, RecoveryResolvesEachGroupExactlyOnce) {
  auto router = MakeRouter();
  Upsert(*router, MakeAlert("payment", "availability", "page", kSigA));
  Upsert(*router, MakeAlert("payment", "error-traces", "page", kSigA));
  Upsert(*router, MakeAlert("payment", "error-traces", "ticket", kSigB));
  AdvanceAndTick(*router, seconds(30));
  ASSERT_THAT(sink_.sent, SizeIs(2));

  AdvanceAndTick(*router, minutes(1));
  Upsert(*router, MakeAlert("payment", "availability", "page", kSigA, /*firing=*/false));
  Upsert(*router, MakeAlert("payment", "error-traces", "page", kSigA, /*firing=*/false));
  Upsert(*router, MakeAlert("payment", "error-traces", "ticket", kSigB, /*firing=*/false));
  for (int i = 0; i < 60; ++i) AdvanceAndTick(*router, minutes(5));  // past repeat_interval

  ASSERT_THAT(sink_.sent, SizeIs(4));
  std::set<std::string> resolved_keys;
  for (size_t i = 2; i < 4; ++i) {
    const Notification& n = sink_.sent[i];
    EXPECT_FALSE(n.firing);
    resolved_keys.insert(n.group_key);
    for (const Alert& alert : n.alerts) {
      EXPECT_FALSE(alert.firing);
      EXPECT_NE(alert.ends_at_unix_nano, 0);
    }
  }
  EXPECT_EQ(resolved_keys,
            (std::set<std::string>{sink_.sent[0].group_key, sink_.sent[1].group_key}));
  EXPECT_THAT(sink_.sent[2].alerts.size() + sink_.sent[3].alerts.size(), 3u);
  EXPECT_EQ(router->group_count(), 0u);
  EXPECT_EQ(router->NextDueUnixNano(), std::nullopt);
}

TEST_F(RouterTest, AlertThatResolvesWithinGroupWaitIsNeverSent) {
  auto router = MakeRouter();
  Upsert(*router, MakeAlert("payment", "availability", "page", kSigA));
  AdvanceAndTick(*router, seconds(10));
  Upsert(*router, MakeAlert("payment", "availability", "page", kSigA, /*firing=*/false));
  AdvanceAndTick(*router, hours(5));
  EXPECT_THAT(sink_.sent, IsEmpty());
  EXPECT_EQ(router->group_count(), 0u);
}

TEST_F(RouterTest, TicketIsInhibitedWhilePageOfSameGroupFires) {
  auto router = MakeRouter();
  Alert page = MakeAlert("payment", "availability", "page", kSigA);
  Alert ticket = MakeAlert("payment", "availability", "ticket", kSigA);
  Alert other_ticket = MakeAlert("payment", "availability", "ticket", kSigB);
  Upsert(*router, page);
  Upsert(*router, ticket);
  Upsert(*router, other_ticket);  // another group: not inhibited
  AdvanceAndTick(*router, seconds(30));

  ASSERT_THAT(sink_.sent, SizeIs(2));
  std::map<std::string, Notification> by_key;
  for (const Notification& n : sink_.sent) by_key[n.group_labels.at("signature")] = n;
  EXPECT_EQ(Fingerprints(by_key[kSigA]), std::set<std::string>{Fingerprint(page.labels)});
  EXPECT_EQ(by_key[kSigA].common_labels.at("severity"), "page");
  EXPECT_EQ(Fingerprints(by_key[kSigB]), std::set<std::string>{Fingerprint(other_ticket.labels)});

  // The page resolves while the ticket still fires: the ticket reappears, the page shows resolved.
  page.firing = false;
  Upsert(*router, page);
  AdvanceAndTick(*router, minutes(5));
  ASSERT_THAT(sink_.sent, SizeIs(3));
  const Notification& n = sink_.sent[2];
  EXPECT_EQ(n.group_labels.at("signature"), kSigA);
  EXPECT_TRUE(n.firing);
  ASSERT_THAT(n.alerts, SizeIs(2));
  for (const Alert& alert : n.alerts) {
    EXPECT_EQ(alert.firing, alert.labels.at("severity") == "ticket");
  }
  EXPECT_EQ(n.common_labels.at("severity"), "ticket");  // the highest firing one
}

TEST_F(RouterTest, HighestSeverityIsCommonWhenFiringSeveritiesDiffer) {
  options_.severity_order = {"critical", "page", "ticket"};
  options_.group_by = {"service"};
  auto router = MakeRouter();
  // "warning" is not listed: never inhibited, never inhibits; "critical" ranks above "page".
  Upsert(*router, MakeAlert("payment", "latency", "warning", ""));
  Upsert(*router, MakeAlert("payment", "availability", "critical", kSigA));
  AdvanceAndTick(*router, seconds(30));
  ASSERT_THAT(sink_.sent, SizeIs(1));
  EXPECT_THAT(sink_.sent[0].alerts, SizeIs(2));
  EXPECT_EQ(sink_.sent[0].common_labels,
            (Labels{{"service", "payment"}, {"severity", "critical"}}));
  EXPECT_EQ(sink_.sent[0].group_key, "{}:{service=\"payment\"}");
}

TEST_F(RouterTest, RoutesMatchLabelsToReceivers) {
  options_.routes = {
      config::RouteConfig{.match = {{"severity", "page"}}, .receiver = "pagerduty"},
      config::RouteConfig{.match = {{"service", "payment"}},
                          .receiver = "payments-slack",
                          .continue_matching = true},
      config::RouteConfig{.match = {{"service", "payment"}}, .receiver = "payments-webhook"},
  };
  auto router = MakeRouter();
  Upsert(*router, MakeAlert("checkout", "availability", "page", kSigA));   // pagerduty only
  Upsert(*router, MakeAlert("payment", "availability", "ticket", kSigB));  // slack + webhook
  Upsert(*router, MakeAlert("search", "availability", "ticket", kSigB));   // default
  AdvanceAndTick(*router, seconds(30));

  std::multimap<std::string, std::string> sent;  // receiver -> service
  for (const Notification& n : sink_.sent) sent.emplace(n.receiver, n.group_labels.at("service"));
  EXPECT_EQ(sent, (std::multimap<std::string, std::string>{{"log", "search"},
                                                           {"pagerduty", "checkout"},
                                                           {"payments-slack", "payment"},
                                                           {"payments-webhook", "payment"}}));
}

TEST_F(RouterTest, SequenceIncreasesAndIdsAreStable) {
  auto router = MakeRouter();
  Upsert(*router, MakeAlert("payment", "availability", "page", kSigA));
  AdvanceAndTick(*router, seconds(30));
  Upsert(*router, MakeAlert("payment", "error-traces", "page", kSigA));
  AdvanceAndTick(*router, minutes(5));
  AdvanceAndTick(*router, hours(4));
  Upsert(*router, MakeAlert("payment", "availability", "page", kSigA, false));
  Upsert(*router, MakeAlert("payment", "error-traces", "page", kSigA, false));
  AdvanceAndTick(*router, minutes(5));
  // Fires again after its resolve: a new group, but its sequence continues.
  Upsert(*router, MakeAlert("payment", "availability", "page", kSigA));
  AdvanceAndTick(*router, seconds(30));

  ASSERT_THAT(sink_.sent, SizeIs(5));
  std::vector<uint64_t> sequences;
  std::set<std::string> ids;
  for (const Notification& n : sink_.sent) {
    sequences.push_back(n.sequence);
    EXPECT_EQ(n.id, NotificationId(options_.instance_id, n.receiver, n.group_key, n.sequence));
    ids.insert(n.id);
  }
  EXPECT_THAT(sequences, ElementsAre(1, 2, 3, 4, 5));
  EXPECT_THAT(ids, SizeIs(5));
}

// Kafka mode shares one instance id between instances, and an instance that takes a group's
// service over starts its sequence again: the episode (earliest starts_at) keeps its ids apart
// from an earlier episode's, while an instance with the same history computes the same ids.
TEST_F(RouterTest, EpisodeInIdSeparatesEpisodesWhoseSequencesMeet) {
  for (const bool episode_in_id : {false, true}) {
    SCOPED_TRACE(episode_in_id);
    options_.instance_id = "kafka:traceslo-stage2";
    options_.episode_in_id = episode_in_id;
    auto episode = [&](RouterStateStore& store, int64_t starts_at) {
      state_store_ = &store;
      auto router = MakeRouter();
      Alert alert = MakeAlert("payment", "availability", "page", kSigA);
      alert.starts_at_unix_nano = starts_at;
      Upsert(*router, alert);
      AdvanceAndTick(*router, seconds(30));
      alert.firing = false;
      Upsert(*router, alert);
      AdvanceAndTick(*router, minutes(5));
    };
    sink_.sent.clear();
    MemoryStateStore first;
    episode(first, 1'000);
    MemoryStateStore same_history;
    episode(same_history, 1'000);  // a zombie: the same transitions
    MemoryStateStore taken_over;
    episode(taken_over, 9'000);  // a later episode on the instance that took the service over
    ASSERT_THAT(sink_.sent, SizeIs(6));
    EXPECT_EQ(sink_.sent[0].id, sink_.sent[2].id);
    EXPECT_EQ(sink_.sent[1].id, sink_.sent[3].id);
    EXPECT_EQ(sink_.sent[4].sequence, 1u);
    // Without the episode, the later page has the first one's id: a receiver drops it.
    EXPECT_EQ(sink_.sent[4].id == sink_.sent[0].id, !episode_in_id);
    EXPECT_EQ(sink_.sent[5].id == sink_.sent[1].id, !episode_in_id);
  }
}

// With the episode in the id, a group's sequence starts again in each episode on one instance
// too (so an instance that derived the episode's states again counts as the old owner did), and
// a resolve never takes the id of the old owner's repeat at the same sequence.
TEST_F(RouterTest, EpisodeSequencesStartAgainAndResolvesDifferFromRepeats) {
  options_.instance_id = "kafka:traceslo-stage2";
  options_.episode_in_id = true;
  auto router = MakeRouter();
  Alert alert = MakeAlert("payment", "availability", "page", kSigA);
  alert.starts_at_unix_nano = 1'000;
  Upsert(*router, alert);
  AdvanceAndTick(*router, seconds(30));
  AdvanceAndTick(*router, hours(4));  // a repeat: sequence 2, firing
  Alert again = alert;
  again.firing = false;
  Upsert(*router, again);
  AdvanceAndTick(*router, minutes(5));  // the resolve: sequence 3
  alert.starts_at_unix_nano = 9'000;
  Upsert(*router, alert);  // a second episode
  AdvanceAndTick(*router, seconds(30));
  ASSERT_THAT(sink_.sent, SizeIs(4));
  std::vector<uint64_t> sequences;
  std::set<std::string> ids;
  for (const Notification& n : sink_.sent) {
    sequences.push_back(n.sequence);
    ids.insert(n.id);
  }
  EXPECT_THAT(sequences, ElementsAre(1, 2, 3, 1));
  EXPECT_THAT(ids, SizeIs(4));

  // The instance that took the service over mid-episode, with the states derived again: its
  // page has the first page's id; its resolve at sequence 2 is not the repeat's id.
  MemoryStateStore other;
  state_store_ = &other;
  auto taken_over = MakeRouter();
  alert.starts_at_unix_nano = 1'000;
  Upsert(*taken_over, alert);
  AdvanceAndTick(*taken_over, seconds(30));
  again.starts_at_unix_nano = 1'000;
  Upsert(*taken_over, again);
  AdvanceAndTick(*taken_over, minutes(5));
  ASSERT_THAT(sink_.sent, SizeIs(6));
  EXPECT_EQ(sink_.sent[4].id, sink_.sent[0].id);
  EXPECT_EQ(sink_.sent[5].sequence, 2u);
  EXPECT_NE(sink_.sent[5].id, sink_.sent[1].id);
}

// Kafka mode: another instance took these services over; this one lets their alerts go without
// a resolve, and keeps the rest.
TEST_F(RouterTest, ForgetDropsAlertsWithoutANotification) {
  auto router = MakeRouter();
  const Alert payment = MakeAlert("payment", "availability", "page", kSigA);
  const Alert search = MakeAlert("search", "availability", "page", kSigB);
  router->Sync({payment, search}, Now());
  AdvanceAndTick(*router, seconds(30));
  ASSERT_THAT(sink_.sent, SizeIs(2));
  ASSERT_EQ(store_.size(), 2u);

  ASSERT_TRUE(
      router->Forget([](const Alert& alert) { return alert.labels.at("service") == "search"; })
          .ok());
  EXPECT_EQ(router->group_count(), 1u);
  EXPECT_EQ(store_.size(), 1u);
  router->Sync({payment}, Now());  // search is not listed any more: nothing to resolve
  AdvanceAndTick(*router, minutes(5));
  EXPECT_THAT(sink_.sent, SizeIs(2));
  AdvanceAndTick(*router, hours(4));  // only payment repeats
  ASSERT_THAT(sink_.sent, SizeIs(3));
  EXPECT_EQ(sink_.sent[2].group_labels.at("service"), "payment");
  EXPECT_TRUE(sink_.sent[2].firing);
}

TEST_F(RouterTest, RefusedNotificationIsOfferedAgainWithTheSameId) {
  auto router = MakeRouter();
  Upsert(*router, MakeAlert("payment", "availability", "page", kSigA));
  sink_.fail = true;
  clock_.Advance(seconds(30));
  EXPECT_FALSE(router->Tick(Now()).ok());
  EXPECT_EQ(store_.size(), 0u);

  sink_.fail = false;
  AdvanceAndTick(*router, seconds(1));
  ASSERT_THAT(sink_.refused, SizeIs(1));
  ASSERT_THAT(sink_.sent, SizeIs(1));
  EXPECT_EQ(sink_.sent[0].id, sink_.refused[0].id);
  EXPECT_EQ(sink_.sent[0].sequence, 1u);
  EXPECT_EQ(store_.size(), 1u);
}

TEST_F(RouterTest, RestartDoesNotResend) {
  const Alert availability = MakeAlert("payment", "availability", "page", kSigA);
  const Alert error_traces = MakeAlert("payment", "error-traces", "page", kSigB);
  {
    auto router = MakeRouter();
    Upsert(*router, availability);
    Upsert(*router, error_traces);
    AdvanceAndTick(*router, seconds(30));
    ASSERT_THAT(sink_.sent, SizeIs(2));
  }
  AdvanceAndTick(*MakeRouter(), minutes(1));  // a start that only ticks sends nothing either

  auto router = MakeRouter();
  Upsert(*router, availability);  // the evaluator reports what fires after the restart
  Upsert(*router, error_traces);
  AdvanceAndTick(*router, seconds(30));
  AdvanceAndTick(*router, minutes(5));
  EXPECT_THAT(sink_.sent, SizeIs(2));

  // What changed after the restart still goes out, with the sequence continuing.
  Alert resolved = availability;
  resolved.firing = false;
  Upsert(*router, resolved);
  AdvanceAndTick(*router, minutes(5));
  ASSERT_THAT(sink_.sent, SizeIs(3));
  EXPECT_FALSE(sink_.sent[2].firing);
  EXPECT_EQ(sink_.sent[2].group_labels.at("signature"), kSigA);
  EXPECT_EQ(sink_.sent[2].sequence, 2u);

  // And the unchanged group repeats at repeat_interval from its last notification (before the
  // restart), not from the restart.
  const int64_t first_sent = sink_.sent[0].created_unix_nano;
  clock_.Advance(
      std::chrono::nanoseconds(first_sent + std::chrono::nanoseconds(hours(4)).count() - Now()));
  ASSERT_TRUE(router->Tick(Now()).ok());
  ASSERT_THAT(sink_.sent, SizeIs(4));
  EXPECT_EQ(sink_.sent[3].group_labels.at("signature"), kSigB);
  EXPECT_EQ(sink_.sent[3].sequence, 2u);
}

TEST_F(RouterTest, RestartAfterResolveKeepsTheSequence) {
  {
    auto router = MakeRouter();
    Upsert(*router, MakeAlert("payment", "availability", "page", kSigA));
    AdvanceAndTick(*router, seconds(30));
    Upsert(*router, MakeAlert("payment", "availability", "page", kSigA, false));
    AdvanceAndTick(*router, minutes(5));
    ASSERT_THAT(sink_.sent, SizeIs(2));
  }
  auto router = MakeRouter();
  EXPECT_EQ(router->group_count(), 0u);
  Upsert(*router, MakeAlert("payment", "availability", "page", kSigA));
  AdvanceAndTick(*router, seconds(30));
  ASSERT_THAT(sink_.sent, SizeIs(3));
  EXPECT_EQ(sink_.sent[2].sequence, 3u);
}

TEST_F(RouterTest, SyncResolvesAlertsNoLongerListed) {
  auto router = MakeRouter();
  const Alert availability = MakeAlert("payment", "availability", "page", kSigA);
  const Alert error_traces = MakeAlert("payment", "error-traces", "page", kSigA);
  const Alert other = MakeAlert("payment", "error-traces", "page", kSigB);
  router->Sync({availability, error_traces, other}, Now());
  AdvanceAndTick(*router, seconds(30));
  ASSERT_THAT(sink_.sent, SizeIs(2));

  // The same set again changes nothing; without error_traces and `other`, their groups change.
  router->Sync({availability, error_traces, other}, Now());
  AdvanceAndTick(*router, minutes(5));
  EXPECT_THAT(sink_.sent, SizeIs(2));
  router->Sync({availability}, Now());
  AdvanceAndTick(*router, minutes(5));
  // `other`'s group resolves; in kSigA's group only error_traces resolved while availability
  // fires on: no notification of its own.
  ASSERT_THAT(sink_.sent, SizeIs(3));
  EXPECT_FALSE(sink_.sent[2].firing);
  EXPECT_EQ(sink_.sent[2].group_labels.at("signature"), kSigB);
  EXPECT_EQ(router->group_count(), 1u);
  // The resolution rides along with the repeat.
  AdvanceAndTick(*router, hours(4) - minutes(10));
  ASSERT_THAT(sink_.sent, SizeIs(4));
  EXPECT_TRUE(sink_.sent[3].firing);
  ASSERT_THAT(sink_.sent[3].alerts, SizeIs(2));
  for (const Alert& alert : sink_.sent[3].alerts) {
    EXPECT_EQ(alert.firing, alert.labels == availability.labels);
  }
}

TEST_F(RouterTest, ACauseThatBeganElsewhereWaitsForThatServicesPage) {
  auto router = MakeRouter();
  Alert origin = MakeAlert("payment", "availability", "page", kSigA);
  Alert downstream = MakeAlert("checkout", "availability", "page", kSigA);
  downstream.labels["cause_service"] = "payment";
  Upsert(*router, origin);
  Upsert(*router, downstream);
  AdvanceAndTick(*router, seconds(30));
  ASSERT_THAT(sink_.sent, SizeIs(1)) << "only payment pages";
  EXPECT_EQ(sink_.sent[0].group_labels.at("service"), "payment");
  AdvanceAndTick(*router, hours(5));
  EXPECT_THAT(sink_.sent, SizeIs(2)) << "payment's repeat, still nothing of checkout";

  // payment resolves first; checkout resolving within group_wait stays quiet.
  origin.firing = false;
  Upsert(*router, origin);
  AdvanceAndTick(*router, seconds(10));
  EXPECT_THAT(sink_.sent, SizeIs(2));
  downstream.firing = false;
  Upsert(*router, downstream);
  AdvanceAndTick(*router, minutes(30));
  ASSERT_THAT(sink_.sent, SizeIs(3));
  EXPECT_FALSE(sink_.sent[2].firing);
  EXPECT_EQ(sink_.sent[2].group_labels.at("service"), "payment");
  EXPECT_EQ(router->group_count(), 0u);

  // Without payment's own alert, checkout pages (naming payment's signature).
  downstream.firing = true;
  Upsert(*router, downstream);
  AdvanceAndTick(*router, seconds(30));
  ASSERT_THAT(sink_.sent, SizeIs(4));
  EXPECT_EQ(sink_.sent[3].group_labels.at("service"), "checkout");
  EXPECT_EQ(sink_.sent[3].alerts.at(0).labels.at("cause_service"), "payment");
}

TEST_F(RouterTest, NextDueFollowsTheTimers) {
  auto router = MakeRouter();
  EXPECT_EQ(router->NextDueUnixNano(), std::nullopt);
  const int64_t start = Now();
  Upsert(*router, MakeAlert("payment", "availability", "page", kSigA));
  EXPECT_EQ(router->NextDueUnixNano(), start + std::chrono::nanoseconds(seconds(30)).count());
  AdvanceAndTick(*router, seconds(30));
  EXPECT_EQ(router->NextDueUnixNano(), Now() + std::chrono::nanoseconds(hours(4)).count());
}

TEST_F(RouterTest, GroupsAreCapped) {
  options_.max_groups = 1;
  auto router = MakeRouter();
  Upsert(*router, MakeAlert("payment", "availability", "page", kSigA));
  Upsert(*router, MakeAlert("payment", "availability", "page", kSigB));
  EXPECT_EQ(router->group_count(), 1u);
  EXPECT_EQ(router->dropped_alerts(), 1u);
}

// Evaluator threads upsert while a timer thread ticks: every group's sequences still come out
// 1, 2, 3, ... (run under TSan for the thread-safety claim).
TEST(RouterConcurrencyTest, UpsertsAndTicksFromSeveralThreads) {
  RecordingSink sink;
  MemoryStateStore store;
  MemorySilenceStore silences;
  RouterOptions options;
  options.group_wait = std::chrono::milliseconds(0);
  options.group_interval = std::chrono::milliseconds(0);
  auto router = AlertRouter::Create(options, sink, store, silences);
  ASSERT_TRUE(router.ok());
  constexpr int kRounds = 200;
  std::vector<std::thread> threads;
  for (const char* signature : {kSigA, kSigB}) {
    threads.emplace_back([&router, signature] {
      for (int i = 0; i < kRounds; ++i) {
        (*router)->Upsert(MakeAlert("payment", "availability", "page", signature, i % 2 == 0),
                          1'000 + i);
      }
    });
  }
  threads.emplace_back([&router] {
    for (int i = 0; i < kRounds; ++i) (void)(*router)->Tick(1'000 + i);
  });
  for (std::thread& thread : threads) thread.join();
  ASSERT_TRUE((*router)->Tick(1'000 + kRounds).ok());

  std::map<std::string, uint64_t> last;  // group key -> sequence
  for (const Notification& n : sink.sent) {
    EXPECT_EQ(n.sequence, last[n.group_key] + 1) << n.group_key;
    last[n.group_key] = n.sequence;
  }
}

TEST(RouterOptionsFromTest, CopiesTheAlertingSection) {
  config::AlertingConfig alerting;
  alerting.group_by = {"service"};
  alerting.group_wait = seconds(5);
  alerting.group_wait_start = "firing";
  alerting.default_receiver = "pager";
  RouterOptions options = RouterOptionsFrom(alerting, "http://x");
  EXPECT_EQ(options.group_by, std::vector<std::string>{"service"});
  EXPECT_EQ(options.group_wait, seconds(5));
  EXPECT_FALSE(options.group_wait_from_warming);
  EXPECT_TRUE(RouterOptionsFrom(config::AlertingConfig{}, "").group_wait_from_warming);
  EXPECT_EQ(options.default_receiver, "pager");
  EXPECT_EQ(options.external_url, "http://x");
  EXPECT_EQ(options.tombstone_retention, alerting.delivery.log_retention);
}

}  // namespace
}  // namespace traceslo::alerting
