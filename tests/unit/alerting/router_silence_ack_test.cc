// The alert router's silences (validation, active windows, `!=` matchers, expiry, listing,
// retention) and acknowledgements (no repeats while acked, changes and resolves still sent, the
// ack ending with the resolve, surviving a restart), over in-memory stores and a fake clock.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <random>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "tests/unit/alerting/router_test_util.h"
#include "traceslo/alerting/router.h"
#include "traceslo/alerting/silence.h"

namespace traceslo::alerting {
namespace {

using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::nanoseconds;
using std::chrono::seconds;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;
using testing_util::Fingerprints;
using testing_util::kSigA;
using testing_util::kSigB;
using testing_util::MakeAlert;

int64_t Nanos(nanoseconds d) { return d.count(); }

SilenceMatcher Eq(std::string name, std::string value) {
  return SilenceMatcher{.name = std::move(name), .value = std::move(value), .equal = true};
}
SilenceMatcher Ne(std::string name, std::string value) {
  return SilenceMatcher{.name = std::move(name), .value = std::move(value), .equal = false};
}

Silence ValidSilence() {
  return Silence{.matchers = {Eq("service", "payment")},
                 .starts_at_unix_nano = 1'000,
                 .ends_at_unix_nano = 2'000,
                 .created_by = "alice",
                 .comment = "deploying a fix"};
}

std::string MessageOf(const Silence& silence) {
  absl::Status status = ValidateSilence(silence);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  return std::string(status.message());
}

// --- Silence values --------------------------------------------------------------------------

TEST(SilenceTest, ValidationNamesEachBadField) {
  EXPECT_TRUE(ValidateSilence(ValidSilence()).ok());

  Silence s = ValidSilence();
  s.matchers.clear();
  EXPECT_THAT(MessageOf(s), HasSubstr("a silence needs at least one matcher"));

  s = ValidSilence();
  s.matchers.assign(kMaxSilenceMatchers + 1, Eq("service", "payment"));
  EXPECT_THAT(MessageOf(s), HasSubstr("at most 32 matchers, this one has 33"));
  s.matchers.resize(kMaxSilenceMatchers);
  EXPECT_TRUE(ValidateSilence(s).ok());

  for (const char* bad : {"", "1service", "service-name", "service.name", "sérvice"}) {
    s = ValidSilence();
    s.matchers.push_back(Eq(bad, "x"));
    EXPECT_THAT(MessageOf(s), HasSubstr("matcher 2: label name \"" + std::string(bad) +
                                        "\" is not valid ([A-Za-z_][A-Za-z0-9_]*)"))
        << bad;
  }
  s = ValidSilence();
  s.matchers = {Eq("_x9", "a"), Ne("A_b", "")};
  EXPECT_TRUE(ValidateSilence(s).ok());

  s = ValidSilence();
  s.matchers[0].value.assign(kMaxSilenceTextBytes, 'v');
  EXPECT_TRUE(ValidateSilence(s).ok());
  s.matchers[0].value += 'v';
  EXPECT_THAT(MessageOf(s),
              HasSubstr("matcher 1 (\"service\"): value is 1025 bytes, at most 1024"));

  s = ValidSilence();
  s.ends_at_unix_nano = s.starts_at_unix_nano;
  EXPECT_THAT(MessageOf(s), HasSubstr("ends_at (1000) must be after starts_at (1000)"));
  s.starts_at_unix_nano = -5;
  EXPECT_THAT(MessageOf(s), HasSubstr("starts_at must not be negative"));

  s = ValidSilence();
  s.created_by.assign(kMaxSilenceTextBytes + 1, 'a');
  EXPECT_THAT(MessageOf(s), HasSubstr("created_by is 1025 bytes, at most 1024"));
  s = ValidSilence();
  s.comment.assign(kMaxSilenceTextBytes + 2, 'c');
  EXPECT_THAT(MessageOf(s), HasSubstr("comment is 1026 bytes, at most 1024"));

  // Every problem at once.
  s = ValidSilence();
  s.matchers = {Eq("1x", "a")};
  s.ends_at_unix_nano = 0;
  const std::string message = MessageOf(s);
  EXPECT_THAT(message, HasSubstr("matcher 1: label name \"1x\""));
  EXPECT_THAT(message, HasSubstr("; ends_at (0) must be after starts_at (1000)"));
}

TEST(SilenceTest, MatchersTreatAnAbsentLabelAsEmpty) {
  const Labels labels{{"service", "payment"}, {"slo", "availability"}};
  auto matches = [&](std::vector<SilenceMatcher> matchers) {
    Silence s = ValidSilence();
    s.matchers = std::move(matchers);
    return SilenceMatches(s, labels);
  };
  EXPECT_TRUE(matches({Eq("service", "payment")}));
  EXPECT_FALSE(matches({Eq("service", "checkout")}));
  EXPECT_TRUE(matches({Eq("service", "payment"), Ne("slo", "latency")}));
  EXPECT_FALSE(matches({Eq("service", "payment"), Ne("slo", "availability")}));
  EXPECT_TRUE(matches({Ne("team", "db")}));  // absent: ""
  EXPECT_FALSE(matches({Eq("team", "db")}));
  EXPECT_TRUE(matches({Eq("team", "")}));
  EXPECT_FALSE(matches({Ne("team", "")}));
}

TEST(SilenceTest, StatesAndExpiry) {
  Silence s = ValidSilence();  // [1000, 2000)
  EXPECT_EQ(SilenceStateAt(s, 999), SilenceState::kPending);
  EXPECT_EQ(SilenceStateAt(s, 1'000), SilenceState::kActive);
  EXPECT_EQ(SilenceStateAt(s, 1'999), SilenceState::kActive);
  EXPECT_EQ(SilenceStateAt(s, 2'000), SilenceState::kExpired);
  EXPECT_EQ(SilenceStateName(SilenceState::kActive), "active");

  Silence active = s;
  EXPECT_TRUE(ExpireSilenceAt(active, 1'500));
  EXPECT_EQ(active.starts_at_unix_nano, 1'000);
  EXPECT_EQ(active.ends_at_unix_nano, 1'500);
  EXPECT_FALSE(ExpireSilenceAt(active, 1'700));  // ended already
  EXPECT_EQ(active.ends_at_unix_nano, 1'500);

  Silence pending = s;
  EXPECT_TRUE(ExpireSilenceAt(pending, 500));
  EXPECT_EQ(pending.starts_at_unix_nano, 500);
  EXPECT_EQ(pending.ends_at_unix_nano, 500);
  EXPECT_EQ(SilenceStateAt(pending, 500), SilenceState::kExpired);
}

TEST(SilenceTest, IdsAre32HexDigitsFromTheSeed) {
  std::mt19937_64 a(7);
  std::mt19937_64 b(7);
  std::mt19937_64 c(8);
  const std::string id = NewSilenceId(a);
  EXPECT_TRUE(std::regex_match(id, std::regex("[0-9a-f]{32}"))) << id;
  EXPECT_EQ(NewSilenceId(b), id);
  EXPECT_NE(NewSilenceId(c), id);
  EXPECT_NE(NewSilenceId(a), id);
}

// --- Silences in the router ------------------------------------------------------------------

class RouterSilenceTest : public testing_util::RouterTest {
 protected:
  Silence Add(AlertRouter& router, std::vector<SilenceMatcher> matchers, nanoseconds from,
              nanoseconds to) {
    absl::StatusOr<Silence> added =
        router.AddSilence(SilenceOf(std::move(matchers), from, to), Now());
    EXPECT_TRUE(added.ok()) << added.status();
    return added.ok() ? *added : Silence{};
  }
};

TEST_F(RouterSilenceTest, AlertFiringOnlyWhileSilencedIsSentWhenTheSilenceEnds) {
  auto router = MakeRouter();
  const int64_t start = Now();
  const Silence silence = Add(*router, {Eq("signature", kSigA)}, seconds(0), hours(1));
  Upsert(*router, MakeAlert("payment", "availability", "page", kSigA));
  Upsert(*router, MakeAlert("payment", "error-traces", "page", kSigB));
  AdvanceAndTick(*router, seconds(30));
  ASSERT_THAT(sink_.sent, SizeIs(1));
  EXPECT_EQ(sink_.sent[0].group_labels.at("signature"), kSigB);
  // The caller's timer wakes when the silence ends, before kSigB's repeat.
  EXPECT_EQ(router->NextDueUnixNano(), silence.ends_at_unix_nano);
  EXPECT_EQ(silence.ends_at_unix_nano, start + Nanos(hours(1)));

  AdvanceAndTick(*router, hours(1) - seconds(31));
  EXPECT_THAT(sink_.sent, SizeIs(1));
  AdvanceAndTick(*router, seconds(1));  // the silence's end (exclusive)
  ASSERT_THAT(sink_.sent, SizeIs(2));
  EXPECT_EQ(sink_.sent[1].group_labels.at("signature"), kSigA);
  EXPECT_TRUE(sink_.sent[1].firing);
  EXPECT_EQ(sink_.sent[1].sequence, 1u);
}

TEST_F(RouterSilenceTest, AlertJoiningUnderASilenceIsAChangeWhenItEnds) {
  auto router = MakeRouter();
  const int64_t start = Now();
  const Alert availability = MakeAlert("payment", "availability", "page", kSigA);
  const Alert error_traces = MakeAlert("payment", "error-traces", "page", kSigA);
  Upsert(*router, availability);
  AdvanceAndTick(*router, seconds(30));
  ASSERT_THAT(sink_.sent, SizeIs(1));

  Add(*router, {Eq("slo", "error-traces")}, seconds(0), minutes(2));
  Upsert(*router, error_traces);
  AdvanceAndTick(*router, minutes(1));
  EXPECT_THAT(sink_.sent, SizeIs(1));
  AdvanceAndTick(*router, minutes(1));  // the silence ended: a change, due group_interval after
  EXPECT_THAT(sink_.sent, SizeIs(1));   // the last notification
  EXPECT_EQ(router->NextDueUnixNano(), start + Nanos(seconds(30) + minutes(5)));
  AdvanceAndTick(*router, minutes(3));
  ASSERT_THAT(sink_.sent, SizeIs(2));
  EXPECT_EQ(Fingerprints(sink_.sent[1]), (std::set<std::string>{Fingerprint(availability.labels),
                                                                Fingerprint(error_traces.labels)}));
  EXPECT_TRUE(sink_.sent[1].firing);
}

TEST_F(RouterSilenceTest, NotEqualMatcherSilencesAllButOne) {
  auto router = MakeRouter();
  Add(*router, {Eq("service", "payment"), Ne("slo", "availability")}, seconds(0), hours(1));
  Upsert(*router, MakeAlert("payment", "availability", "page", kSigA));   // slo is availability
  Upsert(*router, MakeAlert("payment", "error-traces", "page", kSigB));   // silenced
  Upsert(*router, MakeAlert("checkout", "error-traces", "page", kSigB));  // another service
  AdvanceAndTick(*router, seconds(30));
  std::set<std::pair<std::string, std::string>> sent;
  for (const Notification& n : sink_.sent) {
    sent.emplace(n.group_labels.at("service"), n.group_labels.at("signature"));
  }
  EXPECT_EQ(sent, (std::set<std::pair<std::string, std::string>>{{"payment", kSigA},
                                                                 {"checkout", kSigB}}));
}

TEST_F(RouterSilenceTest, ExpiringTheSilenceBringsTheAlertBack) {
  auto router = MakeRouter();
  const Silence silence = Add(*router, {Eq("service", "payment")}, seconds(0), hours(1));
  Upsert(*router, MakeAlert("payment", "availability", "page", kSigA));
  AdvanceAndTick(*router, seconds(30));
  AdvanceAndTick(*router, minutes(10));
  EXPECT_THAT(sink_.sent, IsEmpty());
  EXPECT_EQ(router->group_count(), 1u);

  ASSERT_TRUE(router->ExpireSilence(silence.id, Now()).ok());
  std::vector<SilenceStatus> listed = router->Silences(Now());
  ASSERT_THAT(listed, SizeIs(1));
  EXPECT_EQ(listed[0].state, SilenceState::kExpired);
  EXPECT_FALSE(listed[0].active());
  EXPECT_EQ(listed[0].silence.ends_at_unix_nano, Now());
  absl::StatusOr<std::vector<Silence>> stored = silences_.Load();
  ASSERT_TRUE(stored.ok());
  ASSERT_THAT(*stored, SizeIs(1));
  EXPECT_EQ((*stored)[0].ends_at_unix_nano, Now());

  AdvanceAndTick(*router, seconds(0));
  ASSERT_THAT(sink_.sent, SizeIs(1));
  EXPECT_TRUE(sink_.sent[0].firing);

  EXPECT_TRUE(router->ExpireSilence(silence.id, Now()).ok());  // ended already: nothing to do
  absl::Status unknown = router->ExpireSilence("0123456789abcdef0123456789abcdef", Now());
  EXPECT_EQ(unknown.code(), absl::StatusCode::kNotFound) << unknown;
  EXPECT_THAT(unknown.message(), HasSubstr("0123456789abcdef0123456789abcdef"));
}

TEST_F(RouterSilenceTest, SilencingASentAlertSendsNothingAndItIsNotShownResolved) {
  auto router = MakeRouter();
  const Alert availability = MakeAlert("payment", "availability", "page", kSigA);
  const Alert error_traces = MakeAlert("payment", "error-traces", "page", kSigA);
  Upsert(*router, availability);
  Upsert(*router, error_traces);
  AdvanceAndTick(*router, seconds(30));
  ASSERT_THAT(sink_.sent, SizeIs(1));
  ASSERT_THAT(sink_.sent[0].alerts, SizeIs(2));

  // Silencing a sent alert while the group fires on is no news for the receiver: nothing is
  // sent, and it is not shown resolved.
  Add(*router, {Eq("slo", "error-traces")}, seconds(0), hours(1));
  AdvanceAndTick(*router, minutes(5));
  EXPECT_THAT(sink_.sent, SizeIs(1));

  // Its silence ends while it fires: the receiver knows it already, so nothing is sent until
  // the repeat, which carries both.
  AdvanceAndTick(*router, hours(1));
  EXPECT_THAT(sink_.sent, SizeIs(1));
  AdvanceAndTick(*router, hours(3) - minutes(5));
  ASSERT_THAT(sink_.sent, SizeIs(2));
  EXPECT_EQ(Fingerprints(sink_.sent[1]), (std::set<std::string>{Fingerprint(availability.labels),
                                                                Fingerprint(error_traces.labels)}));
  for (const Notification& n : sink_.sent) {
    for (const Alert& alert : n.alerts) EXPECT_TRUE(alert.firing);
  }
}

TEST_F(RouterSilenceTest, SilencedAlertsWaitInTheGroupAfterTheVisibleOnesResolve) {
  auto router = MakeRouter();
  Alert availability = MakeAlert("payment", "availability", "page", kSigA);
  const Alert error_traces = MakeAlert("payment", "error-traces", "page", kSigA);
  Upsert(*router, availability);
  AdvanceAndTick(*router, seconds(30));
  ASSERT_THAT(sink_.sent, SizeIs(1));

  Add(*router, {Eq("slo", "error-traces")}, seconds(0), hours(1));
  Upsert(*router, error_traces);
  availability.firing = false;
  Upsert(*router, availability);
  AdvanceAndTick(*router, minutes(5));
  ASSERT_THAT(sink_.sent, SizeIs(2));
  EXPECT_FALSE(sink_.sent[1].firing);
  ASSERT_THAT(sink_.sent[1].alerts, SizeIs(1));
  EXPECT_EQ(sink_.sent[1].alerts[0].labels, availability.labels);
  EXPECT_FALSE(sink_.sent[1].alerts[0].firing);
  EXPECT_EQ(router->group_count(), 1u);  // error_traces still fires, silenced
  ASSERT_NE(store_.Find("log", sink_.sent[1].group_key), nullptr);
  EXPECT_TRUE(store_.Find("log", sink_.sent[1].group_key)->resolved);

  AdvanceAndTick(*router, hours(1) + minutes(30));  // past the silence's end
  ASSERT_THAT(sink_.sent, SizeIs(3));
  EXPECT_TRUE(sink_.sent[2].firing);
  EXPECT_EQ(Fingerprints(sink_.sent[2]), std::set<std::string>{Fingerprint(error_traces.labels)});
  EXPECT_EQ(sink_.sent[2].sequence, 3u);
}

TEST_F(RouterSilenceTest, SilencedGroupSendsNoRepeatUntilTheSilenceEnds) {
  auto router = MakeRouter();
  Upsert(*router, MakeAlert("payment", "availability", "page", kSigA));
  AdvanceAndTick(*router, seconds(30));
  ASSERT_THAT(sink_.sent, SizeIs(1));
  const Silence silence = Add(*router, {Eq("service", "payment")}, seconds(0), hours(6));
  for (int i = 0; i < 70; ++i) AdvanceAndTick(*router, minutes(5));  // 5 h 50 min
  EXPECT_THAT(sink_.sent, SizeIs(1));
  EXPECT_EQ(router->NextDueUnixNano(), silence.ends_at_unix_nano);

  AdvanceAndTick(*router, minutes(10));  // the repeat is overdue when the silence ends
  ASSERT_THAT(sink_.sent, SizeIs(2));
  EXPECT_TRUE(sink_.sent[1].firing);
  EXPECT_EQ(sink_.sent[1].sequence, 2u);
}

TEST_F(RouterSilenceTest, SilencedAlertStillInhibitsLowerSeverities) {
  auto router = MakeRouter();
  Add(*router, {Eq("severity", "page")}, seconds(0), hours(1));
  Upsert(*router, MakeAlert("payment", "availability", "page", kSigA));
  Upsert(*router, MakeAlert("payment", "availability", "ticket", kSigA));
  AdvanceAndTick(*router, minutes(30));
  EXPECT_THAT(sink_.sent, IsEmpty());
}

TEST_F(RouterSilenceTest, AddSilenceAssignsIdsAndRefusesBadOnes) {
  options_.max_silences = 2;
  auto router = MakeRouter();

  absl::StatusOr<Silence> invalid = router->AddSilence(SilenceOf({}, seconds(0), hours(1)), Now());
  EXPECT_EQ(invalid.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(invalid.status().message(), HasSubstr("at least one matcher"));
  absl::StatusOr<Silence> ended =
      router->AddSilence(SilenceOf({Eq("service", "payment")}, -hours(2), -hours(1)), Now());
  EXPECT_EQ(ended.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(ended.status().message(), HasSubstr("has passed already"));

  Silence asked = SilenceOf({Eq("service", "payment")}, seconds(0), hours(1));
  asked.id = "mine";
  asked.created_at_unix_nano = 5;
  const Silence first = *router->AddSilence(asked, Now());
  EXPECT_TRUE(std::regex_match(first.id, std::regex("[0-9a-f]{32}"))) << first.id;
  EXPECT_EQ(first.created_at_unix_nano, Now());
  EXPECT_EQ(first.matchers, asked.matchers);
  EXPECT_EQ(first.created_by, "alice");
  const Silence second = *router->AddSilence(asked, Now());
  EXPECT_NE(second.id, first.id);
  absl::StatusOr<Silence> third = router->AddSilence(asked, Now());
  EXPECT_EQ(third.status().code(), absl::StatusCode::kResourceExhausted) << third.status();
  EXPECT_THAT(third.status().message(), HasSubstr("2 active or pending silences"));
  EXPECT_EQ(silences_.size(), 2u);

  // An expired silence makes room (before its retention ends).
  ASSERT_TRUE(router->ExpireSilence(second.id, Now()).ok());
  clock_.Advance(seconds(1));
  absl::StatusOr<Silence> fourth = router->AddSilence(asked, Now());
  ASSERT_TRUE(fourth.ok()) << fourth.status();
  std::set<std::string> ids;
  for (const SilenceStatus& s : router->Silences(Now())) ids.insert(s.silence.id);
  EXPECT_EQ(ids, (std::set<std::string>{first.id, fourth->id}));
  EXPECT_EQ(silences_.size(), 2u);

  // A store that fails changes nothing.
  silences_.fail = true;
  EXPECT_EQ(router->ExpireSilence(first.id, Now()).code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(router->Silences(Now())[0].active());
}

TEST_F(RouterSilenceTest, SameSeedAfterARestartNeverReusesAnId) {
  options_.silence_id_seed = 42;
  std::string first;
  {
    auto router = MakeRouter();
    first = Add(*router, {Eq("service", "payment")}, seconds(0), hours(1)).id;
  }
  auto router = MakeRouter();
  const std::string second = Add(*router, {Eq("service", "payment")}, seconds(0), hours(1)).id;
  EXPECT_NE(second, first);
  EXPECT_THAT(router->Silences(Now()), SizeIs(2));
}

TEST_F(RouterSilenceTest, SilencesAreListedWithTheirStateAndDroppedAfterRetention) {
  options_.silence_retention = hours(1);
  auto router = MakeRouter();
  const Silence now_on = Add(*router, {Eq("service", "payment")}, seconds(0), hours(1));
  const Silence later = Add(*router, {Eq("service", "checkout")}, minutes(30), hours(2));
  std::vector<SilenceStatus> listed = router->Silences(Now());
  ASSERT_THAT(listed, SizeIs(2));
  EXPECT_EQ(listed[0].silence.id, now_on.id);
  EXPECT_TRUE(listed[0].active());
  EXPECT_EQ(listed[1].silence.id, later.id);
  EXPECT_EQ(listed[1].state, SilenceState::kPending);

  AdvanceAndTick(*router, hours(1));
  listed = router->Silences(Now());
  ASSERT_THAT(listed, SizeIs(2));
  EXPECT_EQ(listed[0].silence.id, later.id);
  EXPECT_TRUE(listed[0].active());
  EXPECT_EQ(listed[1].silence.id, now_on.id);
  EXPECT_EQ(listed[1].state, SilenceState::kExpired);

  AdvanceAndTick(*router, hours(1) + seconds(1));  // now_on ended more than 1 h ago
  listed = router->Silences(Now());
  ASSERT_THAT(listed, SizeIs(1));
  EXPECT_EQ(listed[0].silence.id, later.id);
  EXPECT_EQ(listed[0].state, SilenceState::kExpired);
  EXPECT_EQ(silences_.size(), 1u);
}

TEST_F(RouterSilenceTest, SilencesSurviveARestart) {
  {
    auto router = MakeRouter();
    Add(*router, {Eq("service", "payment")}, seconds(0), hours(1));
    Upsert(*router, MakeAlert("payment", "availability", "page", kSigA));
    AdvanceAndTick(*router, seconds(30));
  }
  auto router = MakeRouter();
  ASSERT_THAT(router->Silences(Now()), SizeIs(1));
  EXPECT_TRUE(router->Silences(Now())[0].active());
  Upsert(*router, MakeAlert("payment", "availability", "page", kSigA));
  AdvanceAndTick(*router, seconds(30));
  EXPECT_THAT(sink_.sent, IsEmpty());
}

// --- Acknowledgement -------------------------------------------------------------------------

using RouterAckTest = testing_util::RouterTest;

TEST_F(RouterAckTest, AckedGroupSendsNoRepeatsButChangesAndTheResolve) {
  auto router = MakeRouter();
  Alert availability = MakeAlert("payment", "availability", "page", kSigA);
  Alert error_traces = MakeAlert("payment", "error-traces", "page", kSigA);
  Upsert(*router, availability);
  AdvanceAndTick(*router, seconds(30));
  ASSERT_THAT(sink_.sent, SizeIs(1));

  ASSERT_TRUE(router->Ack(Fingerprint(availability.labels), Now()).ok());
  EXPECT_EQ(router->NextDueUnixNano(), std::nullopt);
  AdvanceAndTick(*router, hours(5));
  EXPECT_THAT(sink_.sent, SizeIs(1));

  Upsert(*router, error_traces);  // a change still goes out
  AdvanceAndTick(*router, seconds(1));
  ASSERT_THAT(sink_.sent, SizeIs(2));
  EXPECT_THAT(sink_.sent[1].alerts, SizeIs(2));
  AdvanceAndTick(*router, hours(5));
  EXPECT_THAT(sink_.sent, SizeIs(2));

  availability.firing = false;
  error_traces.firing = false;
  Upsert(*router, availability);
  Upsert(*router, error_traces);
  AdvanceAndTick(*router, minutes(5));
  ASSERT_THAT(sink_.sent, SizeIs(3));
  EXPECT_FALSE(sink_.sent[2].firing);

  // The ack ended with the resolve: the group fires again and repeats as usual.
  availability.firing = true;
  Upsert(*router, availability);
  AdvanceAndTick(*router, seconds(30));
  ASSERT_THAT(sink_.sent, SizeIs(4));
  ASSERT_THAT(router->Snapshot(Now()), SizeIs(1));
  EXPECT_FALSE(router->Snapshot(Now())[0].acked);
  AdvanceAndTick(*router, hours(4));
  ASSERT_THAT(sink_.sent, SizeIs(5));
  EXPECT_TRUE(sink_.sent[4].firing);
  EXPECT_EQ(sink_.sent[4].sequence, 5u);
}

TEST_F(RouterAckTest, AckOfAnAlertNoOpenGroupHoldsFiringIsNotFound) {
  auto router = MakeRouter();
  absl::Status status = router->Ack("0123456789abcdef", Now());
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound) << status;
  EXPECT_THAT(status.message(), HasSubstr("0123456789abcdef"));

  Alert availability = MakeAlert("payment", "availability", "page", kSigA);
  Upsert(*router, availability);
  availability.firing = false;
  Upsert(*router, availability);  // held, but resolved
  EXPECT_EQ(router->Ack(Fingerprint(availability.labels), Now()).code(),
            absl::StatusCode::kNotFound);
}

TEST_F(RouterAckTest, AckCoversEveryGroupHoldingTheAlert) {
  options_.routes = {
      config::RouteConfig{
          .match = {{"service", "payment"}}, .receiver = "slack", .continue_matching = true},
      config::RouteConfig{.match = {{"service", "payment"}}, .receiver = "pagerduty"},
  };
  auto router = MakeRouter();
  const Alert availability = MakeAlert("payment", "availability", "page", kSigA);
  Upsert(*router, availability);
  Upsert(*router, MakeAlert("payment", "availability", "page", kSigB));
  AdvanceAndTick(*router, seconds(30));
  ASSERT_THAT(sink_.sent, SizeIs(4));

  ASSERT_TRUE(router->Ack(Fingerprint(availability.labels), Now()).ok());
  std::map<std::pair<std::string, std::string>, bool> acked;
  for (const RouterGroupView& g : router->Snapshot(Now())) {
    acked[{g.receiver, g.group_labels.at("signature")}] = g.acked;
  }
  EXPECT_EQ(acked,
            (std::map<std::pair<std::string, std::string>, bool>{{{"pagerduty", kSigA}, true},
                                                                 {{"pagerduty", kSigB}, false},
                                                                 {{"slack", kSigA}, true},
                                                                 {{"slack", kSigB}, false}}));
  AdvanceAndTick(*router, hours(4));
  ASSERT_THAT(sink_.sent, SizeIs(6));  // the repeats of kSigB only
  for (size_t i = 4; i < 6; ++i) EXPECT_EQ(sink_.sent[i].group_labels.at("signature"), kSigB);
}

TEST_F(RouterAckTest, AckBeforeTheFirstNotificationLetsItGoAndSavesItWithIt) {
  auto router = MakeRouter();
  const Alert availability = MakeAlert("payment", "availability", "page", kSigA);
  Upsert(*router, availability);
  clock_.Advance(seconds(10));
  const int64_t acked_at = Now();
  ASSERT_TRUE(router->Ack(Fingerprint(availability.labels), acked_at).ok());
  EXPECT_EQ(store_.size(), 0u);
  AdvanceAndTick(*router, seconds(20));
  ASSERT_THAT(sink_.sent, SizeIs(1));
  const RouterGroupState* state = store_.Find("log", sink_.sent[0].group_key);
  ASSERT_NE(state, nullptr);
  EXPECT_TRUE(state->acked);
  EXPECT_EQ(state->acked_at_unix_nano, acked_at);
  AdvanceAndTick(*router, hours(5));
  EXPECT_THAT(sink_.sent, SizeIs(1));
}

TEST_F(RouterAckTest, AckSurvivesARestart) {
  const Alert availability = MakeAlert("payment", "availability", "page", kSigA);
  int64_t acked_at = 0;
  {
    auto router = MakeRouter();
    Upsert(*router, availability);
    AdvanceAndTick(*router, seconds(30));
    acked_at = Now();
    ASSERT_TRUE(router->Ack(Fingerprint(availability.labels), acked_at).ok());
    ASSERT_TRUE(router->Ack(Fingerprint(availability.labels), acked_at + 5).ok());  // again: OK
  }
  auto router = MakeRouter();
  Upsert(*router, availability);
  AdvanceAndTick(*router, hours(5));
  EXPECT_THAT(sink_.sent, SizeIs(1));
  ASSERT_THAT(router->Snapshot(Now()), SizeIs(1));
  EXPECT_TRUE(router->Snapshot(Now())[0].acked);
  EXPECT_EQ(router->Snapshot(Now())[0].acked_at_unix_nano, acked_at);
}

TEST_F(RouterAckTest, AckThatCannotBeSavedIsNotTaken) {
  auto router = MakeRouter();
  const Alert availability = MakeAlert("payment", "availability", "page", kSigA);
  Upsert(*router, availability);
  AdvanceAndTick(*router, seconds(30));
  store_.fail = true;
  EXPECT_EQ(router->Ack(Fingerprint(availability.labels), Now()).code(),
            absl::StatusCode::kUnavailable);
  EXPECT_FALSE(router->Snapshot(Now())[0].acked);
  store_.fail = false;
  EXPECT_TRUE(router->Ack(Fingerprint(availability.labels), Now()).ok());
  EXPECT_TRUE(router->Snapshot(Now())[0].acked);
}

TEST_F(RouterAckTest, SnapshotShowsGroupsAlertsSilencesAndAcks) {
  auto router = MakeRouter();
  const Alert page = MakeAlert("payment", "availability", "page", kSigA);
  const Alert ticket = MakeAlert("payment", "availability", "ticket", kSigA);
  const Alert latency = MakeAlert("payment", "latency", "page", kSigA);
  Upsert(*router, page);
  Upsert(*router, ticket);
  AdvanceAndTick(*router, seconds(30));
  const Silence silence =
      *router->AddSilence(SilenceOf({Eq("slo", "latency")}, seconds(0), hours(1)), Now());
  Upsert(*router, latency);
  ASSERT_TRUE(router->Ack(Fingerprint(page.labels), Now()).ok());

  const std::vector<RouterGroupView> groups = router->Snapshot(Now());
  ASSERT_THAT(groups, SizeIs(1));
  const RouterGroupView& g = groups[0];
  EXPECT_EQ(g.receiver, "log");
  EXPECT_EQ(g.group_key, sink_.sent[0].group_key);
  EXPECT_EQ(g.group_labels, (Labels{{"service", "payment"}, {"signature", kSigA}}));
  EXPECT_TRUE(g.sent);
  EXPECT_EQ(g.sequence, 1u);
  EXPECT_EQ(g.last_sent_unix_nano, sink_.sent[0].created_unix_nano);
  EXPECT_TRUE(g.acked);
  EXPECT_EQ(g.acked_at_unix_nano, Now());
  EXPECT_EQ(g.next_due_unix_nano, std::nullopt);  // acked, and the only change is silenced
  std::map<std::string, const RouterAlertView*> by_fingerprint;
  for (const RouterAlertView& a : g.alerts) {
    by_fingerprint[a.fingerprint] = &a;
    EXPECT_TRUE(a.alert.firing);
  }
  ASSERT_THAT(by_fingerprint, SizeIs(3));
  const RouterAlertView& p = *by_fingerprint.at(Fingerprint(page.labels));
  const RouterAlertView& t = *by_fingerprint.at(Fingerprint(ticket.labels));
  const RouterAlertView& l = *by_fingerprint.at(Fingerprint(latency.labels));
  EXPECT_TRUE(p.notified);
  EXPECT_FALSE(p.inhibited);
  EXPECT_THAT(p.silenced_by, IsEmpty());
  EXPECT_TRUE(t.inhibited);
  EXPECT_FALSE(t.notified);
  EXPECT_THAT(l.silenced_by, ElementsAre(silence.id));
  EXPECT_FALSE(l.notified);
  // After the silence the same view shows it unsilenced.
  const std::vector<RouterGroupView> after = router->Snapshot(silence.ends_at_unix_nano);
  ASSERT_THAT(after, SizeIs(1));
  ASSERT_THAT(after[0].alerts, SizeIs(3));
  for (const RouterAlertView& a : after[0].alerts) EXPECT_THAT(a.silenced_by, IsEmpty());
}

// Silences and acks from API threads while the evaluator upserts and a timer ticks (run under
// TSan for the thread-safety claim): every group's sequences still come out 1, 2, 3, ...
TEST(RouterSilenceAckConcurrencyTest, SilencesAcksAndSnapshotsBesideUpsertsAndTicks) {
  testing_util::RecordingSink sink;
  testing_util::MemoryStateStore store;
  testing_util::MemorySilenceStore silences;
  RouterOptions options;
  options.group_wait = std::chrono::milliseconds(0);
  options.group_interval = std::chrono::milliseconds(0);
  options.repeat_interval = std::chrono::milliseconds(0);
  auto router = AlertRouter::Create(options, sink, store, silences);
  ASSERT_TRUE(router.ok());
  AlertRouter& r = **router;
  constexpr int kRounds = 200;
  const Alert alert = MakeAlert("payment", "availability", "page", kSigA);
  std::vector<std::thread> threads;
  threads.emplace_back([&] {
    for (int i = 0; i < kRounds; ++i) {
      Alert a = alert;
      a.firing = i % 3 != 2;
      r.Upsert(a, 1'000 + i);
      (void)r.Tick(1'000 + i);
    }
  });
  threads.emplace_back([&] {
    for (int i = 0; i < kRounds; ++i) {
      absl::StatusOr<Silence> added = r.AddSilence(Silence{.matchers = {Eq("signature", kSigA)},
                                                           .starts_at_unix_nano = 1'000 + i,
                                                           .ends_at_unix_nano = 1'005 + i},
                                                   1'000 + i);
      if (added.ok() && i % 2 == 0) (void)r.ExpireSilence(added->id, 1'001 + i);
      (void)r.Silences(1'000 + i);
    }
  });
  threads.emplace_back([&] {
    for (int i = 0; i < kRounds; ++i) {
      (void)r.Ack(Fingerprint(alert.labels), 1'000 + i);
      (void)r.Snapshot(1'000 + i);
      (void)r.NextDueUnixNano();
    }
  });
  for (std::thread& thread : threads) thread.join();
  ASSERT_TRUE(r.Tick(1'000 + kRounds + 10).ok());

  std::map<std::string, uint64_t> last;  // group key -> sequence
  for (const Notification& n : sink.sent) {
    EXPECT_EQ(n.sequence, last[n.group_key] + 1) << n.group_key;
    last[n.group_key] = n.sequence;
  }
}

}  // namespace
}  // namespace traceslo::alerting
