#!/usr/bin/env bash
# House rule: every e2e test file (tests/e2e/*.bats) is listed in tests/e2e/schedule, and
# every file listed there exists; otherwise a test silently never runs.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$CI_ROOT/tests/e2e" 2>/dev/null || { ci_fail "check e2e-schedule: tests/e2e/ does not exist"; exit 1; }
[ -f schedule ] || { ci_fail "check e2e-schedule: tests/e2e/schedule does not exist"; exit 1; }
mapfile -t listed < <(sed -e 's/#.*//' -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//' -e '/^$/d' schedule)
mapfile -t present < <(find . -name '*.bats' -type f | sed 's|^\./||' | sort)
bad=0
declare -A in_schedule=()
for f in "${listed[@]+"${listed[@]}"}"; do
    if [ -n "${in_schedule[$f]:-}" ]; then
        ci_fail "  tests/e2e/schedule lists $f twice"
        bad=$((bad + 1))
    fi
    in_schedule[$f]=1
    if [ ! -f "$f" ]; then
        ci_fail "  tests/e2e/schedule lists $f, which does not exist"
        bad=$((bad + 1))
    fi
done
for f in "${present[@]+"${present[@]}"}"; do
    if [ -z "${in_schedule[$f]:-}" ]; then
        ci_fail "  tests/e2e/$f is not listed in tests/e2e/schedule (it would never run)"
        bad=$((bad + 1))
    fi
done
if [ "$bad" != 0 ]; then
    echo "check e2e-schedule: FAILED"
    exit 1
fi
echo "check e2e-schedule: ok (${#listed[@]} files)"
