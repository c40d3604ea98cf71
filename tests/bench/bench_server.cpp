#include "bench_server.h"

#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <regex>
#include <sstream>
#include <stdexcept>

#include <fmt/format.h>

namespace pgt::bench {
namespace {

// State for the at-exit / signal clean-up; plain globals because signal handlers need them.
std::string g_dir;       // NOLINT
std::string g_log_copy;  // NOLINT

std::string pgtmp() {
    return "bash '" PGTRICKLE_SOURCE_DIR "/tests/support/pgtmp.sh'";
}

std::string shell_quote(const std::string& s) {
    std::string out = "'";
    for (char c : s) {
        out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    }
    return out + "'";
}

void stop_now() {
    if (g_dir.empty()) {
        return;
    }
    const std::string dir = g_dir;
    g_dir.clear();
    if (!g_log_copy.empty()) {
        std::system(("cp " + shell_quote(dir + "/server.log") + " " + shell_quote(g_log_copy) +
                     " 2>/dev/null")
                        .c_str());
    }
    std::system((pgtmp() + " stop " + shell_quote(dir) + " >/dev/null 2>&1").c_str());
}

void on_signal(int sig) {
    stop_now();
    std::signal(sig, SIG_DFL);
    std::raise(sig);
}

}  // namespace

Server::Server(const std::vector<std::string>& settings) {
    if (!g_dir.empty()) {
        throw std::logic_error("only one bench server at a time");
    }
    std::string cmd = pgtmp() + " start";
    for (const auto& s : settings) {
        cmd += " --set " + shell_quote(s);
    }
    const std::string out = run_capture(cmd);
    std::smatch m;
    if (std::regex_search(out, m, std::regex("PGTMP_DIR=([^;]+);"))) {
        dir_ = m[1];
    }
    if (std::regex_search(out, m, std::regex("PGPORT=([0-9]+)"))) {
        port_ = m[1];
    }
    if (dir_.empty() || port_.empty()) {
        if (!dir_.empty()) {
            std::system((pgtmp() + " stop " + shell_quote(dir_) + " >/dev/null 2>&1").c_str());
        }
        throw std::runtime_error("could not start a server: " + out);
    }
    g_dir = dir_;
    static bool registered = false;
    if (!registered) {
        registered = true;
        std::atexit(stop_now);
        for (int sig : {SIGINT, SIGTERM, SIGABRT, SIGSEGV, SIGHUP}) {
            std::signal(sig, on_signal);
        }
    }
}

Server::~Server() {
    stop_now();
}

std::string Server::dsn(const std::string& db) const {
    return "host=127.0.0.1 port=" + port_ + " user=postgres dbname=" + db;
}

void Server::keep_log_at(const std::string& path) {
    g_log_copy = path;
}

double median(std::vector<double> v) {
    if (v.empty()) {
        return 0;
    }
    std::sort(v.begin(), v.end());
    const size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double min_of(const std::vector<double>& v) {
    return v.empty() ? 0 : *std::min_element(v.begin(), v.end());
}
double max_of(const std::vector<double>& v) {
    return v.empty() ? 0 : *std::max_element(v.begin(), v.end());
}

double percentile(std::vector<double> v, double p) {
    if (v.empty()) {
        return 0;
    }
    std::sort(v.begin(), v.end());
    const double rank = std::ceil(p / 100.0 * static_cast<double>(v.size()));
    const size_t i = rank < 1 ? 0 : std::min(v.size() - 1, static_cast<size_t>(rank) - 1);
    return v[i];
}

std::string list(const std::vector<double>& v, int precision) {
    std::string out = "[";
    for (size_t i = 0; i < v.size(); ++i) {
        out += (i ? ", " : "") + fmt::format("{:.{}f}", v[i], precision);
    }
    return out + "]";
}

}  // namespace pgt::bench
