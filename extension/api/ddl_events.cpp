// Event triggers: keep capture in step with source DDL, and refuse DDL that would leave a
// stream table silently stale.
#include "capture/capture.h"
#include "catalog/generation.h"
#include "catalog/stream_tables.h"
#include "common/oids.h"
#include "boundary/guard.h"
#include "boundary/pg.h"
#include "boundary/spi.h"
#include "api/state.h"

extern "C" {
#include "commands/event_trigger.h"
#include "executor/spi.h"
#include "nodes/parsenodes.h"
#include "tcop/deparse_utility.h"
#include "utils/errcodes.h"
#include "utils/lsyscache.h"
}

namespace pgt {
bool g_dropping = false;
}

using namespace pgt;

namespace {

/// CREATE OR REPLACE VIEW of a view a stream table reads (directly or through other views):
/// refused, because the stream table's contents, its captured sources and its maintenance
/// mode were all derived from the old definition.
void refuse_replaced_views_read_by_stream_tables() {
    const auto hit = catalog::stream_table_on_replaced_view();
    if (!hit) {
        return;
    }
    throw Error(ERRCODE_FEATURE_NOT_SUPPORTED,
                "cannot replace view " + hit->second + " because stream table \"" + hit->first +
                    "\" reads it",
                "The stream table's contents, captured sources and refresh mode were derived from "
                "the current definition; it would otherwise be maintained against a query that "
                "no longer exists.",
                "Drop the stream tables reading the view (pgtrickle.drop_stream_table), replace "
                "the view, then create them again.");
}

/// Whether the command changed an inheritance or partition hierarchy: CREATE [FOREIGN] TABLE ...
/// PARTITION OF / INHERITS, ALTER TABLE ... ATTACH / DETACH PARTITION, INHERIT / NO INHERIT.
/// Read from the collected commands themselves (pg_ddl_command is a pointer to them, valid in
/// this backend), so that other DDL on members (a restore's constraints, indexes and
/// triggers) never triggers a reconciliation.
bool hierarchy_changed() {
    bool changed = false;
    pg_call([&]() noexcept {
        // Runs inside the pinned scope of the event trigger (pg_trickle_on_ddl_command_end).
        if (SPI_execute("SELECT command FROM pg_catalog.pg_event_trigger_ddl_commands()", true,
                        0) != SPI_OK_SELECT) {
            return;
        }
        for (uint64 i = 0; i < SPI_processed && !changed; ++i) {
            bool isnull = false;
            const Datum d = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);
            if (isnull) {
                continue;
            }
            const auto* cmd = reinterpret_cast<const CollectedCommand*>(DatumGetPointer(d));
            if (cmd->type == SCT_Simple && cmd->parsetree != nullptr &&
                (IsA(cmd->parsetree, CreateStmt) || IsA(cmd->parsetree, CreateForeignTableStmt))) {
                // CreateForeignTableStmt starts with a CreateStmt.
                const auto* cs = reinterpret_cast<const CreateStmt*>(cmd->parsetree);
                changed = cs->inhRelations != NIL || cs->partbound != nullptr;
            } else if (cmd->type == SCT_AlterTable) {
                ListCell* lc = nullptr;
                foreach (lc, cmd->d.alterTable.subcmds) {
                    const auto* sub = static_cast<const CollectedATSubcmd*>(lfirst(lc));
                    if (sub->parsetree == nullptr || !IsA(sub->parsetree, AlterTableCmd)) {
                        continue;
                    }
                    switch (reinterpret_cast<const AlterTableCmd*>(sub->parsetree)->subtype) {
                        case AT_AttachPartition:
                        case AT_DetachPartition:
                        case AT_DetachPartitionFinalize:
                        case AT_AddInherit:
                        case AT_DropInherit:
                            changed = true;
                            break;
                        default:
                            break;
                    }
                }
            }
        }
    });
    return changed;
}

/// After a hierarchy change: a stream table maintained differentially that reads a table
/// with FROM ONLY which now has members cannot be any more (see capture::only_limitation).
/// refresh_mode 'auto' falls back to full refresh with the reason; 'differential' refuses.
void switch_only_readers_to_full_refresh() {
    for (const auto& st : catalog::differential_stream_tables()) {
        const auto why = capture::only_limitation(st.query_view);
        if (!why) {
            continue;
        }
        const std::string name = st.schema + "." + st.name;
        if (st.refresh_mode == "differential") {
            throw Error(ERRCODE_FEATURE_NOT_SUPPORTED,
                        "stream table \"" + name +
                            "\" could no longer be maintained differentially: " + *why,
                        "It was created with refresh_mode 'differential'.",
                        "Run CALL pgtrickle.alter_stream_table('" + name +
                            "', refresh_mode => 'auto') first, or read the table without ONLY.");
        }
        catalog::maintain_by_full_refresh(st.id, "not differentiable: " + *why);
    }
}

}  // namespace

// ddl_command_end: after ALTER TABLE of a captured source, re-sync its buffer and trigger
// function (new, renamed, retyped or dropped columns); after a rename of a stream table,
// follow it; after DDL that may have changed a hierarchy (partitions, inheritance), put the
// capture triggers on every member of each captured source; after CREATE TRIGGER of a
// capture trigger (a restore), rebuild the buffer for the table's current attribute numbers.
PGT_FUNCTION(pgtrickle_on_ddl_command_end) {
    if (!CALLED_AS_EVENT_TRIGGER(fcinfo)) {
        throw Error(ERRCODE_E_R_I_E_EVENT_TRIGGER_PROTOCOL_VIOLATED,
                    "not fired by event trigger manager");
    }
    spi::Session spi;
    // Any role's DDL fires this, also one without USAGE on the pgtrickle schema (Citus runs
    // the grants it propagates under the object owner's role): the catalog is read and
    // kept as its owner, with search_path pinned (the DDL's author chose its own).
    const pg::AsExtensionOwner as_extension_owner;
    refuse_replaced_views_read_by_stream_tables();
    auto cmds = spi::exec(
        "SELECT DISTINCT objid::pg_catalog.text FROM pg_catalog.pg_event_trigger_ddl_commands() "
        "WHERE command_tag OPERATOR(pg_catalog.=) 'ALTER TABLE' AND object_type "
        "OPERATOR(pg_catalog.=) ANY ('{table,\"table column\"}'::pg_catalog.text[])");
    for (const auto& row : cmds.rows) {
        const Oid relid = oid_of(row[0]);
        capture::sync_source(relid);
        catalog::follow_rename(relid);
    }
    auto restored = spi::exec(
        "SELECT DISTINCT t.tgrelid::pg_catalog.text FROM "
        "pg_catalog.pg_event_trigger_ddl_commands() c JOIN pg_catalog.pg_trigger t ON t.oid "
        "OPERATOR(pg_catalog.=) c.objid WHERE c.command_tag OPERATOR(pg_catalog.=) 'CREATE "
        "TRIGGER' AND c.classid OPERATOR(pg_catalog.=) "
        "'pg_catalog.pg_trigger'::pg_catalog.regclass "
        "AND t.tgname::pg_catalog.text OPERATOR(pg_catalog.~~) 'pg\\_trickle\\_cdc\\_ins\\_%'");
    for (const auto& row : restored.rows) {
        if (capture::creating_triggers()) {
            break;  // pg_trickle's own (a source switching to triggers), not a restore
        }
        capture::sync_source(oid_of(row[0]), true);
    }
    if (hierarchy_changed()) {
        capture::reconcile_all();
        switch_only_readers_to_full_refresh();
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
    const pg::AsExtensionOwner as_extension_owner;  // as in ddl_command_end
    auto ext = spi::exec(
        "SELECT 1 FROM pg_catalog.pg_event_trigger_dropped_objects() WHERE object_type "
        "OPERATOR(pg_catalog.=) 'extension' AND object_name OPERATOR(pg_catalog.=) "
        "'pg_trickle'");
    if (!ext.rows.empty()) {
        spi.finish();
        PG_RETURN_VOID();
    }
    // A capture trigger dropped with its table: a partition or inheritance child of a
    // captured source was dropped, and its rows left the source.
    auto members = spi::exec(
        "SELECT DISTINCT o.address_names[pg_catalog.array_upper(o.address_names, 1)] FROM "
        "pg_catalog.pg_event_trigger_dropped_objects() o WHERE o.object_type "
        "OPERATOR(pg_catalog.=) 'trigger' AND NOT o.original AND "
        "o.address_names[pg_catalog.array_upper(o.address_names, 1)] OPERATOR(pg_catalog.~~) "
        "'pg\\_trickle\\_cdc\\_ins\\_%'");
    for (const auto& row : members.rows) {
        capture::note_dropped_member(*row[0]);
    }
    if (const auto hit = catalog::stream_table_part_dropped()) {
        throw Error(
            ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST,
            "cannot drop " + hit->object_type + " " + hit->object_identity +
                " because stream table \"" + hit->stream_table + "\" depends on it",
            "Dropping it would leave the stream table without its storage or its defining query.",
            "Drop the stream table first: CALL pgtrickle.drop_stream_table('" + hit->stream_table +
                "');");
    }
    spi.finish();
    PG_RETURN_VOID();
}
