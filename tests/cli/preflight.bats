#!/usr/bin/env bats
# pgtrickle preflight against real servers: one ready for pg_trickle, one started
# without the library preloaded.

load helpers

setup_file() {
    require_installed_extension
    start_server READY
    start_server NOPRELOAD --no-preload
    use_server READY postgres
    sql postgres "CREATE DATABASE cli_preflight"
    sql cli_preflight "CREATE EXTENSION pg_trickle"
    sql postgres "CREATE DATABASE cli_preflight_noext"
}

teardown_file() {
    stop_server READY
    stop_server NOPRELOAD
}

@test "preflight passes on a ready server (exit 0) with one single node" {
    use_server READY cli_preflight
    run -0 --separate-stderr pgt --format json preflight
    json_is '.format_version == 1 and .command == "preflight"'
    json_is '.nodes | length == 1'
    json_is ".nodes[0].node == \"127.0.0.1:$READY_PORT\" and .nodes[0].role == \"single\""
    json_is '[.nodes[0].checks[].name] == ["server_version", "shared_preload_libraries", "extension", "wal_level"]'
    json_is '.summary.fail == 0 and .summary.warn == 0 and .summary.pass == 4'
    json_is '.status.code == "ok"'
    json_is 'all(.nodes[0].checks[]; .hint == null and (.detail | length > 0))'
    run -0 --separate-stderr pgt preflight
}

@test "preflight without the library preloaded exits 6 and names the failing check" {
    use_server NOPRELOAD postgres
    run -6 --separate-stderr pgt --format json preflight
    json_is '.status.code == "unhealthy" and .summary.fail >= 1'
    json_is '.nodes[0].checks[] | select(.name == "shared_preload_libraries") | .status == "fail"'
    json_is '.nodes[0].checks[] | select(.name == "shared_preload_libraries") | .hint | test("ALTER SYSTEM SET shared_preload_libraries")'
    json_is '.status.message | test("shared_preload_libraries")'
    run -6 --separate-stderr pgt preflight
}

@test "preflight warns (exit 0) when the extension is not created in the database" {
    use_server READY cli_preflight_noext
    run -0 --separate-stderr pgt --format json preflight
    json_is '.nodes[0].checks[] | select(.name == "extension") | .status == "warn"'
    json_is '.nodes[0].checks[] | select(.name == "extension") | .hint | test("CREATE EXTENSION pg_trickle")'
    json_is '.summary.warn == 1 and .summary.fail == 0 and .status.code == "ok"'
}

@test "preflight fails when the installed extension version differs from the CLI" {
    use_server READY postgres
    sql postgres "CREATE DATABASE cli_preflight_oldver"
    # Pretend an older version is installed: the version check reads pg_extension.
    sql cli_preflight_oldver "CREATE EXTENSION pg_trickle"
    sql cli_preflight_oldver "UPDATE pg_catalog.pg_extension SET extversion = '0.31.0' WHERE extname = 'pg_trickle'"
    use_server READY cli_preflight_oldver
    run -6 --separate-stderr pgt --format json preflight
    json_is '.nodes[0].checks[] | select(.name == "extension") | .status == "fail"'
    json_is '.nodes[0].checks[] | select(.name == "extension") | .hint | test("pgtrickle migrate")'
}

@test "version reports the server's PostgreSQL and extension versions" {
    use_server READY cli_preflight
    run -0 --separate-stderr pgt --format json version
    json_is '.version == "0.35.0" and .server.extension_version == "0.35.0"'
    json_is ".server.node == \"127.0.0.1:$READY_PORT\" and (.server.server_version | startswith(\"15\"))"
    use_server READY cli_preflight_noext
    run -0 --separate-stderr pgt --format json version
    json_is '.server.extension_version == null and .server.database == "cli_preflight_noext"'
}
