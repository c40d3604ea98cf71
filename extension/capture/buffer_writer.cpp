#include "capture/buffer_writer.h"

#include <cstring>

#include "boundary/guard.h"
#include "boundary/pg.h"
#include "core/stable_name.h"

extern "C" {
#include "access/heapam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/transam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "nodes/execnodes.h"
#include "utils/errcodes.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/xid8.h"
}

namespace pgt::capture {
namespace {

/// Rows converted and written together.
constexpr size_t kQueueLimit = 5000;

}  // namespace

BufferWriter::BufferWriter(Oid source, const std::string& key) {
    const std::string table = capture_object_names(key).buffer_table;
    source_ = source;
    const char* tname = table.c_str();
    pg_call([&]() noexcept {
        const Oid nsp = get_namespace_oid(kChangeSchema, false);
        const Oid relid = get_relname_relid(tname, nsp);
        if (!OidIsValid(relid)) {
            ereport(ERROR,
                    (errcode(ERRCODE_UNDEFINED_TABLE),
                     errmsg("pg_trickle change buffer pgtrickle_changes.%s does not exist", tname),
                     errhint("Drop and recreate the stream tables that read this source.")));
        }
        buffer_ = table_open(relid, RowExclusiveLock);
        context_ = AllocSetContextCreate(CurrentMemoryContext, "pg_trickle buffer writer",
                                         ALLOCSET_DEFAULT_SIZES);
        batch_ = AllocSetContextCreate(context_, "pg_trickle buffer writer batch",
                                       ALLOCSET_DEFAULT_SIZES);
        const MemoryContext old = MemoryContextSwitchTo(context_);
        estate_ = CreateExecutorState();
        rri_ = makeNode(ResultRelInfo);
        InitResultRelInfo(rri_, buffer_, 1, nullptr, 0);
        ExecOpenIndices(rri_, false);
        slot_ = MakeSingleTupleTableSlot(RelationGetDescr(buffer_), &TTSOpsVirtual);
        bulk_ = GetBulkInsertState();
        MemoryContextSwitchTo(old);
    });
    TupleDesc td = RelationGetDescr(buffer_);
    natts_ = td->natts;
    for (int i = 0; i < natts_; ++i) {
        const Form_pg_attribute a = TupleDescAttr(td, i);
        if (a->attisdropped) {
            continue;
        }
        const char* name = NameStr(a->attname);
        if (std::strcmp(name, "__pgt_xid") == 0) {
            xid_att_ = i;
            continue;
        }
        if (std::strcmp(name, "__pgt_op") == 0) {
            op_att_ = i;
            continue;
        }
        const int attnum = buffer_column_attnum(name);
        if (attnum == 0) {
            continue;  // not a capture column: left NULL
        }
        const char* source_name = nullptr;
        Column col;
        col.attno = i;
        col.typmod = a->atttypmod;
        const Oid type = a->atttypid;
        pg_call([&]() noexcept {
            HeapTuple at = SearchSysCache2(ATTNUM, ObjectIdGetDatum(source), Int16GetDatum(attnum));
            if (HeapTupleIsValid(at)) {
                auto* sa = reinterpret_cast<Form_pg_attribute>(GETSTRUCT(at));
                if (!sa->attisdropped) {
                    source_name = pstrdup(NameStr(sa->attname));
                }
                ReleaseSysCache(at);
            }
            getTypeInputInfo(type, &col.input_fn, &col.ioparam);
        });
        if (source_name == nullptr) {
            continue;  // a dropped source column: left NULL
        }
        by_name_[source_name] = static_cast<int>(columns_.size());
        columns_.push_back(col);
    }
    if (xid_att_ < 0 || op_att_ < 0) {
        throw Error(
            ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "change buffer pgtrickle_changes." + table + " has no __pgt_xid or __pgt_op column",
            "The buffer was edited outside pg_trickle.",
            "Drop the stream tables that read this source and create them again.");
    }
    const int n = static_cast<int>(columns_.size());
    input_fns_ = static_cast<FmgrInfo*>(
        pg_call([&]() noexcept { return MemoryContextAllocZero(context_, sizeof(FmgrInfo) * n); }));
    for (int c = 0; c < n; ++c) {
        const Oid fn = columns_[static_cast<size_t>(c)].input_fn;
        FmgrInfo* info = &input_fns_[c];
        MemoryContext cxt = context_;
        pg_call([=]() noexcept { fmgr_info_cxt(fn, info, cxt); });
    }
}

BufferWriter::~BufferWriter() {
    // While an exception unwinds, the transaction (or subtransaction) abort that follows
    // releases the relation, the buffer pin and the memory.
    if (std::uncaught_exceptions() != 0 || buffer_ == nullptr) {
        return;
    }
    FreeBulkInsertState(bulk_);
    ExecDropSingleTupleTableSlot(slot_);
    ExecCloseIndices(rri_);
    FreeExecutorState(estate_);
    table_close(buffer_, NoLock);
    MemoryContextDelete(context_);
}

int BufferWriter::position_of(const std::string& name) const {
    const auto it = by_name_.find(name);
    return it == by_name_.end() ? -1 : it->second;
}

void BufferWriter::add(char op, const std::vector<std::optional<std::string>>& values) {
    queue_.push_back({op, values, stamp_});
    if (queue_.size() >= kQueueLimit) {
        flush();
    }
}

void BufferWriter::stamp_writer(std::optional<TransactionId> xid) {
    if (!xid) {
        stamp_ = 0;
        return;
    }
    uint64_t full = 0;
    pg_call([&]() noexcept {
        // A transaction that committed is older than the next transaction id: in its epoch,
        // or in the one before when the id counter wrapped since.
        const FullTransactionId next = ReadNextFullTransactionId();
        uint32 epoch = EpochFromFullTransactionId(next);
        if (*xid > XidFromFullTransactionId(next)) {
            --epoch;
        }
        full = U64FromFullTransactionId(FullTransactionIdFromEpochAndXid(epoch, *xid));
    });
    stamp_ = full;
}

void BufferWriter::add_marker() {
    queue_.push_back({'T', {}, stamp_});
    if (queue_.size() >= kQueueLimit) {
        flush();
    }
}

void BufferWriter::flush() {
    if (queue_.empty()) {
        return;
    }
    const int rows = static_cast<int>(queue_.size());
    const int ncols = static_cast<int>(columns_.size());
    const int natts = natts_;
    // Plain arrays for the PostgreSQL sections below (nothing there touches a C++ container).
    auto* values = static_cast<Datum*>(pg_call([&]() noexcept {
        return MemoryContextAllocZero(batch_, sizeof(Datum) * static_cast<size_t>(rows) * natts);
    }));
    auto* nulls = static_cast<bool*>(pg_call([&]() noexcept {
        return MemoryContextAlloc(batch_, sizeof(bool) * static_cast<size_t>(rows) * natts);
    }));
    auto* ops = static_cast<char*>(
        pg_call([&]() noexcept { return MemoryContextAlloc(batch_, static_cast<size_t>(rows)); }));
    auto* xids = static_cast<uint64_t*>(pg_call([&]() noexcept {
        return MemoryContextAlloc(batch_, sizeof(uint64_t) * static_cast<size_t>(rows));
    }));
    std::memset(nulls, 1, sizeof(bool) * static_cast<size_t>(rows) * natts);
    std::vector<const char*> texts(static_cast<size_t>(ncols));
    std::vector<int> attnos(static_cast<size_t>(ncols));
    std::vector<Oid> ioparams(static_cast<size_t>(ncols));
    std::vector<int32> typmods(static_cast<size_t>(ncols));
    for (int c = 0; c < ncols; ++c) {
        const Column& col = columns_[static_cast<size_t>(c)];
        attnos[static_cast<size_t>(c)] = col.attno;
        ioparams[static_cast<size_t>(c)] = col.ioparam;
        typmods[static_cast<size_t>(c)] = col.typmod;
    }
    const char** text_ptr = texts.data();
    const int* attno_ptr = attnos.data();
    const Oid* ioparam_ptr = ioparams.data();
    const int32* typmod_ptr = typmods.data();
    FmgrInfo* fns = input_fns_;
    MemoryContext batch = batch_;
    bool any_values = false;
    for (int r = 0; r < rows; ++r) {
        ops[r] = queue_[static_cast<size_t>(r)].op;
        xids[r] = queue_[static_cast<size_t>(r)].xid;
        any_values = any_values || ops[r] != 'T';
    }
    if (any_values) {
        // The values' types may be the source owner's (a domain, a composite type): their
        // input functions run as that owner, restricted, never as the extension's owner.
        // (Markers need no owner: they are also written while the source is being dropped.)
        const pg::AsUser as_source_owner(pg::relation_owner(source_), /*restricted=*/true);
        for (int r = 0; r < rows; ++r) {
            const Queued& q = queue_[static_cast<size_t>(r)];
            if (q.op == 'T') {
                continue;
            }
            for (int c = 0; c < ncols; ++c) {
                const auto i = static_cast<size_t>(c);
                text_ptr[c] = i < q.values.size() && q.values[i] ? q.values[i]->c_str() : nullptr;
            }
            Datum* row_values = values + static_cast<size_t>(r) * natts;
            bool* row_nulls = nulls + static_cast<size_t>(r) * natts;
            pg_call([&]() noexcept {
                const MemoryContext old = MemoryContextSwitchTo(batch);
                for (int c = 0; c < ncols; ++c) {
                    if (text_ptr[c] == nullptr) {
                        continue;
                    }
                    row_values[attno_ptr[c]] = InputFunctionCall(
                        &fns[c], const_cast<char*>(text_ptr[c]), ioparam_ptr[c], typmod_ptr[c]);
                    row_nulls[attno_ptr[c]] = false;
                }
                MemoryContextSwitchTo(old);
            });
        }
    }
    Relation buffer = buffer_;
    EState* estate = estate_;
    ResultRelInfo* rri = rri_;
    TupleTableSlot* slot = slot_;
    BulkInsertStateData* bulk = bulk_;
    const int xid_att = xid_att_;
    const int op_att = op_att_;
    std::vector<ItemPointerData> tids(after_flush_ ? static_cast<size_t>(rows) : 0);
    ItemPointerData* tid_ptr = tids.empty() ? nullptr : tids.data();
    pg_call([&]() noexcept {
        const Datum current = FullTransactionIdGetDatum(GetTopFullTransactionId());
        const CommandId cid = GetCurrentCommandId(true);
        for (int r = 0; r < rows; ++r) {
            ExecClearTuple(slot);
            std::memcpy(slot->tts_values, values + static_cast<size_t>(r) * natts,
                        sizeof(Datum) * natts);
            std::memcpy(slot->tts_isnull, nulls + static_cast<size_t>(r) * natts,
                        sizeof(bool) * natts);
            slot->tts_values[xid_att] =
                xids[r] != 0 ? FullTransactionIdGetDatum(FullTransactionIdFromU64(xids[r]))
                             : current;
            slot->tts_isnull[xid_att] = false;
            slot->tts_values[op_att] = CharGetDatum(ops[r]);
            slot->tts_isnull[op_att] = false;
            ExecStoreVirtualTuple(slot);
            table_tuple_insert(buffer, slot, cid, 0, bulk);
            if (tid_ptr != nullptr) {
                tid_ptr[r] = slot->tts_tid;
            }
            if (rri->ri_NumIndices > 0) {
                (void)ExecInsertIndexTuples(rri, slot, estate, false, false, nullptr, NIL);
            }
            ResetPerTupleExprContext(estate);
        }
        MemoryContextReset(batch);
    });
    written_ += rows;
    queue_.clear();
    if (after_flush_) {
        std::vector<std::string> written;
        written.reserve(tids.size());
        for (const auto& t : tids) {
            written.push_back("(" + std::to_string(ItemPointerGetBlockNumberNoCheck(&t)) + "," +
                              std::to_string(ItemPointerGetOffsetNumberNoCheck(&t)) + ")");
        }
        after_flush_(written);
    }
}

}  // namespace pgt::capture
