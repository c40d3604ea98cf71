// OIDs as C++ code handles them: as the text that SQL parameters and results (SPI, remote
// commands) carry, and out of a PostgreSQL OID List.
#pragma once

#include <optional>
#include <string>
#include <vector>

extern "C" {
#include "postgres.h"
#include "nodes/pg_list.h"
}

namespace pgt {

inline std::string oid_text(Oid oid) {
    return std::to_string(oid);
}

/// The OID a text result holds; InvalidOid for NULL.
inline Oid oid_of(const std::optional<std::string>& text) {
    return text ? static_cast<Oid>(std::stoul(*text)) : InvalidOid;
}

/// The OIDs of an OID List (palloc'd by PostgreSQL code), in order. Reads the List only:
/// no PostgreSQL call, so it runs outside pg_call.
inline std::vector<Oid> oid_list(const List* oids) {
    std::vector<Oid> out;
    const ListCell* lc = nullptr;
    foreach (lc, oids) {
        out.push_back(lfirst_oid(lc));
    }
    return out;
}

}  // namespace pgt
