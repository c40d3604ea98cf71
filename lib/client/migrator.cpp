#include "client/migrator.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <random>
#include <thread>

#include <pqxx/pqxx>

#include "core/retry.h"

namespace pgt::client {
namespace {

std::string column_exists_sql(const char* table, const char* column) {
    return std::string(
               "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c "
               "ON c.oid OPERATOR(pg_catalog.=) a.attrelid "
               "JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace "
               "WHERE n.nspname OPERATOR(pg_catalog.=) 'pgtrickle' AND "
               "c.relname OPERATOR(pg_catalog.=) '") +
           table + "' AND a.attname OPERATOR(pg_catalog.=) '" + column +
           "' AND NOT a.attisdropped)";
}

}  // namespace

MigrationFacts read_migration_facts(Node& node) {
    MigrationFacts f;
    pqxx::read_transaction tx(node.conn());
    f.database = tx.exec1("SELECT pg_catalog.current_database()")[0].as<std::string>();
    auto v = tx.exec(
        "SELECT e.extversion FROM pg_catalog.pg_extension e "
        "WHERE e.extname OPERATOR(pg_catalog.=) 'pg_trickle'");
    if (!v.empty()) {
        f.installed = v[0][0].as<std::string>();
    }
    for (const auto& row :
         tx.exec("SELECT v.version FROM pg_catalog.pg_available_extension_versions v "
                 "WHERE v.name OPERATOR(pg_catalog.=) 'pg_trickle' ORDER BY v.version")) {
        f.available.push_back(row[0].as<std::string>());
    }
    if (!f.installed) {
        return f;
    }
    const bool stable =
        tx.exec1(column_exists_sql("pgt_change_tracking", "source_stable_name"))[0].as<bool>();
    const std::string sn = stable ? "ct.source_stable_name" : "NULL::pg_catalog.text";
    for (const auto& row :
         tx.exec("SELECT ct.source_relid::pg_catalog.oid::pg_catalog.text, n.nspname, "
                 "c.relname, " +
                 sn +
                 ", ct.cdc_mode OPERATOR(pg_catalog.=) 'wal' FROM pgtrickle.pgt_change_tracking "
                 "ct JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) "
                 "ct.source_relid JOIN pg_catalog.pg_namespace n "
                 "ON n.oid OPERATOR(pg_catalog.=) c.relnamespace "
                 "ORDER BY n.nspname, c.relname")) {
        migration::Source s;
        s.relid = row[0].as<std::string>();
        s.schema = row[1].as<std::string>();
        s.table = row[2].as<std::string>();
        if (!row[3].is_null()) {
            s.stable_name = row[3].as<std::string>();
        }
        s.wal = row[4].as<bool>();
        f.sources.push_back(std::move(s));
    }
    f.frontiers = tx.exec1(
                        "SELECT pg_catalog.count(*) FROM pgtrickle.pgt_stream_tables "
                        "WHERE frontier IS NOT NULL")[0]
                      .as<int>();
    return f;
}

void check_plan(Node& node, migration::Plan& plan, const MigrationFacts& facts) {
    if (!plan.nothing_to_do() && std::find(facts.available.begin(), facts.available.end(),
                                           plan.to) == facts.available.end()) {
        plan.problems.push_back("version " + plan.to + " of pg_trickle is not installed on " +
                                plan.node +
                                " (install the same pg_trickle package on every node first)");
    }
    pqxx::read_transaction tx(node.conn());
    for (const auto& r : plan.renames) {
        std::string exists;
        if (r.kind == "slot") {
            continue;  // taken over after the update; without it, its readers recompute
        }
        if (r.kind == "table" || r.kind == "index") {
            exists = "SELECT pg_catalog.to_regclass(" + tx.quote(r.from) + ") IS NOT NULL";
        } else if (r.kind == "function") {
            exists = "SELECT pg_catalog.to_regprocedure(" + tx.quote(r.from) + ") IS NOT NULL";
        } else {
            exists =
                "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t "
                "WHERE t.tgname OPERATOR(pg_catalog.=) " +
                tx.quote(r.from) + " AND t.tgrelid OPERATOR(pg_catalog.=) pg_catalog.to_regclass(" +
                tx.quote(r.on) + "))";
        }
        if (!tx.exec1(exists)[0].as<bool>()) {
            plan.problems.push_back(
                r.kind + " " + r.from + (r.on.empty() ? "" : " on " + r.on) +
                " does not exist (capture objects were changed by hand; recreate the "
                "stream tables reading that source)");
        }
    }
}

namespace {

// Opens the node's migration transaction holding every table of pg_trickle's catalog
// (schema pgtrickle) in ACCESS EXCLUSIVE mode, taken at once with NOWAIT and retried with
// jittered backoff while a pg_trickle process (scheduler, WAL poller, a refresh) is in a
// transaction reading it. The update takes those locks anyway, one by one as its scripts
// go; a background worker that read one table and then waited for another the update
// already held would deadlock with it (seen with the WAL poller during a downgrade).
// Holding them all first, and waiting for none while holding any, leaves no such cycle.
std::unique_ptr<pqxx::work> begin_with_catalog(
    Node& node, const migration::Plan& plan,
    const std::function<void(const std::string&)>& progress, bool this_node_only) {
    using Clock = std::chrono::steady_clock;
    const retry::Policy policy{20, 100, 1000, 100};
    const auto deadline = Clock::now() + std::chrono::milliseconds(catalog_lock_wait_ms);
    std::mt19937 rng(std::random_device{}());
    std::uniform_real_distribution<double> unit(0.0, 1.0);
    const std::string tables_sql =
        "SELECT pg_catalog.string_agg(c.oid::pg_catalog.regclass::pg_catalog.text, ', ' "
        "ORDER BY c.oid) FROM pg_catalog.pg_class c WHERE c.relnamespace OPERATOR(pg_catalog.=) "
        "'pgtrickle'::pg_catalog.regnamespace AND c.relkind OPERATOR(pg_catalog.=) ANY "
        "('{r,p}'::pg_catalog.\"char\"[])";
    for (int attempt = 1;; ++attempt) {
        auto tx = std::make_unique<pqxx::work>(node.conn());
        if (this_node_only) {
            const std::string local =
                "SELECT pg_catalog.set_config('citus.enable_ddl_propagation', 'off', true)";
            node.trace(local);
            tx->exec1(local);
        }
        node.trace(tables_sql);
        const pqxx::row tables = tx->exec1(tables_sql);
        if (tables[0].is_null()) {
            return tx;
        }
        const std::string lock =
            "LOCK TABLE " + std::string(tables[0].c_str()) + " IN ACCESS EXCLUSIVE MODE NOWAIT";
        try {
            node.trace(lock);
            tx->exec0(lock);
            return tx;
        } catch (const pqxx::sql_error& e) {
            if (e.sqlstate() != "55P03") {  // lock_not_available
                throw;
            }
        }
        tx->abort();
        tx.reset();
        const int64_t delay = retry::delay_ms(policy, attempt, unit(rng));
        const int64_t remaining =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
        if (!retry::another_attempt(policy, attempt, remaining, delay)) {
            throw CatalogBusy("pg_trickle's catalog on " + plan.node +
                              " stayed in use (by the scheduler, the WAL poller, a refresh or "
                              "another session) through " +
                              std::to_string(attempt) + " attempts in " +
                              std::to_string(catalog_lock_wait_ms / 1000) +
                              " s; nothing was changed there");
        }
        progress(plan.node + ": pg_trickle's catalog is in use, retrying in " +
                 std::to_string(delay) + " ms (attempt " + std::to_string(attempt) + " of " +
                 std::to_string(policy.max_attempts) + ")");
        std::this_thread::sleep_for(std::chrono::milliseconds(delay));
    }
}

}  // namespace

void apply_migration(Node& node, const migration::Plan& plan,
                     const std::function<void(const std::string&)>& progress, bool this_node_only) {
    const std::unique_ptr<pqxx::work> work =
        begin_with_catalog(node, plan, progress, this_node_only);
    pqxx::work& tx = *work;
    progress(plan.node + ": ALTER EXTENSION pg_trickle UPDATE TO '" + plan.to + "' (" +
             std::to_string(plan.steps.size()) + " steps, " + std::to_string(plan.renames.size()) +
             " renames)");
    const std::string sql = "ALTER EXTENSION pg_trickle UPDATE TO " + tx.quote(plan.to);
    node.trace(sql);
    tx.exec0(sql);
    progress(plan.node + ": verifying");
    const std::string now = tx.exec1(
                                  "SELECT e.extversion FROM pg_catalog.pg_extension e "
                                  "WHERE e.extname OPERATOR(pg_catalog.=) 'pg_trickle'")[0]
                                .as<std::string>();
    if (now != plan.to) {
        throw std::runtime_error("after the update " + plan.node + " reports version " + now +
                                 ", not " + plan.to);
    }
    for (const auto& r : plan.renames) {
        if (r.kind != "table" && r.kind != "index") {
            continue;
        }
        if (tx.exec1("SELECT pg_catalog.to_regclass(" + tx.quote(r.to) + ") IS NULL")[0]
                .as<bool>()) {
            throw std::runtime_error(r.kind + " " + r.to + " is missing after the update on " +
                                     plan.node);
        }
    }
    progress(plan.node + ": committing");
    tx.commit();
    // WAL-captured sources: the new slot takes over from the 0.31.0 one (its unread changes
    // drained into the buffer); the old one is dropped by a second call, once the first has
    // committed. The scheduler's poller does the same if this is interrupted.
    // The catalog is migrated by now: a failure here is reported, not fatal.
    for (const auto& r : plan.renames) {
        if (r.kind != "slot") {
            continue;
        }
        try {
            for (int pass = 0; pass < 2; ++pass) {
                pqxx::work slots(node.conn());
                slots.exec0("SET TRANSACTION ISOLATION LEVEL READ COMMITTED");
                const std::string sql =
                    "SELECT x.slot_name, x.action FROM pgtrickle.provision_worker_slots(" +
                    slots.quote(r.on) +
                    "::pg_catalog.regclass) x WHERE x.action OPERATOR(pg_catalog.<>) 'present'";
                node.trace(sql);
                for (const auto& row : slots.exec(sql)) {
                    progress(plan.node + ": slot " + row[0].as<std::string>() + " of " + r.on +
                             " " + row[1].as<std::string>());
                }
                slots.commit();
            }
        } catch (const pqxx::failure& e) {
            progress(plan.node + ": warning: the slot of " + r.on +
                     " was not taken over yet (the scheduler's poller retries every tick; "
                     "`pgtrickle slots list` shows it): " +
                     std::string(e.what()));
        }
    }
}

}  // namespace pgt::client
