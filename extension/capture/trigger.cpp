// The capture trigger: AFTER INSERT/UPDATE/DELETE/TRUNCATE on a source and on every member
// of its hierarchy (partitions, inheritance children: see docs/sources.md).
//
// Each source has its own trigger function pgtrickle_changes.pg_trickle_cdc_fn_<key>
// (LANGUAGE C, this symbol); the function's name gives the buffer changes_<key>. Rows are
// copied straight into the buffer (heap and index inserts, no SPI, no SQL): the write path of
// every captured statement runs through here. Statement-level triggers copy the transition
// tables; a source that is itself a partition or child is captured by row-level triggers.
// The buffer's columns are checked against the catalog before anything is written. Plain
// PostgreSQL C: no C++ objects with destructors, nothing an ereport could skip.
extern "C" {
#include "postgres.h"
#include "access/table.h"
#include "access/heapam.h"
#include "access/tableam.h"
#include "access/genam.h"
#include "access/xact.h"
#include "catalog/indexing.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "catalog/namespace.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "nodes/execnodes.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/tuplestore.h"
#include "utils/xid8.h"
}

#include "core/stable_name.h"
#include "scheduler/scheduler.h"

namespace {

constexpr const char kFunctionPrefix[] = "pg_trickle_cdc_fn_";

Relation open_buffer(Oid fn_oid) {
    const char* fname = get_func_name(fn_oid);
    if (fname == nullptr || strncmp(fname, kFunctionPrefix, sizeof(kFunctionPrefix) - 1) != 0) {
        ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                        errmsg("pg_trickle capture trigger function has an unexpected name \"%s\"",
                               fname ? fname : "?"),
                        errhint("Capture functions are named pg_trickle_cdc_fn_<stable name>.")));
    }
    char* buffer = psprintf("changes_%s", fname + sizeof(kFunctionPrefix) - 1);
    const Oid nsp = get_namespace_oid(pgt::kChangeSchema, false);
    const Oid relid = get_relname_relid(buffer, nsp);
    if (!OidIsValid(relid)) {
        ereport(ERROR,
                (errcode(ERRCODE_UNDEFINED_TABLE),
                 errmsg("pg_trickle change buffer pgtrickle_changes.%s does not exist", buffer),
                 errdetail("The capture trigger of a source has no buffer to write into."),
                 errhint("Drop and recreate the stream tables that read this source.")));
    }
    return table_open(relid, RowExclusiveLock);
}

/// Whether a trigger of `relid` calls `fn_oid` (read from pg_trigger: no lock on `relid`).
bool has_capture_trigger(Oid relid, Oid fn_oid) {
    Relation tg = table_open(TriggerRelationId, AccessShareLock);
    ScanKeyData key;
    ScanKeyInit(&key, Anum_pg_trigger_tgrelid, BTEqualStrategyNumber, F_OIDEQ,
                ObjectIdGetDatum(relid));
    SysScanDesc scan = systable_beginscan(tg, TriggerRelidNameIndexId, true, nullptr, 1, &key);
    bool found = false;
    HeapTuple tup = nullptr;
    while (!found && (tup = systable_getnext(scan)) != nullptr) {
        found = reinterpret_cast<Form_pg_trigger>(GETSTRUCT(tup))->tgfoid == fn_oid;
    }
    systable_endscan(scan);
    table_close(tg, AccessShareLock);
    return found;
}

/// The parent of `relid` (partition parent or inheritance parent) that also carries a
/// trigger calling `fn_oid`, or InvalidOid.
Oid capturing_parent(Oid relid, Oid fn_oid) {
    Relation inh = table_open(InheritsRelationId, AccessShareLock);
    ScanKeyData key;
    ScanKeyInit(&key, Anum_pg_inherits_inhrelid, BTEqualStrategyNumber, F_OIDEQ,
                ObjectIdGetDatum(relid));
    SysScanDesc scan = systable_beginscan(inh, InheritsRelidSeqnoIndexId, true, nullptr, 1, &key);
    Oid found = InvalidOid;
    HeapTuple tup = nullptr;
    while (!OidIsValid(found) && (tup = systable_getnext(scan)) != nullptr) {
        const Oid parent = reinterpret_cast<Form_pg_inherits>(GETSTRUCT(tup))->inhparent;
        if (has_capture_trigger(parent, fn_oid)) {
            found = parent;
        }
    }
    systable_endscan(scan);
    table_close(inh, AccessShareLock);
    return found;
}

/// The captured source whose buffer this trigger writes: the table itself, or for a
/// partition / inheritance child the topmost ancestor carrying the same capture function.
/// InvalidOid when a member's trigger finds no such ancestor any more (it left the hierarchy
/// without the DDL event trigger removing its triggers): its rows are not the source's.
Oid captured_source(Relation rel, const Trigger* trigger, Oid fn_oid) {
    Oid source = RelationGetRelid(rel);
    for (Oid up = capturing_parent(source, fn_oid); OidIsValid(up);
         up = capturing_parent(source, fn_oid)) {
        source = up;
    }
    const bool member = trigger->tgnargs > 0 && strcmp(trigger->tgargs[0], "member") == 0;
    if (member && source == RelationGetRelid(rel)) {
        return InvalidOid;
    }
    return source;
}

[[noreturn]] void layout_error(Relation buffer, Oid source, const char* problem) {
    ereport(
        ERROR,
        (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
         errmsg("pg_trickle change buffer pgtrickle_changes.%s does not match source \"%s\"",
                RelationGetRelationName(buffer), get_rel_name(source)),
         errdetail_internal("%s", problem),
         errhint("The buffer was edited, restored or altered outside pg_trickle. The next ALTER "
                 "TABLE of the source (or create_stream_table over it) rebuilds the buffer, "
                 "and the stream tables reading it then refresh fully.")));
}

/// Where each buffer column's value comes from, checked against the catalog: buffer column
/// c<k> holds attribute k of `source`, found in `rel` (the table whose transition rows are
/// copied: the source or one of its partitions / children) by name, and must have exactly
/// that column's type. A buffer column for a dropped source column stays NULL; a live source
/// column without a buffer column, or of another type, is an error: never a read of the
/// wrong attribute, never a datum stored under the wrong type.
struct Layout {
    int xid_col = -1;
    int op_col = -1;
    int* map = nullptr;  // buffer attribute index -> attribute index in rel, or -1
};

Layout checked_layout(Relation buffer, Relation rel, Oid source) {
    TupleDesc buf = RelationGetDescr(buffer);
    TupleDesc src = RelationGetDescr(rel);
    const bool same = RelationGetRelid(rel) == source;
    Layout out;
    out.map = static_cast<int*>(palloc(sizeof(int) * buf->natts));
    int source_natts = 0;
    bool* covered = nullptr;
    if (same) {
        source_natts = src->natts;
    } else {
        while (SearchSysCacheExists2(ATTNUM, ObjectIdGetDatum(source),
                                     Int16GetDatum(source_natts + 1))) {
            ++source_natts;
        }
    }
    covered = static_cast<bool*>(palloc0(sizeof(bool) * (source_natts + 1)));
    for (int j = 0; j < buf->natts; ++j) {
        out.map[j] = -1;
        Form_pg_attribute a = TupleDescAttr(buf, j);
        const char* name = NameStr(a->attname);
        if (a->attisdropped) {
            continue;
        }
        if (strcmp(name, "__pgt_xid") == 0 || strcmp(name, "__pgt_op") == 0) {
            const bool xid = name[6] == 'x';
            if (a->atttypid != (xid ? XID8OID : CHAROID)) {
                layout_error(buffer, source,
                             psprintf("Column %s has type %s instead of %s.", name,
                                      format_type_be(a->atttypid), xid ? "xid8" : "\"char\""));
            }
            (xid ? out.xid_col : out.op_col) = j;
            continue;
        }
        const int attnum = pgt::buffer_column_attnum(name);
        if (attnum == 0 || attnum > source_natts) {
            continue;  // not a capture column: left NULL
        }
        int idx = -1;
        if (same) {
            if (!TupleDescAttr(src, attnum - 1)->attisdropped) {
                idx = static_cast<int>(attnum - 1);
            }
        } else {
            HeapTuple at = SearchSysCache2(ATTNUM, ObjectIdGetDatum(source), Int16GetDatum(attnum));
            if (HeapTupleIsValid(at)) {
                auto* sa = reinterpret_cast<Form_pg_attribute>(GETSTRUCT(at));
                if (!sa->attisdropped) {
                    const AttrNumber own = get_attnum(RelationGetRelid(rel), NameStr(sa->attname));
                    if (own == InvalidAttrNumber) {
                        layout_error(buffer, source,
                                     psprintf("Column \"%s\" of the source is missing in \"%s\".",
                                              NameStr(sa->attname), RelationGetRelationName(rel)));
                    }
                    idx = own - 1;
                }
                ReleaseSysCache(at);
            }
        }
        if (idx < 0) {
            continue;  // a dropped source column: left NULL
        }
        Form_pg_attribute sa = TupleDescAttr(src, idx);
        // A domain's values are buffered as its base type (capture.cpp); buffers made
        // before that hold the domain itself. The datums are the same either way.
        int32 base_typmod = sa->atttypmod;
        const Oid base_type = getBaseTypeAndTypmod(sa->atttypid, &base_typmod);
        const bool same_type = sa->atttypid == a->atttypid && sa->atttypmod == a->atttypmod;
        if (!same_type && (base_type != a->atttypid || base_typmod != a->atttypmod)) {
            layout_error(
                buffer, source,
                psprintf("Buffer column %s has type %s, but source column \"%s\" has type %s.",
                         name, format_type_with_typemod(a->atttypid, a->atttypmod),
                         NameStr(sa->attname),
                         format_type_with_typemod(sa->atttypid, sa->atttypmod)));
        }
        covered[attnum] = true;
        out.map[j] = idx;
    }
    if (out.xid_col < 0 || out.op_col < 0) {
        layout_error(buffer, source, "Column __pgt_xid or __pgt_op is missing.");
    }
    for (int k = 1; k <= source_natts; ++k) {
        if (covered[k]) {
            continue;
        }
        bool live = false;
        if (same) {
            live = !TupleDescAttr(src, k - 1)->attisdropped;
        } else {
            HeapTuple at = SearchSysCache2(ATTNUM, ObjectIdGetDatum(source), Int16GetDatum(k));
            live = HeapTupleIsValid(at) &&
                   !reinterpret_cast<Form_pg_attribute>(GETSTRUCT(at))->attisdropped;
            if (HeapTupleIsValid(at)) {
                ReleaseSysCache(at);
            }
        }
        if (live) {
            layout_error(buffer, source,
                         psprintf("Buffer column c%d for source column \"%s\" is missing.", k,
                                  get_attname(source, static_cast<AttrNumber>(k), false)));
        }
    }
    pfree(covered);
    return out;
}

struct Writer {
    Relation buffer;
    EState* estate;
    ResultRelInfo* rri;
    TupleTableSlot* out;
    BulkInsertState bulk;
    CommandId cid;
    Datum xid;
};

void write_row(Writer& w, char op, TupleTableSlot* in, const Layout& layout) {
    TupleTableSlot* out = w.out;
    ExecClearTuple(out);
    const int natts = out->tts_tupleDescriptor->natts;
    for (int j = 0; j < natts; ++j) {
        out->tts_values[j] = 0;
        out->tts_isnull[j] = true;
        if (in != nullptr && layout.map[j] >= 0) {
            out->tts_values[j] = in->tts_values[layout.map[j]];
            out->tts_isnull[j] = in->tts_isnull[layout.map[j]];
        }
    }
    out->tts_values[layout.xid_col] = w.xid;
    out->tts_isnull[layout.xid_col] = false;
    out->tts_values[layout.op_col] = CharGetDatum(op);
    out->tts_isnull[layout.op_col] = false;
    ExecStoreVirtualTuple(out);
    table_tuple_insert(w.buffer, out, w.cid, 0, w.bulk);
    if (w.rri->ri_NumIndices > 0) {
        (void)ExecInsertIndexTuples(w.rri, out, w.estate, false, false, nullptr, NIL);
    }
    ResetPerTupleExprContext(w.estate);
}

void write_transition(Writer& w, char op, Tuplestorestate* ts, TupleDesc src,
                      const Layout& layout) {
    if (ts == nullptr) {
        return;
    }
    TupleTableSlot* in = MakeSingleTupleTableSlot(src, &TTSOpsMinimalTuple);
    // Own read pointer: other triggers of the statement read the same tuplestore.
    const int ptr = tuplestore_alloc_read_pointer(ts, 0);
    tuplestore_select_read_pointer(ts, ptr);
    tuplestore_rescan(ts);
    while (tuplestore_gettupleslot(ts, true, false, in)) {
        slot_getallattrs(in);
        write_row(w, op, in, layout);
    }
    tuplestore_select_read_pointer(ts, 0);
    ExecDropSingleTupleTableSlot(in);
}

}  // namespace

extern "C" {
PGDLLEXPORT PG_FUNCTION_INFO_V1(pgtrickle_capture);

PGDLLEXPORT Datum pgtrickle_capture(PG_FUNCTION_ARGS) {
    if (!CALLED_AS_TRIGGER(fcinfo)) {
        ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                        errmsg("pg_trickle capture function called outside a trigger")));
    }
    auto* td = reinterpret_cast<TriggerData*>(fcinfo->context);
    if (!TRIGGER_FIRED_AFTER(td->tg_event)) {
        ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                        errmsg("pg_trickle capture triggers must be AFTER triggers")));
    }
    const Oid source = captured_source(td->tg_relation, td->tg_trigger, fcinfo->flinfo->fn_oid);
    if (!OidIsValid(source)) {
        return PointerGetDatum(nullptr);
    }
    Writer w;
    w.buffer = open_buffer(fcinfo->flinfo->fn_oid);
    TupleDesc src = RelationGetDescr(td->tg_relation);
    const Layout layout = checked_layout(w.buffer, td->tg_relation, source);
    w.estate = CreateExecutorState();
    w.rri = makeNode(ResultRelInfo);
    InitResultRelInfo(w.rri, w.buffer, 1, nullptr, 0);
    ExecOpenIndices(w.rri, false);
    w.out = MakeSingleTupleTableSlot(RelationGetDescr(w.buffer), &TTSOpsVirtual);
    w.bulk = GetBulkInsertState();
    w.cid = GetCurrentCommandId(true);
    w.xid = FullTransactionIdGetDatum(GetTopFullTransactionId());

    if (TRIGGER_FIRED_BY_TRUNCATE(td->tg_event)) {
        write_row(w, 'T', nullptr, layout);
    } else if (TRIGGER_FIRED_FOR_ROW(td->tg_event)) {
        // Row-level capture: a source that is itself a partition or inheritance child (rows
        // routed through its ancestors fire no statement trigger of it).
        const bool update = TRIGGER_FIRED_BY_UPDATE(td->tg_event);
        TupleTableSlot* old_row = TRIGGER_FIRED_BY_INSERT(td->tg_event) ? nullptr : td->tg_trigslot;
        TupleTableSlot* new_row = TRIGGER_FIRED_BY_INSERT(td->tg_event)
                                      ? td->tg_trigslot
                                      : (update ? td->tg_newslot : nullptr);
        if (old_row != nullptr) {
            slot_getallattrs(old_row);
            write_row(w, 'D', old_row, layout);
        }
        if (new_row != nullptr) {
            slot_getallattrs(new_row);
            write_row(w, 'I', new_row, layout);
        }
    } else {
        // An UPDATE is the deletion of the old row and the insertion of the new one.
        write_transition(w, 'D', td->tg_oldtable, src, layout);
        write_transition(w, 'I', td->tg_newtable, src, layout);
    }

    FreeBulkInsertState(w.bulk);
    ExecDropSingleTupleTableSlot(w.out);
    ExecCloseIndices(w.rri);
    FreeExecutorState(w.estate);
    table_close(w.buffer, NoLock);
    pgt::scheduler::note_captured_write(source);
    return PointerGetDatum(nullptr);
}
}
