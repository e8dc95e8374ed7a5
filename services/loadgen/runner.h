#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "services/loadgen/exporter.h"
#include "services/loadgen/incidents.h"
#include "services/loadgen/otlp_encoder.h"
#include "services/loadgen/report.h"
#include "services/loadgen/topology.h"
#include "traceslo/common/clock.h"

namespace traceslo::loadgen {

struct RunOptions {
  double rate = 10;           // traces per second; trace i is due i / rate after the start
  uint64_t traces = 0;        // how many traces to generate
  uint32_t batch_size = 512;  // spans per request at most; a trace is never split unless larger
  Encoding encoding = Encoding::kProtobuf;
  // A partly filled batch is sent after waiting this long (a trace's spans always travel
  // together, so this only bounds how stale the spans are when they arrive).
  std::chrono::milliseconds linger{200};
  // A request is retried (retryable answers only) until this long after its first attempt.
  std::chrono::milliseconds max_retry_time{30'000};
  std::chrono::milliseconds progress_interval{5'000};
};

// Generates the traces of a run at the target rate, applies the incidents on their schedule,
// batches the spans, sends them through `exporter` with retries and backoff, and accounts for
// every span: acknowledged, failed or (traffic_drop) never sent. One thread does all of it, so
// the traffic depends only on the seed and the options: trace i and its incidents are decided by
// its due time i / rate, never by how late it actually went out.
//
// All time comes from `clock` (pacing and backoff use SleepUntil, so a fake clock runs a
// one-hour scenario instantly). `progress` (nullable) gets a plain status line every
// progress_interval; `log` (nullable) gets the first failure of each kind. `stop` (nullable)
// ends the run early: the traces generated so far are still sent, unless retries are needed.
// `recorder` (nullable) gets every request once, as OTLP/JSON, before it is sent.
// `clock`, `engine`, `exporter`, `progress`, `log`, `stop` and `recorder` are borrowed and must
// outlive Run(); the incidents are copied. Owned by one thread.
class Runner {
 public:
  Runner(const RunOptions& options, const TopologyOptions& topology,
         std::vector<Incident> incidents, const Clock& clock, std::mt19937_64& engine,
         Exporter& exporter, std::FILE* progress, std::FILE* log,
         const std::atomic<bool>* stop = nullptr, RequestRecorder* recorder = nullptr);
  ~Runner();

  // Runs to the end (or until `stop`) and returns the report (settings fields left for the
  // caller, apart from the incidents).
  Report Run();

 private:
  struct InFlight;
  struct Pending {
    InFlight* trace;
    uint32_t span;
  };

  bool Stopped() const;
  void Generate(uint64_t index, std::chrono::steady_clock::time_point due);
  void Flush();
  ExportResult Send(const std::string& body);
  void Resolve();
  void Progress(bool force);

  const RunOptions options_;
  const std::vector<Incident> incidents_;
  const Clock& clock_;
  Random random_;
  Exporter& exporter_;
  std::FILE* const progress_;
  std::FILE* const log_;
  const std::atomic<bool>* const stop_;
  RequestRecorder* const recorder_;
  TraceGenerator generator_;

  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point next_progress_;
  std::deque<std::unique_ptr<InFlight>> in_flight_;  // oldest first
  std::vector<Pending> batch_;
  std::chrono::steady_clock::time_point batch_since_;
  uint64_t next_sequence_ = 0;
  std::vector<uint64_t> affected_;
  std::vector<bool> window_open_;
  std::set<std::string> logged_reasons_;
  Report report_;
};

}  // namespace traceslo::loadgen
