#!/usr/bin/env bash
# House rule: clang-tidy (Debian 12's clang-tidy 14, the root .clang-tidy) is clean on every
# project translation unit of the build: lib/, cli/, extension/ and tests/ (whatever
# compile_commands.json lists under the source tree, generated files excluded).
#   .ci/check-tidy.sh [BUILD_DIR]     (default: build; needs a configured build)
# PGTRICKLE_TIDY_JOBS sets the parallel jobs (default 2).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$CI_ROOT"
BUILD=$(cd "${1:-build}" && pwd)
JOBS=${PGTRICKLE_TIDY_JOBS:-2}
CLANG_TIDY=${CLANG_TIDY:-$(command -v clang-tidy-14 || command -v clang-tidy || true)}
[ -n "$CLANG_TIDY" ] || { ci_fail "check tidy: clang-tidy not found (apt-get install clang-tidy)"; exit 3; }
[ -f "$BUILD/compile_commands.json" ] || { ci_fail "check tidy: $BUILD/compile_commands.json missing (configure first)"; exit 3; }
command -v jq >/dev/null || { ci_fail "check tidy: jq not found"; exit 3; }

mapfile -t units < <(jq -r '.[].file' "$BUILD/compile_commands.json" | sort -u |
    while read -r f; do
        case "$f" in
            "$BUILD"/*) ;;                # generated (e.g. the core firewall TU)
            "$CI_ROOT"/*) echo "$f" ;;
        esac
    done)
[ ${#units[@]} -gt 0 ] || { ci_fail "check tidy: no translation units in $BUILD/compile_commands.json"; exit 3; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
start=$(date +%s)
# One report per unit (so that parallel output does not interleave); a unit fails when
# clang-tidy exits non-zero (WarningsAsErrors: '*').
printf '%s\n' "${units[@]}" | xargs -P "$JOBS" -I{} sh -c '
    f=$1; log=$2/$(echo "$f" | tr / _).log
    if ! "$3" -p "$4" --quiet "$f" >"$log" 2>&1; then mv "$log" "$log.failed"; fi
' _ {} "$out" "$CLANG_TIDY" "$BUILD"
took=$(($(date +%s) - start))
bad=()
for u in "${units[@]}"; do
    log="$out/$(echo "$u" | tr / _).log.failed"
    if [ -f "$log" ]; then
        bad+=("${u#"$CI_ROOT"/}")
        grep -E '(error|warning): ' "$log" | sed "s|$CI_ROOT/||" | sort -u | sed 's/^/    /' | head -n 40
    fi
done
echo "check tidy: ${#units[@]} translation units, ${#bad[@]} failed, ${took}s with $JOBS jobs ($("$CLANG_TIDY" --version | grep -o 'version [0-9.]*' | head -n1))"
for u in "${bad[@]+"${bad[@]}"}"; do ci_fail "  $u"; done
ci_style_exit tidy "${#bad[@]}"
