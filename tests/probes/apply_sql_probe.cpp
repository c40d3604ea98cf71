// A probe for tests, compiled into pg_trickle.so only with -DPGTRICKLE_TEST_PROBES=ON (a
// default build has none): the apply statement the engine generates for a stream table's
// defining query, a storage table, a frontier snapshot and an apply target. Not declared by
// the extension's SQL scripts; a test declares it itself to run the `distributed` form of the
// apply on plain PostgreSQL:
//   CREATE FUNCTION apply_sql(query_view oid, storage regclass, frontier_snapshot text,
//                             apply_target text) RETURNS text
//       LANGUAGE C STRICT AS 'pg_trickle', 'pgtrickle_engine_apply_sql';
// Every captured source counts as changed (a superset of the window's sources is correct).
#include <string>

#include "boundary/guard.h"
#include "boundary/pg.h"
#include "boundary/spi.h"
#include "capture/capture.h"
#include "catalog/generation.h"
#include "core/delta_sql.h"
#include "refresh/refresh.h"

extern "C" {
#include "utils/builtins.h"
#include "utils/errcodes.h"
}

PGT_FUNCTION(pgtrickle_engine_apply_sql) {
    const Oid query_view = PG_GETARG_OID(0);
    const Oid storage_relid = PG_GETARG_OID(1);
    const std::string snapshot = pgt::pg::text_arg(fcinfo, 2);
    const std::string target_kind = pgt::pg::text_arg(fcinfo, 3);
    if (target_kind != "local" && target_kind != "distributed") {
        throw pgt::Error(ERRCODE_INVALID_PARAMETER_VALUE,
                         "apply target must be 'local' or 'distributed'");
    }
    pgt::spi::Session spi;
    const pgt::pg::PinnedSearchPath pinned;
    const pgt::Translation tr = pgt::translate_stream_table(query_view);
    if (!tr.plan) {
        throw pgt::Error(ERRCODE_FEATURE_NOT_SUPPORTED,
                         "query cannot be maintained differentially: " + tr.unsupported);
    }
    const std::string storage =
        *pgt::spi::exec("SELECT $1::oid::regclass::text", {std::to_string(storage_relid)}).scalar();
    pgt::ivm::ChangeWindow window;
    window.frontier.snapshot = snapshot;
    for (Oid rel : tr.relations) {
        window.changed.insert(pgt::capture::resolve(rel).stable_name);
    }
    pgt::ivm::StorageLayout layout = pgt::ivm::differential_layout(*tr.plan);
    if (!pgt::catalog::has_row_image_id()) {
        layout.identity = pgt::ivm::RowIdentity::equality;
    }
    const std::string sql =
        pgt::ivm::delta_apply_sql(*tr.plan, layout, storage, window,
                                  target_kind == "distributed" ? pgt::ivm::ApplyTarget::distributed
                                                               : pgt::ivm::ApplyTarget::local);
    spi.finish();
    PG_RETURN_TEXT_P(pgt::pg::to_text(sql));
}
