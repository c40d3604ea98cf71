// Translation of an analyzed Query into the differential engine's operator tree.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "capture/source_names.h"
#include "core/ivm_plan.h"

extern "C" {
#include "postgres.h"
#include "nodes/parsenodes.h"
}

namespace pgt {

struct Translation {
    std::shared_ptr<ivm::Query> plan;  ///< null when the query cannot be maintained differentially
    std::string unsupported;           ///< why not, naming the construct
    std::vector<Oid> relations;        ///< every table the query reads (captured sources)
};

/// Translate `query` (an analyzed SELECT, e.g. a view's rule action). Never throws for an
/// unsupported construct: that is reported in `unsupported`. `relations` is filled either way.
Translation translate_query(Query* query, const SourceResolver& resolve);

/// Schema-qualified SQL name of a type with its modifier, e.g. pg_catalog.numeric(10,2).
std::string sql_type_name(Oid type, int32 typmod);

/// Schema-qualified, quoted SQL name of a collation.
std::string sql_collation_name(Oid collation);

}  // namespace pgt
