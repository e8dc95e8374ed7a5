#include "traceslo/kafka/kafka_metrics.h"

#include <algorithm>
#include <string>
#include <utility>

#include "traceslo/common/metric_values.h"

namespace traceslo::kafka {
namespace {

using prometheus::MetricType;

double D(uint64_t v) { return static_cast<double>(v); }
double D(int64_t v) { return static_cast<double>(v); }

}  // namespace

std::vector<prometheus::MetricFamily> KafkaCollector::Collect() const {
  const Stage1ConsumerStats s1 = stage1_.Stats();
  const Stage2ConsumerStats s2 = stage2_.Stats();
  std::vector<prometheus::MetricFamily> out;
  auto counter =
      [&](std::string name, std::string help,
          std::vector<std::pair<std::vector<prometheus::ClientMetric::Label>, double>> samples) {
        prometheus::MetricFamily f =
            metrics::Family(std::move(name), std::move(help), MetricType::Counter);
        for (auto& [labels, value] : samples) f.metric.push_back(metrics::Counter(labels, value));
        out.push_back(std::move(f));
      };
  auto gauge =
      [&](std::string name, std::string help,
          std::vector<std::pair<std::vector<prometheus::ClientMetric::Label>, double>> samples) {
        prometheus::MetricFamily f =
            metrics::Family(std::move(name), std::move(help), MetricType::Gauge);
        for (auto& [labels, value] : samples) f.metric.push_back(metrics::Gauge(labels, value));
        out.push_back(std::move(f));
      };

  counter("traceslo_kafka_records_total",
          "Records read: stage 1 from the spans topic (outcome ok or bad), stage 2 from the deltas "
          "topic (outcome applied, duplicate, refused_invalid, refused_config, refused_partition, "
          "refused_too_late).",
          {{{{"stage", "1"}, {"outcome", "ok"}}, D(s1.records - s1.bad_records)},
           {{{"stage", "1"}, {"outcome", "bad"}}, D(s1.bad_records)},
           {{{"stage", "2"}, {"outcome", "applied"}}, D(s2.records.applied)},
           {{{"stage", "2"}, {"outcome", "duplicate"}}, D(s2.records.duplicates)},
           {{{"stage", "2"}, {"outcome", "refused_invalid"}}, D(s2.records.refused_invalid)},
           {{{"stage", "2"}, {"outcome", "refused_config"}}, D(s2.records.refused_config)},
           {{{"stage", "2"}, {"outcome", "refused_partition"}}, D(s2.records.refused_partition)},
           {{{"stage", "2"}, {"outcome", "refused_too_late"}}, D(s2.records.refused_too_late)}});
  counter("traceslo_kafka_divergent_epochs_total",
          "Delta records re-sent for an applied (source partition, epoch) with other content: a "
          "replaying stage 1 decided otherwise (the applied record stays).",
          {{{}, D(s2.records.divergent)}});
  counter("traceslo_kafka_late_deltas_total",
          "Delta records stage 2 applied to a bucket that was already final.",
          {{{}, D(s2.records.late)}});
  counter("traceslo_kafka_spans_total", "Spans stage 1 decoded (outcome ok or rejected).",
          {{{{"outcome", "ok"}}, D(s1.spans)}, {{{"outcome", "rejected"}}, D(s1.rejected_spans)}});
  counter("traceslo_kafka_replayed_spans_total",
          "Spans stage 1 read again after an assignment (at or before the previous owner's last "
          "processed offset).",
          {{{}, D(s1.replayed_spans)}});
  counter("traceslo_kafka_seed_records_total",
          "Spans-topic records stage 1 read before a resume point's L only to learn the trace ids "
          "the previous owner still knew (nothing counted).",
          {{{}, D(s1.seed_records)}});
  counter("traceslo_kafka_late_spans_after_replay_total",
          "Late spans after a resume point whose trace completed before it, recognised through "
          "the seed records (without them: a new partial trace).",
          {{{}, D(s1.late_spans_after_replay)}});
  counter("traceslo_kafka_seed_overflow_spans_total",
          "Seed-record spans whose trace the seed memory (2 x max_live_traces) had no room for.",
          {{{}, D(s1.seed_overflow)}});
  counter("traceslo_kafka_epochs_total",
          "Epochs stage 1 sealed: published, or suppressed (recomputed up to a resume point).",
          {{{{"outcome", "published"}}, D(s1.published_epochs)},
           {{{"outcome", "suppressed"}}, D(s1.suppressed_epochs)}});
  counter("traceslo_kafka_clamped_timestamps_total",
          "Spans-topic records stamped more than 10m past their partition's stream time (it moved "
          "10m only).",
          {{{}, D(s1.clamped_timestamps)}});
  counter("traceslo_kafka_published_records_total",
          "Delta records stage 1 had delivered to the deltas topic.",
          {{{}, D(s1.published_records)}});
  counter("traceslo_kafka_published_bytes_total",
          "Bytes of the delta records stage 1 had delivered.", {{{}, D(s1.published_bytes)}});
  counter("traceslo_kafka_delivery_errors_total",
          "Delta records whose delivery failed for good (their epoch is never acknowledged).",
          {{{}, D(s1.delivery_errors)}});
  counter("traceslo_kafka_commits_total", "Stage 1's offset commits (outcome ok or error).",
          {{{{"outcome", "ok"}}, D(s1.commits)}, {{{"outcome", "error"}}, D(s1.commit_errors)}});
  counter("traceslo_kafka_rebalances_total",
          "Partitions assigned, revoked or lost in rebalances, per stage.",
          {{{{"stage", "1"}, {"event", "assigned"}}, D(s1.partitions_assigned)},
           {{{"stage", "1"}, {"event", "revoked"}}, D(s1.partitions_revoked)},
           {{{"stage", "1"}, {"event", "lost"}}, D(s1.partitions_lost)},
           {{{"stage", "2"}, {"event", "assigned"}}, D(s2.partitions_assigned)},
           {{{"stage", "2"}, {"event", "revoked"}}, D(s2.partitions_revoked)},
           {{{"stage", "2"}, {"event", "lost"}}, D(s2.partitions_lost)}});
  counter("traceslo_kafka_errors_total",
          "Failures: stage 2's apply (records read again), open (a partition file), consume; "
          "stage 1's unusable commit metadata, fatal producer errors (the producer replaced) and "
          "partitions that could not start over (not consumed until the next rebalance).",
          {{{{"kind", "apply"}}, D(s2.apply_errors)},
           {{{"kind", "open"}}, D(s2.open_errors)},
           {{{"kind", "consume"}}, D(s2.consume_errors)},
           {{{"kind", "commit_metadata"}}, D(s1.bad_commit_metadata)},
           {{{"kind", "producer_fatal"}}, D(s1.producer_rebuilds)},
           {{{"kind", "resync"}}, D(s1.resync_failures)},
           {{{"kind", "state_producer_fatal"}}, D(s2.state.producer_rebuilds)}});
  counter("traceslo_kafka_resyncs_total",
          "Owned stage-1 partitions started over from their committed point, as a new owner "
          "would: a delta record could not be delivered, or the producer was replaced after a "
          "fatal error.",
          {{{}, D(s1.partition_resyncs)}});
  const Stage2StateStats& st = s2.state;
  counter("traceslo_kafka_state_restores_total",
          "Deltas partitions taken over without a usable file: restored from the changelog, "
          "empty (no checkpoint there; the deltas read from the start) or failed (the deltas "
          "read instead).",
          {{{{"outcome", "restored"}}, D(st.restores)},
           {{{"outcome", "empty"}}, D(st.restores_empty)},
           {{{"outcome", "failed"}}, D(st.restore_failures)}});
  counter(
      "traceslo_kafka_state_records_read_total",
      "Changelog records read while restoring, by outcome: used, invalid (skipped) or "
      "cut_short (after the last checkpoint, left out).",
      {{{{"outcome", "used"}},
        D(st.records_read - std::min(st.records_read, st.records_invalid + st.records_cut_short))},
       {{{"outcome", "invalid"}}, D(st.records_invalid)},
       {{{"outcome", "cut_short"}}, D(st.records_cut_short)}});
  counter("traceslo_kafka_state_snapshots_total",
          "Changelog snapshots: sent (delivered whole), skipped (the group was not steady or the "
          "partition no longer assigned) or failed (not delivered whole; the changes go again).",
          {{{{"outcome", "sent"}}, D(st.snapshots)},
           {{{"outcome", "skipped"}}, D(st.snapshots_skipped)},
           {{{"outcome", "failed"}}, D(st.snapshots_failed)}});
  counter("traceslo_kafka_state_records_queued_total",
          "Changelog records handed to the producer (delivered, failed or in flight).",
          {{{}, D(st.records_queued)}});
  counter("traceslo_kafka_state_records_written_total", "Changelog records delivered.",
          {{{}, D(st.records_written)}});
  counter("traceslo_kafka_state_bytes_written_total",
          "Key and value bytes of the changelog records delivered.", {{{}, D(st.bytes_written)}});
  counter("traceslo_kafka_state_outbox_total",
          "Outbox handoff through the changelog: written (a pending notification), finished (a "
          "tombstone: no longer pending here), handed_over (pending ones read on assignment), "
          "not_taken (of them, not queued here: left pending for a later owner).",
          {{{{"outcome", "written"}}, D(st.outbox_written)},
           {{{"outcome", "finished"}}, D(st.outbox_finished)},
           {{{"outcome", "handed_over"}}, D(st.outbox_handed_over)},
           {{{"outcome", "not_taken"}}, D(st.outbox_not_taken)}});
  counter("traceslo_kafka_state_alerts_total",
          "Alert states through the changelog: written (an alert firing, or firing since another "
          "time), finished (a tombstone: no longer firing here), handed_over (firing ones read on "
          "assignment: their episodes are kept when derived again).",
          {{{{"outcome", "written"}}, D(st.alerts_written)},
           {{{"outcome", "finished"}}, D(st.alerts_finished)},
           {{{"outcome", "handed_over"}}, D(st.alerts_handed_over)}});
  counter("traceslo_kafka_state_delivery_errors_total",
          "Changelog records not produced or not delivered (their changes go with the next "
          "snapshot).",
          {{{}, D(st.delivery_errors)}});
  gauge("traceslo_kafka_consumer_lag_records", "Records behind the end of the owned partitions.",
        {{{{"stage", "1"}}, D(s1.consumer_lag)}, {{{"stage", "2"}}, D(s2.consumer_lag)}});
  gauge("traceslo_kafka_owned_partitions", "Partitions this instance owns, per stage.",
        {{{{"stage", "1"}}, static_cast<double>(s1.owned_partitions)},
         {{{"stage", "2"}}, static_cast<double>(s2.owned.size())}});
  std::vector<std::pair<std::vector<prometheus::ClientMetric::Label>, double>> stage2_owned;
  for (int32_t partition : s2.owned) {
    stage2_owned.push_back({{{"partition", std::to_string(partition)}}, 1.0});
  }
  gauge("traceslo_kafka_deltas_partition_owned",
        "1 for each deltas-topic partition this instance's stage 2 owns (its SLOs are evaluated "
        "here); absent otherwise.",
        std::move(stage2_owned));
  gauge("traceslo_kafka_final_through_seconds",
        "Unix time through which stage 2's owned buckets are final (rules are evaluated up to "
        "it); 0 before the first watermark.",
        {{{}, s2.final_through_ms ? static_cast<double>(*s2.final_through_ms) / 1000.0 : 0.0}});
  return out;
}

}  // namespace traceslo::kafka
