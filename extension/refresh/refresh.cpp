// The refresh executor, in named stages (docs/architecture.md "Refresh"):
//   lock -> snapshot and frontier -> window -> delta and apply -> frontier store -> clean-up
// all in the caller's transaction, under one registered snapshot taken after the lock.
#include "refresh/refresh.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "boundary/guard.h"
#include "boundary/pg.h"
#include "boundary/spi.h"
#include "capture/capture.h"
#include "capture/state_copy.h"
#include "capture/wal.h"
#include "citus/citus.h"
#include "common/oids.h"
#include "common/query_tree.h"
#include "catalog/generation.h"
#include "catalog/sources.h"
#include "catalog/stream_tables.h"
#include "core/frontier.h"
#include "core/json.h"
#include "core/sql_ident.h"
#include "core/stable_name.h"
#include "refresh/lock.h"
#include "remote/connection.h"
#include "settings.h"

extern "C" {
#include "utils/errcodes.h"
}

namespace pgt {
namespace {

using sql::qualified;

using catalog::Source;

/// The differential layout of the storage table `relid` for `plan`. Storage created before
/// numeric sum/avg kept their per-group counts lacks those hidden columns: its groups are
/// rescanned as they were then.
ivm::StorageLayout storage_layout(const ivm::Query& plan, Oid relid) {
    ivm::StorageLayout layout = ivm::differential_layout(plan);
    for (const auto& h : layout.hidden) {
        if (!pg::has_column(relid, h.name)) {
            return ivm::differential_layout(plan, ivm::StorageLayout::NumericState::rescan);
        }
    }
    return layout;
}

/// Those of `rels` whose current rows the delta of `tr` reads (the other side of a join, a
/// rescanned group, EXISTS), from the table itself or from its state copy; for the storage
/// table `storage` when valid (else for a new one).
std::vector<Oid> delta_reads(const Translation& tr, const std::vector<Oid>& rels, Oid storage) {
    std::vector<Oid> out;
    if (!tr.plan || rels.empty()) {
        return out;
    }
    ivm::ChangeWindow window;
    for (Oid rel : tr.relations) {
        window.changed.insert(capture::resolve(rel).stable_name);
    }
    const ivm::StorageLayout layout = OidIsValid(storage) ? storage_layout(*tr.plan, storage)
                                                          : ivm::differential_layout(*tr.plan);
    const std::string delta = ivm::delta_apply_sql(*tr.plan, layout, "\"x\".\"x\"", window);
    for (Oid rel : rels) {
        const std::string name = qualified(pg::namespace_name(pg::rel_namespace(rel)).value_or(""),
                                           pg::rel_name(rel).value_or(""));
        const std::string copy = capture::resolve(rel).state;
        if (delta.find(name + " AS ") != std::string::npos ||
            (!copy.empty() && delta.find(copy + " AS ") != std::string::npos)) {
            out.push_back(rel);
        }
    }
    return out;
}

/// The Citus tables whose current rows the delta of `tr` reads. Read through the Citus executor,
/// their rows can be ahead of what their slots have delivered into the buffer (a join term or a
/// rescanned group would then see a change once from the table and once more from the buffer; Citus
/// also refuses such reads inside the MERGE that applies the delta): a differential reader reads a
/// copy at the buffer's frontier instead (capture/state_copy.h). Plain tables captured through WAL
/// need none: their buffer rows carry their writers' transaction ids (Refresh::run).
std::vector<Oid> citus_state_reads(const Translation& tr, Oid storage = InvalidOid) {
    if (!tr.plan || !citus::loaded()) {
        return {};
    }
    std::vector<Oid> citus_tables;
    for (Oid rel : tr.relations) {
        if (citus::placement_of(rel).kind != citus::Placement::Kind::local) {
            citus_tables.push_back(rel);
        }
    }
    return delta_reads(tr, citus_tables, storage);
}

/// What the query looks each table's rows up by, and the columns it reads of each
/// (query_tree::collect_lookup_keys), as attribute numbers.
CopyKeys lookup_keys(Query* query) {
    List* keys = NIL;
    List* used = NIL;
    pg_call([&]() noexcept { query_tree::collect_lookup_keys(query, &keys, &used); });
    CopyKeys out;
    for (int i = 0; i < list_length(keys); ++i) {
        auto* entry = static_cast<List*>(list_nth(keys, i));
        std::vector<int> cols;
        for (int j = 1; j < list_length(entry); ++j) {
            cols.push_back(list_nth_int(entry, j));
        }
        out.keys[static_cast<Oid>(list_nth_int(entry, 0))].push_back(cols);
    }
    for (int i = 0; i < list_length(used); ++i) {
        auto* entry = static_cast<List*>(list_nth(used, i));
        out.used[static_cast<Oid>(linitial_int(entry))].insert(lsecond_int(entry));
    }
    return out;
}

class Refresh {
  public:
    Refresh(int64_t pgt_id, const char* trigger) : id_(pgt_id), trigger_(trigger) {}

    RefreshOutcome run(RefreshLock& lock, bool force_full, bool wait_for_lock) {
        require_read_committed();
        // The catalog and the change buffers are the extension owner's, and nothing of the
        // caller's search_path may run with its rights; only the apply stage runs as the
        // stream table's owner (apply_full, apply_differential).
        const pg::AsExtensionOwner as_extension_owner;
        if (!lock.acquire(id_, wait_for_lock)) {
            out_.mode = "busy";
            return out_;
        }
        // Lock first, snapshot second: a refresh that committed while we waited is seen.
        started_ =
            *spi::exec_cached("SELECT pg_catalog.clock_timestamp()::pg_catalog.text").scalar();
        check_placements();
        // Sources captured through WAL: a Citus table's slots are drained first, so that the
        // refresh reflects every transaction committed on any node before it started (a full
        // refresh of a stream table that goes on differentially must read such sources in
        // exactly the state the drained buffer describes: writers are held off meanwhile).
        // A plain table's slot is on this server: its buffer rows carry their writers'
        // transaction ids and are consumed by visibility, like trigger-captured ones; it is
        // drained after the snapshot, and nothing locks its writers out.
        wal_sources_ = catalog::wal_sources(id_);
        refuse_own_writes_to_wal_sources();
        for (Oid relid : wal_sources_) {
            const auto src = catalog::source(relid);
            if (src && src->placement == "local") {
                local_wal_sources_.push_back(relid);
                local_wal_keys_.push_back(src->key);
            } else {
                citus_sources_.push_back(relid);
            }
        }
        if (!citus_sources_.empty()) {
            restore_missing_state_copies();
        }
        const Prelude before = wal_sources_.empty() ? Prelude{} : prelude();
        if (before.differential && !citus_sources_.empty()) {
            if (force_full || before.full_expected) {
                lock_and_drain_exactly();
            } else if (!scheduled()) {
                // A scheduled refresh reads what the WAL poller has drained: it never waits
                // on another node (the poller does, in a process of its own).
                for (Oid relid : citus_sources_) {
                    capture::wal::drain(relid, false, std::nullopt, 0, false);
                }
            }
        }
        if (before.differential) {
            // Before the snapshot: a drain of these slots that committed first (the poller's,
            // another refresh's) is then visible to it, and none can commit meanwhile. A
            // scheduled refresh does not wait for a transaction that holds one (a manual
            // refresh left open would hold up the whole scheduler): it is busy, retried.
            for (const std::string& key : local_wal_keys_) {
                const bool locked =
                    !catalog::lock_worker_slots(key, std::nullopt, scheduled()).empty();
                if (!locked && scheduled() && !catalog::worker_slots(key).empty()) {
                    out_.mode = "busy";
                    return out_;
                }
            }
        }
        if (force_full) {
            // A first (or redefining) refresh stores a frontier other sessions cannot see
            // before commit: keep their clean-up off these buffers until then. Taken before
            // the snapshot, so a clean-up that committed first only removed rows it shows.
            hold_buffers_for_new_reader();
        }
        std::optional<pg::RegisteredSnapshot> snapshot;
        for (;;) {
            snapshot.reset();
            snapshot.emplace();
            snap_ = snapshot->get();
            if (before.differential) {
                drain_local_wal_sources();
            }
            load_stream_table();
            load_sources();
            take_frontier_point();
            choose_mode(force_full);
            if (out_.mode == "full" && before.differential && !citus_sources_.empty() &&
                !wal_locked_) {
                // The window asks for a full refresh (a TRUNCATE marker): start again with
                // the sources locked, so that what the full refresh reads matches the frontier.
                lock_and_drain_exactly();
                sources_.clear();
                uncaptured_ = restored_ = false;
                st_ = catalog::StreamTable{};
                frontier_.reset();
                window_ = ivm::ChangeWindow{};
                out_ = RefreshOutcome{};
                continue;
            }
            break;
        }
        lock.renew();  // draining and reading may have taken a while
        if (out_.mode == "full") {
            apply_full();
        } else if (out_.mode == "differential") {
            apply_differential();
        } else if (!scheduled()) {
            // A manual refresh records a conversion also when nothing changed (pgtrickle dump
            // relies on it); a scheduled one with nothing to do stays one catalog read.
            (void)storage_place(nullptr);
        }
        lock.renew();  // the apply may have been long: still ours, or rolled back
        store_frontier();
        if (out_.mode != "none") {
            record_history();
            clean_up_buffers();
        }
        return out_;
    }

  private:
    bool scheduled() const { return std::strcmp(trigger_, "manual") != 0; }

    /// After the snapshot: every transaction it sees committed wrote its changes to this
    /// server's WAL before the snapshot was taken; the drain flushes the WAL and reads up to
    /// there, so they are all in the buffer, stamped with their writers' ids. Those that
    /// committed since are drained too and wait for the next refresh (its snapshot sees
    /// them, this frontier does not). An open transaction is read when it commits, once.
    void drain_local_wal_sources() {
        for (Oid relid : local_wal_sources_) {
            capture::wal::drain(relid, false, std::nullopt, 0, false);
        }
    }

    /// A full refresh of a stream table that goes on differentially reads its Citus sources
    /// in exactly the state their buffers describe: writers held off (SHARE lock), every
    /// node's WAL flushed and drained. A scheduled one first makes sure every node answered the
    /// poller's last drain: one that does not would hold up the scheduler until
    /// pg_trickle.remote_command_timeout, and the refresh would fail anyway.
    void lock_and_drain_exactly() {
        if (scheduled()) {
            require_nodes_answering();
        }
        capture::wal::lock_sources(citus_sources_);
        wal_locked_ = true;
        for (Oid relid : citus_sources_) {
            capture::wal::drain(relid, false, std::nullopt, 0, true);
        }
        // The sources are at their buffers' frontier now: so are their state copies.
        for (Oid relid : citus_sources_) {
            capture::state::refill(relid);
        }
    }

    /// A differential stream table whose delta reads a Citus source's rows reads its state
    /// copy: one that is missing (dropped by hand) is created again, and this refresh is a
    /// full one, which fills it with the source locked.
    void restore_missing_state_copies() const {
        const auto st = catalog::stream_table(id_);
        if (!st || st->effective_mode != "differential") {
            return;
        }
        // Usually every Citus source has its filled copy: then nothing needs the translation.
        const bool all_filled =
            std::all_of(citus_sources_.begin(), citus_sources_.end(), [](Oid rel) {
                const auto copy = capture::state::copy_info(capture::resolve(rel).stable_name);
                return copy && copy->filled;
            });
        if (all_filled) {
            return;
        }
        const Translation tr = translate_stream_table(st->query_view);
        std::optional<CopyKeys> keys;
        for (Oid rel : citus_state_reads(tr, st->relid)) {
            const auto copy = capture::state::copy_info(capture::resolve(rel).stable_name);
            if (copy && copy->filled) {
                continue;
            }
            if (!keys) {
                keys = lookup_keys(pg::view_query(st->query_view));
            }
            ensure_copy(rel, *keys);
            catalog::mark_for_full_refresh(
                id_, "the state copy of " + pg::rel_name(rel).value_or("?") +
                         (copy ? " was not filled" : " was missing: created") +
                         " (filled by this refresh)");
        }
    }

    void require_nodes_answering() const {
        for (Oid relid : citus_sources_) {
            const auto src = catalog::source(relid);
            if (!src || src->placement == "local") {
                continue;
            }
            for (const auto& slot : catalog::worker_slots(src->key)) {
                if (!slot.frontier) {
                    throw capture::wal::NodeNotCapturable(slot.node(),
                                                          pg::rel_name(relid).value_or("?"),
                                                          slot.last_error.value_or(""));
                }
                if (slot.consecutive_failures != 0) {
                    throw capture::wal::NodeUnreachable(slot.node(), slot.last_error.value_or(""));
                }
            }
        }
    }

    /// Before the snapshot: whether the stream table is maintained differentially (its
    /// frontier must then match its contents), and whether this refresh will be full for a
    /// reason known already (first refresh, a scheduled full refresh).
    struct Prelude {
        bool differential = false, full_expected = false;
    };
    Prelude prelude() const {
        Prelude p;
        if (const auto st = catalog::stream_table(id_)) {
            p.differential = st->effective_mode == "differential";
            p.full_expected = st->needs_full_refresh || !st->frontier;
        }
        return p;
    }

    /// This transaction's own writes to a WAL-captured source are visible to the refresh but
    /// reach its slot only at commit: refused rather than silently missed.
    void refuse_own_writes_to_wal_sources() {
        for (Oid relid : wal_sources_) {
            if (pg::wrote_in_transaction(relid)) {
                const std::string name = pg::rel_name(relid).value_or(oid_text(relid));
                throw Error(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                            "this transaction wrote to \"" + name +
                                "\", whose changes are captured through WAL",
                            "WAL-captured changes reach stream tables when their transaction "
                            "commits; this refresh would miss the uncommitted ones it sees.",
                            "Commit first, then refresh (or capture the table with cdc_mode => "
                            "'trigger').");
            }
        }
    }

    /// A source captured by triggers that Citus distributed since (create_distributed_table,
    /// create_reference_table): its writes now happen on other nodes, where no trigger sees
    /// them. Refused rather than silently stale.
    void check_placements() {
        if (!citus::loaded() || !catalog::has_wal_capture()) {
            return;
        }
        for (const auto& s : catalog::sources_of(id_)) {
            if (!s.captured) {
                continue;
            }
            const citus::Placement now = citus::placement_of(s.relid);
            if (s.cdc_mode == "trigger" && now.kind != citus::Placement::Kind::local) {
                const std::string name = pg::rel_name(s.relid).value_or(std::to_string(s.relid));
                throw Error(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                            "source \"" + name + "\" became a Citus " + now.name() +
                                " table after the stream table was created",
                            "Its changes now happen on other nodes, where its capture triggers "
                            "do not run: the stream table would go stale.",
                            "Drop the stream table and create it again: it then reads the "
                            "table's changes from each node's WAL.");
            }
            if (s.cdc_mode == "wal" && s.placement != now.name()) {
                // Its changes now happen elsewhere; the slots there do not exist yet. A
                // refresh now would miss them: wait for the poller (one tick) instead.
                const std::string name = pg::rel_name(s.relid).value_or(std::to_string(s.relid));
                throw capture::wal::SlotsNotProvisioned(
                    "source \"" + name + "\" became a " +
                        (now.kind == citus::Placement::Kind::local
                             ? std::string("local table")
                             : std::string("Citus ") + now.name() + " table") +
                        " and its slots are not provisioned yet",
                    "Its changes are now captured on other nodes; the WAL poller "
                    "provisions the slots there at its next tick, and the stream "
                    "tables reading it then refresh fully once.",
                    "Retry in a moment, or run SELECT * FROM "
                    "pgtrickle.provision_worker_slots(" +
                        sql::quote_literal(name) + ") to provision them now.");
            }
        }
    }

    static void require_read_committed() {
        if (pg::isolation_uses_xact_snapshot()) {
            throw Error(
                ERRCODE_ACTIVE_SQL_TRANSACTION,
                "stream tables are refreshed in READ COMMITTED transactions only",
                "Under REPEATABLE READ or SERIALIZABLE the transaction's snapshot may predate the "
                "previous refresh.",
                "Run the refresh outside an explicit REPEATABLE READ/SERIALIZABLE transaction.");
        }
    }

    spi::Result query(const std::string& sql, const std::vector<spi::Value>& params = {}) {
        return spi::exec_cached(sql, params, snap_);
    }

    // ---- stage: snapshot and frontier -----------------------------------------------

    void load_stream_table() {
        auto st = catalog::stream_table(id_, snap_);
        if (!st) {
            throw Error(ERRCODE_UNDEFINED_OBJECT,
                        "stream table with id " + std::to_string(id_) + " does not exist");
        }
        st_ = std::move(*st);
        owner_ = pg::relation_owner(st_.relid);
        if (st_.frontier) {
            try {
                frontier_ = frontier::Frontier::parse(*st_.frontier);
            } catch (const std::invalid_argument& e) {
                // A frontier nobody can read is no frontier: recompute.
                frontier_.reset();
            }
        }
        sysid_ = catalog::system_identifier();
    }

    void hold_buffers_for_new_reader() const {
        for (const auto& src : catalog::sources_of(id_)) {
            if (src.captured) {
                hold_buffer_for_new_reader(src.key);
            }
        }
    }

    void load_sources() {
        sources_ = catalog::sources_of(id_, snap_);
        for (const Source& src : sources_) {
            uncaptured_ = uncaptured_ || !src.captured;
            if (src.captured && src.buffer_sysid != sysid_) {
                // The buffer came from another cluster (dump/restore, pg_upgrade): its
                // transaction ids mean nothing here. Every reader's frontier is foreign too,
                // so each one recomputes; the buffer is emptied once, by the first of them.
                spi::run("DELETE FROM " + src.buffer(), {}, snap_);
                (void)catalog::claim_buffer(src.relid, sysid_, snap_);
                restored_ = true;
            }
        }
    }

    /// Where this refresh leaves the frontier: its snapshot, with the refreshing transaction
    /// counted as running and its rows so far marked consumed (frontier.h).
    void take_frontier_point() {
        frontier::SourceFrontier point;
        point.snapshot =
            *query("SELECT pg_catalog.pg_current_snapshot()::pg_catalog.text").scalar();
        const uint64_t own_xid = pg::top_full_xid_if_any();
        if (own_xid != 0) {
            point.snapshot = frontier::Snapshot::parse(point.snapshot).with_running(own_xid).text();
            point.own = frontier::OwnWrites{own_xid, pg::current_command_id()};
        }
        point_ = point;
    }

    // ---- stage: window ----------------------------------------------------------------

    /// Full, differential or nothing to do, and which sources have rows in the window.
    void choose_mode(bool force_full) {
        std::optional<frontier::SourceFrontier> from;
        if (frontier_) {
            from = frontier_->common();
        }
        bool full = force_full || st_.effective_mode == "full" || st_.needs_full_refresh;
        if (force_full) {
            out_.reason = "full refresh requested";
        }
        if (!frontier_) {
            full = true;
            out_.reason = "no frontier yet (first refresh)";
        } else if (frontier_->sysid != sysid_) {
            full = true;
            out_.reason = "frontier belongs to another cluster (restored or upgraded)";
        } else if (!from) {
            full = true;
            out_.reason = has_captured_sources() ? "sources are at different frontiers"
                                                 : "no captured source: recomputed";
        } else if (st_.needs_full_refresh) {
            out_.reason = st_.full_refresh_reason.value_or("a full refresh was scheduled");
        } else if (restored_) {
            full = true;
            out_.reason = "change buffers come from another cluster (restored or upgraded)";
        } else if (st_.effective_mode == "full") {
            out_.reason = "maintained by full refresh";
        } else if (const auto rls = rls_source()) {
            // Buffer rows carry no policy: only the query over the sources applies it.
            full = true;
            out_.reason = "row-level security applies to source " + *rls + " for the owner";
        }
        bool any_change = uncaptured_;
        if (from) {
            window_.frontier = *from;
            window_.upto = point_;
            for (const auto& [key, truncated] : changed_sources(*from)) {
                window_.changed.insert(key);
                any_change = true;
                if (truncated) {
                    full = true;
                    out_.reason = "a source was truncated, or partitions were attached or detached";
                }
            }
        }
        out_.mode = full ? "full" : any_change ? "differential" : "none";
    }

    /// A source whose row-level security policies filter what the owner reads, if any.
    std::optional<std::string> rls_source() const {
        for (const auto& s : sources_) {
            if (pg::rls_applies(s.relid, owner_)) {
                return pg::rel_name(s.relid).value_or(std::to_string(s.relid));
            }
        }
        return std::nullopt;
    }

    bool has_captured_sources() const {
        for (const auto& s : sources_) {
            if (s.captured) {
                return true;
            }
        }
        return false;
    }

    /// Sources with rows in the window, and whether those include a TRUNCATE marker.
    std::vector<std::pair<std::string, bool>> changed_sources(
        const frontier::SourceFrontier& from) {
        std::vector<std::string> parts;
        for (const auto& s : sources_) {
            if (!s.captured) {
                continue;
            }
            const std::string in_window = "FROM " + s.buffer() + " WHERE " +
                                          frontier::window_condition_params("", 1) + " AND " +
                                          frontier::upto_condition_params("", 4);
            parts.push_back("SELECT " + sql::quote_literal(s.key) +
                            "::pg_catalog.text, EXISTS (SELECT 1 " + in_window +
                            "), EXISTS (SELECT 1 " + in_window +
                            " AND \"__pgt_op\" OPERATOR(pg_catalog.=) 'T')");
        }
        std::vector<std::pair<std::string, bool>> changed;
        if (parts.empty()) {
            return changed;
        }
        std::vector<std::optional<std::string>> params = frontier::window_params(from);
        for (auto& p : frontier::upto_params(point_)) {
            params.push_back(std::move(p));
        }
        for (const auto& row : query(sql::join(parts, " UNION ALL "), params).rows) {
            if (row[1] == "t") {
                changed.emplace_back(*row[0], row[2] == "t");
            }
        }
        return changed;
    }

    // ---- stage: delta and apply ---------------------------------------------------------

    void apply_full() {
        std::unique_ptr<Translation> tr;
        const ivm::Query* plan = nullptr;
        ivm::StorageLayout layout;
        if (st_.storage_kind == "groups") {
            tr = std::make_unique<Translation>(translate_stream_table(view_oid()));
            if (!tr->plan) {
                throw Error(ERRCODE_INTERNAL_ERROR,
                            "stream table \"" + st_.name + "\" can no longer be translated",
                            tr->unsupported, "Drop and recreate the stream table.");
            }
            plan = tr->plan.get();
            layout = storage_layout(*plan, st_.relid);
        } else {
            layout.kind = ivm::StorageKind::rows;
            auto cols = spi::exec(
                "SELECT attname::pg_catalog.text FROM pg_catalog.pg_attribute WHERE attrelid "
                "OPERATOR(pg_catalog.=) $1::pg_catalog.oid AND attnum OPERATOR(pg_catalog.>) 0 "
                "AND NOT attisdropped AND attname::pg_catalog.text OPERATOR(pg_catalog.!~~) "
                "'\\_\\_pgt\\_%' ORDER BY attnum",
                {std::to_string(st_.relid)}, snap_);
            for (const auto& c : cols.rows) {
                layout.visible.push_back({*c[0], ""});
            }
        }
        const std::string view =
            "pgtrickle." + sql::quote_ident("pgt_query_" + std::to_string(id_));
        // Recorded when it changed; a full refresh writes any placement alike.
        const StoragePlace place = storage_place(plan);
        require_storage_nodes_answering(place);
        const std::string fill = ivm::full_refresh_sql(plan, layout, st_.qualified_name(), view);
        const pg::AsUser as_owner(owner_, /*restricted=*/true);
        apply_recorded_settings();
        spi::run("DELETE FROM " + st_.qualified_name(), {}, snap_);
        out_.rows = static_cast<int64_t>(spi::exec(fill, {}, snap_).processed);
    }

    /// How the apply writes the storage where it is now.
    struct StoragePlace {
        ivm::ApplyTarget target = ivm::ApplyTarget::local;
        std::string column;  ///< the visible column it is distributed by, if any
    };

    /// Where the storage is now, as Citus says: the user may have made it a reference or a
    /// distributed table since (create_reference_table, create_distributed_table). A change
    /// is recorded (st_placement) and logged; storage that a refresh cannot write (grouped
    /// storage distributed by a column it updates in place) is refused clearly.
    StoragePlace storage_place(const ivm::Query* plan) {
        StoragePlace out;
        if (!citus::loaded()) {
            return out;
        }
        const citus::Placement now = citus::placement_of(st_.relid);
        const std::optional<std::string> column =
            now.kind == citus::Placement::Kind::distributed
                ? std::optional<std::string>(now.distribution_column)
                : std::nullopt;
        const bool by_column = column && *column != "__pgt_row_id";
        // Checked at every write (plan given), not only when the placement changed: a refresh
        // with nothing to apply records a change without the plan.
        if (by_column && st_.storage_kind == "groups" && plan != nullptr) {
            const auto& targets = plan->block.targets;
            const bool key = std::any_of(targets.begin(), targets.end(), [&](const auto& t) {
                return t.kind == ivm::Target::Kind::group_key && t.column.name == *column;
            });
            if (!key) {
                throw Error(ERRCODE_FEATURE_NOT_SUPPORTED,
                            "stream table \"" + st_.name + "\" is distributed by column \"" +
                                *column + "\", which is not one of its grouping columns",
                            "A refresh updates that column in place, and Citus never changes a "
                            "row's distribution value.",
                            "Run SELECT undistribute_table('" + st_.qualified_name() +
                                "'), then distribute it by a grouping column (with a unique "
                                "index on it and __pgt_row_id) or by __pgt_row_id.");
            }
        }
        if (now.name() != st_.placement || column != st_.distribution_column) {
            catalog::set_placement(id_, now.name(), column);
            const std::string what = std::string("pg_trickle: stream table \"") + st_.name +
                                     "\" is now stored as a Citus " + now.name() + " table" +
                                     (column ? " distributed by " + *column : std::string()) +
                                     "; its refreshes write it accordingly";
            pg_call([&]() noexcept { ereport(LOG, (errmsg("%s", what.c_str()))); });
            st_.placement = now.name();
            st_.distribution_column = column;
        }
        if (now.kind != citus::Placement::Kind::local) {
            out.target = ivm::ApplyTarget::distributed;
        }
        if (by_column) {
            out.column = *column;
        }
        return out;
    }

    void apply_differential() {
        const Translation tr = translate_stream_table(view_oid());
        if (!tr.plan) {
            throw Error(
                ERRCODE_INTERNAL_ERROR,
                "stream table \"" + st_.name + "\" can no longer be maintained differentially",
                tr.unsupported, "Run pgtrickle.alter_stream_table(..., refresh_mode => 'full').");
        }
        ivm::StorageLayout layout = storage_layout(*tr.plan, st_.relid);
        if (!catalog::has_row_image_id()) {
            layout.identity = ivm::RowIdentity::equality;  // catalogs before 0.35.0
        }
        const StoragePlace place = storage_place(tr.plan.get());
        require_storage_nodes_answering(place);
        layout.distribution_column = place.column;
        const std::string apply =
            ivm::delta_apply_sql(*tr.plan, layout, st_.qualified_name(), window_, place.target);
        const pg::AsUser as_owner(owner_, /*restricted=*/true);
        apply_recorded_settings();
        auto res = spi::exec(apply, {}, snap_);
        out_.rows = res.rows.empty() ? static_cast<int64_t>(res.processed)
                                     : std::stoll(res.scalar().value_or("0"));
    }

    /// Before a scheduled refresh writes Citus storage: every node holding its placements
    /// answers, within pg_trickle.remote_connect_timeout / remote_command_timeout (our own
    /// connections, which give up on a node that does not). Citus's do not: its write to a
    /// frozen node waits with no deadline, and even the abort of a cancelled one waits for
    /// that node (its cancel request blocks), and the scheduler with it (seen with gdb). The
    /// window between this question and the write stays open. A node that fails here fails
    /// the refresh (transient: retried with backoff, never counted toward suspension) before
    /// Citus is asked to write anything.
    void require_storage_nodes_answering(const StoragePlace& place) const {
        if (place.target != ivm::ApplyTarget::distributed || !scheduled()) {
            return;
        }
        const std::string user = pg::role_name(pg::extension_owner());
        for (const remote::Node& node : citus::placement_nodes(st_.relid)) {
            (void)remote::cached_connection(node, user).exec("SELECT 1");
        }
    }

    /// The creating session's result-changing settings (TimeZone, DateStyle, ...), for the
    /// apply stage only: undone when the owner's restricted scope ends.
    void apply_recorded_settings() const {
        for (const auto& [name, value] : st_.refresh_settings) {
            pg::set_for_scope(name, value);
        }
        // Apply statements touch few rows, but their never-executed rescan subplans inflate
        // the plan's cost past jit_above_cost: JIT compilation took ~430 ms of a 460 ms
        // refresh after 1,000 changes (measured with auto_explain).
        pg::set_for_scope("jit", "off");
    }

    Oid view_oid() const { return st_.query_view; }

    // ---- stage: frontier store, history, clean-up ---------------------------------------

    void store_frontier() {
        frontier::Frontier next;
        next.sysid = sysid_;
        for (const auto& src : sources_) {
            if (src.captured) {
                next.sources[src.key] = point_;
            }
        }
        catalog::store_refresh(id_, next.json(), out_.mode, out_.rows, snap_);
    }

    void record_history() {
        catalog::record_history(
            id_, started_, out_.mode, out_.rows,
            out_.reason.empty() ? std::nullopt : std::optional<std::string>(out_.reason), trigger_,
            settings::history_rows_per_table, snap_);
    }

    /// Rows below the oldest reader's frontier xmin are visible to every reader (or
    /// aborted): consumed by all. Readers that will recompute anyway (suspended, failing,
    /// marked for a full refresh) do not hold the buffer back.
    void clean_up_buffers() {
        for (const auto& src : sources_) {
            if (!src.captured || !try_lock_buffer_for_cleanup(src.key)) {
                continue;  // a reader being created needs the rows: clean up next time
            }
            const catalog::BufferRetention keep =
                catalog::buffer_retention(src.key, src.relid, sysid_, snap_);
            if (!keep.oldest_xmin) {
                continue;
            }
            // Rows a frontier tells apart by their cmin stay: every reader's own transaction
            // as this refresh sees the frontiers, and this stream table's previous one, which
            // this transaction replaced but which comes back if it aborts. They go at a
            // clean-up after the next refresh that commits.
            std::optional<std::string> previous_own;
            if (frontier_) {
                const auto prev = frontier_->sources.find(src.key);
                if (prev != frontier_->sources.end() && prev->second.own) {
                    previous_own = std::to_string(prev->second.own->xid);
                }
            }
            query("DELETE FROM " + src.buffer() +
                      " WHERE \"__pgt_xid\" OPERATOR(pg_catalog.<) $1::pg_catalog.xid8 AND "
                      "\"__pgt_xid\" OPERATOR(pg_catalog.<>) ALL ($2::pg_catalog.xid8[]) AND "
                      "($3::pg_catalog.xid8 IS NULL OR \"__pgt_xid\" OPERATOR(pg_catalog.<>) "
                      "$3::pg_catalog.xid8)",
                  {*keep.oldest_xmin, keep.own_xids, previous_own});
        }
    }

    const int64_t id_;
    const char* trigger_;
    std::string started_, sysid_;
    Snapshot snap_ = InvalidSnapshot;
    Oid owner_ = InvalidOid;
    catalog::StreamTable st_;
    std::optional<frontier::Frontier> frontier_;  ///< nullopt before the first refresh
    std::vector<Source> sources_;
    std::vector<Oid> wal_sources_;
    std::vector<Oid> local_wal_sources_;       ///< plain tables: slots on this server
    std::vector<std::string> local_wal_keys_;  ///< their stable names, in the same order
    std::vector<Oid> citus_sources_;           ///< Citus tables: slots on their nodes
    bool wal_locked_ = false;
    bool uncaptured_ = false, restored_ = false;
    frontier::SourceFrontier point_;
    ivm::ChangeWindow window_;
    RefreshOutcome out_;
};

}  // namespace

Translation translate_stream_table(Oid query_view) {
    return translate_query(pg::view_query(query_view), capture::resolve);
}

void ensure_copy(Oid relid, const CopyKeys& keys) {
    const auto k = keys.keys.find(relid);
    const auto u = keys.used.find(relid);
    capture::state::ensure(relid,
                           k == keys.keys.end() ? std::vector<std::vector<int>>{} : k->second,
                           u == keys.used.end() ? std::set<int>{} : u->second);
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
        a.state_copies = citus_state_reads(a.translation);
        if (!a.state_copies.empty()) {
            a.copy_keys = lookup_keys(query);
        }
    }
    a.layout =
        a.differential ? ivm::differential_layout(*a.translation.plan) : ivm::full_layout(columns);
    return a;
}

RefreshOutcome refresh_stream_table(int64_t pgt_id, bool force_full, bool wait_for_lock,
                                    const char* trigger) {
    // On a Citus cluster a lease too (lock.h): a holder that died is not taken over before
    // its lease expires.
    if (citus::loaded()) {
        LeaseRefreshLock lease;
        return Refresh(pgt_id, trigger).run(lease, force_full, wait_for_lock);
    }
    AdvisoryRefreshLock lock;
    return Refresh(pgt_id, trigger).run(lock, force_full, wait_for_lock);
}

}  // namespace pgt
