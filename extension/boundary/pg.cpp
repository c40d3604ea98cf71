#include "boundary/pg.h"

#include <exception>

#include "boundary/guard.h"

extern "C" {
#include "access/htup_details.h"
#include "access/table.h"
#include "access/transam.h"
#include "access/xact.h"
#include "catalog/pg_collation.h"
#include "commands/dbcommands.h"
#include "miscadmin.h"
#include "rewrite/rewriteHandler.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
}

namespace pgt::pg {
namespace {
std::optional<std::string> opt(const char* s) {
    return s ? std::optional<std::string>(s) : std::nullopt;
}
}  // namespace

std::string text_arg(FunctionCallInfo fcinfo, int i) {
    if (PG_ARGISNULL(i)) {
        return {};
    }
    return pg_call([&]() noexcept { return text_to_cstring(PG_GETARG_TEXT_PP(i)); });
}

text* to_text(const std::string& s) {
    const char* data = s.data();
    const int len = static_cast<int>(s.size());
    return pg_call([&]() noexcept { return cstring_to_text_with_len(data, len); });
}

std::string type_name(Oid type, int32 typmod) {
    return pg_call([&]() noexcept {
        return format_type_extended(type, typmod,
                                    FORMAT_TYPE_TYPEMOD_GIVEN | FORMAT_TYPE_FORCE_QUALIFY);
    });
}

std::string collation_name(Oid collation) {
    const char* nsp = nullptr;
    const char* name = nullptr;
    pg_call([&]() noexcept {
        HeapTuple tup = SearchSysCache1(COLLOID, ObjectIdGetDatum(collation));
        if (!HeapTupleIsValid(tup)) {
            elog(ERROR, "cache lookup failed for collation %u", collation);
        }
        auto* form = reinterpret_cast<Form_pg_collation>(GETSTRUCT(tup));
        nsp = get_namespace_name(form->collnamespace);
        name = pstrdup(NameStr(form->collname));
        ReleaseSysCache(tup);
    });
    return std::string(pg_call([&]() noexcept { return quote_identifier(nsp); })) + "." +
           pg_call([&]() noexcept { return quote_identifier(name); });
}

std::optional<std::string> rel_name(Oid relid) {
    return opt(pg_call([&]() noexcept { return get_rel_name(relid); }));
}

std::optional<std::string> namespace_name(Oid nsp) {
    return opt(pg_call([&]() noexcept { return get_namespace_name(nsp); }));
}

Oid rel_namespace(Oid relid) {
    return pg_call([&]() noexcept { return get_rel_namespace(relid); });
}

char rel_kind(Oid relid) {
    return pg_call([&]() noexcept { return get_rel_relkind(relid); });
}

std::string database_name() {
    return pg_call([&]() noexcept { return get_database_name(MyDatabaseId); });
}

Query* view_query(Oid view) {
    return pg_call([&]() noexcept {
        Relation rel = table_open(view, AccessShareLock);
        auto* q = static_cast<Query*>(copyObjectImpl(get_view_query(rel)));
        table_close(rel, AccessShareLock);
        return q;
    });
}

bool isolation_uses_xact_snapshot() {
    return pg_call([&]() noexcept { return IsolationUsesXactSnapshot(); });
}

OpenRelation::OpenRelation(Oid relid, int lockmode)
    : rel_(pg_call([&]() noexcept { return table_open(relid, lockmode); })), lockmode_(lockmode) {}

OpenRelation::~OpenRelation() {
    if (std::uncaught_exceptions() == 0) {
        table_close(rel_, lockmode_);  // cannot fail: drops a reference count
    }
}

RegisteredSnapshot::RegisteredSnapshot()
    : snapshot_(pg_call([&]() noexcept {
          CommandCounterIncrement();
          return RegisterSnapshot(GetTransactionSnapshot());
      })) {}

RegisteredSnapshot::~RegisteredSnapshot() {
    if (std::uncaught_exceptions() == 0) {
        UnregisterSnapshot(snapshot_);  // cannot fail; on abort the resource owner does it
    }
}

uint64_t top_full_xid_if_any() {
    return pg_call(
        [&]() noexcept { return U64FromFullTransactionId(GetTopFullTransactionIdIfAny()); });
}

uint32_t current_command_id() {
    return pg_call([&]() noexcept { return GetCurrentCommandId(false); });
}

}  // namespace pgt::pg

namespace pgt::pg {

void start_transaction() {
    pg_call([]() noexcept {
        SetCurrentStatementStartTimestamp();
        StartTransactionCommand();
        PushActiveSnapshot(GetTransactionSnapshot());
    });
}

void commit_transaction() {
    pg_call([]() noexcept {
        PopActiveSnapshot();
        CommitTransactionCommand();
    });
}

void abort_transaction() noexcept {
    // Releases everything the transaction held (SPI, snapshots, relations, locks).
    AbortCurrentTransaction();
}

}  // namespace pgt::pg
