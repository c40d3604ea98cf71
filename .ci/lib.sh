# shellcheck shell=bash
# Shared helpers for the .ci/ scripts (sourced, not run).
# Every check prints "check NAME: ok" or lists what fails and exits non-zero.

# The repository root (the parent of .ci/).
CI_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

ci_fail() { echo "$*"; }

# Project C++ sources (tracked or new, not ignored) under the given folders, one per line.
ci_cpp_files() {
    if git -C "$CI_ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        git -C "$CI_ROOT" ls-files --cached --others --exclude-standard -- "$@" |
            grep -E '\.(cpp|cc|cxx|h|hpp|hxx)$' | sort -u |
            while read -r f; do [ -f "$CI_ROOT/$f" ] && echo "$f"; done
    else
        (cd "$CI_ROOT" && find "$@" -type f \( -name '*.cpp' -o -name '*.cc' -o -name '*.cxx' \
            -o -name '*.h' -o -name '*.hpp' -o -name '*.hxx' \) | sort)
    fi
}

# A style check (format, tidy) that fails exits 1 unless PGTRICKLE_CI_ENFORCE_STYLE=0,
# in which case it reports the failures and exits 0.
ci_style_exit() {
    local name=$1 failed=$2
    if [ "$failed" = 0 ]; then
        echo "check $name: ok"
        return 0
    fi
    if [ "${PGTRICKLE_CI_ENFORCE_STYLE:-1}" = 0 ]; then
        echo "check $name: FAILED, not enforced (PGTRICKLE_CI_ENFORCE_STYLE=0)"
        return 0
    fi
    echo "check $name: FAILED"
    return 1
}
