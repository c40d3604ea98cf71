// Event triggers: keep capture in step with source DDL, and refuse DDL that would leave a
// stream table silently stale.
#include "capture/capture.h"
#include "boundary/guard.h"
#include "boundary/spi.h"
#include "api/state.h"

extern "C" {
#include "commands/event_trigger.h"
#include "utils/errcodes.h"
#include "utils/lsyscache.h"
}

namespace pgt {
bool g_dropping = false;
}

using namespace pgt;

// ddl_command_end: after ALTER TABLE of a captured source, re-sync its buffer and trigger
// function (new, renamed or retyped columns); after a rename of a stream table, follow it.
PGT_FUNCTION(pgtrickle_on_ddl_command_end) {
    if (!CALLED_AS_EVENT_TRIGGER(fcinfo)) {
        throw Error(ERRCODE_E_R_I_E_EVENT_TRIGGER_PROTOCOL_VIOLATED,
                    "not fired by event trigger manager");
    }
    spi::Session spi;
    auto cmds = spi::exec(
        "SELECT DISTINCT objid::text FROM pg_catalog.pg_event_trigger_ddl_commands() "
        "WHERE command_tag = 'ALTER TABLE' AND object_type IN ('table', 'table column')");
    for (const auto& row : cmds.rows) {
        const Oid relid = static_cast<Oid>(std::stoul(*row[0]));
        capture::sync_source(relid);
        spi::run(
            "UPDATE pgtrickle.pgt_stream_tables SET pgt_schema = n.nspname, pgt_name = c.relname "
            "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.oid = $1::oid AND pgt_relid = c.oid AND (pgt_schema, pgt_name) IS DISTINCT "
            "FROM (n.nspname, c.relname::text)",
            {*row[0]});
    }
    spi.finish();
    PG_RETURN_VOID();
}

// sql_drop: a stream table's storage or defining view may only go through drop_stream_table.
PGT_FUNCTION(pgtrickle_on_sql_drop) {
    if (!CALLED_AS_EVENT_TRIGGER(fcinfo)) {
        throw Error(ERRCODE_E_R_I_E_EVENT_TRIGGER_PROTOCOL_VIOLATED,
                    "not fired by event trigger manager");
    }
    if (g_dropping) {
        PG_RETURN_VOID();
    }
    spi::Session spi;
    auto ext = spi::exec(
        "SELECT 1 FROM pg_catalog.pg_event_trigger_dropped_objects() "
        "WHERE object_type = 'extension' AND object_name = 'pg_trickle'");
    if (!ext.rows.empty()) {
        spi.finish();
        PG_RETURN_VOID();
    }
    auto hit = spi::exec(
        "SELECT st.pgt_schema || '.' || st.pgt_name, o.object_type, o.object_identity "
        "FROM pg_catalog.pg_event_trigger_dropped_objects() o JOIN pgtrickle.pgt_stream_tables st "
        "ON o.objid = st.pgt_relid OR o.objid = st.query_view "
        "WHERE o.classid = 'pg_catalog.pg_class'::regclass ORDER BY 1 LIMIT 1");
    if (!hit.rows.empty()) {
        const auto& r = hit.rows[0];
        throw Error(
            ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST,
            "cannot drop " + *r[1] + " " + *r[2] + " because stream table \"" + *r[0] +
                "\" depends on it",
            "Dropping it would leave the stream table without its storage or its defining query.",
            "Drop the stream table first: CALL pgtrickle.drop_stream_table('" + *r[0] + "');");
    }
    spi.finish();
    PG_RETURN_VOID();
}
