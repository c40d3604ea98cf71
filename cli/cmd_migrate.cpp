// `pgtrickle migrate [--dry-run] [--to VERSION] [--rollback]`: plans the move of the
// installation to another extension version (catalog steps, capture objects renamed from
// OID names to stable names or back, frontiers rekeyed), shows it, and applies it in one
// transaction per node. On a Citus coordinator: every active primary worker too, each with
// its own plan and its own transaction (workers first on the way up), and nothing at all
// unless every node can be reached and planned.
#include <algorithm>
#include <chrono>

#include <pqxx/pqxx>

#include "client/catalog.h"
#include "client/migrator.h"
#include "client/node_probe.h"
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

// One node of the run: its connection, its plan and what became of it.
struct NodeRun {
    std::string role;  ///< "single" (no Citus), "coordinator" or "worker"
    std::string name;  ///< host:port
    std::unique_ptr<client::Node> conn;
    bool installed = false;
    migration::Plan plan;
    migration::Outcome outcome = migration::Outcome::not_attempted;
    std::string error;  ///< failed, unreachable: why
};

json::Value node_json(const NodeRun& n) {
    json::Value v = plan_json(n.plan, n.outcome == migration::Outcome::migrated);
    v.set("role", n.role);
    if (!n.installed) {
        v.set("from", json::Value());
    }
    v.set("outcome", migration::outcome_name(n.outcome));
    if (!n.error.empty()) {
        v.set("error", n.error);
    }
    return v;
}

std::string node_text(const NodeRun& n, const std::string& database) {
    if (n.outcome == migration::Outcome::unreachable) {
        return "Migration plan for " + n.name + " (" + n.role +
               "): not planned, unreachable: " + n.error + "\n";
    }
    std::string out = plan_text(n.plan, database);
    if (n.role != "single") {
        out.insert(out.find(" (database ") + 2, n.role + ", ");
        out += "  outcome: " + std::string(migration::outcome_name(n.outcome)) +
               (n.error.empty() ? "" : ": " + n.error) + "\n";
    }
    return out;
}

// The first line of a message, without libpq's "ERROR:  " prefix.
std::string first_line(const std::string& s) {
    std::string line = s.substr(0, s.find('\n'));
    const std::string prefix = "ERROR:  ";
    if (line.compare(0, prefix.size(), prefix) == 0) {
        line.erase(0, prefix.size());
    }
    return line;
}

// "a, b" of the nodes whose outcome is `outcome`.
std::string names_with(const std::vector<NodeRun>& nodes, migration::Outcome outcome) {
    std::string out;
    for (const NodeRun& n : nodes) {
        if (n.outcome == outcome) {
            out += (out.empty() ? "" : ", ") + n.name;
        }
    }
    return out;
}

// Citus: refuses a worker as the entry node; then plans each active primary worker of
// pg_dist_node through a connection of the CLI's own (retried with jittered backoff).
void add_workers(const Context& ctx, client::Node& coordinator, const std::string& database,
                 std::vector<NodeRun>& nodes, const std::string& target) {
    if (const auto self = client::citus_worker_self(coordinator)) {
        throw CommandError(
            "this node (" + coordinator.name() + ") is a Citus worker (group " +
                std::to_string(self->group) + "), not the coordinator" +
                (self->coordinator.empty() ? "" : " (" + self->coordinator + ")"),
            "Run pgtrickle migrate against the coordinator: it migrates the coordinator and "
            "every worker, one transaction per node.",
            ExitCode::configuration);
    }
    for (const client::NodeReachability& w : client::active_nodes(coordinator)) {
        if (w.role != "worker") {
            continue;
        }
        NodeRun n;
        n.role = "worker";
        n.name = w.node;
        n.plan.node = w.node;
        n.plan.to = target;
        try {
            n.conn = ctx.connect_to_node(w.host, w.port, database);
            const client::MigrationFacts facts = client::read_migration_facts(*n.conn);
            if (facts.installed) {
                n.installed = true;
                n.plan = migration::plan(w.node, database, *facts.installed, target, facts.sources,
                                         facts.frontiers);
                client::check_plan(*n.conn, n.plan, facts);
            } else {
                n.plan.problems.push_back(
                    "the pg_trickle extension is not installed in database " + database + " on " +
                    w.node +
                    " (CREATE EXTENSION pg_trickle on the coordinator creates it on every "
                    "worker; a worker added later gets it from citus_add_node)");
            }
        } catch (const client::ConnectionError& e) {
            n.conn.reset();
            n.outcome = migration::Outcome::unreachable;
            n.error = first_line(e.what());
        } catch (const pqxx::broken_connection& e) {
            n.conn.reset();
            n.outcome = migration::Outcome::unreachable;
            n.error = "the connection was lost: " + first_line(e.what());
        }
        nodes.push_back(std::move(n));
    }
}

// Applies the plans in `order`, stopping at the first failure; returns the failure's exit
// code (ok when none failed). One node alone (no Citus) fails as before: by exception.
ExitCode apply_all(const Context& ctx, std::vector<NodeRun>& nodes,
                   const std::vector<size_t>& order) {
    const auto progress = [&](const std::string& line) { ctx.console().info(line); };
    ExitCode failure = ExitCode::ok;
    for (const size_t i : order) {
        NodeRun& n = nodes[i];
        if (failure != ExitCode::ok) {
            n.outcome = migration::Outcome::not_attempted;
            continue;
        }
        if (n.plan.nothing_to_do()) {
            n.outcome = migration::Outcome::up_to_date;
            continue;
        }
        if (n.role == "single") {
            try {
                client::apply_migration(*n.conn, n.plan, progress);
            } catch (const client::CatalogBusy& e) {
                throw CommandError(e.what(),
                                   "Run pgtrickle migrate again when the scheduler and refreshes "
                                   "are between transactions (pg_stat_activity shows who holds "
                                   "the pgtrickle tables).");
            }
            n.outcome = migration::Outcome::migrated;
            continue;
        }
        try {
            client::apply_migration(*n.conn, n.plan, progress, true);
            n.outcome = migration::Outcome::migrated;
        } catch (const pqxx::in_doubt_error& e) {
            n.outcome = migration::Outcome::failed;
            n.error = "the connection was lost while committing, so whether " + n.name +
                      " was migrated is unknown (pgtrickle migrate --dry-run shows it): " +
                      first_line(e.what());
            failure = ExitCode::connection;
        } catch (const pqxx::broken_connection& e) {
            n.outcome = migration::Outcome::failed;
            n.error =
                "the connection was lost before COMMIT, so the server rolled the update "
                "back (" +
                first_line(e.what()) + ")";
            failure = ExitCode::connection;
        } catch (const pqxx::sql_error& e) {
            n.outcome = migration::Outcome::failed;
            n.error = first_line(e.what()) + " (SQLSTATE " + e.sqlstate() + ", rolled back)";
            failure = ExitCode::sql_error;
        } catch (const std::exception& e) {
            n.outcome = migration::Outcome::failed;
            n.error = first_line(e.what()) + " (rolled back)";
            failure = ExitCode::failure;
        }
    }
    return failure;
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
    auto entry = ctx.connect();
    const client::MigrationFacts facts = client::read_migration_facts(*entry);
    if (!facts.installed) {
        throw CommandError(
            "the pg_trickle extension is not installed in database \"" + facts.database + "\" on " +
                entry->name(),
            "Nothing to migrate: CREATE EXTENSION pg_trickle installs the current version.",
            ExitCode::configuration);
    }
    const bool citus = client::has_citus(*entry);
    std::vector<NodeRun> nodes(1);
    {
        NodeRun& c = nodes.front();
        c.role = citus ? "coordinator" : "single";
        c.name = entry->name();
        c.installed = true;
        c.plan = migration::plan(entry->name(), facts.database, *facts.installed, target,
                                 facts.sources, facts.frontiers);
        client::check_plan(*entry, c.plan, facts);
        c.conn = std::move(entry);
    }
    if (citus) {
        add_workers(ctx, *nodes.front().conn, facts.database, nodes, target);
    }
    const NodeRun& coordinator = nodes.front();
    const bool several = nodes.size() > 1;

    std::string unreachable = names_with(nodes, migration::Outcome::unreachable);
    const NodeRun* problem = nullptr;
    for (const NodeRun& n : nodes) {
        if (!problem && !n.plan.problems.empty()) {
            problem = &n;
        }
    }
    const bool all_done = std::all_of(nodes.begin(), nodes.end(), [](const NodeRun& n) {
        return n.outcome != migration::Outcome::unreachable && n.plan.nothing_to_do();
    });
    std::string message;
    ExitCode code = ExitCode::ok;
    if (!unreachable.empty()) {
        // Nothing is changed unless every node can be: a node left behind would run another
        // catalog than the rest.
        code = ExitCode::partial_failure;
        message = "cannot migrate: unreachable " + unreachable + " (" +
                  std::find_if(
                      nodes.begin(), nodes.end(),
                      [](const NodeRun& n) { return n.outcome == migration::Outcome::unreachable; })
                      ->error +
                  "); nothing was changed on any node. Start it (or remove it from the cluster) "
                  "and run pgtrickle migrate again";
    } else if (problem) {
        code = ExitCode::unhealthy;
        message = "the plan cannot be applied on " + problem->name + ": " +
                  problem->plan.problems.front() +
                  (several ? "; nothing was changed on any node" : "");
    } else if (all_done) {
        message = several ? "nothing to do: every node (" + std::to_string(nodes.size()) +
                                ") is already at " + target
                          : "nothing to do: " + coordinator.name + " is already at " + target;
        for (NodeRun& n : nodes) {
            n.outcome = migration::Outcome::up_to_date;
        }
    } else if (opt.dry_run) {
        message = "dry run: nothing was changed";
        for (NodeRun& n : nodes) {
            n.outcome = n.plan.nothing_to_do() ? migration::Outcome::up_to_date
                                               : migration::Outcome::planned;
        }
    } else {
        // Workers first on the way up, the coordinator first on the way down (apply_order).
        const std::vector<size_t> order =
            migration::apply_order(coordinator.plan.from, target, nodes.size());
        const auto start = std::chrono::steady_clock::now();
        const ExitCode failure = apply_all(ctx, nodes, order);
        const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::steady_clock::now() - start)
                            .count();
        if (failure == ExitCode::ok && !several) {
            message = "migrated " + coordinator.name + " from " + coordinator.plan.from + " to " +
                      target + " in " + std::to_string(ms) + " ms";
        } else if (failure == ExitCode::ok) {
            message =
                "migrated " + names_with(nodes, migration::Outcome::migrated) + " to " + target +
                " in " + std::to_string(ms) + " ms, one transaction per node" +
                (names_with(nodes, migration::Outcome::up_to_date).empty()
                     ? std::string()
                     : " (already there: " + names_with(nodes, migration::Outcome::up_to_date) +
                           ")");
        } else {
            const auto failed = std::find_if(nodes.begin(), nodes.end(), [](const NodeRun& n) {
                return n.outcome == migration::Outcome::failed;
            });
            const std::string migrated = names_with(nodes, migration::Outcome::migrated);
            const std::string up_to_date = names_with(nodes, migration::Outcome::up_to_date);
            const std::string not_attempted = names_with(nodes, migration::Outcome::not_attempted);
            std::vector<migration::Outcome> outcomes;
            outcomes.reserve(nodes.size());
            for (const NodeRun& n : nodes) {
                outcomes.push_back(n.outcome);
            }
            code = migration::stopped_run_code(outcomes, failure);
            message = "migration stopped: " + failed->name + " failed: " + failed->error +
                      "; migrated: " + (migrated.empty() ? "none" : migrated) +
                      (up_to_date.empty() ? "" : "; already at " + target + ": " + up_to_date) +
                      "; not attempted: " + (not_attempted.empty() ? "none" : not_attempted) +
                      ". Fix the cause on " + failed->name +
                      " and run pgtrickle migrate again: it finishes the other nodes (a node at " +
                      target + " has nothing to do)";
        }
    }
    if (ctx.console().json()) {
        json::Value doc = new_document("migrate");
        doc.set("dry_run", opt.dry_run);
        json::Value out = json::Value::array();
        for (const NodeRun& n : nodes) {
            out.push_back(node_json(n));
        }
        doc.set("nodes", std::move(out));
        doc.set("status", status_object(code, message));
        ctx.console().document(doc);
    } else {
        std::string text;
        for (const NodeRun& n : nodes) {
            text += node_text(n, facts.database);
        }
        ctx.console().out(text);
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
