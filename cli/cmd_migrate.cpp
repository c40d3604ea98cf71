// `pgtrickle migrate [--dry-run] [--to VERSION] [--rollback]`: plans the move of the
// installation to another extension version (catalog steps, capture objects renamed from
// OID names to stable names or back, frontiers rekeyed), shows it, and applies it in one
// transaction per node.
#include <chrono>

#include "client/migrator.h"
#include "commands.h"
#include "context.h"
#include "core/migration.h"
#include "errors.h"

namespace pgt::cli {

namespace {

struct MigrateOptions {
    bool dry_run = false;
    bool rollback = false;
    std::string to;
};

MigrateOptions& options() {
    static MigrateOptions o;
    return o;
}

json::Value plan_json(const migration::Plan& p, bool applied) {
    json::Value node = json::Value::object();
    node.set("node", p.node);
    node.set("from", p.from);
    node.set("to", p.to);
    json::Value steps = json::Value::array();
    for (const auto& s : p.steps) {
        json::Value step = json::Value::object();
        step.set("from", s.from);
        step.set("to", s.to);
        json::Value changes = json::Value::array();
        for (const auto& c : s.changes) {
            changes.push_back(c);
        }
        step.set("changes", std::move(changes));
        steps.push_back(std::move(step));
    }
    node.set("steps", std::move(steps));
    json::Value renames = json::Value::array();
    for (const auto& r : p.renames) {
        json::Value o = json::Value::object();
        o.set("kind", r.kind);
        o.set("from", r.from);
        o.set("to", r.to);
        if (!r.on.empty()) {
            o.set("on", r.on);
        }
        renames.push_back(std::move(o));
    }
    node.set("renames", std::move(renames));
    node.set("frontier_rekeys", static_cast<double>(p.frontier_rekeys));
    json::Value problems = json::Value::array();
    for (const auto& pr : p.problems) {
        problems.push_back(pr);
    }
    node.set("problems", std::move(problems));
    node.set("applied", applied);
    return node;
}

std::string plan_text(const migration::Plan& p, const std::string& database) {
    std::string out = "Migration plan for " + p.node + " (database " + database + "): " + p.from +
                      " -> " + p.to + "\n";
    if (p.nothing_to_do()) {
        return out + "  nothing to do: already at " + p.to + "\n";
    }
    out += "  catalog steps:\n";
    for (const auto& s : p.steps) {
        out += "    " + s.from + " -> " + s.to + "\n";
        for (const auto& c : s.changes) {
            out += "      - " + c + "\n";
        }
    }
    if (!p.renames.empty()) {
        out += "  renamed capture objects (" + std::to_string(p.renames.size()) + "):\n";
        std::string last_on;
        for (const auto& r : p.renames) {
            out += "    " + r.kind + std::string(9 - std::min<size_t>(8, r.kind.size()), ' ') +
                   r.from + " -> " + r.to + (r.on.empty() ? "" : "  (on " + r.on + ")") + "\n";
        }
        out += "  frontiers rekeyed: " + std::to_string(p.frontier_rekeys) + " stream tables\n";
    }
    for (const auto& pr : p.problems) {
        out += "  PROBLEM: " + pr + "\n";
    }
    return out;
}

ExitCode run_migrate(const Context& ctx) {
    const MigrateOptions& opt = options();
    if (opt.rollback && !opt.to.empty()) {
        throw UsageError("--rollback and --to cannot be combined");
    }
    const std::string target = opt.rollback
                                   ? migration::known_versions().front()
                                   : (opt.to.empty() ? std::string(PGTRICKLE_VERSION) : opt.to);
    if (!migration::is_known(target)) {
        std::string known;
        for (const auto& v : migration::known_versions()) {
            known += (known.empty() ? "" : ", ") + v;
        }
        throw UsageError("unknown version \"" + target + "\" (known: " + known + ")");
    }
    auto node = ctx.connect();
    const client::MigrationFacts facts = client::read_migration_facts(*node);
    if (!facts.installed) {
        throw CommandError(
            "the pg_trickle extension is not installed in database \"" + facts.database + "\" on " +
                node->name(),
            "Nothing to migrate: CREATE EXTENSION pg_trickle installs the current version.",
            ExitCode::configuration);
    }
    migration::Plan plan = migration::plan(node->name(), facts.database, *facts.installed, target,
                                           facts.sources, facts.frontiers);
    client::check_plan(*node, plan, facts);

    bool applied = false;
    std::string message;
    ExitCode code = ExitCode::ok;
    if (!plan.problems.empty()) {
        code = ExitCode::unhealthy;
        message = "the plan cannot be applied on " + plan.node + ": " + plan.problems.front();
    } else if (plan.nothing_to_do()) {
        message = "nothing to do: " + plan.node + " is already at " + target;
    } else if (opt.dry_run) {
        message = "dry run: nothing was changed";
    } else {
        const auto start = std::chrono::steady_clock::now();
        client::apply_migration(*node, plan,
                                [&](const std::string& line) { ctx.console().info(line); });
        const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::steady_clock::now() - start)
                            .count();
        applied = true;
        message = "migrated " + plan.node + " from " + plan.from + " to " + plan.to + " in " +
                  std::to_string(ms) + " ms";
    }
    if (ctx.console().json()) {
        json::Value doc = new_document("migrate");
        doc.set("dry_run", opt.dry_run);
        json::Value nodes = json::Value::array();
        nodes.push_back(plan_json(plan, applied));
        doc.set("nodes", std::move(nodes));
        doc.set("status", status_object(code, message));
        ctx.console().document(doc);
    } else {
        ctx.console().out(plan_text(plan, facts.database));
    }
    if (code == ExitCode::ok) {
        ctx.console().info(message);
    } else {
        ctx.console().error(message);
    }
    return code;
}

}  // namespace

void setup_migrate(CommandTree& tree) {
    CLI::App* cmd = tree.add_command("migrate",
                                     "move the installation to another extension version (OID "
                                     "names to stable names), nothing lost",
                                     run_migrate);
    cmd->add_flag("--dry-run", options().dry_run, "print the plan and change nothing");
    CLI::Option* to =
        cmd->add_option("--to", options().to, "target version (default: this pgtrickle's version)");
    cmd->add_flag("--rollback", options().rollback, "move back to version 0.31.0 (OID names)")
        ->excludes(to);
}

}  // namespace pgt::cli
