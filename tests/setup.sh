#!/usr/bin/env bash
# Installs everything pg_trickle needs to build, test, run and check (.ci/: clang-format and
# clang-tidy 14) on Debian 12 (as root).
# Idempotent: does nothing when every package is already installed.
set -euo pipefail
# (postgresql-contrib-15 is not listed: on Debian 12 it is a virtual package provided by
# postgresql-15, which dpkg never reports as installed, so setup ran apt-get every time.)
PACKAGES=(
    build-essential cmake pkg-config git
    postgresql-15 postgresql-server-dev-15
    libpq-dev libpqxx-dev libcli11-dev libfmt-dev libxxhash-dev libgtest-dev
    bats jq
    clang-format clang-tidy
)
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "setup: missing packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})" >&2
        exit 3
    fi
    echo "setup: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian's postgresql package starts a cluster on 5432; our tests start their own servers
# and do not need it.
