#include "core/scheduling.h"

#include <algorithm>
#include <bitset>
#include <ctime>
#include <set>
#include <sstream>

namespace pgt {
namespace {

/// Expand one cron field ("*/5", "1-5", "0,30") into a bitset over [lo, hi].
template <size_t N>
std::bitset<N> field_bits(const std::string& field, int lo, int hi) {
    std::bitset<N> bits;
    std::stringstream items(field);
    std::string item;
    while (std::getline(items, item, ',')) {
        int step = 1;
        const auto slash = item.find('/');
        std::string range = item;
        if (slash != std::string::npos) {
            step = std::stoi(item.substr(slash + 1));
            range = item.substr(0, slash);
        }
        int a = lo, b = hi;
        if (range != "*") {
            const auto dash = range.find('-');
            a = std::stoi(range.substr(0, dash));
            b = dash == std::string::npos ? (slash != std::string::npos ? hi : a)
                                          : std::stoi(range.substr(dash + 1));
        }
        for (int v = a; v <= b; v += step) {
            bits.set(static_cast<size_t>(v));
        }
    }
    return bits;
}

}  // namespace

std::optional<int64_t> next_cron_fire(const std::string& cron, int64_t after_ms) {
    std::stringstream ss(cron);
    std::string f[5];
    for (auto& x : f) {
        ss >> x;
    }
    const auto minutes = field_bits<60>(f[0], 0, 59);
    const auto hours = field_bits<24>(f[1], 0, 23);
    const auto dom = field_bits<32>(f[2], 1, 31);
    const auto months = field_bits<13>(f[3], 1, 12);
    auto dow = field_bits<8>(f[4], 0, 7);
    if (dow.test(7)) {
        dow.set(0);  // 7 is Sunday too
    }
    const bool dom_any = f[2] == "*", dow_any = f[4] == "*";
    // Start at the next whole minute after `after_ms`.
    time_t t = static_cast<time_t>(after_ms / 60000 * 60 + 60);
    const time_t limit = t + 4LL * 366 * 24 * 3600;
    while (t < limit) {
        std::tm tm{};
        gmtime_r(&t, &tm);
        if (!months.test(static_cast<size_t>(tm.tm_mon) + 1)) {
            // Jump to the first minute of the next month.
            tm.tm_mon += 1;
            tm.tm_mday = 1;
            tm.tm_hour = 0;
            tm.tm_min = 0;
            tm.tm_sec = 0;
            t = timegm(&tm);
            continue;
        }
        const bool dom_ok = dom.test(static_cast<size_t>(tm.tm_mday));
        const bool dow_ok = dow.test(static_cast<size_t>(tm.tm_wday));
        // Vixie cron: when both day fields are restricted, either may match.
        const bool day_ok = dom_any && dow_any ? true
                            : dom_any          ? dow_ok
                            : dow_any          ? dom_ok
                                               : (dom_ok || dow_ok);
        if (!day_ok) {
            t += 24 * 3600 - (tm.tm_hour * 3600 + tm.tm_min * 60);
            continue;
        }
        if (!hours.test(static_cast<size_t>(tm.tm_hour))) {
            t += 3600 - tm.tm_min * 60;
            continue;
        }
        if (!minutes.test(static_cast<size_t>(tm.tm_min))) {
            t += 60;
            continue;
        }
        return static_cast<int64_t>(t) * 1000;
    }
    return std::nullopt;
}

int64_t next_due_ms(const Schedule& schedule, std::optional<int64_t> last_ms, int64_t now_ms) {
    if (!last_ms) {
        return now_ms;
    }
    if (schedule.kind == Schedule::Kind::duration) {
        return *last_ms + schedule.every.count();
    }
    auto next = next_cron_fire(schedule.cron, *last_ms);
    return next ? *next : INT64_MAX;
}

int64_t backoff_ms(int consecutive_errors) {
    if (consecutive_errors <= 0) {
        return 0;
    }
    const int shift = std::min(consecutive_errors - 1, 20);
    return std::min<int64_t>(1000LL << shift, 5LL * 60 * 1000);
}

std::optional<std::vector<int64_t>> topo_order(const std::vector<int64_t>& nodes,
                                               const std::multimap<int64_t, int64_t>& edges,
                                               std::vector<int64_t>* cycle) {
    const std::set<int64_t> in(nodes.begin(), nodes.end());
    std::map<int64_t, int> indegree;
    for (int64_t n : nodes) {
        indegree[n] = 0;
    }
    for (const auto& [from, to] : edges) {
        if (in.count(from) && in.count(to)) {
            ++indegree[to];
        }
    }
    std::set<int64_t> ready;  // ordered: deterministic output
    for (const auto& [n, d] : indegree) {
        if (d == 0) {
            ready.insert(n);
        }
    }
    std::vector<int64_t> order;
    while (!ready.empty()) {
        const int64_t n = *ready.begin();
        ready.erase(ready.begin());
        order.push_back(n);
        auto range = edges.equal_range(n);
        for (auto it = range.first; it != range.second; ++it) {
            if (in.count(it->second) && --indegree[it->second] == 0) {
                ready.insert(it->second);
            }
        }
    }
    if (order.size() == nodes.size()) {
        return order;
    }
    if (cycle) {
        cycle->clear();
        for (const auto& [n, d] : indegree) {
            if (d > 0) {
                cycle->push_back(n);
            }
        }
    }
    return std::nullopt;
}

}  // namespace pgt
