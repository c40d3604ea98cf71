// Thin wrappers of the PostgreSQL calls the C++ code makes: each runs one call (or a few
// that belong together) inside pg_call and converts the result to C++ values outside it,
// so a PostgreSQL error becomes a PgError and no ereport skips a C++ destructor.
#pragma once

#include <optional>
#include <string>
#include <vector>

extern "C" {
#include "postgres.h"
#include "fmgr.h"
#include "nodes/parsenodes.h"
#include "utils/relcache.h"
#include "utils/resowner.h"
#include "utils/snapshot.h"
}

#include "boundary/guard.h"

namespace pgt::pg {

/// Return `rows` (text values, nullopt = NULL, converted by the result columns' input
/// functions) from a set-returning SQL function in materialize mode.
void return_rows(FunctionCallInfo fcinfo,
                 const std::vector<std::vector<std::optional<std::string>>>& rows);

/// Text argument `i` of an SQL-callable function ("" when NULL).
std::string text_arg(FunctionCallInfo fcinfo, int i);

/// A palloc'd text datum of `s`.
text* to_text(const std::string& s);

/// Schema-qualified SQL name of a type with its modifier, e.g. pg_catalog.numeric(10,2).
std::string type_name(Oid type, int32 typmod);
/// Schema-qualified, quoted SQL name of a collation.
std::string collation_name(Oid collation);

/// Names of catalog objects; nullopt when the object does not exist.
std::optional<std::string> rel_name(Oid relid);
std::optional<std::string> namespace_name(Oid nsp);
Oid rel_namespace(Oid relid);
char rel_kind(Oid relid);
/// The name of column `attnum` of relation `relid`; nullopt when there is none.
std::optional<std::string> attribute_name(Oid relid, int attnum);
/// Whether relation `relid` has a (not dropped) column `name`.
bool has_column(Oid relid, const std::string& name);
std::string database_name();

/// The defining query of a view, copied into the current memory context.
Query* view_query(Oid view);

/// IsolationUsesXactSnapshot(): REPEATABLE READ or SERIALIZABLE.
bool isolation_uses_xact_snapshot();

/// A relation opened for the scope of this object (closed on a normal exit; while an
/// exception unwinds, the transaction abort that follows releases it).
class OpenRelation {
  public:
    OpenRelation(Oid relid, int lockmode);
    ~OpenRelation();
    OpenRelation(const OpenRelation&) = delete;
    OpenRelation& operator=(const OpenRelation&) = delete;
    Relation get() const { return rel_; }

  private:
    Relation rel_;
    int lockmode_;
};

/// CommandCounterIncrement, then a registered copy of the transaction snapshot (so the
/// statements of one refresh see the same data and each other's writes); unregistered
/// when the object goes out of scope.
class RegisteredSnapshot {
  public:
    RegisteredSnapshot();
    ~RegisteredSnapshot();
    RegisteredSnapshot(const RegisteredSnapshot&) = delete;
    RegisteredSnapshot& operator=(const RegisteredSnapshot&) = delete;
    Snapshot get() const { return snapshot_; }

  private:
    Snapshot snapshot_;
};

/// The current transaction's top-level xid as a 64-bit FullTransactionId value, or 0 when
/// it has none yet; and the current command id.
uint64_t top_full_xid_if_any();
uint32_t current_command_id();

}  // namespace pgt::pg

namespace pgt::pg {

/// Background workers: begin a transaction (statement timestamp set, snapshot pushed).
void start_transaction();
/// Commit it (the pushed snapshot popped first).
void commit_transaction();
/// Roll it back: after a failure, never commit. Safe when no transaction is open.
void abort_transaction() noexcept;

/// Run `work` in its own transaction: committed when it returns, rolled back when it
/// throws (the exception then propagates to the caller). A failure while starting or
/// committing rolls back too: a transaction left open would make every later start fail
/// ("StartTransactionCommand: unexpected state STARTED").
///
/// A PostgreSQL error is rethrown as a pgt::Error (SQLSTATE, message, detail, hint copied):
/// the PgError's data lives in the transaction's memory, which the rollback frees.
template <typename F>
void in_transaction(F&& work) {
    try {
        start_transaction();
        work();
        commit_transaction();
    } catch (const PgError& e) {
        const ErrorData* d = e.data();
        Error copy(e.sqlstate(), e.what(), d && d->detail ? d->detail : "",
                   d && d->hint ? d->hint : "");
        abort_transaction();
        throw copy;
    } catch (...) {
        abort_transaction();
        throw;
    }
}

/// Subtransactions: begin one, release it (its work kept), roll it back (its work and any
/// error state gone). CurrentMemoryContext and CurrentResourceOwner are restored by each.
struct SubtransactionState {
    MemoryContext context;
    ResourceOwner owner;
};
SubtransactionState begin_subtransaction();
void release_subtransaction(const SubtransactionState& s);
void rollback_subtransaction(const SubtransactionState& s) noexcept;

/// Run `work` in a subtransaction. When it throws, the subtransaction is rolled back first,
/// then `on_error(sqlstate, message)` decides: the failure is handled there (its writes are
/// gone), or `on_error` rethrows. The one place a PostgreSQL error may be caught and not
/// rethrown (guard.h).
template <typename F, typename H>
void subtransaction(F&& work, H&& on_error) {
    const SubtransactionState s = begin_subtransaction();
    int sqlstate = 0;
    std::string message;
    try {
        work();
        release_subtransaction(s);
        return;
    } catch (const PgError& e) {
        sqlstate = e.sqlstate();
        message = e.what();
    } catch (const Error& e) {
        sqlstate = e.sqlstate();
        message = e.what();
    }
    rollback_subtransaction(s);
    on_error(sqlstate, message);
}

}  // namespace pgt::pg

namespace pgt::pg {

/// Whether the current transaction (its live subtransactions included) inserted, updated,
/// deleted or truncated rows of `relid` (from the backend's pending table statistics).
bool wrote_in_transaction(Oid relid);

/// The current user (GetUserId()).
Oid current_user();
/// The owner of the pg_trickle extension (owns its catalog and the change buffers).
Oid extension_owner();
/// Whether `role` owns relation `relid` (or is a member of its owner, or superuser).
bool owns_relation(Oid relid, Oid role);
/// Whether `role` may create objects in namespace `nsp`.
bool may_create_in(Oid nsp, Oid role);
/// Whether row-level security policies filter what `role` reads from `relid`.
bool rls_applies(Oid relid, Oid role);
/// The owner of relation `relid`.
Oid relation_owner(Oid relid);
/// Name of a role.
std::string role_name(Oid role);

/// Configuration parameters set for the scope of this object only (like a function's SET
/// clause): the previous values come back when it ends.
class SettingsScope {
  public:
    SettingsScope();
    ~SettingsScope();
    SettingsScope(const SettingsScope&) = delete;
    SettingsScope& operator=(const SettingsScope&) = delete;
    void set(const std::string& name, const std::string& value);

  private:
    int guc_nest_level_;
};

/// Set a configuration parameter until the innermost AsUser(restricted) scope ends (as a
/// function's SET clause does).
void set_for_scope(const std::string& name, const std::string& value);

/// How the SQL pg_trickle runs right now resolves unqualified names (pg::SearchPathScope):
/// `pinned`: search_path is pg_catalog, pg_temp (pg_trickle's own SQL); `caller`: the caller's
/// own search_path, for SQL that is the caller's (its defining query, parsed, never run as
/// anyone else); `none`: no scope (spi:: refuses to run SQL then).
enum class PathScope { none, pinned, caller };
PathScope current_path_scope();
/// The caller's search_path, as it was when the outermost pinned scope began (the current
/// one when no pinned scope is active).
std::string caller_search_path();

/// search_path pinned to `pg_catalog, pg_temp` for the scope of this object (a GUC nest
/// level, as PostgreSQL does for a function's SET clause), identity unchanged: nothing a
/// caller planted on its search_path (operators, functions, types) is resolved by the SQL
/// that runs inside. Nested scopes are cheap: only the outermost one sets the path.
class PinnedSearchPath {
  public:
    PinnedSearchPath();
    ~PinnedSearchPath();
    PinnedSearchPath(const PinnedSearchPath&) = delete;
    PinnedSearchPath& operator=(const PinnedSearchPath&) = delete;

  private:
    PathScope saved_scope_;
    int guc_nest_level_ = -1;
};

/// Act as the pg_trickle extension's owner (who owns the catalog, the change buffers, the
/// capture functions and the slots) with search_path pinned, for the scope of this object:
/// what a SECURITY DEFINER function with SET search_path = pg_catalog, pg_temp does. Every
/// section of pg_trickle that runs as the extension owner is inside one.
class AsExtensionOwner {
  public:
    AsExtensionOwner();
    ~AsExtensionOwner();
    AsExtensionOwner(const AsExtensionOwner&) = delete;
    AsExtensionOwner& operator=(const AsExtensionOwner&) = delete;

  private:
    PinnedSearchPath path_;
    Oid saved_user_ = InvalidOid;
    int saved_context_ = 0;
};

/// The caller's own search_path again (as it was when the outermost pinned scope began),
/// inside a pinned scope, for parsing SQL the caller gave (a defining query): names in it
/// resolve as the caller wrote them. Only parse-analysis may run inside: nothing executes.
class CallerSearchPath {
  public:
    CallerSearchPath();
    ~CallerSearchPath();
    CallerSearchPath(const CallerSearchPath&) = delete;
    CallerSearchPath& operator=(const CallerSearchPath&) = delete;

  private:
    PathScope saved_scope_;
    int guc_nest_level_ = -1;
};

/// Act as `user` for the scope of this object, as REFRESH MATERIALIZED VIEW does for the
/// view's owner: with `restricted`, a security-restricted operation whose setting changes
/// are undone at the end. The previous user and context come back when the scope ends.
class AsUser {
  public:
    AsUser(Oid user, bool restricted);
    ~AsUser();
    AsUser(const AsUser&) = delete;
    AsUser& operator=(const AsUser&) = delete;

  private:
    Oid saved_user_;
    int saved_context_;
    int guc_nest_level_ = -1;
};

}  // namespace pgt::pg
