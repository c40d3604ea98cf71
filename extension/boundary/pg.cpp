#include "boundary/pg.h"

#include <exception>

#include "boundary/guard.h"
#include "common/query_tree.h"

extern "C" {
#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/transam.h"
#include "access/xact.h"
#include "funcapi.h"
#include "catalog/pg_collation.h"
#include "commands/dbcommands.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/proc.h"
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

void return_rows(FunctionCallInfo fcinfo,
                 const std::vector<std::vector<std::optional<std::string>>>& rows) {
    std::vector<std::vector<const char*>> cells;
    cells.reserve(rows.size());
    for (const auto& row : rows) {
        std::vector<const char*> c;
        c.reserve(row.size());
        for (const auto& v : row) {
            c.push_back(v ? v->c_str() : nullptr);
        }
        cells.push_back(std::move(c));
    }
    pg_call([&]() noexcept {
        InitMaterializedSRF(fcinfo, 0);
        auto* rsinfo = reinterpret_cast<ReturnSetInfo*>(fcinfo->resultinfo);
        AttInMetadata* meta = TupleDescGetAttInMetadata(rsinfo->setDesc);
        for (auto& c : cells) {
            HeapTuple tuple = BuildTupleFromCStrings(meta, const_cast<char**>(c.data()));
            tuplestore_puttuple(rsinfo->setResult, tuple);
        }
    });
}

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

std::optional<std::string> attribute_name(Oid relid, int attnum) {
    const char* name = pg_call([&]() noexcept {
        return static_cast<const char*>(get_attname(relid, static_cast<AttrNumber>(attnum), true));
    });
    if (name == nullptr) {
        return std::nullopt;
    }
    return std::string(name);
}

bool has_column(Oid relid, const std::string& name) {
    const char* n = name.c_str();
    return pg_call([&]() noexcept { return get_attnum(relid, n) != InvalidAttrNumber; });
}

std::string database_name() {
    return pg_call([&]() noexcept { return get_database_name(MyDatabaseId); });
}

Query* view_query(Oid view) {
    return pg_call([&]() noexcept { return query_tree::view_query_copy(view); });
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

SubtransactionState begin_subtransaction() {
    const SubtransactionState s{CurrentMemoryContext, CurrentResourceOwner};
    pg_call([]() noexcept { BeginInternalSubTransaction(nullptr); });
    MemoryContextSwitchTo(s.context);
    return s;
}

void release_subtransaction(const SubtransactionState& s) {
    pg_call([]() noexcept { ReleaseCurrentSubTransaction(); });
    MemoryContextSwitchTo(s.context);
    CurrentResourceOwner = s.owner;
}

void rollback_subtransaction(const SubtransactionState& s) noexcept {
    RollbackAndReleaseCurrentSubTransaction();
    MemoryContextSwitchTo(s.context);
    CurrentResourceOwner = s.owner;
}

}  // namespace pgt::pg

extern "C" {
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_extension.h"
#include "commands/extension.h"
#include "utils/fmgroids.h"
#include "utils/acl.h"
#include "utils/guc.h"
#include "utils/rls.h"
}

namespace pgt::pg {

Oid current_user() {
    return GetUserId();
}

Oid extension_owner() {
    // pg_extension has no syscache by OID in PostgreSQL 15: scan it, once per transaction.
    static LocalTransactionId cached_in = InvalidLocalTransactionId;
    static Oid cached = InvalidOid;
    if (cached_in == MyProc->lxid && OidIsValid(cached)) {
        return cached;
    }
    cached = pg_call([]() noexcept {
        Oid owner = InvalidOid;
        const Oid ext = get_extension_oid("pg_trickle", false);
        Relation rel = table_open(ExtensionRelationId, AccessShareLock);
        ScanKeyData key;
        ScanKeyInit(&key, Anum_pg_extension_oid, BTEqualStrategyNumber, F_OIDEQ,
                    ObjectIdGetDatum(ext));
        SysScanDesc scan = systable_beginscan(rel, ExtensionOidIndexId, true, nullptr, 1, &key);
        HeapTuple tup = systable_getnext(scan);
        if (HeapTupleIsValid(tup)) {
            owner = reinterpret_cast<Form_pg_extension>(GETSTRUCT(tup))->extowner;
        }
        systable_endscan(scan);
        table_close(rel, AccessShareLock);
        return owner;
    });
    cached_in = MyProc->lxid;
    return cached;
}

bool owns_relation(Oid relid, Oid role) {
    return pg_call([&]() noexcept { return pg_class_ownercheck(relid, role); });
}

bool may_create_in(Oid nsp, Oid role) {
    return pg_call(
        [&]() noexcept { return pg_namespace_aclcheck(nsp, role, ACL_CREATE) == ACLCHECK_OK; });
}

bool rls_applies(Oid relid, Oid role) {
    return pg_call([&]() noexcept { return check_enable_rls(relid, role, true) == RLS_ENABLED; });
}

Oid relation_owner(Oid relid) {
    return pg_call([&]() noexcept {
        HeapTuple tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
        if (!HeapTupleIsValid(tup)) {
            elog(ERROR, "cache lookup failed for relation %u", relid);
        }
        const Oid owner = reinterpret_cast<Form_pg_class>(GETSTRUCT(tup))->relowner;
        ReleaseSysCache(tup);
        return owner;
    });
}

std::string role_name(Oid role) {
    return pg_call([&]() noexcept { return GetUserNameFromId(role, false); });
}

void set_for_scope(const std::string& name, const std::string& value) {
    const char* n = name.c_str();
    const char* v = value.c_str();
    pg_call([&]() noexcept {
        (void)set_config_option(n, v, PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
    });
}

bool wrote_in_transaction(Oid relid) {
    return pg_call([relid]() noexcept {
        const PgStat_TableStatus* entry = find_tabstat_entry(relid);
        for (const PgStat_TableXactStatus* t = entry ? entry->trans : nullptr; t != nullptr;
             t = t->upper) {
            if (t->tuples_inserted != 0 || t->tuples_updated != 0 || t->tuples_deleted != 0 ||
                t->truncdropped) {
                return true;
            }
        }
        return false;
    });
}

SettingsScope::SettingsScope()
    : guc_nest_level_(pg_call([]() noexcept { return NewGUCNestLevel(); })) {}

SettingsScope::~SettingsScope() {
    // While an exception unwinds, the transaction abort that follows undoes the settings.
    if (std::uncaught_exceptions() == 0) {
        AtEOXact_GUC(false, guc_nest_level_);
    }
}

void SettingsScope::set(const std::string& name, const std::string& value) {
    set_for_scope(name, value);
}

namespace {

PathScope g_path_scope = PathScope::none;
/// The caller's search_path when the outermost pinned scope began (CallerSearchPath).
std::string& saved_caller_search_path() {
    static auto* path = new std::string();  // never destroyed: used until the process exits
    return *path;
}
constexpr const char* kPinnedSearchPath = "pg_catalog, pg_temp";

/// A new GUC nest level with search_path = `value` in it.
int push_search_path(const char* value) {
    return pg_call([value]() noexcept {
        const int level = NewGUCNestLevel();
        (void)set_config_option("search_path", value, PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
                                true, 0, false);
        return level;
    });
}

/// Back to the search_path below nest level `level`. Also while an exception unwinds (the
/// level is still live then: a subtransaction or transaction abort that would pop it runs
/// only after the scopes the exception leaves are gone): a C++ error caught further up must
/// not leave this scope's search_path in force. The assign hook of search_path only
/// invalidates a cache; it cannot fail.
void pop_search_path(int level) noexcept {
    if (level >= 0) {
        AtEOXact_GUC(true, level);
    }
}

}  // namespace

PathScope current_path_scope() {
    return g_path_scope;
}

std::string caller_search_path() {
    if (g_path_scope == PathScope::none) {
        return namespace_search_path ? namespace_search_path : "";
    }
    return saved_caller_search_path();
}

PinnedSearchPath::PinnedSearchPath() : saved_scope_(g_path_scope) {
    if (g_path_scope == PathScope::pinned) {
        return;  // nested: the path is pinned already
    }
    if (g_path_scope == PathScope::none) {
        saved_caller_search_path() = namespace_search_path ? namespace_search_path : "";
    }
    guc_nest_level_ = push_search_path(kPinnedSearchPath);
    g_path_scope = PathScope::pinned;
}

PinnedSearchPath::~PinnedSearchPath() {
    pop_search_path(guc_nest_level_);
    g_path_scope = saved_scope_;
}

CallerSearchPath::CallerSearchPath() : saved_scope_(g_path_scope) {
    if (g_path_scope == PathScope::pinned) {
        guc_nest_level_ = push_search_path(saved_caller_search_path().c_str());
    }
    g_path_scope = PathScope::caller;
}

CallerSearchPath::~CallerSearchPath() {
    pop_search_path(guc_nest_level_);
    g_path_scope = saved_scope_;
}

AsExtensionOwner::AsExtensionOwner() {
    GetUserIdAndSecContext(&saved_user_, &saved_context_);
    const Oid owner = extension_owner();
    SetUserIdAndSecContext(owner, saved_context_ | SECURITY_LOCAL_USERID_CHANGE);
}

AsExtensionOwner::~AsExtensionOwner() {
    SetUserIdAndSecContext(saved_user_, saved_context_);
}

AsUser::AsUser(Oid user, bool restricted) {
    GetUserIdAndSecContext(&saved_user_, &saved_context_);
    int context = saved_context_ | SECURITY_LOCAL_USERID_CHANGE;
    if (restricted) {
        context |= SECURITY_RESTRICTED_OPERATION;
        guc_nest_level_ = pg_call([]() noexcept { return NewGUCNestLevel(); });
    }
    SetUserIdAndSecContext(user, context);
}

AsUser::~AsUser() {
    // Neither call can fail. While an exception unwinds, the transaction abort that
    // follows also undoes the setting changes.
    if (guc_nest_level_ >= 0 && std::uncaught_exceptions() == 0) {
        AtEOXact_GUC(false, guc_nest_level_);
    }
    SetUserIdAndSecContext(saved_user_, saved_context_);
}

}  // namespace pgt::pg
