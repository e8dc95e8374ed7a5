// traceslo-kafka-produce: writes a recording (OTLP/JSON lines, as traceslo-loadgen --record and
// the Collector's file exporter write them) to a Kafka topic the way the OpenTelemetry
// Collector's Kafka exporter does with `partition_traces_by_id: true` and `encoding: otlp_json`:
// each request split into one record per (resource, scope, trace id), keyed by the trace id as
// 32 lower-case hex digits, placed by librdkafka's fnv1a partitioner (Sarama's). Each record's
// timestamp is its request's time as `traceslo replay` takes it (the latest span end), so stream
// time in Kafka mode follows the recording. With --drain, every partition then gets one empty
// request stamped drain after the last request (the design's in-band tick): stage 1 seals every
// epoch up to it without waiting for the clock. With --records-per-second, the records go out at
// that pace (the drain records at once after them), so a recording flows for a while, as a
// Collector's exporter writes it, while consumers join and leave; 0 (the default) does not pace.
//
//   traceslo-kafka-produce --bootstrap-file FILE --topic otlp_spans --input corpus.jsonl
//       [--drain-seconds 120] [--records-per-second 500]
//
// Prints "records=N requests=M partitions=P last_ms=T" on success; errors on stderr, exit 1
// (bad input or a failed delivery) or 2 (bad flags).
#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <boost/json.hpp>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "traceslo/common/clock.h"

namespace {

int Usage(const std::string& message) {
  std::fprintf(stderr, "traceslo-kafka-produce: %s\n", message.c_str());
  return 2;
}

int64_t Int64Of(const boost::json::value* v) {
  if (v == nullptr) return 0;
  if (v->is_string()) return std::strtoll(v->as_string().c_str(), nullptr, 10);
  if (v->is_int64()) return v->as_int64();
  if (v->is_uint64()) return static_cast<int64_t>(v->as_uint64());
  return 0;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

struct Record {
  std::string key;
  std::string value;
};

// The records of one request line, and its time (the latest span end, ms).
bool Split(const std::string& line, std::vector<Record>& records, int64_t& time_ms,
           std::string& error) {
  boost::system::error_code ec;
  boost::json::value doc = boost::json::parse(line, ec);
  if (ec || !doc.is_object()) {
    error = "not a JSON object";
    return false;
  }
  const boost::json::array* resource_spans = doc.as_object().if_contains("resourceSpans")
                                                 ? doc.as_object()["resourceSpans"].if_array()
                                                 : nullptr;
  if (resource_spans == nullptr) {
    error = "no resourceSpans";
    return false;
  }
  int64_t latest_ns = 0;
  for (const boost::json::value& rs : *resource_spans) {
    if (!rs.is_object()) continue;
    const boost::json::object& rs_obj = rs.as_object();
    const boost::json::value* scope_spans = rs_obj.if_contains("scopeSpans");
    if (scope_spans == nullptr || !scope_spans->is_array()) continue;
    for (const boost::json::value& ss : scope_spans->as_array()) {
      if (!ss.is_object()) continue;
      const boost::json::object& ss_obj = ss.as_object();
      const boost::json::value* spans = ss_obj.if_contains("spans");
      if (spans == nullptr || !spans->is_array()) continue;
      std::map<std::string, boost::json::array> by_trace;  // first-seen order is not needed
      std::vector<std::string> order;
      for (const boost::json::value& span : spans->as_array()) {
        if (!span.is_object()) continue;
        const boost::json::value* id = span.as_object().if_contains("traceId");
        const std::string trace = id != nullptr && id->is_string() ? Lower(id->as_string()) : "";
        latest_ns = std::max(latest_ns, Int64Of(span.as_object().if_contains("endTimeUnixNano")));
        auto [it, inserted] = by_trace.try_emplace(trace);
        if (inserted) order.push_back(trace);
        it->second.push_back(span);
      }
      for (const std::string& trace : order) {
        boost::json::object scope_out;
        if (const boost::json::value* scope = ss_obj.if_contains("scope")) {
          scope_out["scope"] = *scope;
        }
        scope_out["spans"] = std::move(by_trace[trace]);
        boost::json::object rs_out;
        if (const boost::json::value* resource = rs_obj.if_contains("resource")) {
          rs_out["resource"] = *resource;
        }
        rs_out["scopeSpans"] = boost::json::array{std::move(scope_out)};
        boost::json::object request;
        request["resourceSpans"] = boost::json::array{std::move(rs_out)};
        records.push_back(Record{trace, boost::json::serialize(request)});
      }
    }
  }
  time_ms = latest_ns / 1'000'000;
  return true;
}

struct Delivery {
  uint64_t delivered = 0;
  uint64_t failed = 0;
  std::string first_error;
};

void OnDelivery(rd_kafka_t*, const rd_kafka_message_t* message, void* opaque) {
  auto* delivery = static_cast<Delivery*>(opaque);
  if (message->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    ++delivery->delivered;
  } else {
    if (delivery->failed++ == 0) delivery->first_error = rd_kafka_err2str(message->err);
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string bootstrap;
  std::string topic = "otlp_spans";
  std::string input;
  int64_t drain_seconds = -1;
  int64_t records_per_second = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) return Usage(flag + " needs a value");
    const std::string value = argv[++i];
    if (flag == "--bootstrap") {
      bootstrap = value;
    } else if (flag == "--bootstrap-file") {
      std::ifstream in(value);
      if (!std::getline(in, bootstrap)) return Usage("cannot read " + value);
      if (bootstrap.starts_with("bootstrap=")) bootstrap = bootstrap.substr(10);
    } else if (flag == "--topic") {
      topic = value;
    } else if (flag == "--input") {
      input = value;
    } else if (flag == "--drain-seconds") {
      char* end = nullptr;
      drain_seconds = std::strtoll(value.c_str(), &end, 10);
      if (end == value.c_str() || *end != '\0' || drain_seconds < 0) {
        return Usage("--drain-seconds must be a whole number >= 0");
      }
    } else if (flag == "--records-per-second") {
      char* end = nullptr;
      records_per_second = std::strtoll(value.c_str(), &end, 10);
      if (end == value.c_str() || *end != '\0' || records_per_second < 0) {
        return Usage("--records-per-second must be a whole number >= 0");
      }
    } else {
      return Usage("unknown flag " + flag);
    }
  }
  if (bootstrap.empty() || input.empty()) return Usage("--bootstrap(-file) and --input are needed");
  std::ifstream in(input);
  if (!in) return Usage("cannot open " + input);

  Delivery delivery;
  char error[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  for (const auto& [key, value] :
       std::map<std::string, std::string>{{"bootstrap.servers", bootstrap},
                                          {"partitioner", "fnv1a"},
                                          {"enable.idempotence", "true"},
                                          {"linger.ms", "5"}}) {
    if (rd_kafka_conf_set(conf, key.c_str(), value.c_str(), error, sizeof error) !=
        RD_KAFKA_CONF_OK) {
      return Usage(key + ": " + error);
    }
  }
  rd_kafka_conf_set_opaque(conf, &delivery);
  rd_kafka_conf_set_dr_msg_cb(conf, &OnDelivery);
  rd_kafka_t* producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, error, sizeof error);
  if (producer == nullptr) return Usage(error);

  const rd_kafka_metadata_t* metadata = nullptr;
  if (rd_kafka_metadata(producer, 1, nullptr, &metadata, 10'000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    std::fprintf(stderr, "traceslo-kafka-produce: no metadata from %s\n", bootstrap.c_str());
    return 1;
  }
  int partitions = 0;
  for (int i = 0; i < metadata->topic_cnt; ++i) {
    if (topic == metadata->topics[i].topic) partitions = metadata->topics[i].partition_cnt;
  }
  rd_kafka_metadata_destroy(metadata);
  if (partitions <= 0) {
    std::fprintf(stderr, "traceslo-kafka-produce: no topic %s\n", topic.c_str());
    return 1;
  }

  auto produce = [&](int32_t partition, const std::string& key, const std::string& value,
                     int64_t timestamp_ms) {
    while (true) {
      const rd_kafka_resp_err_t err =
          rd_kafka_producev(producer, RD_KAFKA_V_TOPIC(topic.c_str()),
                            RD_KAFKA_V_PARTITION(partition), RD_KAFKA_V_KEY(key.data(), key.size()),
                            RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
                            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                            RD_KAFKA_V_TIMESTAMP(timestamp_ms), RD_KAFKA_V_END);
      if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        rd_kafka_poll(producer, 100);
        continue;
      }
      return err;
    }
  };

  // Paced: record n goes out no earlier than n / records_per_second after the first; delivery
  // reports are served meanwhile.
  const traceslo::SystemClock clock;
  const auto started = clock.SteadyNow();
  auto pace = [&](uint64_t sent) {
    if (records_per_second <= 0) return;
    const auto due = started + std::chrono::microseconds(static_cast<int64_t>(sent) * 1'000'000 /
                                                         records_per_second);
    for (auto now = clock.SteadyNow(); now < due; now = clock.SteadyNow()) {
      const auto wait = std::chrono::ceil<std::chrono::milliseconds>(due - now).count();
      rd_kafka_poll(producer, static_cast<int>(std::min<int64_t>(wait, 100)));
    }
  };

  uint64_t records = 0;
  uint64_t requests = 0;
  int64_t last_ms = 0;
  std::string line;
  size_t line_number = 0;
  while (std::getline(in, line)) {
    ++line_number;
    if (line.empty()) continue;
    std::vector<Record> split;
    int64_t time_ms = 0;
    std::string why;
    if (!Split(line, split, time_ms, why)) {
      std::fprintf(stderr, "traceslo-kafka-produce: %s:%zu: %s\n", input.c_str(), line_number,
                   why.c_str());
      return 1;
    }
    ++requests;
    last_ms = std::max(last_ms, time_ms);
    for (const Record& record : split) {
      pace(records);
      // RD_KAFKA_PARTITION_UA: the configured partitioner (fnv1a over the key) places it.
      if (const rd_kafka_resp_err_t err =
              produce(RD_KAFKA_PARTITION_UA, record.key, record.value, time_ms)) {
        std::fprintf(stderr, "traceslo-kafka-produce: produce: %s\n", rd_kafka_err2str(err));
        return 1;
      }
      ++records;
    }
    rd_kafka_poll(producer, 0);
  }
  if (drain_seconds >= 0) {
    const std::string empty = "{\"resourceSpans\":[]}";
    for (int32_t p = 0; p < partitions; ++p) {
      if (const rd_kafka_resp_err_t err = produce(p, "", empty, last_ms + drain_seconds * 1'000)) {
        std::fprintf(stderr, "traceslo-kafka-produce: produce: %s\n", rd_kafka_err2str(err));
        return 1;
      }
    }
  }
  rd_kafka_flush(producer, 60'000);
  rd_kafka_destroy(producer);
  if (delivery.failed > 0) {
    std::fprintf(stderr, "traceslo-kafka-produce: %llu records not delivered: %s\n",
                 static_cast<unsigned long long>(delivery.failed), delivery.first_error.c_str());
    return 1;
  }
  std::printf("records=%llu requests=%llu partitions=%d last_ms=%lld\n",
              static_cast<unsigned long long>(records), static_cast<unsigned long long>(requests),
              partitions, static_cast<long long>(last_ms));
  return 0;
}
