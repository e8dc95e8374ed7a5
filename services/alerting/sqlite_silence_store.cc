#include "traceslo/alerting/sqlite_silence_store.h"

#include <SQLiteCpp/SQLiteCpp.h>

#include <boost/json.hpp>
#include <stdexcept>
#include <utility>

#include "absl/status/status.h"
#include "services/alerting/json_writer.h"

namespace traceslo::alerting {
namespace {

namespace json = boost::json;

// [{"name":"service","value":"payment","equal":true},...]
std::string EncodeMatchers(const std::vector<SilenceMatcher>& matchers) {
  JsonWriter w;
  w.BeginArray();
  for (const SilenceMatcher& m : matchers) {
    w.BeginObject();
    w.Key("name").String(m.name);
    w.Key("value").String(m.value);
    w.Key("equal").Bool(m.equal);
    w.EndObject();
  }
  w.EndArray();
  return w.Take();
}

// Throws std::exception when `text` is not what EncodeMatchers writes.
std::vector<SilenceMatcher> DecodeMatchers(const std::string& text) {
  std::vector<SilenceMatcher> out;
  const json::value root = json::parse(text);
  for (const json::value& v : root.as_array()) {
    const json::object& o = v.as_object();
    out.push_back(SilenceMatcher{.name = std::string(o.at("name").as_string()),
                                 .value = std::string(o.at("value").as_string()),
                                 .equal = o.at("equal").as_bool()});
  }
  return out;
}

constexpr char kColumns[] =
    "id, matchers, starts_at_unix_nano, ends_at_unix_nano, created_by, comment, "
    "created_at_unix_nano";

Silence SilenceAt(const SQLite::Statement& q) {
  return Silence{.id = q.getColumn(0).getString(),
                 .matchers = DecodeMatchers(q.getColumn(1).getString()),
                 .starts_at_unix_nano = q.getColumn(2).getInt64(),
                 .ends_at_unix_nano = q.getColumn(3).getInt64(),
                 .created_by = q.getColumn(4).getString(),
                 .comment = q.getColumn(5).getString(),
                 .created_at_unix_nano = q.getColumn(6).getInt64()};
}

}  // namespace

absl::StatusOr<std::vector<Silence>> SqliteSilenceStore::Load() {
  std::vector<Silence> out;
  std::string undecodable;
  absl::Status status = db_.Transact("cannot read the silences", [&](SQLite::Database& db) {
    SQLite::Statement q(db, std::string("SELECT ") + kColumns + " FROM silences ORDER BY id");
    while (q.executeStep()) {
      try {
        out.push_back(SilenceAt(q));
      } catch (const std::exception& e) {
        if (undecodable.empty()) {
          undecodable = "silence " + q.getColumn(0).getString() + ": " + e.what();
        }
      }
    }
  });
  if (!status.ok()) return status;
  if (!undecodable.empty()) {
    return absl::DataLossError("a stored silence does not decode: " + undecodable);
  }
  return out;
}

absl::Status SqliteSilenceStore::Save(const Silence& silence) {
  const std::string matchers = EncodeMatchers(silence.matchers);
  return db_.Transact("cannot save a silence", [&](SQLite::Database& db) {
    SQLite::Statement q(db, std::string("INSERT OR REPLACE INTO silences (") + kColumns +
                                ") VALUES (?, ?, ?, ?, ?, ?, ?)");
    q.bind(1, silence.id);
    q.bind(2, matchers);
    q.bind(3, silence.starts_at_unix_nano);
    q.bind(4, silence.ends_at_unix_nano);
    q.bind(5, silence.created_by);
    q.bind(6, silence.comment);
    q.bind(7, silence.created_at_unix_nano);
    q.exec();
  });
}

absl::Status SqliteSilenceStore::Expire(const std::string& id, int64_t at_unix_nano) {
  bool found = false;
  absl::Status status = db_.Transact("cannot expire a silence", [&](SQLite::Database& db) {
    SQLite::Statement exists(db, "SELECT 1 FROM silences WHERE id = ?");
    exists.bind(1, id);
    found = exists.executeStep();
    if (!found) return;
    // ExpireSilenceAt() in SQL.
    SQLite::Statement update(
        db,
        "UPDATE silences SET ends_at_unix_nano = ?1, starts_at_unix_nano = "
        "MIN(starts_at_unix_nano, ?1) WHERE id = ?2 AND ends_at_unix_nano > ?1");
    update.bind(1, at_unix_nano);
    update.bind(2, id);
    update.exec();
  });
  if (!status.ok()) return status;
  if (!found) return absl::NotFoundError("no silence " + id);
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> SqliteSilenceStore::Prune(int64_t ended_before_unix_nano) {
  uint64_t rows = 0;
  absl::Status status = db_.Transact("cannot prune the silences", [&](SQLite::Database& db) {
    SQLite::Statement q(db, "DELETE FROM silences WHERE ends_at_unix_nano < ?");
    q.bind(1, ended_before_unix_nano);
    rows = static_cast<uint64_t>(q.exec());
  });
  if (!status.ok()) return status;
  return rows;
}

}  // namespace traceslo::alerting
