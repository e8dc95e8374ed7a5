#pragma once

// Reading and checking SLO rule files: every problem is reported with its file:line:col, all of
// them at once (not only the first), for `traceslo check`, start-up and reload.

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "traceslo/slo/rule.h"

namespace traceslo::slo {

// Limits on what one check reads; they bound the work a broken or hostile input can cause.
inline constexpr size_t kMaxRuleFileBytes = size_t{1} << 20;  // per file
inline constexpr size_t kMaxRuleFiles = 1'000;                // per check
inline constexpr size_t kMaxSlosPerFile = 100;

// Parses one rule file's text. Every problem found is appended to `diagnostics` (with
// `source_name` as the file), in document order; the RuleFile is returned only when there was
// none, otherwise InvalidArgument with the first problem's "file:line:col: message" (and how many
// more). Cross-file checks (one service per file) are CheckRuleFiles()'s. Pure: no file or
// environment reads (rule files do not expand ${VAR}), never throws.
absl::StatusOr<RuleFile> ParseRuleFile(std::string_view yaml, std::string_view source_name,
                                       std::vector<Diagnostic>& diagnostics);

struct CheckResult {
  std::vector<RuleFile> files;          // the files without problems, in path order
  std::vector<Diagnostic> diagnostics;  // sorted by file, then line, then column
  size_t files_checked = 0;             // files read (with or without problems)
  size_t slos_checked = 0;              // entries of `slos` lists, valid or not
  bool ok() const { return diagnostics.empty(); }
};

// Reads and checks rule files. Each argument is a file, a directory (its *.yaml and *.yml files,
// not recursive) or a glob (`rules/*.yaml`); a missing file, an empty directory and a glob that
// matches nothing are problems too. Files are read in path order, each once, at most
// kMaxRuleFiles of them; a service defined by a second file is reported there. Never throws.
CheckResult CheckRuleFiles(const std::vector<std::string>& paths);

// Expands file, directory and glob arguments as CheckRuleFiles() does: sorted, each file once
// however it was named, at most `max_files`. A missing argument is kept (reading it reports the
// problem); a directory without *.yaml or *.yml files, a pattern that matches nothing and files
// over the limit are appended to `diagnostics` at 1:1. `noun` names the files in those messages
// ("rule files", "test files").
std::vector<std::string> ResolveYamlPaths(const std::vector<std::string>& args, size_t max_files,
                                          std::string_view noun,
                                          std::vector<Diagnostic>& diagnostics);

}  // namespace traceslo::slo
