#!/usr/bin/env bash
# Installs what is needed, builds everything, installs the extension and the CLI, and runs
# every test suite (unit, integration against a throwaway server, CLI, e2e against a Citus
# cluster on loopback or skipped). Run as root on Debian 12.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/setup.sh
BUILD=${BUILD_DIR:-build}
# The integration tests call test-only probes (tests/probes/), compiled into pg_trickle.so
# only with PGTRICKLE_TEST_PROBES=ON (a packager's default build has none).
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPGTRICKLE_WERROR=ON \
    -DPGTRICKLE_TEST_PROBES=ON >/dev/null
cmake --build "$BUILD" -j"$(nproc)"
cmake --install "$BUILD" >/dev/null
# The e2e suite needs Citus: installed here from ../shared/citus when that exists; when it
# cannot be had, the SKIP: line saying why is printed here, where it is seen (ctest shows
# the e2e test as skipped but not its output).
bash tests/e2e/cluster.sh check || true
ctest --test-dir "$BUILD" --output-on-failure --timeout 1500
