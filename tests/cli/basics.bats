#!/usr/bin/env bats
# Command line, usage errors, connection errors, version without a server, completions
# and docs: everything that needs no running server.

load helpers

@test "help exits 0 and prints usage on stdout" {
    run -0 --separate-stderr pgt --help
    [[ "$output" == *"Usage: pgtrickle"* ]]
    run -0 --separate-stderr pgt status --help
    [[ "$output" == *"Usage: pgtrickle status"* ]]
}

@test "missing command is a usage error (exit 2)" {
    run -2 --separate-stderr pgt
    [ -z "$output" ]
    [[ "$stderr" == *"subcommand is required"* ]]
}

@test "unknown command, unknown option and bad choice exit 2" {
    run -2 --separate-stderr pgt frobnicate
    run -2 --separate-stderr pgt status --bogus
    run -2 --separate-stderr pgt --format xml status
    run -2 --separate-stderr pgt create st1
    run -2 --separate-stderr pgt create st1 --query 'SELECT 1' --mode sometimes
    run -2 --separate-stderr pgt -q -v version
}

@test "usage errors in JSON mode print one error document" {
    run -2 --separate-stderr pgt --format json status --bogus
    json_is '.format_version == 1 and .command == "status" and .status.code == "usage"'
    run -2 --separate-stderr pgt status --format=json --bogus
    json_is '.status.code == "usage" and (.status.hint | test("--help"))'
}

@test "refresh needs exactly one of NAME and --all (exit 2)" {
    run -2 --separate-stderr pgt --format json refresh
    json_is '.status.code == "usage"'
    run -2 --separate-stderr pgt refresh st1 --all
}

@test "alter with nothing to change is a usage error (exit 2)" {
    run -2 --separate-stderr pgt --format json alter st1
    json_is '.status.code == "usage" and (.status.message | test("nothing to change"))'
}

@test "version without a reachable server exits 0 with server null" {
    local port
    port=$(closed_port)
    run -0 --separate-stderr pgt --dsn "host=127.0.0.1 port=$port" --format json version
    json_is '.format_version == 1 and .command == "version" and .version == "0.35.0"'
    json_is '.server == null and .status.code == "ok"'
    run -0 --separate-stderr pgt --dsn "host=127.0.0.1 port=$port" version
    [[ "$output" == "pgtrickle 0.35.0"* ]]
}

@test "connection refused exits 4 and names host:port" {
    local port
    port=$(closed_port)
    run -4 --separate-stderr pgt --dsn "host=127.0.0.1 port=$port" --format json status
    json_is ".status.code == \"connection\" and .status.node == \"127.0.0.1:$port\""
    json_is '.status.hint | test("PGTRICKLE_DSN")'
    [[ "$stderr" == *"127.0.0.1:$port"* ]]
}

@test "PGTRICKLE_DSN is used when --dsn is absent, and --dsn wins over it" {
    local port other
    port=$(closed_port)
    other=$((port == 65535 ? port - 1 : port + 1))
    PGTRICKLE_DSN="host=127.0.0.1 port=$port" run -4 --separate-stderr pgt --format json preflight
    json_is ".status.node == \"127.0.0.1:$port\""
    PGTRICKLE_DSN="host=127.0.0.1 port=$port" run -4 --separate-stderr \
        pgt --dsn "postgresql://127.0.0.1:$other/x" --format json preflight
    json_is ".status.node == \"127.0.0.1:$other\""
}

@test "a malformed --dsn exits 2, a malformed PGTRICKLE_DSN exits 3" {
    run -2 --separate-stderr pgt --dsn "host='unterminated" status
    PGTRICKLE_DSN="nosuchoption=1" run -3 --separate-stderr pgt --format json status
    json_is '.status.code == "configuration"'
}

@test "passwords are never printed" {
    local port
    port=$(closed_port)
    run -4 --separate-stderr pgt -v --format json \
        --dsn "host=127.0.0.1 port=$port password=s3cr3t-pw" status
    [[ "$output" != *"s3cr3t-pw"* ]]
    [[ "$stderr" != *"s3cr3t-pw"* ]]
    run -4 --separate-stderr pgt -v --dsn "postgresql://app:s3cr3t-pw@127.0.0.1:$port/db" status
    [[ "$output$stderr" != *"s3cr3t-pw"* ]]
}

@test "completion scripts in completions/ are the generated ones" {
    local shell file
    for shell in bash zsh fish; do
        case $shell in
            bash) file=pgtrickle.bash ;;
            zsh) file=_pgtrickle ;;
            fish) file=pgtrickle.fish ;;
        esac
        run -0 --separate-stderr pgt completions "$shell"
        if [ "$output" != "$(cat "$PGTRICKLE_SOURCE_DIR/completions/$file")" ]; then
            echo "completions/$file is stale: run 'pgtrickle completions $shell > completions/$file'" >&2
            return 1
        fi
    done
}

@test "bash completion offers commands, options and option values" {
    source "$PGTRICKLE_SOURCE_DIR/completions/pgtrickle.bash"
    COMP_WORDS=(pgtrickle ref)
    COMP_CWORD=1
    _pgtrickle
    [ "${COMPREPLY[*]}" = "refresh" ]
    COMP_WORDS=(pgtrickle --dsn x create st --mode d)
    COMP_CWORD=6
    _pgtrickle
    [ "${COMPREPLY[*]}" = "differential" ]
    COMP_WORDS=(pgtrickle completions "")
    COMP_CWORD=2
    _pgtrickle
    [[ " ${COMPREPLY[*]} " == *" zsh "* ]]
}

@test "zsh and fish completion scripts parse" {
    if command -v zsh >/dev/null; then
        zsh -n "$PGTRICKLE_SOURCE_DIR/completions/_pgtrickle"
    fi
    if command -v fish >/dev/null; then
        fish -n "$PGTRICKLE_SOURCE_DIR/completions/pgtrickle.fish"
    fi
    bash -n "$PGTRICKLE_SOURCE_DIR/completions/pgtrickle.bash"
}

@test "every command has a docs page that names each of its options" {
    local script cmd opt missing=""
    script=$(pgt completions fish)
    for cmd in $(sed -n 's/.*__fish_use_subcommand -a \([a-z-]*\) .*/\1/p' <<<"$script"); do
        local page="$PGTRICKLE_SOURCE_DIR/docs/cli/$cmd.md"
        if [ ! -f "$page" ]; then
            missing+=" docs/cli/$cmd.md"
            continue
        fi
        for opt in $(sed -n "s/.*'__fish_seen_subcommand_from $cmd' -l \([a-z-]*\) .*/\1/p" <<<"$script"); do
            grep -q -- "--$opt" "$page" || missing+=" --$opt(in $cmd.md)"
        done
    done
    for opt in $(sed -n 's/^complete -c pgtrickle\( -s [a-z]\)\? -l \([a-z-]*\) .*/\2/p' <<<"$script"); do
        grep -q -- "--$opt" "$PGTRICKLE_SOURCE_DIR/docs/cli/README.md" || missing+=" --$opt(in README.md)"
    done
    if [ -n "$missing" ]; then
        echo "undocumented:$missing" >&2
        return 1
    fi
}
