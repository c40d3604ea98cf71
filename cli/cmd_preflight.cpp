// `pgtrickle preflight`: is every node ready for pg_trickle? A table (or JSON document) of
// pass/warn/fail/skip checks with hints; exit 6 when any check fails, 7 when the
// coordinator cannot reach a worker.
#include "client/preflight.h"
#include "commands.h"
#include "context.h"
#include "core/cli_format.h"
#include "errors.h"

namespace pgt::cli {

namespace {

json::Value report_json(const client::PreflightReport& report) {
    json::Value nodes = json::Value::array();
    for (const client::NodeReport& n : report.nodes) {
        json::Value checks = json::Value::array();
        for (const preflight::Check& c : n.checks) {
            json::Value check = json::Value::object();
            check.set("name", c.name);
            check.set("status", preflight::status_name(c.status));
            check.set("detail", c.detail);
            check.set("hint", c.hint.empty() ? json::Value() : json::Value(c.hint));
            checks.push_back(std::move(check));
        }
        json::Value node = json::Value::object();
        node.set("node", n.node);
        node.set("role", preflight::role_name(n.role));
        node.set("reachable", !n.unreachable);
        node.set("checks", std::move(checks));
        nodes.push_back(std::move(node));
    }
    return nodes;
}

std::string report_table(const client::PreflightReport& report) {
    std::vector<std::vector<std::string>> rows;
    for (const client::NodeReport& n : report.nodes) {
        for (const preflight::Check& c : n.checks) {
            rows.push_back({n.node, c.name, preflight::status_name(c.status),
                            cli_format::one_line(c.detail), cli_format::one_line(c.hint)});
        }
    }
    return cli_format::render_table({"node", "check", "status", "detail", "hint"}, rows);
}

// "all 4 checks passed", "4 checks: 3 pass, 1 warn", or the failed checks by name; an
// unreachable worker first.
std::string summary_message(const client::PreflightReport& report) {
    const preflight::Summary s = report.summary();
    const int total = s.pass + s.warn + s.fail;
    std::string unreachable;
    for (const std::string& node : report.unreachable()) {
        unreachable += (unreachable.empty() ? "" : ", ") + node;
    }
    if (!unreachable.empty()) {
        unreachable = "unreachable from the coordinator: " + unreachable + "; ";
    }
    const std::string skipped =
        s.skip > 0 ? " (" + std::to_string(s.skip) + " skipped)" : std::string();
    if (s.fail > 0) {
        std::string names;
        for (const client::NodeReport& n : report.nodes) {
            for (const preflight::Check& c : n.checks) {
                if (c.status == preflight::Status::fail) {
                    names += (names.empty() ? "" : ", ") + c.name + " on " + n.node;
                }
            }
        }
        return unreachable + std::to_string(s.fail) + " of " + std::to_string(total) +
               " checks failed: " + names;
    }
    if (s.warn > 0) {
        return std::to_string(total) + " checks: " + std::to_string(s.pass) + " pass, " +
               std::to_string(s.warn) + " warn" + skipped;
    }
    return "all " + std::to_string(total) + " checks passed" + skipped;
}

client::PreflightReport gather(const Context& ctx) {
    auto node = ctx.connect();
    try {
        return client::run_preflight(*node, PGTRICKLE_VERSION);
    } catch (const client::PreflightError& e) {
        throw CommandError(e.what(), e.hint(), ExitCode::configuration);
    }
}

ExitCode run_preflight(const Context& ctx) {
    const client::PreflightReport report = gather(ctx);
    const preflight::Summary s = report.summary();
    // A worker that cannot be reached was not checked at all: partial, whatever else failed.
    const ExitCode code = !report.unreachable().empty() ? ExitCode::partial_failure
                          : s.fail > 0                  ? ExitCode::unhealthy
                                                        : ExitCode::ok;
    const std::string message = summary_message(report);
    if (ctx.console().json()) {
        json::Value doc = new_document("preflight");
        doc.set("nodes", report_json(report));
        json::Value summary = json::Value::object();
        summary.set("pass", s.pass);
        summary.set("warn", s.warn);
        summary.set("fail", s.fail);
        summary.set("skip", s.skip);
        doc.set("summary", std::move(summary));
        doc.set("status", status_object(code, message));
        ctx.console().document(doc);
    } else {
        ctx.console().out(report_table(report) + "\n" + message + "\n");
    }
    return code;
}

}  // namespace

void setup_preflight(CommandTree& tree) {
    tree.add_command("preflight",
                     "check that every node (Citus: the coordinator and its workers) is ready "
                     "for pg_trickle (exit 6 if a check fails, 7 if a worker is unreachable)",
                     run_preflight);
}

}  // namespace pgt::cli
