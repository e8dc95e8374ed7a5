#pragma once

// What both stages' librdkafka clients share: owning handles for librdkafka's C objects, setting
// properties with the failing key named, the partition count of topics from the cluster's
// metadata, and librdkafka's log lines through our Logger. Private to services/kafka.

#include <librdkafka/rdkafka.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "traceslo/common/log.h"

namespace traceslo::kafka {

struct ConfDeleter {
  void operator()(rd_kafka_conf_t* conf) const { rd_kafka_conf_destroy(conf); }
};
using ConfPtr = std::unique_ptr<rd_kafka_conf_t, ConfDeleter>;

struct PartitionListDeleter {
  void operator()(rd_kafka_topic_partition_list_t* list) const {
    rd_kafka_topic_partition_list_destroy(list);
  }
};
using PartitionList = std::unique_ptr<rd_kafka_topic_partition_list_t, PartitionListDeleter>;

// The librdkafka settings the stages set themselves (their correctness rests on them): one list
// for both stages, since one passthrough map goes to every client. The config parser refuses the
// same keys with their file:line:col (a kafka_test checks the two lists agree).
bool IsReservedSetting(std::string_view key);
// InvalidArgument "librdkafka setting '<key>' is set by traceslo" for the first reserved key of
// `settings`.
absl::Status CheckNoReservedSettings(const std::map<std::string, std::string>& settings);
const std::vector<std::string>& ReservedSettings();

// From a consumer's statistics JSON (statistics.interval.ms): whether its group membership is
// steady (cgrp.join_state "steady"), not joining or rebalancing; nullopt without a join state.
// librdkafka 2.0.2 treats an offset commit that the broker answers with ILLEGAL_GENERATION, as it
// does for one sent while the member rejoins, as the loss of the whole assignment
// (confluentinc/librdkafka#4059, fixed in 2.6): the consumers commit only while steady, or
// every rebalance under load loses every partition and starts another one.
std::optional<bool> GroupSteadyInStats(std::string_view json);
// How often the consumers take their statistics (for GroupSteadyInStats).
inline constexpr const char* kStatisticsIntervalMs = "100";

// InvalidArgument "librdkafka setting '<key>': <librdkafka's reason>" when librdkafka refuses it.
// The value is never put in the message (it may be a password).
absl::Status SetConf(rd_kafka_conf_t* conf, const std::string& key, const std::string& value);
absl::Status SetConfAll(rd_kafka_conf_t* conf, const std::map<std::string, std::string>& settings);

// A librdkafka client of `type`: the passthrough `settings` (InvalidArgument for a reserved
// key), then bootstrap.servers `brokers` and `own` (traceslo's), each failure naming its key;
// `opaque` with the error and log callbacks, and what `configure` adds (delivery, rebalance,
// statistics callbacks). InvalidArgument "kafka <what>: <reason>" when librdkafka refuses to
// create it. The caller owns the handle (rd_kafka_destroy).
absl::StatusOr<rd_kafka_t*> NewClient(
    rd_kafka_type_t type, std::string_view what, const std::map<std::string, std::string>& settings,
    const std::string& brokers, const std::map<std::string, std::string>& own, void* opaque,
    void (*error_cb)(rd_kafka_t*, int, const char*, void*),
    void (*log_cb)(const rd_kafka_t*, int, const char*, const char*),
    const std::function<void(rd_kafka_conf_t*)>& configure = {});

// The partition count of each of `topics` (same order), from one metadata request of all topics
// (asking for one by name may create it where brokers auto-create topics). Unavailable when the
// request fails; NotFound naming the first topic the cluster does not have.
absl::StatusOr<std::vector<int32_t>> PartitionCounts(rd_kafka_t* client,
                                                     const std::vector<std::string>& topics,
                                                     std::chrono::milliseconds timeout,
                                                     const std::string& brokers);

// A librdkafka log line through `logger`: its syslog levels mapped onto ours, and the warning
// that a passthrough setting is ignored by the other kind of client (consumer / producer) made a
// debug line. For log callbacks.
void LogToLogger(Logger& logger, const rd_kafka_t* rk, int level, const char* facility,
                 const char* message);

}  // namespace traceslo::kafka
