#!/usr/bin/env bash
# House rule: lib/core is pure C++17. It includes neither postgres.h nor any other
# PostgreSQL server header, nor libpq or libpqxx headers (those belong in lib/client and
# extension/). This is the source-level check; the build adds a compile-time one
# (tests/support/core_firewall.cpp.in).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$CI_ROOT"
server_dir=""
if command -v pg_config >/dev/null 2>&1; then
    server_dir=$(pg_config --includedir-server 2>/dev/null || true)
fi
mapfile -t files < <(ci_cpp_files lib/core)
bad=0
for f in "${files[@]}"; do
    while IFS=: read -r line inc; do
        name=$(sed -E 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"]([^>"]+)[>"].*/\1/' <<<"$inc")
        why=""
        case "$name" in
            postgres.h | postgres_ext.h | postgres_fe.h | c.h | fmgr.h | funcapi.h | miscadmin.h | \
                pg_config*.h | libpq-fe.h | libpq-events.h | libpq/* | pqxx/* | pqxx)
                why="PostgreSQL/libpq/libpqxx header" ;;
        esac
        # Anything that resolves to a server header (utils/..., catalog/..., nodes/...) and
        # not to a file of lib/core itself.
        if [ -z "$why" ] && [ -n "$server_dir" ] && [ -e "$server_dir/$name" ] &&
            [ ! -e "lib/core/$name" ] && [ ! -e "lib/$name" ]; then
            why="PostgreSQL server header ($server_dir/$name)"
        fi
        if [ -n "$why" ]; then
            ci_fail "  $f:$line: includes <$name>: $why"
            bad=$((bad + 1))
        fi
    done < <(grep -nE '^[[:space:]]*#[[:space:]]*include' "$f" || true)
done
if [ "$bad" != 0 ]; then
    echo "check core-firewall: FAILED ($bad forbidden includes in lib/core)"
    exit 1
fi
echo "check core-firewall: ok (${#files[@]} files in lib/core)"
