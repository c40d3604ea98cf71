#include "core/schedule.h"

#include <cctype>
#include <sstream>
#include <vector>

namespace pgt {
namespace {

std::optional<std::string> check_cron_field(const std::string& field, int lo, int hi,
                                            const char* name) {
    std::stringstream items(field);
    std::string item;
    while (std::getline(items, item, ',')) {
        if (item.empty()) {
            return std::string("empty item in the ") + name + " field";
        }
        std::string range = item;
        const auto slash = item.find('/');
        if (slash != std::string::npos) {
            range = item.substr(0, slash);
            const std::string step = item.substr(slash + 1);
            if (step.empty() || step.find_first_not_of("0123456789") != std::string::npos ||
                std::stoi(step) == 0) {
                return std::string("invalid step \"") + step + "\" in the " + name + " field";
            }
        }
        if (range == "*") {
            continue;
        }
        const auto dash = range.find('-');
        const std::string a = range.substr(0, dash);
        const std::string b = dash == std::string::npos ? a : range.substr(dash + 1);
        for (const auto& v : {a, b}) {
            if (v.empty() || v.size() > 4 ||
                v.find_first_not_of("0123456789") != std::string::npos) {
                return std::string("invalid value \"") + v + "\" in the " + name + " field";
            }
            const int n = std::stoi(v);
            if (n < lo || n > hi) {
                return std::string(name) + " value " + v + " is out of range " +
                       std::to_string(lo) + "-" + std::to_string(hi);
            }
        }
        if (std::stoi(a) > std::stoi(b)) {
            return std::string("descending range \"") + range + "\" in the " + name + " field";
        }
    }
    return std::nullopt;
}

}  // namespace

Schedule parse_schedule(std::string_view text) {
    Schedule s;
    std::string t(text);
    while (!t.empty() && std::isspace(static_cast<unsigned char>(t.back()))) {
        t.pop_back();
    }
    while (!t.empty() && std::isspace(static_cast<unsigned char>(t.front()))) {
        t.erase(t.begin());
    }
    if (t.empty()) {
        s.error = "empty schedule";
        return s;
    }
    if (t[0] == '@') {
        static const std::pair<const char*, const char*> macros[] = {
            {"@hourly", "0 * * * *"},  {"@daily", "0 0 * * *"},   {"@midnight", "0 0 * * *"},
            {"@weekly", "0 0 * * 0"},  {"@monthly", "0 0 1 * *"}, {"@yearly", "0 0 1 1 *"},
            {"@annually", "0 0 1 1 *"}};
        for (const auto& [m, expansion] : macros) {
            if (t == m) {
                s.kind = Schedule::Kind::cron;
                s.cron = expansion;
                return s;
            }
        }
        s.error = "unknown macro \"" + t + "\"";
        return s;
    }
    if (t.find(' ') != std::string::npos) {
        std::stringstream ss(t);
        std::vector<std::string> f;
        std::string x;
        while (ss >> x) {
            f.push_back(x);
        }
        if (f.size() != 5) {
            s.error =
                "a cron expression has 5 fields (minute hour day-of-month month day-of-week), "
                "got " +
                std::to_string(f.size());
            return s;
        }
        static const int lo[] = {0, 0, 1, 1, 0}, hi[] = {59, 23, 31, 12, 7};
        static const char* names[] = {"minute", "hour", "day-of-month", "month", "day-of-week"};
        for (int i = 0; i < 5; ++i) {
            if (auto e = check_cron_field(f[i], lo[i], hi[i], names[i])) {
                s.error = *e;
                return s;
            }
        }
        s.kind = Schedule::Kind::cron;
        s.cron = f[0] + " " + f[1] + " " + f[2] + " " + f[3] + " " + f[4];
        return s;
    }
    long long total = 0;
    size_t i = 0;
    while (i < t.size()) {
        size_t j = i;
        while (j < t.size() && std::isdigit(static_cast<unsigned char>(t[j]))) {
            ++j;
        }
        if (j == i || j - i > 9) {
            s.error = "expected a number at \"" + t.substr(i) + "\"";
            return s;
        }
        const long long n = std::stoll(t.substr(i, j - i));
        size_t k = j;
        while (k < t.size() && std::isalpha(static_cast<unsigned char>(t[k]))) {
            ++k;
        }
        const std::string unit = t.substr(j, k - j);
        long long ms;
        if (unit == "ms") {
            ms = 1;
        } else if (unit == "s") {
            ms = 1000;
        } else if (unit == "m") {
            ms = 60LL * 1000;
        } else if (unit == "h") {
            ms = 3600LL * 1000;
        } else if (unit == "d") {
            ms = 24LL * 3600 * 1000;
        } else {
            s.error = unit.empty()
                          ? "missing unit after " + std::to_string(n) + " (use ms, s, m, h or d)"
                          : "unknown unit \"" + unit + "\" (use ms, s, m, h or d)";
            return s;
        }
        total += n * ms;
        i = k;
    }
    if (total <= 0) {
        s.error = "the duration must be positive";
        return s;
    }
    s.kind = Schedule::Kind::duration;
    s.every = std::chrono::milliseconds(total);
    return s;
}

}  // namespace pgt
