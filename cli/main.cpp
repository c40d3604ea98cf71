// pgtrickle: parse the command line first, then run exactly one command.
#include <cstdio>

#include "command_tree.h"
#include "context.h"
#include "errors.h"

int main(int argc, char** argv) {
    using namespace pgt::cli;
    try {
        CommandTree tree;
        try {
            tree.app().parse(argc, argv);
        } catch (const CLI::ParseError& e) {
            return static_cast<int>(report_parse_error(tree, e, argc, argv));
        }
        auto command = tree.selected();
        if (!command) {  // require_subcommand(1) makes this unreachable
            throw std::logic_error("no command selected after parsing");
        }
        const Context ctx(tree.globals(), command->first);
        try {
            if (ctx.console().format() == Format::prometheus &&
                !tree.accepts_prometheus(command->first)) {
                throw UsageError("--format prometheus is only available for: status");
            }
            return static_cast<int>(command->second(ctx));
        } catch (...) {
            return static_cast<int>(report_current_exception(ctx));
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: internal error: %s\n", e.what());
    }
    return static_cast<int>(pgt::ExitCode::internal);
}
