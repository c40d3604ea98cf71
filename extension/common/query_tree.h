// Walks of an analyzed Query that more than one stage needs: capture (the tables a stream
// table's query reads, those read with FROM ONLY) and the engine (a translation's sources,
// ungrouped Vars). Plain PostgreSQL code: every function here runs inside pg_call
// (boundary/guard.h) and may ereport; results are palloc'd (common/oids.h: oid_list).
#pragma once

extern "C" {
#include "postgres.h"
#include "nodes/parsenodes.h"
#include "nodes/pg_list.h"
}

namespace pgt::query_tree {

/// PostgreSQL's walker API takes bool (*)() and calls it with (Node*, void*).
using Walker = bool (*)();
inline Walker walker_cast(bool (*fn)(Node*, void*)) {
    return reinterpret_cast<Walker>(reinterpret_cast<void (*)()>(fn));
}

/// The defining query of view `view`, copied (plain copyObjectImpl, never the throwing
/// pg_copy).
Query* view_query_copy(Oid view);

/// Which tables collect_tables gathers.
struct TableWalk {
    /// Only the tables read with FROM ONLY (capture::only_limitation).
    bool from_only = false;
};

/// Every plain or partitioned table `q` reads in FROM, through views, subqueries, sublinks
/// (also those in the arguments of functions, VALUES lists and table functions in FROM) and
/// CTEs, appended to `*tables` once each, in the order first met. Capture and the engine use
/// the same walk, so a table the engine reads is always one capture prepares.
void collect_tables(Query* q, const TableWalk& how, List** tables);

/// The columns of plain tables that `q` looks rows up by: each column compared with `=` in
/// a WHERE or ON condition or a sublink's (a join's or a correlated EXISTS' key), one
/// entry each; and the GROUP BY columns of one table, one entry together. Appended to
/// `*keys` as integer lists (relid, attnum, ...). A state copy is indexed on them
/// (capture/state_copy.h), so that a delta reads the rows of the changed keys only. Every
/// table column read anywhere is appended to `*used` as (relid, attnum), attnum 0 for a
/// whole-row reference: the indexes include them, so that such reads need no heap.
void collect_lookup_keys(Query* q, List** keys, List** used);

}  // namespace pgt::query_tree
