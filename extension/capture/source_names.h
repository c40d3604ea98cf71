// Where a captured source's changes live, as the differential engine reads them. Capture
// owns these names (capture::resolve answers them); the engine (engine/translate.h) asks
// through a SourceResolver and never includes capture's internals.
#pragma once

#include <functional>
#include <string>

extern "C" {
#include "postgres.h"
}

namespace pgt {

/// Where a captured source's changes live.
struct SourceNames {
    std::string stable_name;  ///< key of the capture objects (stable name, or OID on 0.31.0)
    std::string buffer;       ///< qualified, quoted buffer table
    std::string state;        ///< qualified, quoted state copy when it has one (a Citus table)
};
using SourceResolver = std::function<SourceNames(Oid relid)>;

}  // namespace pgt
