// The command line: every bad flag is one clear line and exit code 2.
#include "services/loadgen/options.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace traceslo::loadgen {
namespace {

ParsedFlags Parse(std::vector<std::string> args) {
  std::vector<const char*> argv = {"traceslo-loadgen"};
  for (const std::string& a : args) argv.push_back(a.c_str());
  return ParseFlags(static_cast<int>(argv.size()), argv.data());
}

std::string Error(std::vector<std::string> args) {
  const ParsedFlags parsed = Parse(args);
  EXPECT_FALSE(parsed.run);
  EXPECT_EQ(parsed.exit_code, 2) << parsed.output;
  EXPECT_EQ(parsed.output.find('\n'), std::string::npos) << "one line: " << parsed.output;
  return parsed.output;
}

TEST(OptionsTest, Defaults) {
  const ParsedFlags parsed = Parse({});
  ASSERT_TRUE(parsed.run) << parsed.output;
  const LoadgenOptions& o = parsed.options;
  EXPECT_EQ(o.endpoint, "127.0.0.1:4317");
  EXPECT_EQ(o.protocol, Protocol::kGrpc);
  EXPECT_EQ(o.rate, 10);
  EXPECT_EQ(o.traces, 600u) << "60 s at 10 traces per second";
  EXPECT_EQ(o.spans_per_trace, 20u);
  EXPECT_EQ(o.batch_size, 512u);
  EXPECT_FALSE(o.seed.has_value()) << "a random seed unless --seed";
  EXPECT_EQ(o.report_file, "-");
  EXPECT_FALSE(o.gzip);
  EXPECT_EQ(Parse({"--protocol", "http/json"}).options.endpoint, "127.0.0.1:4318");
}

TEST(OptionsTest, EveryFlag) {
  const ParsedFlags parsed = Parse({"--endpoint",
                                    "localhost:5000",
                                    "--protocol",
                                    "http/protobuf",
                                    "--rate",
                                    "2.5",
                                    "--duration",
                                    "2m",
                                    "--spans-per-trace",
                                    "40",
                                    "--batch-size",
                                    "64",
                                    "--seed",
                                    "18446744073709551615",
                                    "--incident",
                                    "traffic_drop:ratio=0.1",
                                    "--incident",
                                    "propagation_break:service=email",
                                    "--report",
                                    "out.json",
                                    "--header",
                                    "Authorization=Bearer abc",
                                    "--header",
                                    "X-A=b=c",
                                    "--gzip",
                                    "--quiet",
                                    "--timeout",
                                    "3s",
                                    "--max-retry-time",
                                    "0s"});
  ASSERT_TRUE(parsed.run) << parsed.output;
  const LoadgenOptions& o = parsed.options;
  EXPECT_EQ(o.endpoint, "localhost:5000");
  EXPECT_EQ(o.protocol, Protocol::kHttpProtobuf);
  EXPECT_EQ(o.rate, 2.5);
  EXPECT_EQ(o.traces, 300u);
  EXPECT_EQ(o.spans_per_trace, 40u);
  EXPECT_EQ(o.batch_size, 64u);
  EXPECT_EQ(o.seed, std::optional<uint64_t>(UINT64_MAX));
  ASSERT_EQ(o.incidents.size(), 2u);
  EXPECT_EQ(o.incidents[1].origin, "--incident #2");
  EXPECT_EQ(o.report_file, "out.json");
  ASSERT_EQ(o.headers.size(), 2u);
  EXPECT_EQ(o.headers[0], (std::pair<std::string, std::string>{"Authorization", "Bearer abc"}));
  EXPECT_EQ(o.headers[1], (std::pair<std::string, std::string>{"X-A", "b=c"}));
  EXPECT_TRUE(o.gzip);
  EXPECT_TRUE(o.quiet);
  EXPECT_EQ(o.timeout, std::chrono::seconds(3));
  EXPECT_EQ(o.max_retry_time, std::chrono::seconds(0));

  // gRPC metadata keys are lower-case.
  const ParsedFlags grpc = Parse({"--header", "Authorization=Bearer abc", "--traces", "3"});
  ASSERT_TRUE(grpc.run) << grpc.output;
  EXPECT_EQ(grpc.options.headers[0].first, "authorization");
  EXPECT_EQ(grpc.options.traces, 3u);
  EXPECT_FALSE(grpc.options.duration.has_value());
}

TEST(OptionsTest, BadFlagsAreOneLineAndExitTwo) {
  EXPECT_EQ(Error({"--rate", "fast"}),
            "traceslo-loadgen: --rate must be a number of traces per second, greater than 0 and "
            "at most 1000000, got 'fast'");
  EXPECT_EQ(Error({"--rate", "0"}),
            "traceslo-loadgen: --rate must be a number of traces per second, greater than 0 and "
            "at most 1000000, got '0'");
  EXPECT_EQ(Error({"--protocol", "http"}),
            "traceslo-loadgen: --protocol must be grpc, http/protobuf or http/json, got 'http'");
  EXPECT_EQ(Error({"--endpoint", "http://127.0.0.1:4318"}),
            "traceslo-loadgen: --endpoint: expected host:port, got 'http://127.0.0.1:4318' (no "
            "scheme or path)");
  EXPECT_EQ(Error({"--endpoint", "127.0.0.1"}),
            "traceslo-loadgen: --endpoint: expected host:port, got '127.0.0.1' (missing port)");
  EXPECT_EQ(Error({"--duration", "30"}),
            "traceslo-loadgen: --duration: invalid duration \"30\": a unit is required (ms, s, m, "
            "h, d), e.g. \"30s\"");
  EXPECT_EQ(Error({"--duration", "1s", "--traces", "5"}),
            "traceslo-loadgen: --duration and --traces exclude each other: give one");
  EXPECT_EQ(Error({"--duration", "1s", "--rate", "0.5"}),
            "traceslo-loadgen: --duration 1s at --rate 0.5 sends no trace");
  EXPECT_EQ(Error({"--traces", "0"}),
            "traceslo-loadgen: --traces must be an integer between 1 and 1000000000, got '0'");
  EXPECT_EQ(Error({"--traces", "-3"}),
            "traceslo-loadgen: --traces must be an integer between 1 and 1000000000, got '-3'");
  EXPECT_EQ(Error({"--spans-per-trace", "500"}),
            "traceslo-loadgen: --spans-per-trace must be an integer between 1 and 200, got '500'");
  EXPECT_EQ(Error({"--batch-size", "0"}),
            "traceslo-loadgen: --batch-size must be an integer between 1 and 100000, got '0'");
  EXPECT_EQ(Error({"--seed", "x"}),
            "traceslo-loadgen: --seed must be an integer between 0 and 18446744073709551615, got "
            "'x'");
  EXPECT_EQ(Error({"--header", "novalue"}),
            "traceslo-loadgen: --header must be name=value (e.g. authorization=Bearer abc), got "
            "'novalue'");
  EXPECT_EQ(Error({"--header", "Content-Type=text/plain"}),
            "traceslo-loadgen: --header: Content-Type is set by traceslo-loadgen itself");
  EXPECT_EQ(Error({"--header", "bad name=x"}),
            "traceslo-loadgen: --header: invalid header name 'bad name'");
  EXPECT_EQ(Error({"--incident", "error_burst:service=payment,ratio=7"}),
            "traceslo-loadgen: --incident 'error_burst:service=payment,ratio=7': ratio must be "
            "between 0 and 1, got '7'");
  EXPECT_EQ(Error({"--timeout", "0s"}),
            "traceslo-loadgen: --timeout must be greater than 0, got '0s'");
  EXPECT_EQ(Error({"--report", ""}),
            "traceslo-loadgen: --report must name a file, or - for stdout");
  EXPECT_EQ(Error({"--scenario", "/nonexistent/s.yaml"}),
            "traceslo-loadgen: --scenario: /nonexistent/s.yaml: No such file or directory");
  EXPECT_EQ(Error({"--bogus"}),
            "traceslo-loadgen: The following argument was not expected: --bogus (see --help)");
  EXPECT_EQ(Error({"--rate"}), "traceslo-loadgen: --rate: 1 required TEXT missing (see --help)");
  EXPECT_EQ(Error({"--incident", "traffic_drop:ratio=1", "extra"}),
            "traceslo-loadgen: The following argument was not expected: extra (see --help)");
}

TEST(OptionsTest, ScenarioIncidentsComeFirstAndErrorsKeepTheirPlace) {
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("loadgen_options_" + std::to_string(::getpid()) + ".yaml"))
                               .string();
  std::ofstream(path) << "incidents:\n  - {type: traffic_drop, ratio: 0.5}\n";
  ParsedFlags parsed = Parse({"--scenario", path, "--incident", "propagation_break:service=email"});
  ASSERT_TRUE(parsed.run) << parsed.output;
  ASSERT_EQ(parsed.options.incidents.size(), 2u);
  EXPECT_EQ(parsed.options.incidents[0].type, IncidentType::kTrafficDrop);
  EXPECT_EQ(parsed.options.incidents[0].origin, path + ":2:5");
  EXPECT_EQ(parsed.options.incidents[1].type, IncidentType::kPropagationBreak);

  std::ofstream(path) << "incidents:\n  - {type: traffic_drop, ratio: 1.5}\n";
  EXPECT_EQ(Error({"--scenario", path}), "traceslo-loadgen: --scenario: " + path +
                                             ":2:33: ratio must be between 0 and 1, got '1.5'");
  std::filesystem::remove(path);
}

TEST(OptionsTest, HelpAndVersionExitZero) {
  ParsedFlags help = Parse({"--help"});
  EXPECT_FALSE(help.run);
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.output.find("--incident"), std::string::npos);
  ParsedFlags version = Parse({"--version"});
  EXPECT_FALSE(version.run);
  EXPECT_EQ(version.exit_code, 0);
  EXPECT_TRUE(version.output.starts_with("traceslo-loadgen ")) << version.output;
}

}  // namespace
}  // namespace traceslo::loadgen
