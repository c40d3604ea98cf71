#!/usr/bin/env bash
# Runs the e2e suite: every file of tests/e2e/schedule, in order, with bats. Each file
# starts its cluster (cluster.sh start) in setup_file and stops it in teardown_file; this
# runner stops it again on exit whatever happened. When Citus cannot be had, prints a line
# starting with "SKIP:" and exits 77 (ctest's SKIP_RETURN_CODE for this suite).
# Needs the extension installed (cmake --install) and, for Citus, root (or Citus installed).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cluster="$here/cluster.sh"

rc=0
bash "$cluster" check || rc=$?
[ "$rc" = 0 ] || exit "$rc"

trap 'bash "$cluster" stop >/dev/null 2>&1 || true' EXIT
mapfile -t files < <(sed -e 's/#.*//' -e 's/[[:space:]]*$//' -e '/^$/d' "$here/schedule")
[ ${#files[@]} -gt 0 ] || { echo "e2e: $here/schedule lists no test files" >&2; exit 1; }
failed=0
for f in "${files[@]}"; do
    echo "# e2e: $f"
    bats --tap "$here/$f" || failed=$((failed + 1))
done
if [ "$failed" != 0 ]; then
    echo "e2e: $failed of ${#files[@]} test files failed" >&2
    exit 1
fi
