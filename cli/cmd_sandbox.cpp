// `pgtrickle sandbox up|down|status`: a local throwaway PostgreSQL server with pg_trickle
// for trying it out (lib/client/sandbox.h does the work): a Citus coordinator with two
// workers when Citus is installed, else (or with --single) one node.
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <memory>

#include "client/sandbox.h"
#include "commands.h"
#include "context.h"
#include "errors.h"

namespace pgt::cli {

namespace {

namespace sb = client::sandbox;

struct SandboxOptions {
    std::string action;
    std::optional<std::string> dir;
    std::optional<int> port;
    bool single = false;
};

json::Value sandbox_json(const sb::Info& info) {
    json::Value v = json::Value::object();
    v.set("state", sb::state_name(info.state));
    v.set("dir", info.dir);
    const bool known = info.marker && info.marker->port > 0;
    v.set("port", known ? json::Value(info.marker->port) : json::Value());
    v.set("database", info.marker ? json::Value(info.marker->database) : json::Value());
    v.set("dsn",
          known ? json::Value(sb::dsn(info.marker->port, info.marker->database)) : json::Value());
    v.set("pid", info.pid ? json::Value(*info.pid) : json::Value());
    v.set("topology",
          info.marker ? json::Value(sb::topology_name(info.marker->topology)) : json::Value());
    json::Value nodes = json::Value::array();
    for (const sb::NodeInfo& n : info.nodes) {
        json::Value node = json::Value::object();
        node.set("name", n.name);
        node.set("state", sb::state_name(n.state));
        node.set("port", n.port > 0 ? json::Value(n.port) : json::Value());
        node.set("dsn",
                 n.port > 0 ? json::Value(sb::dsn(n.port, info.marker->database)) : json::Value());
        node.set("pid", n.pid ? json::Value(*n.pid) : json::Value());
        nodes.push_back(std::move(node));
    }
    v.set("nodes", std::move(nodes));
    return v;
}

bool is_citus(const sb::Info& info) {
    return info.marker && info.marker->topology == sb::Topology::citus;
}

// One line per node: name, state, connection string.
std::string node_lines(const sb::Info& info) {
    std::string text;
    for (const sb::NodeInfo& n : info.nodes) {
        std::string name = n.name;
        name.resize(std::max<std::size_t>(name.size(), 12), ' ');
        text += name + (n.state == sb::State::running ? "running  " : "stopped  ") +
                (n.port > 0 ? sb::dsn(n.port, info.marker->database) : "(no port yet)") + "\n";
    }
    return text;
}

std::string describe(const sb::Info& info) {
    if (info.state == sb::State::absent) {
        return "no sandbox in " + info.dir;
    }
    const std::string where =
        (is_citus(info) ? "Citus: coordinator and 2 workers, coordinator port " : "port ") +
        std::to_string(info.marker->port) + ", dir " + info.dir;
    return info.state == sb::State::running
               ? "sandbox running (" + where +
                     (info.pid ? ", pid " + std::to_string(*info.pid) : std::string()) + ")"
               : "sandbox stopped (" + where + ")";
}

// The document (JSON) or the text (table format) of an action's result.
ExitCode report(const Context& ctx, const char* action, const sb::Info& info, ExitCode code,
                const std::string& message, const std::string& text) {
    if (ctx.console().json()) {
        json::Value doc = new_document("sandbox");
        doc.set("action", action);
        doc.set("sandbox", sandbox_json(info));
        doc.set("status", status_object(code, message));
        ctx.console().document(doc);
    } else if (!text.empty()) {
        ctx.console().out(text);
    }
    return code;
}

ExitCode run_up(const Context& ctx, const sb::Sandbox& sandbox, const SandboxOptions& opt) {
    const sb::Info info = sandbox.up(opt.port, opt.single);
    const std::string dsn = sb::dsn(info.marker->port, info.marker->database);
    const std::string message =
        info.already_running ? "the sandbox is already running" : "sandbox started";
    if (is_citus(info)) {
        ctx.console().info(message + ": a Citus coordinator and two workers (change data " +
                           "capture on) on 127.0.0.1, database \"" + info.marker->database +
                           "\" with citus and pg_trickle on each, data in " + info.dir + "\n" +
                           node_lines(info).substr(0, node_lines(info).size() - 1));
    } else {
        ctx.console().info(
            message + ": PostgreSQL on 127.0.0.1:" + std::to_string(info.marker->port) +
            ", database \"" + info.marker->database + "\" with pg_trickle, data in " + info.dir +
            (info.single_reason.empty() ? std::string()
                                        : " (one node: " + info.single_reason + ")"));
    }
    const std::string dir_arg = opt.dir ? " --dir " + info.dir : std::string();
    ctx.console().info("use it:   export PGTRICKLE_DSN='" + dsn + "'; pgtrickle status\n" +
                       "          psql '" + dsn + "'\n" + "stop it:  pgtrickle sandbox down" +
                       dir_arg +
                       (is_citus(info) ? " (stops the servers and removes their data)"
                                       : " (stops the server and removes its data)"));
    return report(ctx, "up", info, ExitCode::ok, message, dsn + "\n");
}

ExitCode run_down(const Context& ctx, const sb::Sandbox& sandbox, const std::string& dir) {
    const bool removed = sandbox.down();
    const std::string message =
        removed ? "sandbox stopped and removed" : "no sandbox in " + dir + ": nothing to do";
    ctx.console().info(message);
    sb::Info gone;
    gone.dir = dir;
    return report(ctx, "down", gone, ExitCode::ok, message, "");
}

ExitCode run_status(const Context& ctx, const sb::Sandbox& sandbox) {
    const sb::Info info = sandbox.inspect();
    const ExitCode code = info.state == sb::State::running ? ExitCode::ok : ExitCode::unhealthy;
    const std::string message = describe(info);
    std::string text = message + "\n";
    if (is_citus(info)) {
        text += node_lines(info);
    } else if (info.state == sb::State::running) {
        text += sb::dsn(info.marker->port, info.marker->database) + "\n";
    }
    return report(ctx, "status", info, code, message, text);
}

ExitCode run_sandbox(const Context& ctx, const SandboxOptions& opt) {
    const std::string dir =
        opt.dir ? *opt.dir : sb::default_dir(std::getenv("XDG_RUNTIME_DIR"), geteuid() == 0);
    try {
        const sb::Sandbox sandbox(dir, [&ctx](const std::string& msg) { ctx.console().info(msg); });
        if (opt.action == "up") {
            return run_up(ctx, sandbox, opt);
        }
        if (opt.port) {
            throw UsageError("--port applies to sandbox up only");
        }
        if (opt.single) {
            throw UsageError("--single applies to sandbox up only");
        }
        return opt.action == "down" ? run_down(ctx, sandbox, dir) : run_status(ctx, sandbox);
    } catch (const sb::SandboxError& e) {
        throw CommandError(e.what(), e.hint(),
                           e.configuration() ? ExitCode::configuration : ExitCode::failure);
    }
}

}  // namespace

void setup_sandbox(CommandTree& tree) {
    auto opt = std::make_shared<SandboxOptions>();
    CLI::App* cmd = tree.add_command(
        "sandbox",
        "a local throwaway PostgreSQL server with pg_trickle (a Citus coordinator and two "
        "workers when Citus is installed): up, down or status",
        [opt](const Context& ctx) { return run_sandbox(ctx, *opt); });
    tree.restrict_to(cmd->add_option("action", opt->action, "up, down or status")->required(),
                     {"up", "down", "status"});
    cmd->add_option("--dir", opt->dir,
                    "the sandbox directory (default: $XDG_RUNTIME_DIR/pgtrickle-sandbox, or "
                    "/tmp/pgtrickle-sandbox)")
        ->type_name("DIR");
    cmd->add_option("--port", opt->port,
                    "TCP port on 127.0.0.1 for up (Citus: the coordinator's, the workers get the "
                    "next two; default: free ones)")
        ->check(CLI::Range(1, 65535))
        ->type_name("PORT");
    cmd->add_flag("--single", opt->single,
                  "up: one node even when Citus is installed (default: a Citus coordinator and "
                  "two workers when it is)");
}

}  // namespace pgt::cli
