// Writing rows into a change buffer from C++ (slot drains, recompute markers), the way the
// capture trigger does (trigger.cpp): heap and index inserts, no SQL. No default, constraint
// or trigger of the buffer runs, so no code of a column type's owner (a domain's CHECK) runs
// with the extension owner's rights. Values decoded from a slot arrive as text and are
// converted by their types' input functions as the source table's owner, in a
// security-restricted operation: the role whose table holds such values, as its writers do.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

extern "C" {
#include "postgres.h"
#include "utils/palloc.h"
#include "utils/relcache.h"
}

struct EState;
struct ResultRelInfo;
struct TupleTableSlot;
struct BulkInsertStateData;
struct FmgrInfo;

namespace pgt::capture {

class BufferWriter {
  public:
    /// The buffer of captured source `source` (its catalog key `key`), opened until the writer
    /// goes (RowExclusiveLock, held to the end of the transaction). Rows are stamped with
    /// the current transaction's id, or the writer's (stamp_writer).
    BufferWriter(Oid source, const std::string& key);
    ~BufferWriter();
    BufferWriter(const BufferWriter&) = delete;
    BufferWriter& operator=(const BufferWriter&) = delete;

    /// The value position of source column `name` in add()'s values, or -1 when the buffer
    /// has no column for it (a column added since, or dropped).
    int position_of(const std::string& name) const;
    /// How many values add() takes.
    size_t width() const { return columns_.size(); }

    /// Queue a captured row, 'I' (inserted) or 'D' (deleted), its values as text by position
    /// (nullopt: NULL); written by flush(), at the latest when the queue is full.
    void add(char op, const std::vector<std::optional<std::string>>& values);
    /// Queue a recompute marker ('T': every reader recomputes).
    void add_marker();
    /// Stamp the rows queued from now on with `xid`, a transaction of this server that
    /// committed (decoded from this server's WAL), as trigger capture stamps them: refreshes
    /// then consume them by that transaction's visibility, in step with the source's rows.
    /// nullopt: the current transaction (what a drain from another node stamps).
    void stamp_writer(std::optional<TransactionId> xid);
    /// Convert and write what is queued.
    void flush();
    /// Rows written so far.
    int64_t written() const { return written_; }
    /// Call `written_rows` after each flush with the buffer positions ("(block,offset)") of
    /// the rows it wrote (a state copy keeps in step with them).
    void after_flush(std::function<void(const std::vector<std::string>&)> written_rows) {
        after_flush_ = std::move(written_rows);
    }

  private:
    struct Column {
        int attno = 0;  ///< buffer attribute index (0-based)
        Oid input_fn = InvalidOid;
        Oid ioparam = InvalidOid;
        int32 typmod = -1;
    };
    struct Queued {
        char op;
        std::vector<std::optional<std::string>> values;
        uint64_t xid;  ///< a FullTransactionId's value; 0: the current transaction
    };

    Oid source_ = InvalidOid;
    Relation buffer_ = nullptr;
    MemoryContext context_ = nullptr;  ///< the writer's executor state and function info
    MemoryContext batch_ = nullptr;    ///< converted values of one flush
    EState* estate_ = nullptr;
    ResultRelInfo* rri_ = nullptr;
    TupleTableSlot* slot_ = nullptr;
    BulkInsertStateData* bulk_ = nullptr;
    FmgrInfo* input_fns_ = nullptr;  ///< one per column, in context_
    int natts_ = 0;
    int xid_att_ = -1, op_att_ = -1;
    std::vector<Column> columns_;
    std::map<std::string, int> by_name_;
    std::vector<Queued> queue_;
    uint64_t stamp_ = 0;  ///< what add() queues with
    int64_t written_ = 0;
    std::function<void(const std::vector<std::string>&)> after_flush_;
};

}  // namespace pgt::capture
