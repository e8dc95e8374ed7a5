// traceslo-loadgen: realistic OTLP traffic with incidents, and the report of what traceslo
// should count for it. The object graph is wired here and only here.
//
// Threads: main generates, paces and sends (Runner); gRPC's own threads serve the channel when
// --protocol grpc. Nothing else. A record-only run (--record without --endpoint) sends nothing
// and runs on a ManualClock, so it takes no real time.
#include <atomic>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <memory>
#include <random>
#include <string>

#include "services/loadgen/options.h"
#include "services/loadgen/otlp_grpc_exporter.h"
#include "services/loadgen/otlp_http_exporter.h"
#include "services/loadgen/recording.h"
#include "services/loadgen/report.h"
#include "services/loadgen/runner.h"
#include "traceslo/common/clock.h"
#include "traceslo/common/manual_clock.h"

namespace {

// Set by SIGINT/SIGTERM; the run stops after its current wait and still writes the report. A
// signal handler can reach nothing else, hence the one global of the program.
std::atomic<bool> g_stop{false};

extern "C" void OnSignal(int) { g_stop.store(true); }

int Fail(const std::string& message, int code) {
  std::fprintf(stderr, "traceslo-loadgen: %s\n", message.c_str());
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace traceslo::loadgen;
  ParsedFlags flags = ParseFlags(argc, argv);
  if (!flags.run) {
    std::fputs(flags.output.c_str(), flags.exit_code == 0 ? stdout : stderr);
    if (flags.exit_code != 0) std::fputc('\n', stderr);
    return flags.exit_code;
  }
  const LoadgenOptions& o = flags.options;

  // Open the report file first: a typo in its path should not cost a whole run.
  std::ofstream report_file;
  if (o.report_file != "-") {
    report_file.open(o.report_file, std::ios::binary | std::ios::trunc);
    if (!report_file) return Fail("--report: cannot write " + o.report_file, 2);
  }

  std::unique_ptr<JsonLinesRecorder> recorder;
  if (!o.record_file.empty()) {
    auto created = JsonLinesRecorder::Create(o.record_file);
    if (!created.ok()) return Fail("--record: " + std::string(created.status().message()), 2);
    recorder = *std::move(created);
  }

  traceslo::SystemClock system_clock;
  traceslo::ManualClock simulated_clock(o.start_time.value_or(system_clock.Now()));
  const traceslo::Clock& clock =
      o.send ? static_cast<const traceslo::Clock&>(system_clock) : simulated_clock;
  std::unique_ptr<Exporter> exporter;
  if (!o.send) {
    exporter = std::make_unique<DiscardingExporter>();
  } else if (o.protocol == Protocol::kGrpc) {
    exporter = std::make_unique<OtlpGrpcExporter>(o.endpoint, o.headers, o.gzip, o.timeout, clock);
  } else {
    std::string host;
    uint16_t port = 0;
    (void)SplitHostPort(o.endpoint, host, port);  // validated with the flags
    exporter = std::make_unique<OtlpHttpExporter>(
        std::make_unique<BlockingHttpClient>(host, port, o.timeout),
        o.protocol == Protocol::kHttpJson ? Encoding::kJson : Encoding::kProtobuf, o.headers,
        o.gzip);
  }

  std::signal(SIGPIPE, SIG_IGN);
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);

  // Without --seed, a fresh one: two runs against one receiver must not repeat trace ids.
  const uint64_t seed =
      o.seed.value_or(uint64_t{std::random_device{}()} << 32 | std::random_device{}());
  if (!o.quiet)
    std::fprintf(stderr, "traceslo-loadgen: seed %llu\n", static_cast<unsigned long long>(seed));
  std::mt19937_64 engine(seed);
  RunOptions run{
      .rate = o.rate,
      .traces = o.traces,
      .batch_size = o.batch_size,
      .encoding = o.protocol == Protocol::kHttpJson ? Encoding::kJson : Encoding::kProtobuf,
      .max_retry_time = o.max_retry_time};
  Runner runner(run, TopologyOptions{.spans_per_trace = o.spans_per_trace}, o.incidents, clock,
                engine, *exporter, o.quiet ? nullptr : stderr, stderr, &g_stop, recorder.get());
  Report report = runner.Run();
  if (recorder != nullptr) {
    if (absl::Status status = recorder->Close(); !status.ok()) {
      return Fail("--record: " + std::string(status.message()), 1);
    }
  }
  report.endpoint = o.send ? o.endpoint : "";
  report.protocol = std::string(ProtocolName(o.protocol));
  report.seed = seed;
  report.rate = o.rate;
  report.spans_per_trace = o.spans_per_trace;
  report.batch_size = o.batch_size;
  report.gzip = o.gzip;

  const std::string json = ReportToJson(report);
  if (o.report_file == "-") {
    std::fwrite(json.data(), 1, json.size(), stdout);
    std::fflush(stdout);
  } else {
    report_file << json;
    report_file.close();
    if (!report_file) return Fail("--report: cannot write " + o.report_file, 1);
  }
  return report.spans.failed == 0 && report.spans.rejected == 0 ? 0 : 1;
}
