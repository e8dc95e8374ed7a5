#include "traceslo/storage/exemplar_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "services/storage/kept_trace_codec.h"
#include "tests/unit/storage/storage_test_util.h"
#include "traceslo/storage/exemplar_archiver.h"

namespace traceslo::storage {
namespace {

using pipeline::ExemplarDelta;
using pipeline::ExemplarRef;
using pipeline::ExemplarSpan;
using pipeline::ExemplarTrace;
using pipeline::SeriesRegistry;
using pipeline::SignatureInfo;
using ::testing::HasSubstr;

constexpr int64_t kSecond = 1'000'000'000;
constexpr int64_t kDay = 86'400 * kSecond;
constexpr int64_t kT0 = 1'700'000'000 * kSecond;  // 2023-11-14 22:13:20 UTC

TraceId IdOf(uint8_t n) {
  TraceId id{};
  id[0] = 0x5e;
  id[15] = n;
  return id;
}

std::unique_ptr<SqliteStore> OpenStore(const std::string& path) {
  absl::StatusOr<std::unique_ptr<SqliteStore>> store = SqliteStore::Open(path);
  EXPECT_TRUE(store.ok()) << store.status();
  return store.ok() ? *std::move(store) : nullptr;
}

std::unique_ptr<SqliteExemplarStore> CreateKept(SqliteStore& db,
                                                const ExemplarStoreOptions& options = {}) {
  absl::StatusOr<std::unique_ptr<SqliteExemplarStore>> kept =
      SqliteExemplarStore::Create(options, db);
  EXPECT_TRUE(kept.ok()) << kept.status();
  return kept.ok() ? *std::move(kept) : nullptr;
}

// A small trace of two spans; `n` names it. All such traces encode to the same number of bytes.
KeptTrace SmallTrace(uint8_t n, uint32_t reasons, std::string service = "checkout") {
  KeptTrace t;
  t.trace_id = IdOf(n);
  t.start_unix_nano = kT0;
  t.duration_nanos = 3'000'000;
  t.reasons = reasons;
  t.service = std::move(service);
  t.spans.push_back(KeptSpan{.span_id = 1,
                             .service = "checkout",
                             .operation = "POST /pay",
                             .kind = SpanKind::kServer,
                             .duration_nanos = 3'000'000});
  t.spans.push_back(KeptSpan{.span_id = 2,
                             .parent_span_id = 1,
                             .service = "payments",
                             .operation = "charge",
                             .kind = SpanKind::kClient,
                             .start_offset_nanos = 1'000,
                             .duration_nanos = 2'000'000,
                             .error = true,
                             .signature = 0x77,
                             .exception_type = "CardDeclined",
                             .message = "card 4242 declined",
                             .top_frame = "pay.go:12"});
  return t;
}

// What Find() answers for `t` stored once at `at`.
KeptTrace StoredAt(KeptTrace t, int64_t at) {
  t.kept_at_unix_nano = at;
  t.last_linked_at_unix_nano = at;
  return t;
}

std::optional<KeptTrace> FindOk(SqliteExemplarStore& kept, const TraceId& id) {
  absl::StatusOr<std::optional<KeptTrace>> found = kept.Find(id);
  EXPECT_TRUE(found.ok()) << found.status();
  return found.ok() ? *found : std::nullopt;
}

// --- KeptTraceOf --------------------------------------------------------------------------------

TEST(KeptTraceOfTest, ResolvesSeriesAndSignaturesToNames) {
  SeriesRegistry registry(100, 100);
  const SeriesRegistry::Ids pay = registry.Resolve("checkout", "POST /pay");
  const SeriesRegistry::Ids charge = registry.Resolve("payments", "charge");
  ExemplarTrace trace{.trace_id = IdOf(1), .start_unix_nano = kT0, .duration_nanos = 9'000};
  trace.spans = {
      ExemplarSpan{
          .span_id = 10, .duration_nanos = 9'000, .series = pay.series, .kind = SpanKind::kServer},
      ExemplarSpan{.span_id = 11,
                   .parent_span_id = 10,
                   .start_offset_nanos = -40,
                   .duration_nanos = 5'000,
                   .signature = 42,
                   .series = charge.series,
                   .kind = SpanKind::kClient,
                   .error = true},
      ExemplarSpan{.span_id = 12,
                   .parent_span_id = 99,
                   .signature = 43,
                   .series = charge.series,
                   .error = true,
                   .orphan = true},
      ExemplarSpan{.span_id = 13,
                   .parent_span_id = 10,
                   .signature = 44,
                   .series = 5'000,
                   .kind = SpanKind::kInternal,
                   .error = true},
  };
  SignatureInfo declined;
  declined.id = 42;
  declined.exception_type = "CardDeclined";
  declined.normalized_message = "card <n> declined";
  declined.sample_message = "card 4242 declined";
  declined.top_frame = "pay.go:12";
  SignatureInfo timeout;
  timeout.id = 43;
  timeout.exception_type = "Timeout";
  timeout.normalized_message = "timeout after <d>";
  SignatureInfo unrelated;
  unrelated.id = 7;
  unrelated.exception_type = "Other";

  const KeptTrace kept = KeptTraceOf(trace, registry, {unrelated, declined, timeout});
  EXPECT_EQ(kept.trace_id, IdOf(1));
  EXPECT_EQ(kept.start_unix_nano, kT0);
  EXPECT_EQ(kept.duration_nanos, 9'000u);
  EXPECT_EQ(kept.reasons, 0u);
  EXPECT_EQ(kept.service, "");
  ASSERT_EQ(kept.spans.size(), 4u);
  EXPECT_EQ(kept.spans[0], (KeptSpan{.span_id = 10,
                                     .service = "checkout",
                                     .operation = "POST /pay",
                                     .kind = SpanKind::kServer,
                                     .duration_nanos = 9'000}));
  EXPECT_EQ(kept.spans[1], (KeptSpan{.span_id = 11,
                                     .parent_span_id = 10,
                                     .service = "payments",
                                     .operation = "charge",
                                     .kind = SpanKind::kClient,
                                     .start_offset_nanos = -40,
                                     .duration_nanos = 5'000,
                                     .error = true,
                                     .signature = 42,
                                     .exception_type = "CardDeclined",
                                     .message = "card 4242 declined",
                                     .top_frame = "pay.go:12"}));
  // No sample message: the normalized one.
  EXPECT_EQ(kept.spans[2], (KeptSpan{.span_id = 12,
                                     .parent_span_id = 99,
                                     .service = "payments",
                                     .operation = "charge",
                                     .error = true,
                                     .orphan = true,
                                     .signature = 43,
                                     .exception_type = "Timeout",
                                     .message = "timeout after <d>"}));
  // A series the registry does not know, a signature it no longer holds: the id stays.
  EXPECT_EQ(kept.spans[3], (KeptSpan{.span_id = 13,
                                     .parent_span_id = 10,
                                     .service = "unknown",
                                     .operation = "unknown",
                                     .kind = SpanKind::kInternal,
                                     .error = true,
                                     .signature = 44}));
}

TEST(KeptTraceOfTest, AsksTheLookupOncePerSignature) {
  SeriesRegistry registry(100, 100);
  const uint32_t series = registry.Resolve("checkout", "GET /").series;
  ExemplarTrace trace{.trace_id = IdOf(2)};
  for (uint64_t i = 0; i < 6; ++i) {
    trace.spans.push_back(
        ExemplarSpan{.span_id = i + 1, .signature = 8 + i % 2, .series = series, .error = true});
  }
  int asked = 0;
  const KeptTrace kept =
      KeptTraceOf(trace, registry, [&](uint64_t id) -> std::optional<SignatureText> {
        ++asked;
        if (id != 8) return std::nullopt;
        return SignatureText{.exception_type = "E", .message = "m", .top_frame = "f"};
      });
  EXPECT_EQ(asked, 2);
  ASSERT_EQ(kept.spans.size(), 6u);
  for (const KeptSpan& s : kept.spans) {
    EXPECT_EQ(s.exception_type, s.signature == 8 ? "E" : "") << s.span_id;
    EXPECT_EQ(s.message, s.signature == 8 ? "m" : "") << s.span_id;
  }
}

// --- Codec --------------------------------------------------------------------------------------

TEST(KeptSpansCodecTest, EveryTruncationAndCorruptionIsAnErrorNotACrash) {
  const std::string good = EncodeKeptSpans(SmallTrace(1, kKeptSlow).spans);
  absl::StatusOr<std::vector<KeptSpan>> decoded = DecodeKeptSpans(good);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(*decoded, SmallTrace(1, kKeptSlow).spans);
  for (size_t n = 0; n < good.size(); ++n) {
    EXPECT_FALSE(DecodeKeptSpans(good.substr(0, n)).ok()) << "prefix of " << n << " bytes";
  }
  EXPECT_FALSE(DecodeKeptSpans(good + '\0').ok()) << "a trailing byte";
  std::string version = good;
  version[0] = 2;
  EXPECT_THAT(DecodeKeptSpans(version).status().message(), HasSubstr("unknown version 2"));
  // Every single byte changed to 0xff: decodes or is refused, never reads outside the input.
  for (size_t i = 0; i < good.size(); ++i) {
    std::string bad = good;
    bad[i] = static_cast<char>(0xff);
    (void)DecodeKeptSpans(bad);
  }
  // A huge span count in a few bytes does not allocate for it.
  EXPECT_THAT(DecodeKeptSpans(std::string("\x01\x00\xff\xff\xff\xff\x0f", 7)).status().message(),
              HasSubstr("too many spans"));
}

TEST(KeptSpansCodecTest, CutsLongStringsAtACharacterBoundary) {
  EXPECT_EQ(TruncateText("abc", 5), "abc");
  EXPECT_EQ(TruncateText("abcdef", 3), "abc");
  // "a" then "é" (2 bytes) "€" (3 bytes): cutting inside a character drops the whole character.
  EXPECT_EQ(TruncateText("a\xc3\xa9\xe2\x82\xac", 2), "a");
  EXPECT_EQ(TruncateText("a\xc3\xa9\xe2\x82\xac", 5), "a\xc3\xa9");
  EXPECT_EQ(TruncateText("a\xc3\xa9\xe2\x82\xac", 3), "a\xc3\xa9");
  // Not UTF-8 (continuation bytes only): cut at the limit.
  EXPECT_EQ(TruncateText("\x80\x80\x80\x80\x80\x80", 4), "\x80\x80\x80\x80");
}

// --- SqliteExemplarStore ------------------------------------------------------------------------

class ExemplarStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = OpenStore(path_);
    ASSERT_NE(db_, nullptr);
    kept_ = CreateKept(*db_);
    ASSERT_NE(kept_, nullptr);
  }

  ScratchDir dir_;
  const std::string path_ = dir_.File("traceslo.db");
  std::unique_ptr<SqliteStore> db_;
  std::unique_ptr<SqliteExemplarStore> kept_;
};

TEST_F(ExemplarStoreTest, RoundTripsEveryFieldWithUntrustedStrings) {
  const std::string html = "<script>alert(\"x\")</script>&amp;'";
  const std::string invalid_utf8 = "\xff\xfe\xc3(\xed\xa0\x80";
  const std::string with_nul("nul\0inside", 10);
  const std::string long_ascii(5'000, 'x');
  std::string long_utf8 = "a";  // "a" then 1000 x "é": byte 1024 is inside an "é"
  for (int i = 0; i < 1'000; ++i) long_utf8 += "\xc3\xa9";
  std::string long_utf8_cut = "a";
  for (int i = 0; i < 511; ++i) long_utf8_cut += "\xc3\xa9";

  KeptTrace in;
  in.trace_id = IdOf(0xfe);
  in.trace_id[7] = 0x80;
  in.start_unix_nano = kT0 + 123;
  in.duration_nanos = 987'654'321;
  in.dropped_spans = 17;
  in.reasons = kKeptForAlert | kKeptError;
  in.service = html;
  const SpanKind kinds[] = {SpanKind::kUnspecified, SpanKind::kInternal, SpanKind::kServer,
                            SpanKind::kClient,      SpanKind::kProducer, SpanKind::kConsumer};
  for (int i = 0; i < 6; ++i) {
    in.spans.push_back(
        KeptSpan{.span_id = std::numeric_limits<uint64_t>::max() - static_cast<uint64_t>(i),
                 .parent_span_id = i == 0 ? 0 : std::numeric_limits<uint64_t>::max(),
                 .service = i % 2 == 0 ? html : invalid_utf8,
                 .operation = i % 3 == 0 ? with_nul : "GET /users/{id}",
                 .kind = kinds[i],
                 .start_offset_nanos = i == 1 ? std::numeric_limits<int64_t>::min() : -1'000 * i,
                 .duration_nanos = i == 2 ? std::numeric_limits<uint64_t>::max() : 1'000u * i,
                 .error = i % 2 == 1,
                 .orphan = i == 4,
                 .signature = i % 2 == 1 ? 0xdeadbeefcafe0000u + static_cast<uint64_t>(i) : 0,
                 .exception_type = i == 1 ? invalid_utf8 : "",
                 .message = i == 3 ? long_ascii : (i == 5 ? long_utf8 : html),
                 .top_frame = i == 5 ? with_nul : "main.go:1"});
  }
  ASSERT_TRUE(kept_->Put({in}, kT0 + 5 * kSecond).ok());

  KeptTrace want = StoredAt(in, kT0 + 5 * kSecond);
  want.spans[3].message = long_ascii.substr(0, kMaxKeptStringBytes);
  want.spans[5].message = long_utf8_cut;
  ASSERT_EQ(want.spans[5].message.size(), 1'023u);
  EXPECT_EQ(FindOk(*kept_, in.trace_id), want);
  EXPECT_EQ(FindOk(*kept_, IdOf(1)), std::nullopt);
}

TEST_F(ExemplarStoreTest, SpansBeyondTheCapAreLeftOutAndCounted) {
  KeptTrace in = SmallTrace(1, kKeptSlow);
  in.dropped_spans = 3;
  in.spans.clear();
  for (uint64_t i = 0; i < kMaxKeptSpans + 5; ++i) {
    in.spans.push_back(KeptSpan{.span_id = i + 1, .service = "s", .operation = "op"});
  }
  ASSERT_TRUE(kept_->Put({in}, kT0).ok());
  const std::optional<KeptTrace> out = FindOk(*kept_, in.trace_id);
  ASSERT_TRUE(out.has_value());
  ASSERT_EQ(out->spans.size(), kMaxKeptSpans);
  EXPECT_EQ(out->spans.back().span_id, kMaxKeptSpans);
  EXPECT_EQ(out->dropped_spans, 3u + 5u);
}

TEST_F(ExemplarStoreTest, KeptAgainMergesReasonsAndRefreshesItsTime) {
  ASSERT_TRUE(kept_->Put({SmallTrace(1, kKeptSlow, "checkout")}, kT0).ok());
  ASSERT_TRUE(kept_->Put({SmallTrace(1, kKeptError, "payments")}, kT0 + kSecond).ok());
  std::optional<KeptTrace> out = FindOk(*kept_, IdOf(1));
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->reasons, kKeptSlow | kKeptError);
  EXPECT_EQ(out->service, "checkout") << "the first service it was kept for stays";
  EXPECT_EQ(out->kept_at_unix_nano, kT0);
  EXPECT_EQ(out->last_linked_at_unix_nano, kT0 + kSecond);

  // An alert linking it for the first time names its service.
  ASSERT_TRUE(kept_->Put({SmallTrace(1, kKeptForAlert, "frontend")}, kT0 + 2 * kSecond).ok());
  out = FindOk(*kept_, IdOf(1));
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->reasons, kKeptForAlert | kKeptSlow | kKeptError);
  EXPECT_EQ(out->service, "frontend");
  EXPECT_EQ(out->kept_at_unix_nano, kT0);
  EXPECT_EQ(out->last_linked_at_unix_nano, kT0 + 2 * kSecond);

  ASSERT_TRUE(kept_->Put({SmallTrace(1, kKeptSlow, "search")}, kT0 + 3 * kSecond).ok());
  out = FindOk(*kept_, IdOf(1));
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->service, "frontend");
  EXPECT_EQ(out->last_linked_at_unix_nano, kT0 + 3 * kSecond);
  EXPECT_EQ(RawDb(path_).Int("SELECT COUNT(*) FROM exemplar_traces"), 1);
  EXPECT_EQ(MetricValue(kept_->Collect(), "traceslo_exemplar_store_writes_total"), 4);
  EXPECT_EQ(MetricValue(kept_->Collect(), "traceslo_exemplar_store_traces"), 1);
}

TEST_F(ExemplarStoreTest, RelinkMarksStoredTracesAsAlertLinkedAgain) {
  ASSERT_TRUE(kept_->Put({SmallTrace(1, kKeptSlow)}, kT0).ok());
  absl::StatusOr<uint64_t> relinked = kept_->Relink({IdOf(1), IdOf(2)}, kT0 + kDay);
  ASSERT_TRUE(relinked.ok()) << relinked.status();
  EXPECT_EQ(*relinked, 1u);
  const std::optional<KeptTrace> out = FindOk(*kept_, IdOf(1));
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->reasons, kKeptSlow | kKeptForAlert);
  EXPECT_EQ(out->kept_at_unix_nano, kT0);
  EXPECT_EQ(out->last_linked_at_unix_nano, kT0 + kDay);
  EXPECT_EQ(FindOk(*kept_, IdOf(2)), std::nullopt);
}

TEST_F(ExemplarStoreTest, PrunesByAgeAlertLinkedTracesLater) {
  kept_ = CreateKept(*db_, ExemplarStoreOptions{.alert_max_age = std::chrono::hours(24 * 7),
                                                .max_age = std::chrono::hours(24)});
  ASSERT_NE(kept_, nullptr);
  ASSERT_TRUE(kept_
                  ->Put({SmallTrace(1, kKeptForAlert), SmallTrace(2, kKeptSlow),
                         SmallTrace(3, kKeptError), SmallTrace(4, kKeptForAlert | kKeptSlow)},
                        kT0)
                  .ok());
  ASSERT_TRUE(kept_->Put({SmallTrace(5, kKeptSlow)}, kT0 + kDay).ok());

  // Exactly a day old is not past max_age.
  absl::StatusOr<PruneCounts> pruned = kept_->Prune(kT0 + kDay);
  ASSERT_TRUE(pruned.ok()) << pruned.status();
  EXPECT_EQ(*pruned, (PruneCounts{.age = 0, .size = 0}));

  pruned = kept_->Prune(kT0 + kDay + 1);
  ASSERT_TRUE(pruned.ok()) << pruned.status();
  EXPECT_EQ(*pruned, (PruneCounts{.age = 2, .size = 0}));  // 2 and 3
  EXPECT_EQ(FindOk(*kept_, IdOf(2)), std::nullopt);
  EXPECT_EQ(FindOk(*kept_, IdOf(3)), std::nullopt);
  EXPECT_TRUE(FindOk(*kept_, IdOf(1)).has_value());
  EXPECT_TRUE(FindOk(*kept_, IdOf(4)).has_value());
  EXPECT_TRUE(FindOk(*kept_, IdOf(5)).has_value());

  pruned = kept_->Prune(kT0 + 7 * kDay + 1);
  ASSERT_TRUE(pruned.ok()) << pruned.status();
  EXPECT_EQ(*pruned, (PruneCounts{.age = 3, .size = 0}));  // 1, 4 and 5
  const auto metrics = kept_->Collect();
  EXPECT_EQ(MetricValue(metrics, "traceslo_exemplar_store_pruned_total", "reason", "age"), 5);
  EXPECT_EQ(MetricValue(metrics, "traceslo_exemplar_store_pruned_total", "reason", "size"), 0);
  EXPECT_EQ(MetricValue(metrics, "traceslo_exemplar_store_traces"), 0);
  EXPECT_EQ(MetricValue(metrics, "traceslo_exemplar_store_bytes"), 0);
}

TEST_F(ExemplarStoreTest, PrunesBySizeOldestUnlinkedFirstThenOldestLinked) {
  // Five traces of the same shape, so of the same size.
  ASSERT_TRUE(kept_->Put({SmallTrace(1, kKeptForAlert)}, kT0 + 1).ok());
  ASSERT_TRUE(kept_->Put({SmallTrace(2, kKeptForAlert)}, kT0 + 2).ok());
  ASSERT_TRUE(kept_->Put({SmallTrace(3, kKeptSlow)}, kT0 + 3).ok());
  ASSERT_TRUE(kept_->Put({SmallTrace(4, kKeptError)}, kT0 + 4).ok());
  ASSERT_TRUE(kept_->Put({SmallTrace(5, kKeptSlow)}, kT0 + 5).ok());
  RawDb raw(path_);
  const int64_t row = raw.Int("SELECT MIN(bytes) FROM exemplar_traces");
  ASSERT_EQ(raw.Int("SELECT MAX(bytes) FROM exemplar_traces"), row);
  EXPECT_EQ(row, raw.Int("SELECT length(spans) FROM exemplar_traces LIMIT 1") +
                     static_cast<int64_t>(kKeptRowOverheadBytes));
  EXPECT_EQ(MetricValue(kept_->Collect(), "traceslo_exemplar_store_bytes"), 5 * row);

  const uint64_t unit = static_cast<uint64_t>(row);
  auto three = CreateKept(*db_, ExemplarStoreOptions{.max_bytes = 3 * unit});
  ASSERT_NE(three, nullptr);
  absl::StatusOr<PruneCounts> pruned = three->Prune(kT0 + 6);
  ASSERT_TRUE(pruned.ok()) << pruned.status();
  EXPECT_EQ(*pruned, (PruneCounts{.age = 0, .size = 2}));  // 3 and 4, the oldest unlinked
  for (uint8_t n : {1, 2, 5}) EXPECT_TRUE(FindOk(*three, IdOf(n)).has_value()) << int{n};
  for (uint8_t n : {3, 4}) EXPECT_EQ(FindOk(*three, IdOf(n)), std::nullopt) << int{n};

  auto one = CreateKept(*db_, ExemplarStoreOptions{.max_bytes = unit + unit / 2});
  ASSERT_NE(one, nullptr);
  pruned = one->Prune(kT0 + 7);
  ASSERT_TRUE(pruned.ok()) << pruned.status();
  EXPECT_EQ(*pruned, (PruneCounts{.age = 0, .size = 2}));  // 5, then 1 (the older linked)
  EXPECT_TRUE(FindOk(*one, IdOf(2)).has_value());
  for (uint8_t n : {1, 5}) EXPECT_EQ(FindOk(*one, IdOf(n)), std::nullopt) << int{n};
  const auto metrics = one->Collect();
  EXPECT_EQ(MetricValue(metrics, "traceslo_exemplar_store_pruned_total", "reason", "size"), 2);
  EXPECT_EQ(MetricValue(metrics, "traceslo_exemplar_store_traces"), 1);
  EXPECT_EQ(MetricValue(metrics, "traceslo_exemplar_store_bytes"), row);
}

TEST_F(ExemplarStoreTest, ACorruptRowIsAnErrorForThatTraceOnly) {
  ASSERT_TRUE(kept_->Put({SmallTrace(1, kKeptSlow), SmallTrace(2, kKeptSlow)}, kT0).ok());
  RawDb raw(path_);
  const std::string where = " WHERE trace_id = X'" + TraceIdHex(IdOf(1)) + "'";
  const std::vector<std::string> breakages = {
      "UPDATE exemplar_traces SET spans = X'01ff'" + where,
      "UPDATE exemplar_traces SET spans = X''" + where,
      "UPDATE exemplar_traces SET spans = X'02'" + where,
      "UPDATE exemplar_traces SET spans = substr(spans, 1, length(spans) - 1)" + where,
      "UPDATE exemplar_traces SET spans = 'not a blob at all'" + where,
      "UPDATE exemplar_traces SET reasons = 99" + where,
      "UPDATE exemplar_traces SET duration_nanos = -1" + where,
  };
  const std::string good = raw.Text("SELECT hex(spans) FROM exemplar_traces" + where);
  int errors = 0;
  for (const std::string& sql : breakages) {
    raw.Exec("UPDATE exemplar_traces SET spans = X'" + good +
             "', reasons = 2, duration_nanos = 3000000" + where);
    ASSERT_TRUE(FindOk(*kept_, IdOf(1)).has_value());
    raw.Exec(sql);
    absl::StatusOr<std::optional<KeptTrace>> found = kept_->Find(IdOf(1));
    ASSERT_FALSE(found.ok()) << sql;
    ++errors;
    EXPECT_EQ(found.status().code(), absl::StatusCode::kDataLoss) << sql;
    EXPECT_THAT(found.status().message(), HasSubstr(TraceIdHex(IdOf(1))));
    EXPECT_THAT(found.status().message(), HasSubstr(path_));
    EXPECT_EQ(FindOk(*kept_, IdOf(2)), StoredAt(SmallTrace(2, kKeptSlow), kT0));
  }
  EXPECT_EQ(MetricValue(kept_->Collect(), "traceslo_exemplar_store_errors_total"), errors);
  // Putting the trace again repairs it.
  ASSERT_TRUE(kept_->Put({SmallTrace(1, kKeptSlow)}, kT0 + 1).ok());
  EXPECT_TRUE(FindOk(*kept_, IdOf(1)).has_value());
}

TEST_F(ExemplarStoreTest, SurvivesReopeningTheFile) {
  ASSERT_TRUE(kept_->Put({SmallTrace(1, kKeptForAlert), SmallTrace(2, kKeptError)}, kT0).ok());
  const double bytes = MetricValue(kept_->Collect(), "traceslo_exemplar_store_bytes");
  kept_.reset();
  db_.reset();
  db_ = OpenStore(path_);
  ASSERT_NE(db_, nullptr);
  kept_ = CreateKept(*db_);
  ASSERT_NE(kept_, nullptr);
  EXPECT_EQ(FindOk(*kept_, IdOf(1)), StoredAt(SmallTrace(1, kKeptForAlert), kT0));
  EXPECT_EQ(FindOk(*kept_, IdOf(2)), StoredAt(SmallTrace(2, kKeptError), kT0));
  const auto metrics = kept_->Collect();
  EXPECT_EQ(MetricValue(metrics, "traceslo_exemplar_store_traces"), 2);
  EXPECT_EQ(MetricValue(metrics, "traceslo_exemplar_store_bytes"), bytes);
  EXPECT_EQ(MetricValue(metrics, "traceslo_exemplar_store_writes_total"), 0);
}

TEST(ExemplarStoreMigrationTest, MigrationFourAddsTheTableToAVersionThreeFile) {
  ScratchDir dir;
  const std::string path = dir.File("traceslo.db");
  {
    auto db = OpenStore(path);
    ASSERT_NE(db, nullptr);
    EXPECT_EQ(db->schema_version(), kSchemaVersion);
  }
  {
    // The file as the release before this one left it, with some data.
    RawDb raw(path);
    raw.Exec("DROP TABLE exemplar_traces");
    raw.Exec("DROP TABLE progress");
    raw.Exec("PRAGMA user_version = 3");
    raw.Exec("INSERT INTO series (service, operation) VALUES ('checkout', 'GET /')");
    raw.Exec(
        "INSERT INTO silences (id, matchers, starts_at_unix_nano, ends_at_unix_nano, created_by, "
        "comment, created_at_unix_nano) VALUES ('s1', '[]', 1, 2, 'me', '', 1)");
  }
  auto db = OpenStore(path);
  ASSERT_NE(db, nullptr);
  EXPECT_EQ(db->schema_version(), kSchemaVersion);
  RawDb raw(path);
  EXPECT_EQ(raw.Int("SELECT COUNT(*) FROM sqlite_master WHERE name = 'exemplar_traces'"), 1);
  EXPECT_EQ(raw.Int("SELECT COUNT(*) FROM sqlite_master WHERE name = 'exemplar_traces_by_age'"), 1);
  EXPECT_EQ(raw.Int("SELECT COUNT(*) FROM series"), 1);
  EXPECT_EQ(raw.Int("SELECT COUNT(*) FROM silences"), 1);
  auto kept = CreateKept(*db);
  ASSERT_NE(kept, nullptr);
  ASSERT_TRUE(kept->Put({SmallTrace(1, kKeptSlow)}, kT0).ok());
  EXPECT_EQ(FindOk(*kept, IdOf(1)), StoredAt(SmallTrace(1, kKeptSlow), kT0));
}

// --- ExemplarArchiver ---------------------------------------------------------------------------

// An SLI store fed exemplar deltas by the test, and a kept store beside it.
class ExemplarArchiverTest : public ::testing::Test {
 protected:
  static constexpr int64_t kNow = kT0 + 100 * kSecond;

  void SetUp() override {
    db_ = OpenStore(dir_.File("traceslo.db"));
    ASSERT_NE(db_, nullptr);
    kept_ = CreateKept(*db_);
    ASSERT_NE(kept_, nullptr);
  }

  // A trace of one span of `series` ending at `end`; an error span (signature `signature`) if
  // `signature` is not 0.
  ExemplarRef Trace(uint8_t n, uint32_t series, int64_t end, uint64_t duration,
                    uint64_t signature = 0) {
    auto trace = std::make_shared<ExemplarTrace>();
    trace->trace_id = IdOf(n);
    trace->start_unix_nano = end - static_cast<int64_t>(duration);
    trace->duration_nanos = duration;
    trace->spans.push_back(ExemplarSpan{.span_id = n,
                                        .duration_nanos = duration,
                                        .signature = signature,
                                        .series = series,
                                        .kind = SpanKind::kServer,
                                        .error = signature != 0});
    return trace;
  }

  void Slowest(uint32_t series, const ExemplarRef& trace) {
    pipeline::ShardDelta delta;
    delta.exemplars.push_back(
        ExemplarDelta{.series = series,
                      .bucket = pipeline::BucketOfUnixNanos(trace->start_unix_nano),
                      .duration_nanos = trace->duration_nanos,
                      .trace = trace});
    store_.Apply(std::move(delta));
  }

  void Error(uint32_t series, const ExemplarRef& trace, uint64_t signature) {
    const int64_t end = trace->start_unix_nano + static_cast<int64_t>(trace->duration_nanos);
    pipeline::ShardDelta delta;
    delta.exemplars.push_back(ExemplarDelta{.series = series,
                                            .bucket = pipeline::BucketOfUnixNanos(end),
                                            .signature = signature,
                                            .duration_nanos = trace->duration_nanos,
                                            .end_unix_nano = end,
                                            .trace = trace});
    pipeline::SignatureDelta& s = delta.signatures.emplace_back();
    s.id = signature;
    s.series = series;
    s.count = 1;
    s.exception_type = "E" + std::to_string(signature);
    s.sample_message = "failed " + std::to_string(signature);
    store_.Apply(std::move(delta));
  }

  // checkout: slow traces 1 (older) and 2 (newer, another operation), error traces 3 (older)
  // and 4 (newer); payments: slow trace 5, error trace 6; search: nothing.
  void Feed() {
    const uint32_t get = registry_.Resolve("checkout", "GET /").series;
    const uint32_t pay = registry_.Resolve("checkout", "POST /pay").series;
    const uint32_t charge = registry_.Resolve("payments", "charge").series;
    registry_.ResolveService("search");
    Slowest(get, Trace(1, get, kNow - 30 * kSecond, 900'000'000));
    Slowest(pay, Trace(2, pay, kNow - 5 * kSecond, 200'000'000));
    Error(pay, Trace(3, pay, kNow - 25 * kSecond, 1'000, 31), 31);
    Error(get, Trace(4, get, kNow - 3 * kSecond, 1'000, 32), 32);
    Slowest(charge, Trace(5, charge, kNow - 8 * kSecond, 50'000'000));
    Error(charge, Trace(6, charge, kNow - 9 * kSecond, 2'000, 33), 33);
  }

  std::optional<KeptTrace> Find(uint8_t n) { return FindOk(*kept_, IdOf(n)); }

  ScratchDir dir_;
  SeriesRegistry registry_{100, 100};
  pipeline::SliStore store_{pipeline::SliStoreOptions{}};
  std::unique_ptr<SqliteStore> db_;
  std::unique_ptr<SqliteExemplarStore> kept_;
};

TEST_F(ExemplarArchiverTest, KeepsTheLatestSlowAndErrorTracePerService) {
  Feed();
  ExemplarArchiver archiver(ExemplarArchiverOptions{}, store_, registry_, *kept_);
  absl::StatusOr<size_t> stored = archiver.ArchiveLatest(kNow);
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(*stored, 4u);
  struct Want {
    uint8_t trace;
    uint32_t reasons;
    const char* service;
    const char* operation;
  };
  for (const Want& w :
       {Want{2, kKeptSlow, "checkout", "POST /pay"}, Want{4, kKeptError, "checkout", "GET /"},
        Want{5, kKeptSlow, "payments", "charge"}, Want{6, kKeptError, "payments", "charge"}}) {
    const std::optional<KeptTrace> t = Find(w.trace);
    ASSERT_TRUE(t.has_value()) << int{w.trace};
    EXPECT_EQ(t->reasons, w.reasons) << int{w.trace};
    EXPECT_EQ(t->service, w.service) << int{w.trace};
    ASSERT_EQ(t->spans.size(), 1u);
    EXPECT_EQ(t->spans[0].operation, w.operation) << int{w.trace};
    EXPECT_EQ(t->kept_at_unix_nano, kNow);
  }
  const std::optional<KeptTrace> error = Find(4);
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->spans[0].signature, 32u);
  EXPECT_EQ(error->spans[0].exception_type, "E32");
  EXPECT_EQ(error->spans[0].message, "failed 32");
  EXPECT_EQ(Find(1), std::nullopt) << "an older slow trace";
  EXPECT_EQ(Find(3), std::nullopt) << "an older error trace";

  // Nothing newer: the next call writes nothing again.
  stored = archiver.ArchiveLatest(kNow + 30 * kSecond);
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(*stored, 0u);
  EXPECT_EQ(MetricValue(kept_->Collect(), "traceslo_exemplar_store_writes_total"), 4);
}

TEST_F(ExemplarArchiverTest, LooksOnlyAtTheLookbackWindow) {
  Feed();
  ExemplarArchiver archiver(ExemplarArchiverOptions{.lookback = std::chrono::seconds(20)}, store_,
                            registry_, *kept_);
  // Two buckets, [kNow - 30 s, kNow - 10 s): of checkout only error trace 3 (ended kNow - 25 s)
  // is in them; slow trace 1 started before, the other traces ended after.
  absl::StatusOr<size_t> stored = archiver.ArchiveLatest(kNow - 20 * kSecond);
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(*stored, 1u);
  const std::optional<KeptTrace> error = Find(3);
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->reasons, kKeptError);
  EXPECT_EQ(error->service, "checkout");
}

TEST_F(ExemplarArchiverTest, TakesServicesInTurnsUnderTheCap) {
  Feed();
  ExemplarArchiver archiver(ExemplarArchiverOptions{.max_services_per_call = 1}, store_, registry_,
                            *kept_);
  absl::StatusOr<size_t> stored = archiver.ArchiveLatest(kNow);
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(*stored, 2u);
  EXPECT_TRUE(Find(2).has_value());
  EXPECT_TRUE(Find(4).has_value());
  EXPECT_EQ(Find(5), std::nullopt);
  stored = archiver.ArchiveLatest(kNow);
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(*stored, 2u);
  EXPECT_TRUE(Find(5).has_value());
  EXPECT_TRUE(Find(6).has_value());
  stored = archiver.ArchiveLatest(kNow);  // search: no exemplars
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(*stored, 0u);
}

TEST_F(ExemplarArchiverTest, KeepLinkedStoresHeldTracesAndRelinksStoredOnes) {
  Feed();
  // Trace 9 is no longer in the SLI store but was stored earlier; trace 10 is nowhere.
  KeptTrace earlier = SmallTrace(9, kKeptSlow, "search");
  ASSERT_TRUE(kept_->Put({earlier}, kT0).ok());
  ExemplarArchiver archiver(ExemplarArchiverOptions{}, store_, registry_, *kept_);
  absl::StatusOr<LinkCounts> counts =
      archiver.KeepLinked({IdOf(3), IdOf(9), IdOf(10)}, "checkout", kNow);
  ASSERT_TRUE(counts.ok()) << counts.status();
  EXPECT_EQ(*counts, (LinkCounts{.stored = 1, .relinked = 1, .missing = 1}));

  const std::optional<KeptTrace> linked = Find(3);
  ASSERT_TRUE(linked.has_value());
  EXPECT_EQ(linked->reasons, kKeptForAlert);
  EXPECT_EQ(linked->service, "checkout");
  ASSERT_EQ(linked->spans.size(), 1u);
  EXPECT_EQ(linked->spans[0].service, "checkout");
  EXPECT_EQ(linked->spans[0].operation, "POST /pay");
  EXPECT_EQ(linked->spans[0].exception_type, "E31");
  const std::optional<KeptTrace> relinked = Find(9);
  ASSERT_TRUE(relinked.has_value());
  EXPECT_EQ(relinked->reasons, kKeptSlow | kKeptForAlert);
  EXPECT_EQ(relinked->last_linked_at_unix_nano, kNow);
  EXPECT_EQ(Find(10), std::nullopt);
}

}  // namespace
}  // namespace traceslo::storage
