#include "slots_view.h"

#include <vector>

#include "core/cli_format.h"

namespace pgt::cli {

std::string json_cell(const json::Value& v) {
    switch (v.type()) {
        case json::Value::Type::null:
            return "";
        case json::Value::Type::string:
            return cli_format::one_line(v.as_string());
        default:
            return json::dump(v);
    }
}

std::string worker_slots_table(const json::Value& rows) {
    // `status` adds each slot's health (a "status" object); `slots list` does not.
    const bool health = !rows.as_array().empty() && rows.as_array().front()["status"].is_object();
    std::vector<std::vector<std::string>> cells;
    for (const json::Value& s : rows.as_array()) {
        const json::Value& lag = s["lag_bytes"];
        const json::Value& age = s["last_poll_age_seconds"];
        cells.push_back(
            {json_cell(s["source"]), json_cell(s["worker"]), json_cell(s["slot_name"]),
             json_cell(s["worker_frontier"]),
             lag.is_number() ? cli_format::format_bytes(lag.as_double()) : "",
             age.is_number() ? cli_format::format_duration(age.as_double()) + " ago" : "never",
             json_cell(s["consecutive_failures"]), json_cell(s["last_error"])});
        if (health) {
            cells.back().push_back(json_cell(s["status"]["code"]));
        }
    }
    std::vector<std::string> header = {"source", "worker",    "slot",     "frontier",
                                       "lag",    "last poll", "failures", "last error"};
    if (health) {
        header.emplace_back("health");
    }
    return cli_format::render_table(header, cells);
}

std::string worker_slots_summary(const json::Value& rows) {
    const std::size_t n = rows.as_array().size();
    std::size_t failing = 0;
    for (const json::Value& s : rows.as_array()) {
        if (s["consecutive_failures"].is_number() && s["consecutive_failures"].as_double() > 0) {
            ++failing;
        }
    }
    std::string text = std::to_string(n) + (n == 1 ? " worker slot" : " worker slots");
    if (failing > 0) {
        text += ", " + std::to_string(failing) + " failing";
    }
    return text;
}

}  // namespace pgt::cli
