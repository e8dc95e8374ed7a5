#include "services/traceslo/test_command.h"

#include <cstdio>
#include <exception>
#include <new>
#include <set>
#include <string>

#include "traceslo/config/config.h"
#include "traceslo/slo/rule_file.h"
#include "traceslo/slo/rule_test.h"

namespace traceslo {
namespace {

// Failing expectations shown per test; the rest are counted.
constexpr size_t kMaxFailuresShown = 10;

std::string Counted(size_t n, const char* noun) {
  return std::to_string(n) + " " + noun + (n == 1 ? "" : "s");
}

void PrintResult(const slo::RuleTestResult& result) {
  std::printf("%s %s: %s\n", result.passed() ? "PASS" : "FAIL", result.file.c_str(),
              result.name.c_str());
  for (size_t i = 0; i < result.failures.size() && i < kMaxFailuresShown; ++i) {
    const slo::ExpectationFailure& failure = result.failures[i];
    std::printf("  %s:%d:%d: at %s:\n", result.file.c_str(), failure.position.line,
                failure.position.column, config::FormatDuration(failure.at).c_str());
    if (failure.alerts_differ) {
      std::printf("    expected: %s\n", slo::FormatAlertList(failure.expected_alerts).c_str());
      std::printf("    got:      %s\n", slo::FormatAlertList(failure.got_alerts).c_str());
    }
    for (const std::string& figure : failure.figures) std::printf("    %s\n", figure.c_str());
  }
  if (result.failures.size() > kMaxFailuresShown) {
    std::printf("  ... and %s more\n",
                Counted(result.failures.size() - kMaxFailuresShown, "failing expectation").c_str());
  }
  std::fflush(stdout);
}

}  // namespace

CLI::App* AddTestCommand(CLI::App& app, std::vector<std::string>& paths) {
  CLI::App* test = app.add_subcommand(
      "test", "Run SLO rule unit tests (traffic in, alerts expected) on simulated time.");
  test->add_option("paths", paths,
                   "Test files, directories (their *.yaml, *.yml) or globs (default "
                   "rules/tests/*.yaml)");
  return test;
}

int Test(const std::vector<std::string>& paths) {
  size_t files = 0;
  size_t bad_files = 0;
  size_t passed = 0;
  size_t failed = 0;
  size_t unmatched = 0;  // paths that named no test file
  // A rule file named by several test files is reported once.
  std::set<std::string> shown;
  auto report = [&shown](const slo::Diagnostic& diagnostic) {
    const std::string line = diagnostic.ToString();
    if (shown.insert(line).second) std::fprintf(stderr, "%s\n", line.c_str());
  };
  try {
    std::vector<slo::Diagnostic> missing;
    const std::vector<std::string> test_files = slo::ResolveYamlPaths(
        paths.empty() ? std::vector<std::string>{"rules/tests/*.yaml"} : paths, slo::kMaxTestFiles,
        "test files", missing);
    for (const slo::Diagnostic& diagnostic : missing) report(diagnostic);
    unmatched = missing.size();
    for (const std::string& path : test_files) {
      ++files;
      slo::LoadedRuleTestFile loaded = slo::LoadRuleTestFile(path);
      for (const slo::Diagnostic& diagnostic : loaded.diagnostics) report(diagnostic);
      if (!loaded.file) {
        ++bad_files;
        continue;
      }
      for (const slo::RuleTest& test : loaded.file->tests) {
        const slo::RuleTestResult result = slo::RunRuleTest(*loaded.file, test, loaded.slos);
        PrintResult(result);
        ++(result.passed() ? passed : failed);
      }
    }
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "traceslo test: out of memory\n");
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "traceslo test: %s\n", e.what());
    return 2;
  }
  std::string summary = "tested " + Counted(files, "file") + ", " +
                        Counted(passed + failed, "test") + ": " + std::to_string(passed) +
                        " passed, " + std::to_string(failed) + " failed";
  if (bad_files > 0) summary += "; " + Counted(bad_files, "file") + " with problems";
  if (unmatched > 0) summary += "; " + Counted(unmatched, "path problem");
  std::printf("%s\n", summary.c_str());
  if (bad_files > 0 || unmatched > 0) return 2;
  return failed > 0 ? 1 : 0;
}

}  // namespace traceslo
