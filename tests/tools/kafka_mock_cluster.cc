// traceslo-kafka-mock: librdkafka's in-process mock cluster as a process of its own, so that
// several traceslo processes (and test clients) can share one cluster over loopback.
//
//   traceslo-kafka-mock [--brokers N] [--topic NAME:PARTITIONS]... [--bootstrap-file PATH]
//
// Creates the cluster (brokers 1..N on 127.0.0.1, ephemeral ports) and the topics, prints
// `bootstrap=<host:port,...>` on stdout and, with --bootstrap-file, writes the same list to PATH
// (atomically: tests poll for the file). Then waits for signals:
//   SIGUSR1  every broker goes down (connections dropped and refused)
//   SIGUSR2  every broker comes back
//   SIGTERM, SIGINT  the cluster is destroyed, exit 0
// A bad flag is a message on stderr and exit 2; a cluster that cannot be created, exit 1.
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <signal.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

struct Options {
  int brokers = 3;
  std::vector<std::pair<std::string, int>> topics;
  std::string bootstrap_file;
};

constexpr char kUsage[] =
    "usage: traceslo-kafka-mock [--brokers N] [--topic NAME:PARTITIONS]... "
    "[--bootstrap-file PATH]\n";

bool ParseInt(std::string_view text, int min, int max, int& out) {
  int value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || value < min || value > max) {
    return false;
  }
  out = value;
  return true;
}

// Returns an error message, empty when the flags are good.
std::string Parse(int argc, char** argv, Options& options) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view flag = argv[i];
    if (flag == "--help" || flag == "-h") return "help";
    if (i + 1 >= argc) return std::string(flag) + " needs a value";
    const std::string_view value = argv[++i];
    if (flag == "--brokers") {
      if (!ParseInt(value, 1, 16, options.brokers)) {
        return "--brokers must be an integer between 1 and 16, got '" + std::string(value) + "'";
      }
    } else if (flag == "--topic") {
      const size_t colon = value.rfind(':');
      int partitions = 0;
      if (colon == std::string_view::npos || colon == 0 ||
          !ParseInt(value.substr(colon + 1), 1, 1000, partitions)) {
        return "--topic must be NAME:PARTITIONS with 1 to 1000 partitions, got '" +
               std::string(value) + "'";
      }
      options.topics.emplace_back(std::string(value.substr(0, colon)), partitions);
    } else if (flag == "--bootstrap-file") {
      options.bootstrap_file = std::string(value);
    } else {
      return "unknown flag '" + std::string(flag) + "'";
    }
  }
  return "";
}

bool WriteAtomically(const std::string& path, const std::string& text) {
  const std::string temporary = path + ".tmp";
  std::FILE* file = std::fopen(temporary.c_str(), "w");
  if (file == nullptr) return false;
  const bool written = std::fwrite(text.data(), 1, text.size(), file) == text.size();
  if (std::fclose(file) != 0 || !written) return false;
  return std::rename(temporary.c_str(), path.c_str()) == 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  if (const std::string error = Parse(argc, argv, options); !error.empty()) {
    if (error == "help") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    std::fprintf(stderr, "traceslo-kafka-mock: %s\n%s", error.c_str(), kUsage);
    return 2;
  }

  // Signals are taken by sigwait(): block them before librdkafka starts its threads.
  sigset_t signals;
  sigemptyset(&signals);
  for (int s : {SIGUSR1, SIGUSR2, SIGTERM, SIGINT}) sigaddset(&signals, s);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  char error[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "log_level", "3", error, sizeof error);
  rd_kafka_t* handle = rd_kafka_new(RD_KAFKA_PRODUCER, conf, error, sizeof error);
  if (handle == nullptr) {
    std::fprintf(stderr, "traceslo-kafka-mock: %s\n", error);
    return 1;
  }
  rd_kafka_mock_cluster_t* cluster = rd_kafka_mock_cluster_new(handle, options.brokers);
  if (cluster == nullptr) {
    std::fprintf(stderr, "traceslo-kafka-mock: could not create the mock cluster\n");
    rd_kafka_destroy(handle);
    return 1;
  }
  for (const auto& [topic, partitions] : options.topics) {
    const rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(cluster, topic.c_str(), partitions,
                                                               std::min(options.brokers, 3));
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      std::fprintf(stderr, "traceslo-kafka-mock: topic %s: %s\n", topic.c_str(),
                   rd_kafka_err2str(err));
      rd_kafka_mock_cluster_destroy(cluster);
      rd_kafka_destroy(handle);
      return 1;
    }
  }
  const std::string bootstrap = rd_kafka_mock_cluster_bootstraps(cluster);
  if (!options.bootstrap_file.empty() &&
      !WriteAtomically(options.bootstrap_file, bootstrap + "\n")) {
    std::fprintf(stderr, "traceslo-kafka-mock: cannot write %s: %s\n",
                 options.bootstrap_file.c_str(), std::strerror(errno));
    rd_kafka_mock_cluster_destroy(cluster);
    rd_kafka_destroy(handle);
    return 1;
  }
  std::printf("bootstrap=%s\n", bootstrap.c_str());
  std::fflush(stdout);

  for (;;) {
    int signal = 0;
    if (sigwait(&signals, &signal) != 0) continue;
    if (signal == SIGUSR1) {
      rd_kafka_mock_broker_set_down(cluster, -1);
      std::fprintf(stderr, "traceslo-kafka-mock: brokers down\n");
    } else if (signal == SIGUSR2) {
      rd_kafka_mock_broker_set_up(cluster, -1);
      std::fprintf(stderr, "traceslo-kafka-mock: brokers up\n");
    } else {
      break;
    }
  }
  rd_kafka_mock_cluster_destroy(cluster);
  rd_kafka_destroy(handle);
  return 0;
}
