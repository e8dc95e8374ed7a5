#include "services/loadgen/runner.h"

#include <algorithm>
#include <cmath>
#include <utility>

namespace traceslo::loadgen {
namespace {

constexpr std::chrono::milliseconds kFirstBackoff{100};
constexpr std::chrono::milliseconds kMaxBackoff{5'000};

int64_t UnixNanos(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

double Seconds(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

}  // namespace

struct Runner::InFlight {
  GeneratedTrace trace;
  std::vector<uint64_t> sequence;  // per span: when the receiver got it, among all spans
  std::vector<uint8_t> state;      // per span: 0 not answered yet, 1 acknowledged, 2 failed
  size_t unresolved = 0;
};

Runner::Runner(const RunOptions& options, const TopologyOptions& topology,
               std::vector<Incident> incidents, const Clock& clock, std::mt19937_64& engine,
               Exporter& exporter, std::FILE* progress, std::FILE* log,
               const std::atomic<bool>* stop, RequestRecorder* recorder)
    : options_(options),
      incidents_(std::move(incidents)),
      clock_(clock),
      random_(engine),
      exporter_(exporter),
      progress_(progress),
      log_(log),
      stop_(stop),
      recorder_(recorder),
      generator_(topology),
      affected_(incidents_.size(), 0),
      window_open_(incidents_.size(), false) {
  report_.incidents = incidents_;
  report_.incident_records.resize(incidents_.size());
}

Runner::~Runner() = default;

bool Runner::Stopped() const { return stop_ != nullptr && stop_->load(); }

Report Runner::Run() {
  start_ = clock_.SteadyNow();
  report_.start_unix_nano = UnixNanos(clock_.Now());
  report_.traces_planned = options_.traces;
  next_progress_ = start_ + options_.progress_interval;
  const double interval_ns = 1e9 / options_.rate;
  auto due = [&](uint64_t i) {
    return start_ + std::chrono::nanoseconds(std::llround(static_cast<double>(i) * interval_ns));
  };
  // Waits until `when`, sending a partly filled batch whose time is up on the way.
  auto wait_until = [&](std::chrono::steady_clock::time_point when) {
    while (!batch_.empty() && batch_since_ + options_.linger < when) {
      clock_.SleepUntil(batch_since_ + options_.linger);
      Flush();
    }
    clock_.SleepUntil(when);
  };

  for (uint64_t i = 0; i < options_.traces && !Stopped(); ++i) {
    const auto when = due(i);
    wait_until(when);
    Generate(i, when);
    Progress(false);
  }
  // The run lasts traces / rate, like the schedule says.
  if (!Stopped()) wait_until(due(options_.traces));
  while (!batch_.empty()) Flush();

  const int64_t end = UnixNanos(clock_.Now());
  for (size_t k = 0; k < incidents_.size(); ++k) {
    if (window_open_[k]) report_.incident_records[k].end_unix_nano = end;
    report_.incident_records[k].affected = affected_[k];
  }
  report_.end_unix_nano = end;
  report_.elapsed_seconds = Seconds(clock_.SteadyNow() - start_);
  report_.interrupted = Stopped();
  Progress(true);
  return std::move(report_);
}

void Runner::Generate(uint64_t index, std::chrono::steady_clock::time_point due) {
  const std::chrono::nanoseconds offset = due - start_;
  const int64_t now = UnixNanos(clock_.Now());
  for (size_t k = 0; k < incidents_.size(); ++k) {
    IncidentRecord& record = report_.incident_records[k];
    if (incidents_[k].ActiveAt(offset)) {
      ++record.traces;
      if (!window_open_[k]) {
        window_open_[k] = true;
        record.start_unix_nano = now;
      }
    } else if (window_open_[k]) {
      window_open_[k] = false;
      record.end_unix_nano = now;
    }
  }
  const Effects effects = EffectsAt(incidents_, offset);

  auto flight = std::make_unique<InFlight>();
  flight->trace = generator_.Generate(index, random_, effects, affected_);
  GeneratedTrace& trace = flight->trace;
  // The trace's latest span ends now.
  trace.anchor_unix_nano = now - trace.EndUs() * 1000;
  const size_t n = trace.spans.size();
  ++report_.traces.generated;
  report_.spans.generated += n;
  if (trace.dropped) {
    ++report_.traces.dropped;
    report_.spans.dropped += n;
    return;
  }
  ++report_.traces.sent;
  flight->sequence.assign(n, 0);
  flight->state.assign(n, 0);
  flight->unresolved = n;

  // A trace's spans travel in one request, so the receiver never sees half a trace go idle.
  if (!batch_.empty() && batch_.size() + n > options_.batch_size) Flush();
  if (batch_.empty()) batch_since_ = clock_.SteadyNow();
  for (size_t j = 0; j < n; ++j) batch_.push_back(Pending{flight.get(), static_cast<uint32_t>(j)});
  in_flight_.push_back(std::move(flight));
  if (n > options_.batch_size) {
    // Larger than a request: its requests go out back to back.
    while (!batch_.empty()) Flush();
  } else if (batch_.size() >= options_.batch_size) {
    Flush();
  }
}

void Runner::Flush() {
  const size_t count = std::min<size_t>(batch_.size(), options_.batch_size);
  std::vector<BatchSpan> chunk;
  chunk.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    const Pending& p = batch_[i];
    chunk.push_back(BatchSpan{&p.trace->trace, &p.trace->trace.spans[p.span]});
  }
  const std::vector<uint32_t> order = WireOrder(chunk);
  std::vector<BatchSpan> ordered;
  ordered.reserve(count);
  for (uint32_t i : order) {
    ordered.push_back(chunk[i]);
    const Pending& p = batch_[i];
    p.trace->sequence[p.span] = next_sequence_++;
  }
  const std::string body = Encode(options_.encoding, ordered);
  if (recorder_ != nullptr) {
    recorder_->Record(options_.encoding == Encoding::kJson ? body
                                                           : Encode(Encoding::kJson, ordered));
  }
  report_.spans.sent += count;
  const ExportResult result = Send(body);
  const bool ok = result.kind == ExportResult::Kind::kOk;
  if (ok) {
    const uint64_t rejected = std::clamp<int64_t>(result.rejected_spans, 0, count);
    report_.spans.rejected += rejected;
    report_.spans.acknowledged += count - rejected;
  } else {
    report_.spans.failed += count;
  }
  for (size_t i = 0; i < count; ++i) {
    const Pending& p = batch_[i];
    p.trace->state[p.span] = ok ? 1 : 2;
    --p.trace->unresolved;
  }
  batch_.erase(batch_.begin(), batch_.begin() + static_cast<ptrdiff_t>(count));
  if (!batch_.empty()) batch_since_ = clock_.SteadyNow();
  Resolve();
}

ExportResult Runner::Send(const std::string& body) {
  const auto deadline = clock_.SteadyNow() + options_.max_retry_time;
  std::chrono::milliseconds backoff = kFirstBackoff;
  for (;;) {
    ++report_.requests.sent;
    report_.requests.bytes += body.size();
    ExportResult result = exporter_.Export(body);
    if (result.kind == ExportResult::Kind::kOk) {
      ++report_.requests.succeeded;
      return result;
    }
    ++report_.requests.failures[result.reason];
    const bool retryable = result.kind == ExportResult::Kind::kRetryable;
    if (log_ != nullptr && logged_reasons_.insert(result.reason).second) {
      std::fprintf(log_, "traceslo-loadgen: export failed (%s): %s%s\n", result.reason.c_str(),
                   result.message.c_str(),
                   retryable ? " (retrying; further failures of this kind are only counted)"
                             : " (not retryable; further failures of this kind are only counted)");
      std::fflush(log_);
    }
    const auto wait = std::max(backoff, result.retry_after.value_or(std::chrono::milliseconds(0)));
    backoff = std::min(backoff * 2, kMaxBackoff);
    const auto now = clock_.SteadyNow();
    if (!retryable || Stopped() || now + wait > deadline) {
      ++report_.requests.failed;
      return result;
    }
    ++report_.requests.retries;
    clock_.SleepUntil(now + wait);
  }
}

void Runner::Resolve() {
  std::vector<const GeneratedSpan*> received;
  while (!in_flight_.empty() && in_flight_.front()->unresolved == 0) {
    const InFlight& flight = *in_flight_.front();
    received.clear();
    bool all = true;
    std::vector<size_t> indices;
    for (size_t j = 0; j < flight.trace.spans.size(); ++j) {
      if (flight.state[j] == 1) {
        indices.push_back(j);
      } else {
        all = false;
      }
    }
    std::sort(indices.begin(), indices.end(),
              [&](size_t a, size_t b) { return flight.sequence[a] < flight.sequence[b]; });
    for (size_t j : indices) received.push_back(&flight.trace.spans[j]);
    report_.expected.AddTrace(received);
    if (all) {
      ++report_.traces.acknowledged;
    } else {
      ++report_.traces.failed;
    }
    in_flight_.pop_front();
  }
}

void Runner::Progress(bool force) {
  if (progress_ == nullptr) return;
  const auto now = clock_.SteadyNow();
  if (!force && now < next_progress_) return;
  while (next_progress_ <= now) next_progress_ += options_.progress_interval;
  std::fprintf(progress_,
               "traceslo-loadgen: %.1fs traces %llu/%llu spans acknowledged %llu failed %llu "
               "requests %llu retries %llu%s\n",
               Seconds(now - start_), static_cast<unsigned long long>(report_.traces.generated),
               static_cast<unsigned long long>(options_.traces),
               static_cast<unsigned long long>(report_.spans.acknowledged),
               static_cast<unsigned long long>(report_.spans.failed),
               static_cast<unsigned long long>(report_.requests.sent),
               static_cast<unsigned long long>(report_.requests.retries), force ? " done" : "");
  std::fflush(progress_);
}

}  // namespace traceslo::loadgen
