// Throwaway PostgreSQL server for pgtrickle_bench (tests/support/pgtmp.sh), plus small
// helpers shared by the benchmark: shell capture, timing, statistics.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "run_capture.h"  // tests/support

namespace pgt::bench {

using test_support::run_capture;

/// Starts a server with pgtmp.sh and stops it in the destructor, at exit and on fatal
/// signals (SIGINT, SIGTERM, SIGABRT, SIGSEGV). Only one instance may exist.
class Server {
  public:
    /// `settings` are passed as `--set name=value` to pgtmp.sh.
    explicit Server(const std::vector<std::string>& settings);
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    const std::string& dir() const { return dir_; }
    const std::string& port() const { return port_; }
    std::string dsn(const std::string& db) const;
    std::string server_log() const { return dir_ + "/server.log"; }

    /// When set, the server log is copied there just before the server is removed.
    void keep_log_at(const std::string& path);

  private:
    std::string dir_, port_;
};

using Clock = std::chrono::steady_clock;

inline double ms_since(Clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

double median(std::vector<double> v);
double min_of(const std::vector<double>& v);
double max_of(const std::vector<double>& v);
/// Nearest-rank percentile, p in [0, 100] (p=50 of an even count is the lower middle).
double percentile(std::vector<double> v, double p);

/// A string with all values, e.g. "[1.2, 3.4]" (given precision).
std::string list(const std::vector<double>& v, int precision);

}  // namespace pgt::bench
