#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

namespace traceslo {

// Adds the `test` subcommand to `app`; `paths` is filled when it parses.
CLI::App* AddTestCommand(CLI::App& app, std::vector<std::string>& paths);

// `traceslo test`: runs the rule unit tests of the test files named by `paths` (files,
// directories, globs; default rules/tests/*.yaml), in path order. Prints to stdout one PASS or
// FAIL line per test, for each failing expectation its file:line:col with the expected and the
// actual alerts or figures, then a summary. Problems with a test file or its rule files go to
// stderr as file:line:col: message and its tests do not run.
// Exit codes: 0 every test passed; 1 a test failed; 2 a test file (or a rule file it names) has
// problems, or the paths name no test file.
int Test(const std::vector<std::string>& paths);

}  // namespace traceslo
