#!/usr/bin/env bash
# Installs what is needed, builds everything, installs the extension and the CLI, and runs
# every test suite (unit, integration against throwaway servers, CLI). Run as root on Debian 12.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/setup.sh
BUILD=${BUILD_DIR:-build}
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPGTRICKLE_WERROR=ON >/dev/null
cmake --build "$BUILD" -j"$(nproc)"
cmake --install "$BUILD" >/dev/null
ctest --test-dir "$BUILD" --output-on-failure --timeout 1500
