#include "command_tree.h"

#include <algorithm>

#include "commands.h"

namespace pgt::cli {

namespace {

constexpr const char* exit_code_footer =
    "Exit codes: 0 ok, 1 failure, 2 usage, 3 configuration, 4 connection, 5 SQL error,\n"
    "6 unhealthy or check failed, 7 partial failure, 70 internal error (docs/exit-codes.md).";

}  // namespace

CommandTree::CommandTree()
    : app_(
          "pgtrickle: manage pg_trickle stream tables (incrementally maintained query "
          "results)",
          "pgtrickle") {
    app_.require_subcommand(1);
    app_.fallthrough();  // global options may also follow the command
    app_.footer(exit_code_footer);
    app_.add_option("--dsn", globals_.dsn,
                    "libpq connection string or URI (default: PGTRICKLE_DSN, else libpq's "
                    "PG* variables, ~/.pgpass and service files)");
    restrict_to(app_.add_option("--format", globals_.format,
                                "output format: table for people, json for scripts "
                                "(one document with format_version), prometheus for "
                                "monitoring (status only)"),
                {"table", "json", "prometheus"});
    CLI::Option* verbose = app_.add_flag("-v,--verbose", globals_.verbose,
                                         "show connection and SQL details on stderr");
    app_.add_flag("-q,--quiet", globals_.quiet, "show only errors on stderr")->excludes(verbose);

    setup_version(*this);
    setup_preflight(*this);
    setup_lifecycle(*this);
    setup_slots(*this);
    setup_status(*this);
    setup_explain(*this);
    setup_dump(*this);
    setup_sandbox(*this);
    setup_migrate(*this);
    setup_completions(*this);
}

CLI::App* CommandTree::add_command(const std::string& name, const std::string& description,
                                   RunFunction run) {
    CLI::App* sub = app_.add_subcommand(name, description);
    commands_.emplace_back(sub, std::move(run));
    return sub;
}

CLI::Option* CommandTree::restrict_to(CLI::Option* opt, std::vector<std::string> values) {
    opt->check(CLI::IsMember(values));
    allowed_[opt] = std::move(values);
    return opt;
}

const std::vector<std::string>* CommandTree::allowed_values(const CLI::Option* opt) const {
    auto it = allowed_.find(opt);
    return it == allowed_.end() ? nullptr : &it->second;
}

void CommandTree::accept_prometheus(const CLI::App* cmd) {
    prometheus_commands_.push_back(cmd->get_name());
}

bool CommandTree::accepts_prometheus(const std::string& command) const {
    return std::find(prometheus_commands_.begin(), prometheus_commands_.end(), command) !=
           prometheus_commands_.end();
}

std::vector<const CLI::App*> CommandTree::commands() const {
    std::vector<const CLI::App*> out;
    for (const auto& c : commands_) {
        out.push_back(c.first);
    }
    return out;
}

std::optional<std::pair<std::string, RunFunction>> CommandTree::selected() const {
    for (const auto& [sub, run] : commands_) {
        if (sub->parsed()) {
            return std::make_pair(sub->get_name(), run);
        }
    }
    return std::nullopt;
}

}  // namespace pgt::cli
