// traceslo: the one binary. The object graph is wired here and only here.
//
// Threads of `traceslo serve` (each has one owner and is joined on shutdown):
//   main            parses flags, wires everything, waits for SIGTERM/SIGINT, shuts down in order
//   shard-N         one per pipeline shard (ShardedPipeline), owns that shard's data
//   ticker          queues a tick to every shard each pipeline.tick_interval (Ticker)
//   evaluator       evaluates the SLO rules each rules.evaluation_interval (Ticker); saves the
//                   alert states to SQLite when one changes
//   storage         writes changed SLI minutes to SQLite each storage.flush_interval (Ticker)
//   exemplars       every 30 s keeps each service's latest slow and error trace in SQLite and
//                   prunes the kept traces by age and size (Ticker)
//   alert-router    sends the router's due notifications into the outbox each second (Ticker);
//                   the evaluator thread feeds the router after every evaluation
//   notify-<name>   one per receiver (alerting::Dispatcher): delivers that receiver's outbox
//   otlp_http I/O   2 threads (http::Server for OTLP/HTTP)
//   web I/O         1 thread (http::Server for /metrics, health, API)
//   otlp_grpc gate  1 thread accepting gRPC connections under the cap (GrpcConnectionGate)
//   gRPC            gRPC's own callback/poller threads (OTLP/gRPC), joined by Server::Shutdown
#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "prometheus/gauge.h"
#include "prometheus/registry.h"
#include "services/traceslo/generate_command.h"
#include "services/traceslo/replay_command.h"
#include "services/traceslo/test_command.h"
#include "traceslo/alerting/alert_feed.h"
#include "traceslo/alerting/alert_history.h"
#include "traceslo/alerting/dispatcher.h"
#include "traceslo/alerting/notification_codec.h"
#include "traceslo/alerting/notifiers.h"
#include "traceslo/alerting/router.h"
#include "traceslo/alerting/sqlite_outbox_store.h"
#include "traceslo/alerting/sqlite_router_state_store.h"
#include "traceslo/alerting/sqlite_silence_store.h"
#include "traceslo/common/clock.h"
#include "traceslo/common/int_math.h"
#include "traceslo/common/log.h"
#include "traceslo/common/malloc_tuning.h"
#include "traceslo/common/mutex.h"
#include "traceslo/common/ticker.h"
#include "traceslo/config/config.h"
#include "traceslo/http/server.h"
#include "traceslo/ingest/receivers.h"
#include "traceslo/kafka/delta_batch.h"
#include "traceslo/kafka/kafka_metrics.h"
#include "traceslo/kafka/stage1_consumer.h"
#include "traceslo/kafka/stage2_consumer.h"
#include "traceslo/pipeline/sharded_pipeline.h"
#include "traceslo/pipeline/sli_collector.h"
#include "traceslo/slo/causes.h"
#include "traceslo/slo/evaluator.h"
#include "traceslo/slo/rule_file.h"
#include "traceslo/slo/rule_loader.h"
#include "traceslo/slo/sli_engine.h"
#include "traceslo/storage/durable_sli_source.h"
#include "traceslo/storage/exemplar_archiver.h"
#include "traceslo/storage/exemplar_store.h"
#include "traceslo/storage/sqlite_store.h"
#include "traceslo/storage/storage_writer.h"
#include "traceslo/web/web_handler.h"

#ifndef TRACESLO_VERSION
#define TRACESLO_VERSION "0.0.0-dev"
#endif

namespace traceslo {
namespace {

struct ServeFlags {
  std::string config_file;
  std::string grpc_listen;
  std::string http_listen;
  std::string web_listen;
  std::string storage_path;
  std::vector<std::string> rules;
  std::string log_format;
  std::string log_level;
  bool debug_endpoints = false;
};

// The router's notifications go to the dispatcher, which commits them to the outbox before any
// network call and wakes the receiver's thread.
class DispatcherSink final : public alerting::NotificationSink {
 public:
  explicit DispatcherSink(alerting::Dispatcher& dispatcher) : dispatcher_(dispatcher) {}
  // traceslo::alerting::NotificationSink
  absl::Status Send(const alerting::Notification& notification) override {
    return dispatcher_.Enqueue(notification);
  }

 private:
  alerting::Dispatcher& dispatcher_;
};

int64_t UnixNanos(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

// Kafka mode: the traceslo_deltas partitions this instance owns, as the evaluator uses them.
// Stage 2's thread changes them (OnAssigned once a partition's file was restored into the SLI
// store; OnReleased, when another instance takes it over, drops its services from the store, so
// a partition that comes back is restored once and /metrics shows each service on its owner
// only); the evaluator thread holds them through each evaluation (Hold), so no evaluation reads a
// partition's services while they are forgotten. Thread-safe.
class DeltasOwnership final : public kafka::Stage2Listener {
 public:
  DeltasOwnership(const pipeline::SeriesRegistry& registry, pipeline::SliStore& store)
      : registry_(registry), store_(store) {}
  void SetPartitions(int32_t partitions) { partitions_ = partitions; }
  // At shutdown: released partitions keep their SLIs, for the final flush to the database.
  void StopForgetting() {
    MutexLock lock(mu_);
    forget_ = false;
  }
  // Calls f(owned partitions, ascending) with them fixed until it returns.
  template <typename F>
  void Hold(F&& f) {
    MutexLock lock(mu_);
    f(static_cast<const std::vector<int32_t>&>(owned_));
  }

  // traceslo::kafka::Stage2Listener
  void OnAssigned(int32_t partition) override {
    MutexLock lock(mu_);
    auto at = std::lower_bound(owned_.begin(), owned_.end(), partition);
    if (at == owned_.end() || *at != partition) owned_.insert(at, partition);
  }
  // The outbox handoff: pending notifications of a partition's services, and enqueueing what
  // a previous owner left pending.
  absl::StatusOr<std::vector<kafka::OutboxItem>> PendingOutbox(int32_t partition) override {
    if (outbox_ == nullptr || partitions_ <= 0) return std::vector<kafka::OutboxItem>{};
    absl::StatusOr<std::vector<alerting::OutboxEntry>> pending = outbox_->LoadPending();
    if (!pending.ok()) return pending.status();
    std::vector<kafka::OutboxItem> items;
    for (const alerting::OutboxEntry& entry : *pending) {
      const alerting::Notification& n = entry.notification;
      std::optional<int32_t> of = PartitionOf(n);
      if (!of || *of != partition) continue;
      items.push_back({.receiver = n.receiver,
                       .id = n.id,
                       .notification = alerting::EncodeNotification(n),
                       .enqueued_unix_nano = entry.enqueued_unix_nano});
    }
    return items;
  }
  std::vector<kafka::OutboxItem> OnOutboxHandedOver(int32_t partition,
                                                    std::vector<kafka::OutboxItem> items) override {
    if (dispatcher_ == nullptr) return items;
    std::vector<kafka::OutboxItem> not_taken;
    const int64_t now = UnixNanos(clock_->Now());
    for (kafka::OutboxItem& item : items) {
      absl::StatusOr<alerting::Notification> n = alerting::DecodeNotification(item.notification);
      absl::Status status =
          !n.ok() ? n.status()
          : n->id != item.id || n->receiver != item.receiver
              ? absl::DataLossError("the notification's id or receiver is not its key's")
              : absl::OkStatus();
      // Notifications are made on stream time in Kafka mode: their age is the outbox's.
      if (status.ok() && now - item.enqueued_unix_nano > max_age_nanos_) {
        // Given up, as the old owner would have (alerting.delivery.max_age): taken, not sent.
        logger_->Warn("kafka: a handed-over notification is older than the delivery max_age",
                      {{"partition", std::to_string(partition)},
                       {"receiver", item.receiver},
                       {"notification_id", item.id}});
        continue;
      }
      if (status.ok()) status = dispatcher_->Enqueue(*n);
      if (!status.ok()) {
        logger_->Error("kafka: a handed-over notification was not enqueued; left for a later owner",
                       {{"partition", std::to_string(partition)},
                        {"receiver", item.receiver},
                        {"notification_id", item.id},
                        {"error", std::string(status.message())}});
        not_taken.push_back(std::move(item));
      }
    }
    return not_taken;
  }
  // The alert states' handoff: the alerts firing here of a partition's services, and the
  // previous owner's, kept until the evaluator derives the partition's states again.
  absl::StatusOr<std::vector<kafka::FiringAlert>> FiringAlerts(int32_t partition) override {
    if (evaluator_ == nullptr || partitions_ <= 0) return std::vector<kafka::FiringAlert>{};
    std::vector<kafka::FiringAlert> firing;
    for (const slo::AlertStatus& a : evaluator_->Alerts()) {
      if (a.state != slo::AlertState::kFiring ||
          kafka::DeltaPartitionOf(a.service, partitions_) != partition) {
        continue;
      }
      firing.push_back({.service = a.service,
                        .slo = a.slo,
                        .severity = std::string(slo::SeverityName(a.severity)),
                        .no_data = a.no_data,
                        .active_since_unix_nano = a.active_since_unix_nano,
                        .fired_at_unix_nano = a.fired_at_unix_nano});
    }
    return firing;
  }
  void OnAlertsHandedOver(int32_t partition, std::vector<kafka::FiringAlert> alerts) override {
    std::vector<slo::AlertStatus> previous;
    for (const kafka::FiringAlert& a : alerts) {
      slo::AlertStatus& status = previous.emplace_back();
      status.service = a.service;
      status.slo = a.slo;
      status.severity = a.severity == "ticket" ? slo::Severity::kTicket : slo::Severity::kPage;
      status.no_data = a.no_data;
      status.state = slo::AlertState::kFiring;
      status.active_since_unix_nano = a.active_since_unix_nano;
      status.fired_at_unix_nano = a.fired_at_unix_nano;
    }
    MutexLock lock(inherited_mu_);
    inherited_[partition] = std::move(previous);
  }
  // The previous owners' alert states of these partitions (handed over since), taken once.
  // Called within Hold() (its own lock).
  std::vector<slo::AlertStatus> TakeInherited(const std::vector<int32_t>& partitions) {
    MutexLock lock(inherited_mu_);
    std::vector<slo::AlertStatus> out;
    for (int32_t p : partitions) {
      auto it = inherited_.find(p);
      if (it == inherited_.end()) continue;
      std::move(it->second.begin(), it->second.end(), std::back_inserter(out));
      inherited_.erase(it);
    }
    return out;
  }
  // Set before the consumer starts.
  void SetOutbox(alerting::OutboxStore& outbox, alerting::Dispatcher& dispatcher,
                 std::chrono::milliseconds max_age, const slo::Evaluator& evaluator,
                 const Clock& clock, Logger& logger) {
    outbox_ = &outbox;
    dispatcher_ = &dispatcher;
    max_age_nanos_ = std::chrono::duration_cast<std::chrono::nanoseconds>(max_age).count();
    evaluator_ = &evaluator;
    clock_ = &clock;
    logger_ = &logger;
  }

  void OnReleased(int32_t partition) override {
    {
      MutexLock lock(inherited_mu_);
      inherited_.erase(partition);
    }
    MutexLock lock(mu_);
    owned_.erase(std::remove(owned_.begin(), owned_.end(), partition), owned_.end());
    if (!forget_ || partitions_ <= 0) return;
    std::vector<uint32_t> services;
    for (uint32_t id = 0; id < registry_.service_count(); ++id) {
      if (kafka::DeltaPartitionOf(registry_.ServiceName(id), partitions_) == partition) {
        services.push_back(id);
      }
    }
    store_.ForgetServices(services);
  }

 private:
  const pipeline::SeriesRegistry& registry_;
  pipeline::SliStore& store_;
  // The deltas partition of a notification's group: by its service label (none: not handed
  // over, as with a group_by without service).
  std::optional<int32_t> PartitionOf(const alerting::Notification& n) const {
    for (const alerting::Labels* labels : {&n.group_labels, &n.common_labels}) {
      if (auto it = labels->find("service"); it != labels->end()) {
        return kafka::DeltaPartitionOf(it->second, partitions_);
      }
    }
    return std::nullopt;
  }

  std::atomic<int32_t> partitions_{0};          // set before the consumer starts
  alerting::OutboxStore* outbox_ = nullptr;     // set before the consumer starts
  alerting::Dispatcher* dispatcher_ = nullptr;  // set before the consumer starts
  const slo::Evaluator* evaluator_ = nullptr;   // set before the consumer starts
  const Clock* clock_ = nullptr;                // set before the consumer starts
  int64_t max_age_nanos_ = 0;                   // set before the consumer starts
  Mutex inherited_mu_;
  std::map<int32_t, std::vector<slo::AlertStatus>> inherited_ ABSL_GUARDED_BY(inherited_mu_);
  Logger* logger_ = nullptr;
  Mutex mu_;
  std::vector<int32_t> owned_ ABSL_GUARDED_BY(mu_);
  bool forget_ ABSL_GUARDED_BY(mu_) = true;
};

int Fail(const std::string& message) {
  std::fprintf(stderr, "traceslo: %s\n", message.c_str());
  return 1;
}

absl::StatusOr<config::Config> BuildConfig(const ServeFlags& flags) {
  config::Config config;
  if (!flags.config_file.empty()) {
    auto loaded = config::LoadConfigFile(flags.config_file);
    if (!loaded.ok()) return loaded.status();
    config = *std::move(loaded);
  }
  if (!flags.grpc_listen.empty()) config.otlp.grpc.listen_address = flags.grpc_listen;
  if (!flags.http_listen.empty()) config.otlp.http.listen_address = flags.http_listen;
  if (!flags.web_listen.empty()) config.web.listen.listen_address = flags.web_listen;
  if (!flags.storage_path.empty()) config.storage.path = flags.storage_path;
  if (!flags.rules.empty()) config.rules.files = flags.rules;
  if (!flags.log_format.empty()) config.log.format = flags.log_format;
  if (!flags.log_level.empty()) config.log.level = flags.log_level;
  for (const std::string* address :
       {&config.otlp.grpc.listen_address, &config.otlp.http.listen_address,
        &config.web.listen.listen_address}) {
    std::string host;
    uint16_t port = 0;
    if (auto status = http::SplitHostPort(*address, host, port); !status.ok()) return status;
  }
  return config;
}

int Serve(const ServeFlags& flags) {
  // Signals are taken by sigwait in this thread only: block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  auto config = BuildConfig(flags);
  if (!config.ok()) return Fail(std::string(config.status().message()));
  // librdkafka's fetch buffers (docs/benchmarks.md, Kafka); before any thread starts.
  if (config->kafka.enabled) KeepFreedMemoryForReuse();
  auto log_format = ParseLogFormat(config->log.format);
  if (!log_format.ok()) return Fail(std::string(log_format.status().message()));
  auto log_level = ParseLogLevel(config->log.level);
  if (!log_level.ok()) return Fail(std::string(log_level.status().message()));

  // A minute can still change (late spans, completing traces, a pending flush) only while the
  // SLI store holds its buckets; otherwise a partial minute would overwrite the whole one on disk.
  {
    const config::PipelineConfig& pc = config->pipeline;
    const auto reach = pc.max_lateness + pc.trace_max_age + 2 * pc.tick_interval +
                       config->storage.flush_interval + std::chrono::minutes(1);
    if (reach > pc.sli_retention) {
      return Fail("pipeline.sli_retention (" + config::FormatDuration(pc.sli_retention) +
                  ") must exceed pipeline.max_lateness + pipeline.trace_max_age + 2 x "
                  "pipeline.tick_interval + storage.flush_interval + 1m (" +
                  config::FormatDuration(reach) + ")");
    }
  }
  SystemClock clock;
  Logger logger(clock, *log_format, *log_level);
  std::error_code ec;
  std::filesystem::create_directories(config->storage.path, ec);
  if (ec) return Fail("storage.path " + config->storage.path + ": " + ec.message());

  prometheus::Registry registry;
  prometheus::BuildGauge()
      .Name("traceslo_build_info")
      .Help("Always 1; the version label says which build is running.")
      .Register(registry)
      .Add({{"version", TRACESLO_VERSION}})
      .Set(1);

  const config::PipelineConfig& pc = config->pipeline;
  slo::SliEngine engine(pc, clock);
  pipeline::SliCollector sli_collector(clock, engine.series(), engine.store());
  auto pipeline = pipeline::ShardedPipeline::Create(
      pipeline::PipelineOptions{.shards = pc.shards,
                                .queue_capacity_spans = pc.queue_capacity_spans},
      engine.MakeProcessors(), registry);
  if (!pipeline.ok()) return Fail(std::string(pipeline.status().message()));
  Ticker ticker(clock, pc.tick_interval, [p = pipeline->get()] { p->Tick(); });

  // Storage: minute rollups of the SLI store and the alert states survive restarts. What was
  // persisted goes back into the store (as far as its rings reach) before any span arrives.
  const std::string db_path =
      (std::filesystem::path(config->storage.path) / "traceslo.db").string();
  auto sqlite = storage::SqliteStore::Open(db_path);
  if (!sqlite.ok()) return Fail(std::string(sqlite.status().message()));
  const bool kafka_mode = config->kafka.enabled;
  if (kafka_mode) {
    // Stage 2 restores the SLIs of the partitions it is given from their files; the minutes in
    // this database are read by the evaluator for windows older than the store holds.
    logger.Info("storage opened", {{"path", db_path},
                                   {"schema_version", std::to_string((*sqlite)->schema_version())},
                                   {"mode", "kafka"}});
  } else {
    const int64_t now_minute =
        std::chrono::duration_cast<std::chrono::minutes>(clock.Now().time_since_epoch()).count();
    auto restored = (*sqlite)->LoadRollups(
        now_minute - std::chrono::duration_cast<std::chrono::minutes>(pc.sli_retention).count() - 1,
        engine.series());
    if (!restored.ok()) return Fail(std::string(restored.status().message()));
    engine.store().Restore(*restored);
    logger.Info("storage opened",
                {{"path", db_path},
                 {"schema_version", std::to_string((*sqlite)->schema_version())},
                 {"restored_series_minutes", std::to_string(restored->series.size())},
                 {"restored_service_minutes", std::to_string(restored->services.size())}});
  }
  storage::StorageWriter storage_writer(
      storage::StorageWriterOptions{.retention = config->storage.retention}, clock, engine.store(),
      engine.series(), **sqlite);
  Ticker storage_ticker(clock, config->storage.flush_interval, [&] {
    if (absl::Status status = storage_writer.Flush(); !status.ok()) {
      logger.Error("storage flush failed; the minutes are kept for the next flush",
                   {{"error", std::string(status.message())}});
    }
  });

  // Exemplar traces on disk: what alerts link (kept by the evaluator thread below) and the
  // latest slow and error trace of each service, for the trace page after the SLI store's
  // exemplar_retention and across restarts.
  auto exemplar_store =
      storage::SqliteExemplarStore::Create(storage::ExemplarStoreOptions{}, **sqlite);
  if (!exemplar_store.ok()) return Fail(std::string(exemplar_store.status().message()));
  storage::ExemplarArchiver exemplar_archiver(storage::ExemplarArchiverOptions{}, engine.store(),
                                              engine.series(), **exemplar_store);
  Ticker exemplar_ticker(clock, std::chrono::seconds(30), [&] {
    const int64_t now = UnixNanos(clock.Now());
    if (absl::StatusOr<size_t> n = exemplar_archiver.ArchiveLatest(now); !n.ok()) {
      logger.Error("exemplar traces not kept", {{"error", std::string(n.status().message())}});
    }
    if (auto pruned = (*exemplar_store)->Prune(now); !pruned.ok()) {
      logger.Error("kept exemplar traces not pruned",
                   {{"error", std::string(pruned.status().message())}});
    }
  });

  // Rules: evaluated every rules.evaluation_interval from the SLI store, and from SQLite for
  // minutes older than the store holds (windows up to storage.retention).
  storage::DurableSliSource durable_source(engine.source(), engine.store(), **sqlite);
  slo::EvaluatorOptions evaluator_options = engine.evaluator_options();
  evaluator_options.source_retention = config->storage.retention;
  slo::HorizonSliSource horizon_source(durable_source);  // Kafka mode's (see there)
  slo::Evaluator evaluator(
      evaluator_options,
      config->kafka.enabled ? static_cast<const slo::SliSource&>(horizon_source) : durable_source);
  auto alerts = (*sqlite)->LoadAlerts();
  if (!alerts.ok()) return Fail(std::string(alerts.status().message()));
  evaluator.RestoreAlerts(*std::move(alerts));
  std::vector<std::string> rule_files = config->rules.files;
  if (rule_files == config::RulesConfig{}.files && !std::filesystem::exists("rules")) {
    // The built-in default, run from a directory without rules/: no SLOs, not an error.
    logger.Warn("no rules directory: running without SLOs", {{"rules", rule_files.front()}});
    rule_files.clear();
  }
  slo::RuleLoader rules(rule_files, evaluator, clock);
  if (auto status = rules.Reload(); !status.ok()) {
    return Fail("rule files have problems (traceslo check shows the same):\n" +
                std::string(status.message()));
  }
  auto save_alerts = [&] {
    if (absl::Status status = storage_writer.SaveAlerts(evaluator.Alerts()); !status.ok()) {
      logger.Error("alert states not saved", {{"error", std::string(status.message())}});
    }
  };

  // Alerting: firing SLO alerts with their causes → router (grouping, dedup, timing) → outbox
  // (SQLite, before any network call) → one delivery thread per receiver.
  alerting::SqliteOutboxStore outbox(**sqlite);
  std::vector<std::string> receiver_names;
  for (const config::ReceiverConfig& r : config->alerting.receivers) {
    receiver_names.push_back(r.name);
  }
  alerting::DispatcherMetrics dispatcher_metrics(receiver_names);
  auto notifiers = alerting::CreateNotifiers(config->alerting, config->links, clock, logger);
  if (!notifiers.ok()) return Fail(std::string(notifiers.status().message()));
  alerting::DispatcherOptions dispatcher_options =
      alerting::DispatcherOptionsFrom(config->alerting.delivery);
  dispatcher_options.jitter_seed = std::random_device{}();
  auto dispatcher = alerting::Dispatcher::Create(clock, outbox, dispatcher_metrics, logger,
                                                 *std::move(notifiers), dispatcher_options);
  if (!dispatcher.ok()) return Fail(std::string(dispatcher.status().message()));
  DispatcherSink sink(**dispatcher);
  alerting::SqliteRouterStateStore router_state(**sqlite);
  alerting::SqliteSilenceStore silence_store(**sqlite);
  alerting::RouterOptions router_options =
      alerting::RouterOptionsFrom(config->alerting, config->web.external_url);
  router_options.silence_id_seed = std::random_device{}();
  {
    auto instance = (*sqlite)->InstanceId([] {
      std::random_device random;
      char hex[33];
      std::snprintf(hex, sizeof hex, "%08x%08x%08x%08x", random(), random(), random(), random());
      return std::string(hex);
    });
    if (!instance.ok()) return Fail(std::string(instance.status().message()));
    // Kafka mode: every instance computes the same notification ids for the same transitions,
    // so a receiver drops a zombie owner's duplicate.
    router_options.instance_id = kafka_mode ? "kafka:" + config->kafka.group_ids.stage2 : *instance;
    router_options.episode_in_id = kafka_mode;
  }
  auto router = alerting::AlertRouter::Create(router_options, sink, router_state, silence_store);
  if (!router.ok()) return Fail(std::string(router.status().message()));
  alerting::SqliteAlertHistory history(**sqlite);
  slo::CauseFinder cause_finder(
      slo::CauseOptions{.coverage = config->alerting.cause_coverage_percent / 100.0,
                        .max_causes = config->alerting.max_causes,
                        .origins = !kafka_mode},
      engine.series(), engine.store());
  // A trace completes within trace_max_age of its first span (plus ticks); an evaluation later
  // its origin shows. Not in Kafka mode: causes are named by their own service's signatures
  // there (CauseOptions::origins), never renamed by an origin, so no page waits for one.
  alerting::AlertFeed alert_feed(
      alerting::AlertFeedOptions{.external_url = config->web.external_url,
                                 .origin_hold = kafka_mode
                                                    ? std::chrono::milliseconds(0)
                                                    : config->pipeline.trace_max_age +
                                                          2 * config->pipeline.tick_interval +
                                                          config->rules.evaluation_interval},
      evaluator, cause_finder, **router);
  {
    std::vector<alerting::Alert> held;
    for (const alerting::RouterGroupView& group : (*router)->Snapshot(UnixNanos(clock.Now()))) {
      for (const alerting::RouterAlertView& a : group.alerts) held.push_back(a.alert);
    }
    alert_feed.Seed(held);
  }

  // The exemplar traces the open alerts' causes link, kept on disk (linked again while they
  // stay open, so a long incident's traces do not age out).
  auto keep_linked_traces = [&](int64_t now) {
    std::map<std::string, std::vector<TraceId>> by_service;
    for (const alerting::RouterGroupView& group : (*router)->Snapshot(now)) {
      for (const alerting::RouterAlertView& a : group.alerts) {
        auto service = a.alert.labels.find("service");
        if (service == a.alert.labels.end()) continue;
        for (const alerting::Cause& cause : a.alert.causes) {
          for (const std::string& hex : cause.trace_ids) {
            if (std::optional<TraceId> id = ParseTraceIdHex(hex)) {
              by_service[service->second].push_back(*id);
            }
          }
        }
      }
    }
    for (auto& [service, ids] : by_service) {
      std::sort(ids.begin(), ids.end());
      ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
      if (auto kept = exemplar_archiver.KeepLinked(ids, service, now); !kept.ok()) {
        logger.Error("alert-linked traces not kept",
                     {{"service", service}, {"error", std::string(kept.status().message())}});
      }
    }
  };
  std::chrono::system_clock::time_point last_history_prune{};  // evaluator thread only
  DeltasOwnership ownership(engine.series(), engine.store());  // Kafka mode's stage-2 listener
  // Kafka mode: the deltas partitions whose services' SLOs this instance evaluates (stage 2's
  // owned ones, held through each evaluation). Evaluator thread only.
  std::vector<int32_t> owned_deltas;
  int32_t deltas_partitions = 0;
  std::vector<int32_t> evaluated_owned;  // at the last round of evaluations
  auto owns_service = [&](std::string_view service) {
    return std::binary_search(owned_deltas.begin(), owned_deltas.end(),
                              kafka::DeltaPartitionOf(service, deltas_partitions));
  };
  auto evaluate_owned_at = [&](std::chrono::system_clock::time_point now) {
    if (kafka_mode) horizon_source.SetHorizon(pipeline::BucketOfUnixNanos(UnixNanos(now)));
    const std::vector<slo::AlertTransition> transitions =
        kafka_mode ? evaluator.Evaluate(now, owns_service) : evaluator.Evaluate(now);
    if (!transitions.empty()) save_alerts();  // before anything is told of them
    if (kafka_mode) {
      alert_feed.Update(UnixNanos(now), owns_service);
    } else {
      alert_feed.Update(UnixNanos(now));
    }
    keep_linked_traces(UnixNanos(now));
    std::vector<alerting::AlertHistoryEntry> entries;
    for (const slo::AlertTransition& t : transitions) {
      const std::vector<alerting::Cause> causes = alert_feed.CausesOf(t.status);
      entries.push_back(alerting::HistoryEntryOf(t, UnixNanos(now), causes));
      std::string signatures;
      for (const alerting::Cause& cause : causes) {
        if (cause.kind != alerting::Cause::Kind::kSignature) continue;
        signatures += (signatures.empty() ? "" : ",") + cause.id;
      }
      logger.Info("alert", {{"service", t.status.service},
                            {"slo", t.status.slo},
                            {"severity", std::string(slo::SeverityName(t.status.severity))},
                            {"alert", t.status.no_data ? "no_data" : "slo"},
                            {"state", std::string(slo::AlertStateName(t.status.state))},
                            {"from", std::string(slo::AlertStateName(t.from))},
                            {"burn_rate_long", std::to_string(t.status.burn_rate_long)},
                            {"burn_rate_short", std::to_string(t.status.burn_rate_short)},
                            {"signatures", signatures}});
    }
    if (!entries.empty()) {
      if (absl::Status status = history.Append(entries); !status.ok()) {
        logger.Error("alert history not saved", {{"error", std::string(status.message())}});
      }
    }
    if (now - last_history_prune >= std::chrono::hours(1)) {
      last_history_prune = now;
      const int64_t before = UnixNanos(now - config->storage.retention);
      if (absl::StatusOr<uint64_t> pruned = history.Prune(before); !pruned.ok()) {
        logger.Error("alert history not pruned",
                     {{"error", std::string(pruned.status().message())}});
      }
    }
    if (absl::Status status = (*router)->Tick(UnixNanos(now)); !status.ok()) {
      logger.Error("notifications not queued; retried at the next tick",
                   {{"error", std::string(status.message())}});
    }
  };
  auto evaluate_at = [&](std::chrono::system_clock::time_point now) {
    if (!kafka_mode) return evaluate_owned_at(now);
    ownership.Hold([&](const std::vector<int32_t>& owned) {
      owned_deltas = owned;
      evaluate_owned_at(now);
    });
  };

  // Kafka mode: both stages, and rules evaluated on stream time, only over final buckets.
  std::unique_ptr<kafka::Stage1Consumer> stage1;
  std::unique_ptr<kafka::Stage2Consumer> stage2;
  std::unique_ptr<kafka::KafkaCollector> kafka_collector;
  if (kafka_mode) {
    const config::KafkaConfig& kc = config->kafka;
    absl::StatusOr<ingest::OtlpFileFormat> encoding = kafka::ParseSpansEncoding(kc.encoding);
    if (!encoding.ok()) return Fail(std::string(encoding.status().message()));
    const std::string brokers = absl::StrJoin(kc.brokers, ",");
    const pipeline::SliOptions sli = engine.sli_options();
    const uint64_t config_hash = kafka::DeltaConfigHash(sli, kc.epoch_length);
    auto created1 = kafka::Stage1Consumer::Create(
        kafka::Stage1ConsumerOptions{.brokers = brokers,
                                     .spans_topic = kc.topics.spans,
                                     .deltas_topic = kc.topics.deltas,
                                     .group_id = kc.group_ids.stage1,
                                     .encoding = *encoding,
                                     .librdkafka = kc.librdkafka,
                                     .epoch_length = kc.epoch_length,
                                     .commit_interval = kc.commit_interval,
                                     .idle_partition_timeout = kc.idle_partition_timeout,
                                     .config_hash = config_hash,
                                     .sli = sli},
        clock, engine.series(), logger);
    if (!created1.ok()) return Fail("kafka stage 1: " + std::string(created1.status().message()));
    stage1 = *std::move(created1);
    kafka::Stage2Options partition_options;
    partition_options.config_hashes = {config_hash};
    partition_options.epoch_length = kc.epoch_length;
    partition_options.allowed_lateness = kc.allowed_lateness;
    // As many signature details as stage 1 may publish (pipeline.max_signatures, in the hash).
    partition_options.limits.max_signature_details = sli.max_signatures;
    // The files give back what the SLI store holds after a restart (older minutes are read
    // from the database).
    partition_options.retention = pc.sli_retention + std::chrono::minutes(10);
    auto created2 = kafka::Stage2Consumer::Create(
        kafka::Stage2ConsumerOptions{
            .brokers = brokers,
            .spans_topic = kc.topics.spans,
            .deltas_topic = kc.topics.deltas,
            .group_id = kc.group_ids.stage2,
            .librdkafka = kc.librdkafka,
            .directory = (std::filesystem::path(config->storage.path) / "kafka").string(),
            .partition = partition_options,
            .state_topic = kc.topics.state,
            .snapshot_interval = kc.snapshot_interval},
        clock, engine.series(), engine.store(), &ownership, logger);
    if (!created2.ok()) return Fail("kafka stage 2: " + std::string(created2.status().message()));
    stage2 = *std::move(created2);
    ownership.SetPartitions(stage2->Stats().partitions);
    ownership.SetOutbox(outbox, **dispatcher, dispatcher_options.max_age, evaluator, clock, logger);
    kafka_collector = std::make_unique<kafka::KafkaCollector>(*stage1, *stage2);
    std::filesystem::create_directories(std::filesystem::path(config->storage.path) / "kafka", ec);
    if (ec) return Fail("storage.path " + config->storage.path + "/kafka: " + ec.message());
  }
  // Evaluation times: the clock's in single-node mode; in Kafka mode each multiple of
  // evaluation_interval once stage 2's buckets are final through it, so every instance that
  // evaluates a partition's rules gets the same results at the same times. The next one is kept
  // in the database, so a restart neither repeats nor skips one. Evaluator thread only.
  std::optional<int64_t> next_evaluation_ms;
  constexpr std::string_view kNextEvaluation = "kafka.next_evaluation_ms";
  if (kafka_mode) {
    absl::StatusOr<std::optional<int64_t>> loaded = (*sqlite)->LoadProgress(kNextEvaluation);
    if (!loaded.ok()) return Fail(std::string(loaded.status().message()));
    next_evaluation_ms = *loaded;
  }
  const int64_t interval_ms = config->rules.evaluation_interval.count();
  Ticker evaluation_ticker(
      clock,
      kafka_mode ? std::min<std::chrono::nanoseconds>(config->rules.evaluation_interval,
                                                      std::chrono::seconds(1))
                 : std::chrono::nanoseconds(config->rules.evaluation_interval),
      [&] {
        if (!kafka_mode) return evaluate_at(clock.Now());
        const kafka::Stage2ConsumerStats stats = stage2->Stats();
        deltas_partitions = stats.partitions;
        if (!stats.final_through_ms) return;
        const int64_t last = FloorDiv(*stats.final_through_ms, interval_ms) * interval_ms;
        if (!next_evaluation_ms) {
          // The first evaluation after the data begins (as `traceslo replay` evaluates).
          if (!stats.first_data_ms) return;
          next_evaluation_ms = (FloorDiv(*stats.first_data_ms, interval_ms) + 1) * interval_ms;
        }
        // After a long stop, catch up with the last hour of evaluations at most.
        constexpr int64_t kMaxCatchUp = 360;
        if (last - *next_evaluation_ms >= kMaxCatchUp * interval_ms) {
          logger.Warn("kafka mode: evaluations skipped to catch up",
                      {{"from_ms", std::to_string(*next_evaluation_ms)},
                       {"to_ms", std::to_string(last - (kMaxCatchUp - 1) * interval_ms)}});
          next_evaluation_ms = last - (kMaxCatchUp - 1) * interval_ms;
        }
        if (*next_evaluation_ms > last) return;
        // Deltas partitions gained since the last round (another instance evaluated their
        // SLOs until now; at the first round, all: the database's states may be of an earlier
        // ownership): their alert states are derived again by evaluating the past hour
        // silently, so an alert that fires on goes on firing since the same evaluation and its
        // notifications keep their ids (a receiver drops what the old owner sent already).
        ownership.Hold([&](const std::vector<int32_t>& owned) {
          owned_deltas = owned;
          std::vector<int32_t> gained;
          std::set_difference(owned.begin(), owned.end(), evaluated_owned.begin(),
                              evaluated_owned.end(), std::back_inserter(gained));
          evaluated_owned = owned;
          if (gained.empty()) return;
          auto gained_service = [&](std::string_view service) {
            return std::binary_search(gained.begin(), gained.end(),
                                      kafka::DeltaPartitionOf(service, deltas_partitions));
          };
          evaluator.ResetSlos(gained_service);
          const int64_t from = std::max(*next_evaluation_ms - kMaxCatchUp * interval_ms,
                                        stats.first_data_ms.value_or(*next_evaluation_ms));
          int64_t at = (FloorDiv(from, interval_ms) + 1) * interval_ms;
          const int64_t first_derived_ms = at;
          for (; at < *next_evaluation_ms; at += interval_ms) {
            const auto t = std::chrono::system_clock::time_point(std::chrono::milliseconds(at));
            horizon_source.SetHorizon(pipeline::BucketOfUnixNanos(UnixNanos(t)));
            (void)evaluator.Evaluate(t, gained_service);
          }
          // Episodes older than the derivation: the previous owner's, from the changelog.
          const size_t inherited = evaluator.InheritEpisodes(ownership.TakeInherited(gained),
                                                             first_derived_ms * 1'000'000);
          if (inherited > 0) {
            logger.Info("kafka mode: alert episodes kept from the previous owner",
                        {{"alerts", std::to_string(inherited)}});
          }
          logger.Info("kafka mode: alert states derived again for gained partitions",
                      {{"partitions", absl::StrJoin(gained, ",")},
                       {"from_ms", std::to_string(from)},
                       {"to_ms", std::to_string(*next_evaluation_ms)}});
        });
        for (; *next_evaluation_ms <= last; *next_evaluation_ms += interval_ms) {
          evaluate_at(std::chrono::system_clock::time_point(
              std::chrono::milliseconds(*next_evaluation_ms)));
        }
        if (absl::Status status = (*sqlite)->SaveProgress(kNextEvaluation, *next_evaluation_ms);
            !status.ok()) {
          logger.Error("kafka mode: evaluation progress not saved",
                       {{"error", std::string(status.message())}});
        }
      });
  Ticker router_ticker(clock, std::chrono::seconds(1), [&] {
    if (kafka_mode) return;  // ticked at each evaluation, on stream time
    const int64_t now = UnixNanos(clock.Now());
    const std::optional<int64_t> due = (*router)->NextDueUnixNano();
    if (!due || *due > now) return;
    if (absl::Status status = (*router)->Tick(now); !status.ok()) {
      logger.Error("notifications not queued; retried at the next tick",
                   {{"error", std::string(status.message())}});
    }
  });

  // Kafka mode reads spans from Kafka only: the OTLP listeners stay closed.
  std::unique_ptr<ingest::Receivers> receivers;
  if (!kafka_mode) {
    auto started = ingest::Receivers::Start(config->otlp, **pipeline, registry, logger);
    if (!started.ok()) return Fail(std::string(started.status().message()));
    receivers = *std::move(started);
  }

  auto reload = [&]() -> absl::Status {
    absl::Status status = rules.Reload();
    if (status.ok()) {
      logger.Info("rules reloaded", {{"slos", std::to_string(rules.slo_count())}});
    } else {
      logger.Error("rules not reloaded, the running rules stay",
                   {{"error", std::string(status.message())}});
    }
    return status;
  };
  web::ApiHandler api(
      web::ApiOptions{.api_token = config->web.api_token,
                      .external_url = config->web.external_url,
                      .trace_url = config->links.trace_url,
                      .exemplar_retention = pc.exemplar_retention},
      web::ApiSources{
          .clock = clock,
          .series = engine.series(),
          .store = engine.store(),
          .pinned_trace = [&](const TraceId& id) { return alert_feed.PinnedTrace(id); },
          .router = **router,
          .evaluator = &evaluator,
          .recent_alerts = [&](size_t limit) { return history.Recent(limit); },
          .kept_trace = [&](const TraceId& id) { return (*exemplar_store)->Find(id); }});
  std::vector<const prometheus::Collectable*> metric_sources{
      &registry,       &sli_collector,      &evaluator, &rules,
      &storage_writer, &dispatcher_metrics, &api,       exemplar_store->get()};
  if (receivers) metric_sources.push_back(receivers.get());
  if (kafka_collector) metric_sources.push_back(kafka_collector.get());
  web::WebHandler web_handler(
      web::WebOptions{.debug_endpoints = flags.debug_endpoints, .reload = reload, .api = &api},
      std::move(metric_sources), **pipeline);
  http::ServerOptions web_options;
  web_options.name = "web";
  web_options.listen_address = config->web.listen.listen_address;
  web_options.body_limit = 1 << 20;
  web_options.max_connections = 256;
  web_options.threads = 1;
  auto web_server = http::Server::Create(web_options, web_handler, logger);
  if (!web_server.ok()) return Fail(std::string(web_server.status().message()));

  logger.Info("starting", {{"version", TRACESLO_VERSION},
                           {"shards", std::to_string(config->pipeline.shards)},
                           {"storage_path", config->storage.path},
                           {"slos", std::to_string(rules.slo_count())},
                           {"auth", config->otlp.bearer_tokens.empty() ? "none" : "bearer"},
                           {"tls", config->otlp.tls.enabled() ? "on" : "off"}});
  if (receivers) {
    logger.Info("listening", {{"listener", "otlp_grpc"}, {"address", receivers->grpc_address()}});
    logger.Info("listening", {{"listener", "otlp_http"}, {"address", receivers->http_address()}});
  }
  logger.Info("listening", {{"listener", "web"}, {"address", (*web_server)->address()}});
  // Kafka mode is ready once both stages handled their first assignment.
  std::atomic<bool> kafka_ready{false};
  std::optional<Ticker> ready_ticker;
  if (kafka_mode) {
    if (absl::Status status = stage1->Start(); !status.ok()) {
      return Fail("kafka stage 1: " + std::string(status.message()));
    }
    if (absl::Status status = stage2->Start(); !status.ok()) {
      return Fail("kafka stage 2: " + std::string(status.message()));
    }
    logger.Info("kafka mode", {{"brokers", absl::StrJoin(config->kafka.brokers, ",")},
                               {"spans_topic", config->kafka.topics.spans},
                               {"deltas_topic", config->kafka.topics.deltas}});
    ready_ticker.emplace(clock, std::chrono::milliseconds(100), [&] {
      const bool ready = stage1->Stats().assignment_done && stage2->Stats().assignment_done;
      if (ready && !kafka_ready.exchange(true)) {
        web_handler.SetReady(true);
        logger.Info("ready");
      }
    });
  } else {
    web_handler.SetReady(true);
    logger.Info("ready");
  }

  int signal_number = 0;
  while (true) {
    sigwait(&signals, &signal_number);
    if (signal_number != SIGHUP) break;
    (void)reload();  // logged inside; the running rules stay on failure
  }
  logger.Info("stopping", {{"signal", signal_number == SIGTERM ? "SIGTERM" : "SIGINT"}});
  web_handler.SetReady(false);
  if (ready_ticker) ready_ticker->Shutdown();
  if (receivers) receivers->Shutdown(clock, std::chrono::seconds(5));
  // Stage 1 commits every owned partition's (L, E); stage 2's offsets are in its files.
  if (stage1) stage1->Shutdown(clock.SteadyNow() + std::chrono::seconds(10));
  ownership.StopForgetting();  // the final flush below writes what stage 2 held
  if (stage2) stage2->Shutdown(clock.SteadyNow() + std::chrono::seconds(10));
  evaluation_ticker.Shutdown();
  router_ticker.Shutdown();
  (*dispatcher)->Shutdown(clock.SteadyNow() + std::chrono::seconds(5));  // pending stay queued
  ticker.Shutdown();  // the pipeline's shutdown completes and publishes every live trace
  bool drained = (*pipeline)->Shutdown(clock.SteadyNow() + std::chrono::seconds(30));
  if (!drained) logger.Warn("pipeline did not drain before the deadline");
  exemplar_ticker.Shutdown();
  storage_ticker.Shutdown();
  if (absl::Status status = storage_writer.Flush(); !status.ok()) {
    logger.Error("final storage flush failed", {{"error", std::string(status.message())}});
  }
  save_alerts();
  const uint64_t processed = (*pipeline)->spans_processed();
  (*web_server)->Shutdown(clock.SteadyNow() + std::chrono::seconds(1));
  logger.Info("stopped", {{"spans_processed", std::to_string(processed)}});
  return drained ? 0 : 1;
}

// `traceslo check`: every problem of every rule file on stderr as file:line:col: message, a
// summary on stdout; exit 1 on any problem.
int Check(const std::vector<std::string>& paths) {
  slo::CheckResult result =
      slo::CheckRuleFiles(paths.empty() ? std::vector<std::string>{"rules/*.yaml"} : paths);
  for (const slo::Diagnostic& diagnostic : result.diagnostics) {
    std::fprintf(stderr, "%s\n", diagnostic.ToString().c_str());
  }
  auto counted = [](size_t n, const char* noun) {
    return std::to_string(n) + " " + noun + (n == 1 ? "" : "s");
  };
  std::printf("checked %s, %s: %s\n", counted(result.files_checked, "file").c_str(),
              counted(result.slos_checked, "SLO").c_str(),
              counted(result.diagnostics.size(), "error").c_str());
  return result.ok() ? 0 : 1;
}

}  // namespace
}  // namespace traceslo

int main(int argc, char** argv) {
  CLI::App app{"traceslo turns OpenTelemetry spans into SLOs and pages."};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Show help for every subcommand");

  traceslo::ServeFlags flags;
  CLI::App* serve = app.add_subcommand("serve", "Receive OTLP, compute SLIs, serve /metrics.");
  serve->add_option("--config.file", flags.config_file, "Configuration file (YAML)");
  serve->add_option("--otlp.grpc-listen-address", flags.grpc_listen,
                    "OTLP/gRPC listen address (default 127.0.0.1:4317)");
  serve->add_option("--otlp.http-listen-address", flags.http_listen,
                    "OTLP/HTTP listen address (default 127.0.0.1:4318)");
  serve->add_option("--web.listen-address", flags.web_listen,
                    "Web listen address: /metrics, health, API (default 127.0.0.1:8080)");
  serve->add_option("--storage.path", flags.storage_path, "Data directory (default ./var)");
  serve->add_option("--rules", flags.rules, "Rule file glob (repeatable; default rules/*.yaml)");
  serve->add_option("--log.format", flags.log_format, "logfmt (default) or json");
  serve->add_option("--log.level", flags.log_level, "debug, info (default), warn or error");
  serve->add_flag("--debug.endpoints", flags.debug_endpoints,
                  "Enable POST /-/debug/pipeline/{pause,resume} (for tests)");

  std::vector<std::string> check_paths;
  CLI::App* check = app.add_subcommand(
      "check", "Check SLO rule files; print every problem as file:line:col: message.");
  check->add_option(
      "paths", check_paths,
      "Rule files, directories (their *.yaml, *.yml) or globs (default rules/*.yaml)");

  std::vector<std::string> test_paths;
  CLI::App* test = traceslo::AddTestCommand(app, test_paths);

  traceslo::ReplayFlags replay_flags;
  CLI::App* replay = traceslo::AddReplayCommand(app, replay_flags);

  traceslo::GenerateFlags generate_flags;
  CLI::App* generate = traceslo::AddGenerateCommand(app, generate_flags);

  CLI::App* version = app.add_subcommand("version", "Print the version.");

  // A first argument that is neither a flag nor a command: name it (CLI11 would only say that
  // a subcommand is required). Usage errors exit 2, as every subcommand's own do.
  if (argc > 1 && argv[1][0] != '-') {
    try {
      (void)app.get_subcommand(argv[1]);
    } catch (const CLI::OptionNotFound&) {
      std::fprintf(stderr,
                   "traceslo: unknown command '%s' (commands: serve, check, test, replay, "
                   "generate, version; see traceslo --help)\n",
                   argv[1]);
      return 2;
    }
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (version->parsed()) {
    std::printf("traceslo %s\n", TRACESLO_VERSION);
    return 0;
  }
  if (check->parsed()) return traceslo::Check(check_paths);
  if (test->parsed()) return traceslo::Test(test_paths);
  if (replay->parsed()) return traceslo::Replay(replay_flags, traceslo::SystemClock());
  if (generate->parsed()) return traceslo::Generate(generate_flags);
  return traceslo::Serve(flags);
}
