#pragma once

// Helpers of the storage tests: a fresh directory per test, a second raw connection to the
// database file (to read pragmas, count rows and break the file in ways the store's API cannot),
// and metric look-ups.

#include <SQLiteCpp/SQLiteCpp.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdint>
#include <filesystem>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "prometheus/metric_family.h"

namespace traceslo::storage {

// A new directory under ::testing::TempDir(), removed with its contents when the object goes.
class ScratchDir {
 public:
  ScratchDir() {
    std::string pattern = ::testing::TempDir() + "traceslo-storage-XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr) {
      ADD_FAILURE() << "mkdtemp " << pattern;
    }
    path_ = pattern;
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::string File(std::string_view name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// A second connection to a database file, as another process would open it. SQLiteCpp throws on
// errors, which gtest reports as a failure of the test that used it.
class RawDb {
 public:
  explicit RawDb(const std::string& path) : db_(path, SQLite::OPEN_READWRITE) {
    db_.setBusyTimeout(5'000);
  }

  void Exec(const std::string& sql) { db_.exec(sql); }
  int64_t Int(const std::string& sql) { return db_.execAndGet(sql).getInt64(); }
  std::string Text(const std::string& sql) { return db_.execAndGet(sql).getString(); }
  SQLite::Database& db() { return db_; }

 private:
  SQLite::Database db_;
};

// The value of a counter or gauge of `name` whose labels include `label` = `value` (any when
// `label` is empty); NaN (and a failure) when absent.
inline double MetricValue(const std::vector<prometheus::MetricFamily>& families,
                          std::string_view name, std::string_view label = "",
                          std::string_view value = "") {
  for (const prometheus::MetricFamily& f : families) {
    if (f.name != name) continue;
    for (const prometheus::ClientMetric& m : f.metric) {
      bool match = label.empty();
      for (const prometheus::ClientMetric::Label& l : m.label) {
        if (l.name == label && l.value == value) match = true;
      }
      if (!match) continue;
      return f.type == prometheus::MetricType::Counter ? m.counter.value : m.gauge.value;
    }
  }
  ADD_FAILURE() << "no metric " << name << "{" << label << "=" << value << "}";
  return std::numeric_limits<double>::quiet_NaN();
}

}  // namespace traceslo::storage
