#include "refresh/refresh.h"

#include <vector>

#include "capture/capture.h"
#include "catalog.h"
#include "core/frontier.h"
#include "core/sql_ident.h"
#include "core/stable_name.h"
#include "boundary/guard.h"
#include "settings.h"
#include "boundary/spi.h"

extern "C" {
#include "access/table.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "rewrite/rewriteHandler.h"
#include "utils/errcodes.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
}

namespace pgt {
namespace {

using sql::qualified;
using sql::quote_literal;

/// Advisory lock class of stream-table refreshes ('pgtr').
constexpr int kLockClass = 0x70677472;

struct StreamTableRow {
    std::string schema, name, storage, view, effective_mode, storage_kind, status;
    std::optional<std::string> frontier_snapshot, frontier_sysid;
    bool needs_full = false;
};

struct SourceRow {
    std::string relid, stable_name;
    bool captured = false;
};

}  // namespace

Translation translate_stream_table(Oid query_view) {
    Query* q = nullptr;
    pg_call([&] {
        Relation rel = table_open(query_view, AccessShareLock);
        q = pg_copy(get_view_query(rel));
        table_close(rel, AccessShareLock);
    });
    return translate_query(q, capture::resolve);
}

Analysis analyze_for_mode(Query* query, const std::string& refresh_mode,
                          const std::vector<ivm::Column>& columns) {
    Analysis a;
    a.translation = translate_query(query, capture::resolve);
    if (refresh_mode == "full") {
        a.reason = "refresh_mode is 'full'";
    } else if (!a.translation.plan) {
        a.reason = "not differentiable: " + a.translation.unsupported;
    } else {
        a.differential = true;
    }
    a.layout =
        a.differential ? ivm::differential_layout(*a.translation.plan) : ivm::full_layout(columns);
    return a;
}

RefreshOutcome refresh_stream_table(int64_t pgt_id, bool force_full, bool wait_for_lock,
                                    const char* trigger) {
    bool xact_snapshot = false;
    pg_call([&] { xact_snapshot = IsolationUsesXactSnapshot(); });
    if (xact_snapshot) {
        throw Error(
            ERRCODE_ACTIVE_SQL_TRANSACTION,
            "stream tables are refreshed in READ COMMITTED transactions only",
            "Under REPEATABLE READ or SERIALIZABLE the transaction's snapshot may predate the "
            "previous refresh.",
            "Run the refresh outside an explicit REPEATABLE READ/SERIALIZABLE transaction.");
    }
    const std::string id = std::to_string(pgt_id);
    // Lock first, snapshot second: a refresh that committed while we waited is then visible.
    const std::string lock_args =
        "(" + std::to_string(kLockClass) + ", ($1::bigint % 2147483647)::int)";
    if (wait_for_lock) {
        spi::exec_cached("SELECT pg_catalog.pg_advisory_xact_lock" + lock_args, {id});
    } else if (spi::exec_cached("SELECT pg_catalog.pg_try_advisory_xact_lock" + lock_args, {id})
                   .scalar() != "t") {
        RefreshOutcome busy;
        busy.mode = "busy";
        return busy;
    }
    const std::string started =
        *spi::exec_cached("SELECT pg_catalog.clock_timestamp()::text").scalar();
    Snapshot snap = InvalidSnapshot;
    pg_call([&] {
        CommandCounterIncrement();
        snap = RegisterSnapshot(GetTransactionSnapshot());
    });
    struct Unregister {
        Snapshot s;
        ~Unregister() {
            if (s != InvalidSnapshot) {
                UnregisterSnapshot(s);
            }
        }
    } unregister{snap};

    auto st_rows = spi::exec_cached(
        "SELECT pgt_schema, pgt_name, pgt_relid::oid::text, query_view::oid::text, effective_mode, "
        "storage_kind, status, "
        "frontier->>'sysid', (SELECT min(v->>'snapshot') FROM "
        "pg_catalog.jsonb_each(frontier->'sources') AS e(k, v)), "
        "(SELECT count(DISTINCT v->>'snapshot') FROM pg_catalog.jsonb_each(frontier->'sources') AS "
        "e(k, v)) > 1 "
        "OR needs_full_refresh FROM pgtrickle.pgt_stream_tables WHERE pgt_id = $1::bigint",
        {id}, snap);
    if (st_rows.rows.empty()) {
        throw Error(ERRCODE_UNDEFINED_OBJECT, "stream table with id " + id + " does not exist");
    }
    const auto& r = st_rows.rows[0];
    StreamTableRow st{*r[0], *r[1], *r[2], *r[3], *r[4],
                      *r[5], *r[6], r[8],  r[7],  r[9] && *r[9] == "t"};
    const std::string storage = qualified(st.schema, st.name);

    auto now = spi::exec_cached("SELECT pg_catalog.pg_current_snapshot()::text", {}, snap);
    const std::string new_snapshot = *now.rows[0][0];
    // The cluster's identity (as pg_control_system() shows it), without reading pg_control.
    const std::string sysid = catalog::system_identifier();

    const std::string key = catalog::source_key_sql("ct");
    auto src_rows = spi::exec_cached(
        "SELECT d.source_relid::oid::text, " + key +
            ", ct.source_relid IS NOT NULL, ct.buffer_sysid "
            "FROM pgtrickle.pgt_dependencies d LEFT JOIN pgtrickle.pgt_change_tracking ct "
            "ON ct.source_relid = d.source_relid WHERE d.pgt_id = $1::bigint",
        {id}, snap);
    std::vector<SourceRow> sources;
    bool uncaptured = false;
    bool restored = false;
    for (const auto& s : src_rows.rows) {
        sources.push_back({*s[0], s[1].value_or(""), s[2] && *s[2] == "t"});
        uncaptured = uncaptured || !sources.back().captured;
        if (sources.back().captured && s[3] != sysid) {
            // The buffer came from another cluster (dump/restore, pg_upgrade): its transaction
            // ids mean nothing here. Every reader's frontier is foreign too, so each one
            // recomputes; the buffer is emptied once, by the first of them.
            spi::run("DELETE FROM " +
                         qualified("pgtrickle_changes",
                                   capture_object_names(sources.back().stable_name).buffer_table),
                     {}, snap);
            spi::run(
                "UPDATE pgtrickle.pgt_change_tracking SET buffer_sysid = $2 WHERE source_relid = "
                "$1::oid",
                {sources.back().relid, sysid}, snap);
            restored = true;
        }
    }

    RefreshOutcome out;
    bool full = force_full || st.effective_mode == "full" || st.needs_full;
    if (force_full) {
        out.reason = "full refresh requested";
    }
    if (!st.frontier_snapshot) {
        full = true;
        out.reason = "no frontier yet (first refresh)";
    } else if (!st.frontier_sysid || *st.frontier_sysid != sysid) {
        full = true;
        out.reason = "frontier belongs to another cluster (restored or upgraded)";
    } else if (st.needs_full) {
        out.reason = "a full refresh was scheduled";
    } else if (restored) {
        full = true;
        out.reason = "change buffers come from another cluster (restored or upgraded)";
    } else if (st.effective_mode == "full") {
        out.reason = "maintained by full refresh";
    }

    ivm::ChangeWindow window;
    bool any_change = uncaptured;
    if (st.frontier_snapshot) {
        window.frontier.snapshot = *st.frontier_snapshot;
        std::vector<std::string> parts;
        for (const auto& s : sources) {
            if (!s.captured) {
                continue;
            }
            const std::string buf =
                qualified("pgtrickle_changes", capture_object_names(s.stable_name).buffer_table);
            const std::string win =
                "FROM " + buf + " WHERE " + frontier::window_condition_params("", 1);
            parts.push_back("SELECT " + quote_literal(s.stable_name) + "::text, EXISTS (SELECT 1 " +
                            win + "), EXISTS (SELECT 1 " + win +
                            " AND \"__pgt_op\" OPERATOR(pg_catalog.=) 'T')");
        }
        if (!parts.empty()) {
            std::string q;
            for (size_t i = 0; i < parts.size(); ++i) {
                q += (i ? " UNION ALL " : "") + parts[i];
            }
            for (const auto& row : spi::exec_cached(q, frontier::window_params(window.frontier), snap).rows) {
                if (*row[1] == "t") {
                    window.changed.insert(*row[0]);
                    any_change = true;
                }
                if (*row[2] == "t") {
                    full = true;
                    out.reason = "a source was truncated";
                }
            }
        }
    }

    if (!full && !any_change) {
        out.mode = "none";
    } else if (full) {
        out.mode = "full";
        std::unique_ptr<Translation> tr;
        const ivm::Query* plan = nullptr;
        ivm::StorageLayout layout;
        if (st.storage_kind == "groups") {
            tr = std::make_unique<Translation>(
                translate_stream_table(static_cast<Oid>(std::stoul(st.view))));
            if (!tr->plan) {
                throw Error(ERRCODE_INTERNAL_ERROR,
                            "stream table \"" + st.name + "\" can no longer be translated",
                            tr->unsupported, "Drop and recreate the stream table.");
            }
            plan = tr->plan.get();
            layout = ivm::differential_layout(*plan);
        } else {
            layout.kind = ivm::StorageKind::rows;
            auto cols = spi::exec(
                "SELECT attname::text FROM pg_catalog.pg_attribute WHERE attrelid = $1::oid AND "
                "attnum > 0 "
                "AND NOT attisdropped AND attname::text NOT LIKE '\\_\\_pgt\\_%' ORDER BY attnum",
                {st.storage}, snap);
            for (const auto& c : cols.rows) {
                layout.visible.push_back({*c[0], ""});
            }
        }
        spi::run("DELETE FROM " + storage, {}, snap);
        const std::string view = "pgtrickle." + sql::quote_ident("pgt_query_" + id);
        auto ins = spi::exec(ivm::full_refresh_sql(plan, layout, storage, view), {}, snap);
        out.rows = static_cast<int64_t>(ins.processed);
    } else {
        out.mode = "differential";
        Translation tr = translate_stream_table(static_cast<Oid>(std::stoul(st.view)));
        if (!tr.plan) {
            throw Error(
                ERRCODE_INTERNAL_ERROR,
                "stream table \"" + st.name + "\" can no longer be maintained differentially",
                tr.unsupported, "Run pgtrickle.alter_stream_table(..., refresh_mode => 'full').");
        }
        const ivm::StorageLayout layout = ivm::differential_layout(*tr.plan);
        auto res = spi::exec(ivm::delta_apply_sql(*tr.plan, layout, storage, window), {}, snap);
        out.rows = res.rows.empty() ? static_cast<int64_t>(res.processed)
                                    : std::stoll(res.scalar().value_or("0"));
    }

    // Frontier advance and buffer clean-up, in the same transaction as the apply.
    spi::exec_cached(
        "UPDATE pgtrickle.pgt_stream_tables SET frontier = pg_catalog.jsonb_build_object('format', "
        "1, 'sysid', $2::text, "
        "'sources', COALESCE((SELECT pg_catalog.jsonb_object_agg(" +
            key +
            ", "
            "pg_catalog.jsonb_build_object('snapshot', $3::text)) FROM pgtrickle.pgt_dependencies "
            "d "
            "JOIN pgtrickle.pgt_change_tracking ct ON ct.source_relid = d.source_relid WHERE "
            "d.pgt_id "
            "= $1::bigint), '{}'::jsonb)), "
            "needs_full_refresh = false, next_attempt_at = NULL, last_refresh_at = "
            "pg_catalog.now(), "
            "last_refresh_mode = $4, "
            "last_refresh_rows = $5::bigint, last_error = NULL, consecutive_errors = 0, "
            "status = CASE WHEN status = 'initializing' OR status = 'error' THEN 'active' ELSE "
            "status "
            "END "
            "WHERE pgt_id = $1::bigint",
        {id, sysid, new_snapshot, out.mode, std::to_string(out.rows)}, snap);
    if (out.mode != "none") {
        spi::exec_cached(
            "INSERT INTO pgtrickle.pgt_refresh_history (pgt_id, started_at, finished_at, mode, "
            "rows_changed, "
            "reason, trigger) VALUES ($1::bigint, $2::timestamptz, pg_catalog.clock_timestamp(), "
            "$3, $4::bigint, $5, $6)",
            {id, started, out.mode, std::to_string(out.rows),
             out.reason.empty() ? std::nullopt : std::optional<std::string>(out.reason),
             std::string(trigger)},
            snap);
        spi::exec_cached(
            "DELETE FROM pgtrickle.pgt_refresh_history WHERE pgt_id = $1::bigint AND history_id <= "
            "(SELECT history_id FROM pgtrickle.pgt_refresh_history WHERE pgt_id = $1::bigint "
            "ORDER BY history_id DESC OFFSET $2::int LIMIT 1)",
            {id, std::to_string(settings::history_rows_per_table)}, snap);
        for (const auto& s : sources) {
            if (!s.captured) {
                continue;
            }
            const std::string buf =
                qualified("pgtrickle_changes", capture_object_names(s.stable_name).buffer_table);
            // Rows below the oldest reader's frontier xmin are visible to every reader (or
            // aborted): consumed by all. Readers that will recompute anyway (suspended, failing,
            // marked for a full refresh) do not hold the buffer back.
            spi::exec_cached(
                "DELETE FROM " + buf +
                    " WHERE \"__pgt_xid\" OPERATOR(pg_catalog.<) (SELECT "
                    "pg_catalog.min(pg_catalog.pg_snapshot_xmin((st.frontier->'"
                    "sources'->$1->>'snapshot')::pg_catalog.pg_snapshot)) "
                    "FROM pgtrickle.pgt_stream_tables st JOIN "
                    "pgtrickle.pgt_dependencies d ON d.pgt_id = st.pgt_id "
                    "WHERE d.source_relid = $2::oid AND st.frontier->'sources' ? $1 "
                    "AND NOT st.needs_full_refresh AND st.status NOT IN ('suspended', 'error') "
                    "AND st.frontier->>'sysid' = $3)",
                {s.stable_name, s.relid, sysid}, snap);
        }
    }
    return out;
}

}  // namespace pgt
