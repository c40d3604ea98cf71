// Setup functions of the command groups, one per file (cmd_*.cpp). Each declares its
// subcommand(s) and options on the tree and registers the run function that does the work.
#pragma once

#include "command_tree.h"

namespace pgt::cli {

void setup_version(CommandTree& tree);      ///< version
void setup_preflight(CommandTree& tree);    ///< preflight
void setup_lifecycle(CommandTree& tree);    ///< create, alter, drop, refresh
void setup_status(CommandTree& tree);       ///< status
void setup_explain(CommandTree& tree);      ///< explain
void setup_dump(CommandTree& tree);         ///< dump
void setup_sandbox(CommandTree& tree);      ///< sandbox
void setup_migrate(CommandTree& tree);      ///< migrate
void setup_slots(CommandTree& tree);        ///< slots
void setup_completions(CommandTree& tree);  ///< completions

}  // namespace pgt::cli
