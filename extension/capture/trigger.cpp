// The capture trigger: statement-level AFTER INSERT/UPDATE/DELETE/TRUNCATE on a source.
//
// Each source has its own trigger function pgtrickle_changes.pg_trickle_cdc_fn_<key>
// (LANGUAGE C, this symbol); the function's name gives the buffer changes_<key>. The
// transition tables are copied straight into the buffer (heap and index inserts, no SPI,
// no SQL): the write path of every captured statement runs through here. Plain PostgreSQL
// C: no C++ objects live across calls that may raise.
extern "C" {
#include "postgres.h"
#include "access/table.h"
#include "access/heapam.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "nodes/execnodes.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/tuplestore.h"
#include "utils/xid8.h"
}

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
    const Oid nsp = get_namespace_oid("pgtrickle_changes", false);
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

/// For each buffer attribute, the source attribute index it captures (c<attnum>), or -1.
int* buffer_to_source(TupleDesc buf, TupleDesc src) {
    int* map = static_cast<int*>(palloc(sizeof(int) * buf->natts));
    for (int j = 0; j < buf->natts; ++j) {
        map[j] = -1;
        Form_pg_attribute a = TupleDescAttr(buf, j);
        const char* name = NameStr(a->attname);
        if (a->attisdropped || name[0] != 'c') {
            continue;
        }
        char* end = nullptr;
        const long attnum = strtol(name + 1, &end, 10);
        if (end == name + 1 || *end != '\0' || attnum < 1 || attnum > src->natts) {
            continue;
        }
        if (TupleDescAttr(src, attnum - 1)->attisdropped) {
            continue;
        }
        map[j] = static_cast<int>(attnum - 1);
    }
    return map;
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

void write_row(Writer& w, char op, TupleTableSlot* in, const int* map) {
    TupleTableSlot* out = w.out;
    ExecClearTuple(out);
    const int natts = out->tts_tupleDescriptor->natts;
    for (int j = 0; j < natts; ++j) {
        out->tts_values[j] = 0;
        out->tts_isnull[j] = true;
    }
    out->tts_values[0] = w.xid;
    out->tts_isnull[0] = false;
    out->tts_values[1] = CharGetDatum(op);
    out->tts_isnull[1] = false;
    if (in != nullptr) {
        for (int j = 2; j < natts; ++j) {
            if (map[j] < 0) {
                continue;
            }
            out->tts_values[j] = in->tts_values[map[j]];
            out->tts_isnull[j] = in->tts_isnull[map[j]];
        }
    }
    ExecStoreVirtualTuple(out);
    table_tuple_insert(w.buffer, out, w.cid, 0, w.bulk);
    if (w.rri->ri_NumIndices > 0) {
        (void)ExecInsertIndexTuples(w.rri, out, w.estate, false, false, nullptr, NIL);
    }
    ResetPerTupleExprContext(w.estate);
}

void write_transition(Writer& w, char op, Tuplestorestate* ts, TupleDesc src, const int* map) {
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
        write_row(w, op, in, map);
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
    if (!TRIGGER_FIRED_FOR_STATEMENT(td->tg_event) || !TRIGGER_FIRED_AFTER(td->tg_event)) {
        ereport(ERROR,
                (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                 errmsg("pg_trickle capture triggers must be statement-level AFTER triggers")));
    }
    Writer w;
    w.buffer = open_buffer(fcinfo->flinfo->fn_oid);
    TupleDesc src = RelationGetDescr(td->tg_relation);
    const int* map = buffer_to_source(RelationGetDescr(w.buffer), src);
    w.estate = CreateExecutorState();
    w.rri = makeNode(ResultRelInfo);
    InitResultRelInfo(w.rri, w.buffer, 1, nullptr, 0);
    ExecOpenIndices(w.rri, false);
    w.out = MakeSingleTupleTableSlot(RelationGetDescr(w.buffer), &TTSOpsVirtual);
    w.bulk = GetBulkInsertState();
    w.cid = GetCurrentCommandId(true);
    w.xid = FullTransactionIdGetDatum(GetTopFullTransactionId());

    if (TRIGGER_FIRED_BY_TRUNCATE(td->tg_event)) {
        write_row(w, 'T', nullptr, map);
    } else {
        // An UPDATE is the deletion of the old row and the insertion of the new one.
        write_transition(w, 'D', td->tg_oldtable, src, map);
        write_transition(w, 'I', td->tg_newtable, src, map);
    }

    FreeBulkInsertState(w.bulk);
    ExecDropSingleTupleTableSlot(w.out);
    ExecCloseIndices(w.rri);
    FreeExecutorState(w.estate);
    table_close(w.buffer, NoLock);
    pgt::scheduler::note_captured_write(RelationGetRelid(td->tg_relation));
    return PointerGetDatum(nullptr);
}
}
