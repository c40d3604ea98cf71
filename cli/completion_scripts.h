// Shell completion scripts for pgtrickle, generated from a description of the command
// tree (built from the CLI11 app by describe_tree() in cmd_completions.cpp).
#pragma once

#include <string>
#include <vector>

namespace pgt::cli {

/// One option as completions see it.
struct OptionSpec {
    std::vector<std::string> long_names;   ///< without dashes
    std::vector<std::string> short_names;  ///< without the dash
    bool takes_value = false;
    std::vector<std::string> values;  ///< allowed values; empty: any
    std::string description;
};

/// One positional argument.
struct PositionalSpec {
    std::string name;
    std::vector<std::string> values;  ///< allowed values; empty: any
    bool required = false;
};

/// One subcommand.
struct CommandSpec {
    std::string name;
    std::string description;
    std::vector<OptionSpec> options;  ///< its own options (global ones are separate)
    std::vector<PositionalSpec> positionals;
};

/// The whole command line.
struct CliSpec {
    std::string program;
    std::vector<OptionSpec> global_options;  ///< valid before and after the command
    std::vector<CommandSpec> commands;
};

/// A bash completion script (complete -F).
std::string bash_script(const CliSpec& spec);
/// A zsh completion script (#compdef, _arguments).
std::string zsh_script(const CliSpec& spec);
/// A fish completion script (complete -c).
std::string fish_script(const CliSpec& spec);

}  // namespace pgt::cli
