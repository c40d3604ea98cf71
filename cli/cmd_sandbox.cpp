// `pgtrickle sandbox up|down|status`: a local throwaway PostgreSQL server with pg_trickle
// for trying it out (lib/client/sandbox.h does the work). One node today; a Citus
// coordinator with two workers when Citus is installed is the planned extension.
#include <unistd.h>

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
    v.set("topology", "single");
    return v;
}

std::string describe(const sb::Info& info) {
    if (info.state == sb::State::absent) {
        return "no sandbox in " + info.dir;
    }
    const std::string where = "port " + std::to_string(info.marker->port) + ", dir " + info.dir;
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
    const sb::Info info = sandbox.up(opt.port);
    const std::string dsn = sb::dsn(info.marker->port, info.marker->database);
    const std::string message =
        info.already_running ? "the sandbox is already running" : "sandbox started";
    ctx.console().info(message + ": PostgreSQL on 127.0.0.1:" + std::to_string(info.marker->port) +
                       ", database \"" + info.marker->database + "\" with pg_trickle, data in " +
                       info.dir);
    const std::string dir_arg = opt.dir ? " --dir " + info.dir : std::string();
    ctx.console().info("use it:   export PGTRICKLE_DSN='" + dsn + "'; pgtrickle status\n" +
                       "          psql '" + dsn + "'\n" + "stop it:  pgtrickle sandbox down" +
                       dir_arg + " (stops the server and removes its data)");
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
    if (info.state == sb::State::running) {
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
        "sandbox", "a local throwaway PostgreSQL server with pg_trickle: up, down or status",
        [opt](const Context& ctx) { return run_sandbox(ctx, *opt); });
    tree.restrict_to(cmd->add_option("action", opt->action, "up, down or status")->required(),
                     {"up", "down", "status"});
    cmd->add_option("--dir", opt->dir,
                    "the sandbox directory (default: $XDG_RUNTIME_DIR/pgtrickle-sandbox, or "
                    "/tmp/pgtrickle-sandbox)")
        ->type_name("DIR");
    cmd->add_option("--port", opt->port, "TCP port on 127.0.0.1 for up (default: a free one)")
        ->check(CLI::Range(1, 65535))
        ->type_name("PORT");
}

}  // namespace pgt::cli
