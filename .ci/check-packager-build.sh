#!/usr/bin/env bash
# House rule: a packager's build works. A default configure (only -DCMAKE_BUILD_TYPE=Release,
# no project options) must not turn warnings into errors (PGTRICKLE_WERROR defaults to OFF:
# other compilers and flags warn elsewhere, e.g. Debian 12's GCC at -O3 inside xxhash.h)
# and must build the extension and lib/core; its pg_trickle.so exports none of the test-only
# probes (tests/probes/, compiled in only with -DPGTRICKLE_TEST_PROBES=ON).
#   .ci/check-packager-build.sh [BUILD_DIR]     (default: build-packager, removed first)
# PGTRICKLE_BUILD_JOBS sets the build's parallel jobs (default 2).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$CI_ROOT"
BUILD=${1:-build-packager}
JOBS=${PGTRICKLE_BUILD_JOBS:-2}
rm -rf "$BUILD"
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >"$BUILD.configure.log" 2>&1 ||
    { cat "$BUILD.configure.log"; ci_fail "check packager-build: configure failed"; exit 1; }
rm -f "$BUILD.configure.log"
bad=0
werror=$(sed -nE 's/^PGTRICKLE_WERROR:BOOL=(.*)/\1/p' "$BUILD/CMakeCache.txt")
if [ "$werror" != OFF ]; then
    ci_fail "  PGTRICKLE_WERROR defaults to '$werror' (must be OFF for packagers)"
    bad=$((bad + 1))
fi
if grep -q -- '-Werror' "$BUILD/compile_commands.json"; then
    ci_fail "  a default build compiles with -Werror:"
    jq -r '.[] | select(.command | test("-Werror")) | .file' "$BUILD/compile_commands.json" |
        sed "s|$CI_ROOT/||; s/^/    /" | head -n 20
    bad=$((bad + 1))
fi
if ! cmake --build "$BUILD" -j"$JOBS" --target pg_trickle pgtrickle_core pgtrickle >"$BUILD/build.log" 2>&1; then
    tail -n 40 "$BUILD/build.log"
    ci_fail "  the default Release build of pg_trickle, pgtrickle_core and pgtrickle failed"
    bad=$((bad + 1))
fi
warnings=$(grep -c 'warning:' "$BUILD/build.log" || true)
# The probes' SQL entry points (PGT_FUNCTION(name) exports name and pg_finfo_name).
mapfile -t probes < <(sed -nE 's/^PGT_FUNCTION\(([A-Za-z0-9_]+)\).*/\1/p' tests/probes/*.cpp | sort -u)
so="$BUILD/extension/pg_trickle.so"
if [ ${#probes[@]} = 0 ]; then
    ci_fail "  no PGT_FUNCTION found in tests/probes/*.cpp (has the probe layout changed?)"
    bad=$((bad + 1))
elif [ ! -f "$so" ]; then
    [ "$bad" != 0 ] || { ci_fail "  $so was not built"; bad=$((bad + 1)); }
else
    exported=$(nm -D --defined-only "$so" | awk '{print $NF}')
    for p in "${probes[@]}"; do
        if grep -qxE "(pg_finfo_)?$p" <<<"$exported"; then
            ci_fail "  the default build's pg_trickle.so exports the test probe $p"
            bad=$((bad + 1))
        fi
    done
fi
if [ "$bad" != 0 ]; then
    echo "check packager-build: FAILED"
    exit 1
fi
echo "check packager-build: ok (Release, PGTRICKLE_WERROR=OFF, no -Werror, none of ${#probes[@]} test probes exported; $warnings compiler warnings)"
# Shown, not enforced: what a packager's compiler says about the default build.
grep -E 'warning:' "$BUILD/build.log" | sed "s|$CI_ROOT/||; s/^/    /" | head -n 10 || true
rm -rf "$BUILD"
