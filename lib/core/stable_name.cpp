#include "core/stable_name.h"

#include <xxhash.h>

#include <cstdio>
#include <cstdlib>

namespace pgt {

std::string stable_name(std::string_view database, std::string_view schema,
                        std::string_view table) {
    std::string key;
    key.reserve(database.size() + schema.size() + table.size() + 2);
    key.append(database).append("/").append(schema).append(".").append(table);
    const XXH64_hash_t h = XXH64(key.data(), key.size(), 0);
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
    return std::string(buf, 16);
}

bool is_stable_name(std::string_view s) {
    if (s.size() != 16) {
        return false;
    }
    for (char c : s) {
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return false;
        }
    }
    return true;
}

CaptureObjectNames capture_object_names(std::string_view key) {
    const std::string k(key);
    CaptureObjectNames n;
    n.buffer_table = "changes_" + k;
    n.trigger_function = "pg_trickle_cdc_fn_" + k;
    n.trigger_insert = "pg_trickle_cdc_ins_" + k;
    n.trigger_update = "pg_trickle_cdc_upd_" + k;
    n.trigger_delete = "pg_trickle_cdc_del_" + k;
    n.trigger_truncate = "pg_trickle_cdc_trunc_" + k;
    n.xid_index = "idx_changes_" + k + "_xid";
    n.slot = "pgtrickle_" + k;
    n.state_table = "state_" + k;
    n.state_image_index = "idx_state_" + k + "_image";
    return n;
}

std::string buffer_column_name(int attnum) {
    return "c" + std::to_string(attnum);
}

int buffer_column_attnum(const char* name) {
    if (name[0] != 'c') {
        return 0;
    }
    char* end = nullptr;
    const long n = std::strtol(name + 1, &end, 10);
    return end != name + 1 && end != nullptr && *end == '\0' && n > 0 && n < 32768
               ? static_cast<int>(n)
               : 0;
}

}  // namespace pgt
