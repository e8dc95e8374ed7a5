#include "services/traceslo/generate_command.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <new>
#include <string>

#include "traceslo/slo/prometheus_rules.h"
#include "traceslo/slo/rule_file.h"

#ifndef TRACESLO_VERSION
#define TRACESLO_VERSION "0.0.0-dev"
#endif

namespace traceslo {
namespace {

std::string Errno(int error) { return std::strerror(error); }

std::string Counted(size_t n, const char* noun) {
  return std::to_string(n) + " " + noun + (n == 1 ? "" : "s");
}

// Writes `text` to a new file beside `path`, then renames it over `path`: readers (Prometheus
// reloading its rules) see the old file or the new one, never a part. Empty on success, else
// what failed.
std::string WriteAtomically(const std::string& path, const std::string& text) {
  const std::filesystem::path target(path);
  std::string temp =
      (target.parent_path() / ("." + target.filename().string() + ".tmp-XXXXXX")).string();
  const int fd = mkstemp(temp.data());
  if (fd < 0) return "cannot create a file beside " + path + ": " + Errno(errno);
  std::string error;
  (void)fchmod(fd, 0644);
  for (size_t written = 0; written < text.size() && error.empty();) {
    const ssize_t n = write(fd, text.data() + written, text.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      error = "cannot write " + temp + ": " + Errno(errno);
    } else {
      written += static_cast<size_t>(n);
    }
  }
  if (error.empty() && fsync(fd) != 0) error = "cannot write " + temp + ": " + Errno(errno);
  if (close(fd) != 0 && error.empty()) error = "cannot write " + temp + ": " + Errno(errno);
  if (error.empty() && std::rename(temp.c_str(), path.c_str()) != 0) {
    error = "cannot replace " + path + ": " + Errno(errno);
  }
  if (!error.empty()) (void)unlink(temp.c_str());
  return error;
}

}  // namespace

CLI::App* AddGenerateCommand(CLI::App& app, GenerateFlags& flags) {
  CLI::App* generate =
      app.add_subcommand("generate", "Generate configuration for other tools from rule files.");
  // Usage errors are Generate()'s (exit 2), not the parser's.
  generate->require_subcommand(0, 1);
  generate->allow_extras();
  generate->callback([&flags, generate] {
    for (const std::string& arg : generate->remaining()) flags.unknown.push_back(arg);
  });
  CLI::App* prometheus = generate->add_subcommand(
      "prometheus-rules",
      "Prometheus recording and alerting rules (Sloth's names) for the SLO rule files, over the "
      "metrics traceslo exports; see docs/prometheus-rules.md.");
  prometheus->add_option("--rules", flags.rules,
                         "Rule files, directories (their *.yaml, *.yml) or globs (repeatable; "
                         "default rules/*.yaml)");
  prometheus->add_option("-o,--output", flags.output,
                         "Write the rules to this file, replaced atomically (default: stdout)");
  prometheus->add_flag("--strict", flags.strict,
                       "Fail (exit 1) instead of skipping SLOs Prometheus cannot compute");
  prometheus->allow_extras();
  prometheus->callback([&flags, prometheus] {
    flags.prometheus_rules = true;
    for (const std::string& arg : prometheus->remaining()) flags.unknown.push_back(arg);
  });
  return generate;
}

int Generate(const GenerateFlags& flags) {
  if (!flags.unknown.empty()) {
    std::fprintf(stderr, "traceslo generate: unknown argument %s (see traceslo generate --help)\n",
                 flags.unknown.front().c_str());
    return 2;
  }
  if (!flags.prometheus_rules) {
    std::fprintf(stderr,
                 "traceslo generate: name what to generate: prometheus-rules (see traceslo "
                 "generate --help)\n");
    return 2;
  }
  const bool to_stdout = flags.output.empty() || flags.output == "-";
  if (!to_stdout) {
    std::error_code ec;
    if (std::filesystem::is_directory(flags.output, ec)) {
      std::fprintf(stderr, "traceslo generate: --output %s is a directory\n", flags.output.c_str());
      return 2;
    }
  }
  try {
    const std::vector<std::string> paths =
        flags.rules.empty() ? std::vector<std::string>{"rules/*.yaml"} : flags.rules;
    const slo::CheckResult checked = slo::CheckRuleFiles(paths);
    for (const slo::Diagnostic& diagnostic : checked.diagnostics) {
      std::fprintf(stderr, "%s\n", diagnostic.ToString().c_str());
    }
    if (!checked.ok()) {
      std::fprintf(stderr,
                   "traceslo generate: the rule files have problems (as traceslo check "
                   "reports them); nothing written\n");
      return 1;
    }
    slo::PrometheusRulesOptions options;
    options.version = TRACESLO_VERSION;
    options.strict = flags.strict;
    for (const slo::RuleFile& file : checked.files) options.source_files.push_back(file.path);
    absl::StatusOr<slo::PrometheusRules> rules =
        slo::GeneratePrometheusRules(checked.files, options);
    if (!rules.ok()) {
      if (absl::IsInvalidArgument(rules.status())) {
        std::fprintf(stderr, "%s\n", std::string(rules.status().message()).c_str());
        std::fprintf(stderr,
                     "traceslo generate: --strict: SLOs Prometheus cannot compute; nothing "
                     "written\n");
      } else {
        std::fprintf(stderr, "traceslo generate: %s\n",
                     std::string(rules.status().message()).c_str());
      }
      return 1;
    }
    for (const slo::PrometheusRulesWarning& warning : rules->warnings) {
      std::fprintf(stderr, "warning: %s\n", warning.ToString().c_str());
    }
    if (to_stdout) {
      if (std::fwrite(rules->yaml.data(), 1, rules->yaml.size(), stdout) != rules->yaml.size() ||
          std::fflush(stdout) != 0) {
        std::fprintf(stderr, "traceslo generate: cannot write to stdout\n");
        return 2;
      }
    } else if (std::string error = WriteAtomically(flags.output, rules->yaml); !error.empty()) {
      std::fprintf(stderr, "traceslo generate: %s\n", error.c_str());
      return 2;
    }
    std::fprintf(
        stderr, "generated %s for %s from %s; %s skipped\n", Counted(rules->rules, "rule").c_str(),
        Counted(rules->slos_generated, "SLO").c_str(),
        Counted(checked.files.size(), "file").c_str(), Counted(rules->slos_skipped, "SLO").c_str());
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "traceslo generate: out of memory\n");
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "traceslo generate: %s\n", e.what());
    return 2;
  }
  return 0;
}

}  // namespace traceslo
