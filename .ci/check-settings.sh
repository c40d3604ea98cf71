#!/usr/bin/env bash
# House rule: settings are documented and real.
#  - every pg_trickle.* setting defined in extension/ (DefineCustom*Variable) has a row in
#    docs/settings.md, and every row there is defined;
#  - every defined setting's C++ variable (pgt::settings, extension/settings.h) is read
#    somewhere in extension/ outside module.cpp and settings.h, unless its row in
#    docs/settings.md says "not used yet" (a setting reserved for work in progress).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$CI_ROOT"
DOC=docs/settings.md
MARK="not used yet"

# "name variable" per DefineCustom*Variable("pg_trickle.name", ..., &variable, ...) call
# (calls span several lines).
mapfile -t defined < <(grep -rlZ --include='*.cpp' 'DefineCustom' extension | xargs -0 -r cat |
    perl -0777 -ne 'while (/DefineCustom\w+Variable\s*\(\s*"pg_trickle\.(\w+)"[^;]*?&\s*(?:pgt::)?(?:settings::)?(\w+)/gs) { print "$1 $2\n" }')
# Documented settings: table rows that start with | `pg_trickle.name`.
mapfile -t documented < <(grep -oE '^\|[[:space:]]*`pg_trickle\.[a-z0-9_]+`' "$DOC" |
    sed -E 's/.*`pg_trickle\.([a-z0-9_]+)`/\1/' | sort -u)

bad=0
[ ${#defined[@]} -gt 0 ] || { ci_fail "  no DefineCustom*Variable(\"pg_trickle.*\") found in extension/"; bad=1; }
declare -A is_defined=()
for d in "${defined[@]}"; do
    name=${d%% *} var=${d#* }
    is_defined[$name]=1
    row=$(grep -E "^\|[[:space:]]*\`pg_trickle\.$name\`" "$DOC" || true)
    if [ -z "$row" ]; then
        ci_fail "  pg_trickle.$name: defined in extension/ but not documented in $DOC"
        bad=$((bad + 1))
        continue
    fi
    if grep -qiF "$MARK" <<<"$row"; then
        reserved=1
    else
        reserved=0
    fi
    # Read outside module.cpp/settings.h: qualified (settings::var), or unqualified in a
    # file that says `using namespace pgt::settings` / `using pgt::settings::var`.
    used=0
    while read -r f; do
        case "$f" in extension/module.cpp | extension/settings.h) continue ;; esac
        if grep -qE "settings::$var\b" "$f"; then used=1; break; fi
        if grep -qE "using namespace (pgt::)?settings\b|using (pgt::)?settings::$var\b" "$f" &&
            grep -qE "\b$var\b" "$f"; then used=1; break; fi
    done < <(grep -rlwE --include='*.cpp' --include='*.h' "$var" extension || true)
    if [ "$used" = 0 ] && [ "$reserved" = 0 ]; then
        ci_fail "  pg_trickle.$name: its variable pgt::settings::$var is never read outside extension/module.cpp (use it, or mark its row in $DOC \"$MARK\")"
        bad=$((bad + 1))
    elif [ "$used" = 1 ] && [ "$reserved" = 1 ]; then
        ci_fail "  pg_trickle.$name: $DOC says \"$MARK\" but pgt::settings::$var is read (drop the mark)"
        bad=$((bad + 1))
    fi
done
for name in "${documented[@]}"; do
    if [ -z "${is_defined[$name]:-}" ]; then
        ci_fail "  pg_trickle.$name: documented in $DOC but not defined in extension/"
        bad=$((bad + 1))
    fi
done
if [ "$bad" != 0 ]; then
    echo "check settings: FAILED"
    exit 1
fi
echo "check settings: ok (${#defined[@]} settings defined and documented)"
