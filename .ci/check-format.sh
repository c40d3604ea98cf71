#!/usr/bin/env bash
# House rule: every C++ file in cli/ lib/ extension/ tests/ is formatted by the root
# .clang-format (clang-format 14, Debian 12's). Fix a file with: clang-format -i FILE
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$CI_ROOT"
CLANG_FORMAT=${CLANG_FORMAT:-$(command -v clang-format-14 || command -v clang-format || true)}
[ -n "$CLANG_FORMAT" ] || { ci_fail "check format: clang-format not found (apt-get install clang-format)"; exit 3; }
mapfile -t files < <(ci_cpp_files cli lib extension tests)
[ ${#files[@]} -gt 0 ] || { ci_fail "check format: no C++ files found"; exit 3; }
bad=()
for f in "${files[@]}"; do
    if ! "$CLANG_FORMAT" --dry-run --Werror "$f" >/dev/null 2>&1; then
        bad+=("$f")
    fi
done
echo "check format: ${#files[@]} files, ${#bad[@]} not formatted ($("$CLANG_FORMAT" --version | grep -o 'version [0-9.]*'))"
for f in "${bad[@]+"${bad[@]}"}"; do
    n=$("$CLANG_FORMAT" --dry-run "$f" 2>&1 | grep -c ': warning:' || true)
    ci_fail "  $f: $n places differ (see: $CLANG_FORMAT --dry-run $f)"
done
ci_style_exit format "${#bad[@]}"
