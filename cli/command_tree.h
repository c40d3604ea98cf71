// The pgtrickle command tree: one CLI11 app with global options, one subcommand per
// command, each with a run function. It is the single source of truth for parsing, help,
// shell completions and the per-command docs check.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "core/exit_codes.h"

namespace pgt::cli {

class Context;

/// Options that apply to every command.
struct GlobalOptions {
    std::optional<std::string> dsn;  ///< --dsn
    std::string format = "table";    ///< --format: table, json or prometheus
    int verbose = 0;                 ///< -v (repeatable)
    bool quiet = false;              ///< -q
};

/// A command's work, run after parsing succeeded.
using RunFunction = std::function<ExitCode(const Context&)>;

/// The CLI11 app plus what CLI11 does not keep: each subcommand's run function and the
/// allowed values of options and positionals (for completions).
class CommandTree {
  public:
    /// Builds the whole tree: global options and every command's setup function.
    CommandTree();
    CommandTree(const CommandTree&) = delete;
    CommandTree& operator=(const CommandTree&) = delete;

    CLI::App& app() { return app_; }
    const CLI::App& app() const { return app_; }
    GlobalOptions& globals() { return globals_; }

    /// Adds a subcommand and the function that runs it.
    CLI::App* add_command(const std::string& name, const std::string& description, RunFunction run);

    /// Restricts an option or positional to a fixed set of values (validated by CLI11,
    /// offered by completions).
    CLI::Option* restrict_to(CLI::Option* opt, std::vector<std::string> values);

    /// The allowed values of an option, or nullptr when it takes any value.
    const std::vector<std::string>* allowed_values(const CLI::Option* opt) const;

    /// Lets a command accept --format prometheus (every other command refuses it).
    void accept_prometheus(const CLI::App* cmd);

    /// True when the named command accepts --format prometheus.
    bool accepts_prometheus(const std::string& command) const;

    /// The subcommands in the order they were added.
    std::vector<const CLI::App*> commands() const;

    /// The name and run function of the subcommand that was parsed, if any.
    std::optional<std::pair<std::string, RunFunction>> selected() const;

  private:
    CLI::App app_;
    GlobalOptions globals_;
    std::vector<std::pair<CLI::App*, RunFunction>> commands_;
    std::map<const CLI::Option*, std::vector<std::string>> allowed_;
    std::vector<std::string> prometheus_commands_;
};

}  // namespace pgt::cli
