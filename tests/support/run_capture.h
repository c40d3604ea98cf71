// Running a shell command from a test program and capturing its output: shared by the
// integration tests (tests/integration/pg_fixture.h) and the benchmark (tests/bench/).
#pragma once

#include <cstdio>
#include <stdexcept>
#include <string>

namespace pgt::test_support {

/// Run `cmd` through /bin/sh; returns what it printed on stdout. Throws when it cannot be
/// run or exits non-zero (the message holds its exit status and output).
inline std::string run_capture(const std::string& cmd) {
    std::string out;
    FILE* p = popen(cmd.c_str(), "r");
    if (!p) {
        throw std::runtime_error("cannot run: " + cmd);
    }
    char buf[512];
    while (fgets(buf, sizeof buf, p)) {
        out += buf;
    }
    const int rc = pclose(p);
    if (rc != 0) {
        throw std::runtime_error("command failed (" + std::to_string(rc) + "): " + cmd + "\n" +
                                 out);
    }
    return out;
}

}  // namespace pgt::test_support
