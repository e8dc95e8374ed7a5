#include "services/kafka/rdkafka_client.h"

#include <algorithm>
#include <string_view>

#include "absl/strings/str_cat.h"

namespace traceslo::kafka {

const std::vector<std::string>& ReservedSettings() {
  static const auto* const kReserved = new std::vector<std::string>{"bootstrap.servers",
                                                                    "metadata.broker.list",
                                                                    "group.id",
                                                                    "enable.auto.commit",
                                                                    "enable.auto.offset.store",
                                                                    "auto.offset.reset",
                                                                    "enable.idempotence",
                                                                    "partition.assignment.strategy",
                                                                    "enable.partition.eof",
                                                                    "isolation.level",
                                                                    "message.timeout.ms",
                                                                    "delivery.timeout.ms",
                                                                    "statistics.interval.ms"};
  return *kReserved;
}

bool IsReservedSetting(std::string_view key) {
  const std::vector<std::string>& reserved = ReservedSettings();
  return std::find(reserved.begin(), reserved.end(), key) != reserved.end();
}

absl::Status CheckNoReservedSettings(const std::map<std::string, std::string>& settings) {
  for (const auto& [key, value] : settings) {
    if (IsReservedSetting(key)) {
      return absl::InvalidArgumentError(
          absl::StrCat("librdkafka setting '", key, "' is set by traceslo"));
    }
  }
  return absl::OkStatus();
}

std::optional<bool> GroupSteadyInStats(std::string_view json) {
  constexpr std::string_view kKey = "\"join_state\"";
  size_t at = json.find(kKey);
  if (at == std::string_view::npos) return std::nullopt;
  at += kKey.size();
  while (at < json.size() && (json[at] == ' ' || json[at] == ':')) ++at;
  if (at >= json.size() || json[at] != '"') return std::nullopt;
  const size_t end = json.find('"', at + 1);
  if (end == std::string_view::npos) return std::nullopt;
  return json.substr(at + 1, end - at - 1) == "steady";
}

absl::Status SetConf(rd_kafka_conf_t* conf, const std::string& key, const std::string& value) {
  char error[512] = {0};
  if (rd_kafka_conf_set(conf, key.c_str(), value.c_str(), error, sizeof error) !=
      RD_KAFKA_CONF_OK) {
    return absl::InvalidArgumentError(absl::StrCat("librdkafka setting '", key, "': ", error));
  }
  return absl::OkStatus();
}

absl::StatusOr<rd_kafka_t*> NewClient(
    rd_kafka_type_t type, std::string_view what, const std::map<std::string, std::string>& settings,
    const std::string& brokers, const std::map<std::string, std::string>& own, void* opaque,
    void (*error_cb)(rd_kafka_t*, int, const char*, void*),
    void (*log_cb)(const rd_kafka_t*, int, const char*, const char*),
    const std::function<void(rd_kafka_conf_t*)>& configure) {
  if (auto status = CheckNoReservedSettings(settings); !status.ok()) return status;
  ConfPtr conf(rd_kafka_conf_new());
  if (auto status = SetConfAll(conf.get(), settings); !status.ok()) return status;
  if (auto status = SetConf(conf.get(), "bootstrap.servers", brokers); !status.ok()) {
    return status;
  }
  if (auto status = SetConfAll(conf.get(), own); !status.ok()) return status;
  rd_kafka_conf_set_opaque(conf.get(), opaque);
  rd_kafka_conf_set_error_cb(conf.get(), error_cb);
  rd_kafka_conf_set_log_cb(conf.get(), log_cb);
  if (configure) configure(conf.get());
  char error[512] = {0};
  rd_kafka_t* client = rd_kafka_new(type, conf.get(), error, sizeof error);
  if (client == nullptr)
    return absl::InvalidArgumentError(absl::StrCat("kafka ", std::string(what), ": ", error));
  conf.release();  // owned by the handle now
  return client;
}

absl::Status SetConfAll(rd_kafka_conf_t* conf, const std::map<std::string, std::string>& settings) {
  for (const auto& [key, value] : settings) {
    if (absl::Status status = SetConf(conf, key, value); !status.ok()) return status;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<int32_t>> PartitionCounts(rd_kafka_t* client,
                                                     const std::vector<std::string>& topics,
                                                     std::chrono::milliseconds timeout,
                                                     const std::string& brokers) {
  const rd_kafka_metadata_t* metadata = nullptr;
  const rd_kafka_resp_err_t err =
      rd_kafka_metadata(client, 1, nullptr, &metadata, static_cast<int>(timeout.count()));
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return absl::UnavailableError(
        absl::StrCat("kafka metadata from ", brokers, ": ", rd_kafka_err2str(err)));
  }
  std::vector<int32_t> counts(topics.size(), 0);
  for (int i = 0; i < metadata->topic_cnt; ++i) {
    const rd_kafka_metadata_topic_t& topic = metadata->topics[i];
    if (topic.err != RD_KAFKA_RESP_ERR_NO_ERROR) continue;
    for (size_t t = 0; t < topics.size(); ++t) {
      if (topics[t] == topic.topic) counts[t] = topic.partition_cnt;
    }
  }
  rd_kafka_metadata_destroy(metadata);
  for (size_t t = 0; t < topics.size(); ++t) {
    if (counts[t] <= 0) {
      return absl::NotFoundError(
          absl::StrCat("kafka topic '", topics[t], "' does not exist on ", brokers));
    }
  }
  return counts;
}

void LogToLogger(Logger& logger, const rd_kafka_t* rk, int level, const char* facility,
                 const char* message) {
  LogLevel ours = level <= 3   ? LogLevel::kError
                  : level == 4 ? LogLevel::kWarn
                  : level <= 6 ? LogLevel::kInfo
                               : LogLevel::kDebug;
  // The passthrough settings go to a stage's consumer and producer alike: each ignores the
  // other's, as it should.
  if (std::string_view(facility) == "CONFWARN" &&
      std::string_view(message).find("will be ignored by this") != std::string_view::npos) {
    ours = LogLevel::kDebug;
  }
  logger.Log(ours, "librdkafka",
             {{"client", rd_kafka_name(rk)}, {"facility", facility}, {"msg", message}});
}

}  // namespace traceslo::kafka
