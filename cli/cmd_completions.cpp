// `pgtrickle completions bash|zsh|fish`: completion scripts generated from the command
// tree itself, so they cannot drift from the parser. completions/ holds their output.
#include <memory>

#include "commands.h"
#include "completion_scripts.h"
#include "context.h"

namespace pgt::cli {

namespace {

OptionSpec option_spec(const CommandTree& tree, const CLI::Option* o) {
    OptionSpec spec;
    spec.long_names = o->get_lnames();
    spec.short_names = o->get_snames();
    spec.takes_value = o->get_items_expected_max() > 0;  // flags expect 0 items
    if (const auto* values = tree.allowed_values(o)) {
        spec.values = *values;
    }
    spec.description = o->get_description();
    return spec;
}

// The tree as completions see it. Each subcommand's copy of the help flag is left out:
// the global one is offered everywhere.
CliSpec describe_tree(const CommandTree& tree) {
    CliSpec spec;
    spec.program = tree.app().get_name();
    for (const CLI::Option* o : tree.app().get_options()) {
        spec.global_options.push_back(option_spec(tree, o));
    }
    for (const CLI::App* sub : tree.commands()) {
        CommandSpec cmd;
        cmd.name = sub->get_name();
        cmd.description = sub->get_description();
        for (const CLI::Option* o : sub->get_options()) {
            if (o == sub->get_help_ptr()) {
                continue;
            }
            if (o->nonpositional()) {
                cmd.options.push_back(option_spec(tree, o));
            } else {
                PositionalSpec p;
                p.name = o->get_name(true);
                p.required = o->get_required();
                if (const auto* values = tree.allowed_values(o)) {
                    p.values = *values;
                }
                cmd.positionals.push_back(std::move(p));
            }
        }
        spec.commands.push_back(std::move(cmd));
    }
    return spec;
}

}  // namespace

void setup_completions(CommandTree& tree) {
    auto shell = std::make_shared<std::string>();
    CLI::App* cmd = tree.add_command(
        "completions", "print a shell completion script (bash, zsh or fish)",
        [&tree, shell](const Context& ctx) {
            const CliSpec spec = describe_tree(tree);
            const std::string script = *shell == "bash"  ? bash_script(spec)
                                       : *shell == "zsh" ? zsh_script(spec)
                                                         : fish_script(spec);
            if (ctx.console().json()) {
                json::Value doc = new_document("completions");
                doc.set("shell", *shell);
                doc.set("script", script);
                doc.set("status", status_object(ExitCode::ok, *shell + " completion script"));
                ctx.console().document(doc);
            } else {
                ctx.console().out(script);
            }
            return ExitCode::ok;
        });
    tree.restrict_to(cmd->add_option("shell", *shell, "the shell to complete for")->required(),
                     {"bash", "zsh", "fish"});
}

}  // namespace pgt::cli
