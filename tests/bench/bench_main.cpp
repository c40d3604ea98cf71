// pgtrickle_bench: one run that measures pg_trickle against baselines taken in the same run
// on a throwaway server.
//
//   1. setup: orders (N rows, ~10,000 customers), customers; stream tables `agg` (GROUP BY)
//      and `join` (orders JOIN customers) and the same queries as materialized views.
//   2. cycles of a mixed batch of changes to orders, then differential refresh of each stream
//      table vs REFRESH MATERIALIZED VIEW of the same query (verified after every refresh);
//      zero-change refresh latency vs a `SELECT 1` round trip.
//   3. capture overhead: bulk INSERT ... SELECT generate_series into a captured vs an
//      identical uncaptured table.
//   4. pgbench single-row UPDATE throughput on a captured vs an identical uncaptured table.
//   5. scheduler (database `sched`): commit -> visible latency of a stream table refreshed by
//      the background scheduler under a steady single-row write load, with wake-ups off vs on;
//      CPU time of the scheduler process with 100 idle stream tables vs pg_trickle.enabled=off.
//
// stdout: the report (table with ratios and PASS/MISS against the targets). stderr: progress.
// Exit 0 when it ran (missed targets are reported, not failures); 2 when a stream table was
// wrong; 1 when setup or anything else failed.

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <optional>
#include <random>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

#include <fmt/format.h>
#include <pqxx/pqxx>

#include "bench_server.h"

namespace pgt::bench {
namespace {

struct CorrectnessError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct Options {
    long long rows = 1000000;
    long long changes = 1000;
    int customers = 10000;
    int cycles = 7;
    int zero_runs = 50;
    long long bulk_rows = 100000;
    int bulk_reps = 3;
    int pgbench_seconds = 10;
    int pgbench_rounds = 3;
    int pgbench_clients = 2;
    bool quick = false;
    bool sections_1_to_4 = true;  // --scheduler runs section 5 only
    bool scheduler = true;        // --no-scheduler skips section 5
    int sched_rate = 100;         // commits per second of the freshness writer
    int sched_seconds = 25;       // duration of each freshness configuration
    int probe_ms = 5;             // pause between polls of the freshness probe
    int idle_tables = 100;
    int idle_seconds = 60;
    std::string server_log;  // copy the server log here (and log every statement)
};

const Clock::time_point g_start = Clock::now();

/// The 1/5/15-minute load averages: other work on the machine skews every ratio below.
std::string load_average() {
    std::ifstream f("/proc/loadavg");
    std::string a, b, c;
    if (!(f >> a >> b >> c)) {
        return "?";
    }
    return a + " " + b + " " + c;
}

void progress(const std::string& msg) {
    std::cerr << fmt::format("[bench {:7.1f}s] {}", ms_since(g_start) / 1000.0, msg) << std::endl;
}

[[noreturn]] void usage(int rc) {
    (rc ? std::cerr : std::cout)
        << "usage: pgtrickle_bench [--rows N] [--changes N] [--quick] [--cycles N] [--zero-runs "
           "N]\n"
           "                       [--bulk-rows N] [--pgbench-seconds N] [--pgbench-rounds N]\n"
           "                       [--scheduler | --no-scheduler] [--sched-rate N] "
           "[--sched-seconds N]\n"
           "                       [--probe-ms N] [--idle-tables N] [--idle-seconds N] "
           "[--server-log PATH]\n"
           "  --rows N             rows in orders (default 1000000)\n"
           "  --changes N          changed rows per refresh cycle (default 1000)\n"
           "  --quick              smoke run: 100000 rows, 3 cycles, pgbench 1 x 5 s\n"
           "  --cycles N           change+refresh cycles (default 7)\n"
           "  --zero-runs N        zero-change refreshes timed per stream table (default 50)\n"
           "  --bulk-rows N        rows of the capture-overhead INSERT (default 100000)\n"
           "  --pgbench-seconds N  duration of each pgbench run (default 10)\n"
           "  --pgbench-rounds N   pgbench runs per table and client count (default 3)\n"
           "  --scheduler          run only the scheduler part (freshness, idle cost)\n"
           "  --no-scheduler       skip the scheduler part\n"
           "  --sched-rate N       freshness: single-row commits per second (default 100)\n"
           "  --sched-seconds N    freshness: seconds of writing per configuration (default 25)\n"
           "  --probe-ms N         freshness: pause between probe polls in ms (default 5)\n"
           "  --idle-tables N      idle cost: idle stream tables, half '1s', half '5s' (default "
           "100)\n"
           "  --idle-seconds N     idle cost: seconds of each CPU measurement (default 60)\n"
           "  --server-log PATH    log every statement (log_min_duration_statement=0) and copy\n"
           "                       the server log to PATH at the end (timings then include "
           "logging)\n";
    std::exit(rc);
}

Options parse(int argc, char** argv) {
    Options o;
    std::optional<long long> rows;
    std::optional<int> cycles, secs, rounds, sched_secs, idle_secs;
    auto num = [&](int& i) -> long long {
        if (i + 1 >= argc) {
            usage(1);
        }
        try {
            size_t pos = 0;
            const long long v = std::stoll(argv[++i], &pos);
            if (pos != std::string(argv[i]).size() || v <= 0) {
                throw std::invalid_argument("x");
            }
            return v;
        } catch (const std::exception&) {
            std::cerr << "pgtrickle_bench: " << argv[i - 1] << " needs a positive integer\n";
            std::exit(1);
        }
    };
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--rows") {
            rows = num(i);
        } else if (a == "--changes") {
            o.changes = num(i);
        } else if (a == "--quick") {
            o.quick = true;
        } else if (a == "--cycles") {
            cycles = static_cast<int>(num(i));
        } else if (a == "--zero-runs") {
            o.zero_runs = static_cast<int>(num(i));
        } else if (a == "--bulk-rows") {
            o.bulk_rows = num(i);
        } else if (a == "--pgbench-seconds") {
            secs = static_cast<int>(num(i));
        } else if (a == "--pgbench-rounds") {
            rounds = static_cast<int>(num(i));
        } else if (a == "--scheduler") {
            o.sections_1_to_4 = false;
        } else if (a == "--no-scheduler") {
            o.scheduler = false;
        } else if (a == "--sched-rate") {
            o.sched_rate = static_cast<int>(num(i));
        } else if (a == "--sched-seconds") {
            sched_secs = static_cast<int>(num(i));
        } else if (a == "--probe-ms") {
            o.probe_ms = static_cast<int>(num(i));
        } else if (a == "--idle-tables") {
            o.idle_tables = static_cast<int>(num(i));
        } else if (a == "--idle-seconds") {
            idle_secs = static_cast<int>(num(i));
        } else if (a == "--server-log") {
            if (i + 1 >= argc) {
                usage(1);
            }
            o.server_log = argv[++i];
        } else if (a == "-h" || a == "--help") {
            usage(0);
        } else {
            std::cerr << "pgtrickle_bench: unknown argument " << a << "\n";
            usage(1);
        }
    }
    if (o.quick) {
        o.rows = 100000;
        o.cycles = 3;
        o.pgbench_seconds = 5;
        o.pgbench_rounds = 1;
        o.sched_seconds = 10;
        o.idle_seconds = 20;
    }
    if (sched_secs) {
        o.sched_seconds = *sched_secs;
    }
    if (idle_secs) {
        o.idle_seconds = *idle_secs;
    }
    if (!o.sections_1_to_4 && !o.scheduler) {
        std::cerr
            << "pgtrickle_bench: --scheduler and --no-scheduler together leave nothing to run\n";
        std::exit(1);
    }
    if (rows) {
        o.rows = *rows;
    }
    if (cycles) {
        o.cycles = *cycles;
    }
    if (secs) {
        o.pgbench_seconds = *secs;
    }
    if (rounds) {
        o.pgbench_rounds = *rounds;
    }
    if (o.changes * 2 > o.rows) {
        std::cerr << "pgtrickle_bench: --changes must be at most half of --rows\n";
        std::exit(1);
    }
    return o;
}

// ---------------------------------------------------------------------------------------
// Database access
// ---------------------------------------------------------------------------------------

class Db {
  public:
    explicit Db(const std::string& dsn) : conn_(dsn) { exec("SET client_min_messages = warning"); }

    pqxx::result exec(const std::string& sql) {
        pqxx::nontransaction tx(conn_);
        return tx.exec(sql);
    }

    std::string scalar(const std::string& sql) {
        auto r = exec(sql);
        if (r.empty() || r[0][0].is_null()) {
            return "";
        }
        return r[0][0].c_str();
    }

    long long count(const std::string& sql) { return std::stoll(scalar(sql)); }

    /// Wall-clock time of one statement in milliseconds, client round trip included.
    double timed(const std::string& sql) {
        pqxx::nontransaction tx(conn_);
        const auto t0 = Clock::now();
        tx.exec(sql);
        return ms_since(t0);
    }

    std::string quote(const std::string& s) {
        pqxx::nontransaction tx(conn_);
        return tx.quote(s);
    }

  private:
    pqxx::connection conn_;
};

const char* const kAggQuery =
    "SELECT customer_id, count(*) AS n, sum(amount) AS total FROM orders GROUP BY customer_id";
const char* const kJoinQuery =
    "SELECT o.id, o.amount, c.name, c.region FROM orders o JOIN customers c ON c.id = "
    "o.customer_id";
const char* const kCapQuery =
    "SELECT customer_id, count(*) AS n, sum(amount) AS total FROM cap_t GROUP BY customer_id";

/// Stream table `st` (SQL identifier) must hold exactly the rows of `query`; else abort loudly.
void verify(Db& db, const std::string& st, const std::string& query, const std::string& when) {
    const std::string cols = db.scalar(
        "SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute WHERE "
        "attrelid = " +
        db.quote(st) +
        "::regclass AND attnum > 0 AND NOT attisdropped AND attname NOT LIKE '\\_\\_pgt\\_%'");
    const std::string a = "SELECT " + cols + " FROM " + st;
    const long long extra =
        db.count("SELECT count(*) FROM ((" + a + ") EXCEPT ALL (" + query + ")) d");
    const long long missing =
        db.count("SELECT count(*) FROM ((" + query + ") EXCEPT ALL (" + a + ")) d");
    if (extra != 0 || missing != 0) {
        throw CorrectnessError(
            fmt::format("stream table {} is WRONG {}: {} rows not in its query, {} rows of its "
                        "query missing\n  query: {}",
                        st, when, extra, missing, query));
    }
}

void create_stream_table(Db& db, const std::string& name, const std::string& query) {
    db.exec("CALL pgtrickle.create_stream_table(name => " + db.quote(name) + ", query => " +
            db.quote(query) + ")");
    const auto r = db.exec(
        "SELECT effective_mode, coalesce(mode_reason, '') FROM pgtrickle.pgt_stream_tables "
        "WHERE pgt_name = " +
        db.quote(name));
    if (r.empty()) {
        throw std::runtime_error("stream table " + name + " not in the catalog after create");
    }
    const std::string mode = r[0][0].c_str();
    progress("stream table " + name + ": effective_mode " + mode);
    if (mode != "differential") {
        throw std::runtime_error("stream table " + name + " is not differential (" +
                                 std::string(r[0][1].c_str()) +
                                 "); the benchmark would measure full refreshes only");
    }
}

std::string last_refresh_mode(Db& db, const std::string& name) {
    return db.scalar("SELECT last_refresh_mode FROM pgtrickle.pgt_stream_tables WHERE pgt_name = " +
                     db.quote(name));
}

std::string change_buffer(Db& db, const std::string& table) {
    return db.scalar("SELECT change_buffer FROM pgtrickle.pgt_source_status WHERE source_relid = " +
                     db.quote(table) + "::regclass");
}

std::string id_array(const std::vector<long long>& ids) {
    std::string s = "'{";
    for (size_t i = 0; i < ids.size(); ++i) {
        s += (i ? "," : "") + std::to_string(ids[i]);
    }
    return s + "}'::bigint[]";
}

// ---------------------------------------------------------------------------------------
// Results
// ---------------------------------------------------------------------------------------

struct Row {
    std::string what;
    std::string ours, baseline_name, baseline, ratio, target, verdict;
};

std::vector<Row> g_rows;             // NOLINT
std::vector<std::string> g_samples;  // NOLINT
std::vector<std::string> g_notes;    // NOLINT

std::string verdict(bool ok) {
    return ok ? "PASS" : "MISS";
}

// ---------------------------------------------------------------------------------------
// 1 + 2: setup, change cycles, refreshes
// ---------------------------------------------------------------------------------------

class ChangeGenerator {
  public:
    ChangeGenerator(long long rows, int customers)
        : alive_(static_cast<size_t>(rows) + 1, 1), customers_(customers) {
        alive_[0] = 0;
        live_ = rows;
    }

    /// Applies `n` changes to orders, each kind in its own transaction; returns a summary.
    std::string apply(Db& db, long long n) {
        const long long n_amount = n * 4 / 10, n_customer = n * 2 / 10, n_insert = n * 2 / 10;
        const long long n_delete = n - n_amount - n_customer - n_insert;
        std::vector<char> used(alive_.size(), 0);
        auto pick = [&](long long k) {
            std::vector<long long> ids;
            std::uniform_int_distribution<long long> d(1,
                                                       static_cast<long long>(alive_.size()) - 1);
            while (static_cast<long long>(ids.size()) < k) {
                const long long id = d(rng_);
                if (!alive_[id] || used[id]) {
                    continue;
                }
                used[id] = 1;
                ids.push_back(id);
            }
            return ids;
        };
        const auto amount_ids = pick(n_amount), customer_ids = pick(n_customer),
                   delete_ids = pick(n_delete);
        std::vector<long long> insert_ids;
        for (long long i = 0; i < n_insert; ++i) {
            insert_ids.push_back(static_cast<long long>(alive_.size()));
            alive_.push_back(1);
        }
        for (long long id : delete_ids) {
            alive_[id] = 0;
        }
        live_ += n_insert - n_delete;

        auto expect = [](const pqxx::result& r, long long k, const char* what) {
            if (static_cast<long long>(r.affected_rows()) != k) {
                throw std::runtime_error(
                    fmt::format("{} changed {} rows, expected {}", what, r.affected_rows(), k));
            }
        };
        const std::string c = std::to_string(customers_);
        expect(db.exec("UPDATE orders SET amount = amount + 1.00 WHERE id = ANY(" +
                       id_array(amount_ids) + ")"),
               n_amount, "UPDATE amount");
        expect(db.exec("UPDATE orders SET customer_id = 1 + (customer_id + 7) % " + c +
                       " WHERE id = ANY(" + id_array(customer_ids) + ")"),
               n_customer, "UPDATE customer_id");
        expect(db.exec("INSERT INTO orders SELECT i, 1 + (i * 7919) % " + c +
                       ", ((i % 100000) / 100.0)::numeric(12,2), now() FROM unnest(" +
                       id_array(insert_ids) + ") AS i"),
               n_insert, "INSERT");
        expect(db.exec("DELETE FROM orders WHERE id = ANY(" + id_array(delete_ids) + ")"), n_delete,
               "DELETE");
        return fmt::format("{} amount updates, {} customer_id updates, {} inserts, {} deletes",
                           n_amount, n_customer, n_insert, n_delete);
    }

    long long live() const { return live_; }

  private:
    std::vector<char> alive_;
    int customers_;
    long long live_ = 0;
    std::mt19937_64 rng_{42};
};

void setup(Db& db, const Options& o) {
    const std::string c = std::to_string(o.customers);
    progress(fmt::format("loading customers ({}) and orders ({})", o.customers, o.rows));
    db.exec("CREATE EXTENSION pg_trickle");
    db.exec("CREATE TABLE customers (id int PRIMARY KEY, name text, region text)");
    db.exec(
        "INSERT INTO customers SELECT g, 'customer ' || g, "
        "(ARRAY['north','south','east','west','central'])[1 + g % 5] FROM generate_series(1, " +
        c + ") AS g");
    db.exec(
        "CREATE TABLE orders (id bigint PRIMARY KEY, customer_id int, amount numeric(12,2), "
        "created_at timestamptz)");
    db.exec("SELECT setseed(0.42)");
    db.exec("INSERT INTO orders SELECT g, 1 + floor(random() * " + c +
            ")::int, round((random() * 1000)::numeric, 2), timestamptz '2024-01-01' + g * interval "
            "'1 second' "
            "FROM generate_series(1, " +
            std::to_string(o.rows) + ") AS g");
    db.exec("CREATE INDEX orders_customer_id_idx ON orders (customer_id)");
    db.exec("VACUUM ANALYZE customers, orders");

    progress("creating stream tables agg and join (initial population)");
    auto t0 = Clock::now();
    create_stream_table(db, "agg", kAggQuery);
    const double t_agg = ms_since(t0);
    t0 = Clock::now();
    create_stream_table(db, "join", kJoinQuery);
    const double t_join = ms_since(t0);
    progress("creating materialized views mv_agg and mv_join");
    t0 = Clock::now();
    db.exec(std::string("CREATE MATERIALIZED VIEW mv_agg AS ") + kAggQuery);
    const double t_mv_agg = ms_since(t0);
    t0 = Clock::now();
    db.exec(std::string("CREATE MATERIALIZED VIEW mv_join AS ") + kJoinQuery);
    const double t_mv_join = ms_since(t0);
    db.exec("VACUUM ANALYZE agg, \"join\", mv_agg, mv_join");
    verify(db, "agg", kAggQuery, "after create");
    verify(db, "\"join\"", kJoinQuery, "after create");
    g_notes.push_back(fmt::format(
        "create (initial population): agg {:.0f} ms vs CREATE MATERIALIZED VIEW {:.0f} ms; "
        "join {:.0f} ms vs {:.0f} ms (one sample each)",
        t_agg, t_mv_agg, t_join, t_mv_join));
}

void refresh_cycles(Db& db, const Options& o) {
    ChangeGenerator gen(o.rows, o.customers);
    std::vector<double> agg_diff, join_diff, mv_agg, mv_join;
    for (int i = 1; i <= o.cycles; ++i) {
        const std::string what = gen.apply(db, o.changes);
        if (i == 1) {
            g_notes.push_back("each cycle changes orders by " + what +
                              " (one transaction per kind)");
        }
        agg_diff.push_back(db.timed("CALL pgtrickle.refresh_stream_table('agg')"));
        if (last_refresh_mode(db, "agg") != "differential") {
            throw std::runtime_error("agg was refreshed as " + last_refresh_mode(db, "agg") +
                                     ", not differentially");
        }
        verify(db, "agg", kAggQuery, fmt::format("after differential refresh {}", i));
        join_diff.push_back(db.timed("CALL pgtrickle.refresh_stream_table('join')"));
        if (last_refresh_mode(db, "join") != "differential") {
            throw std::runtime_error("join was refreshed as " + last_refresh_mode(db, "join") +
                                     ", not differentially");
        }
        verify(db, "\"join\"", kJoinQuery, fmt::format("after differential refresh {}", i));
        mv_agg.push_back(db.timed("REFRESH MATERIALIZED VIEW mv_agg"));
        mv_join.push_back(db.timed("REFRESH MATERIALIZED VIEW mv_join"));
        progress(fmt::format(
            "cycle {}/{}: agg {:.1f} ms vs MV {:.1f} ms; join {:.1f} ms vs MV {:.1f} ms (verified)",
            i, o.cycles, agg_diff.back(), mv_agg.back(), join_diff.back(), mv_join.back()));
    }
    g_samples.push_back("agg differential refresh ms: " + list(agg_diff, 2));
    g_samples.push_back("REFRESH MATERIALIZED VIEW mv_agg ms: " + list(mv_agg, 1));
    g_samples.push_back("join differential refresh ms: " + list(join_diff, 2));
    g_samples.push_back("REFRESH MATERIALIZED VIEW mv_join ms: " + list(mv_join, 1));

    for (const auto& [name, diff, mv] :
         {std::tuple{"agg", &agg_diff, &mv_agg}, std::tuple{"join", &join_diff, &mv_join}}) {
        const double d = median(*diff), m = median(*mv), speedup = m / d;
        g_rows.push_back(
            {fmt::format("{}: refresh after {} changes (median of {})", name, o.changes, o.cycles),
             fmt::format("{:.2f} ms", d), "REFRESH MATERIALIZED VIEW", fmt::format("{:.1f} ms", m),
             fmt::format("{:.1f}x faster", speedup), ">= 100x", verdict(speedup >= 100)});
    }

    // Zero-change refresh: nothing changed since the last refresh.
    progress(fmt::format("zero-change refreshes ({} per stream table)", o.zero_runs));
    std::vector<double> ping;
    ping.reserve(o.zero_runs);
    for (int i = 0; i < 5; ++i) {
        db.timed("SELECT 1");
    }
    for (int i = 0; i < o.zero_runs; ++i) {
        ping.push_back(db.timed("SELECT 1") * 1000.0);
    }
    const double ping_us = median(ping);
    g_samples.push_back("SELECT 1 round trip us: median " + fmt::format("{:.0f}", ping_us));
    for (const char* name : {"agg", "join"}) {
        const std::string call = fmt::format("CALL pgtrickle.refresh_stream_table('{}')", name);
        for (int i = 0; i < 3; ++i) {
            db.timed(call);
        }
        std::vector<double> us;
        us.reserve(o.zero_runs);
        for (int i = 0; i < o.zero_runs; ++i) {
            us.push_back(db.timed(call) * 1000.0);
        }
        if (last_refresh_mode(db, name) != "none") {
            throw std::runtime_error(std::string(name) + ": a refresh without changes ran as " +
                                     last_refresh_mode(db, name));
        }
        const double m = median(us);
        g_samples.push_back(
            fmt::format("{} zero-change refresh us: median {:.0f}, min {:.0f}, max {:.0f}", name, m,
                        min_of(us), max_of(us)));
        g_rows.push_back({fmt::format("{}: zero-change refresh (median of {})", name, o.zero_runs),
                          fmt::format("{:.0f} us", m), "SELECT 1 round trip",
                          fmt::format("{:.0f} us", ping_us), fmt::format("{:.1f}x", m / ping_us),
                          "< 1 ms", verdict(m < 1000.0)});
    }
    verify(db, "agg", kAggQuery, "after the zero-change refreshes");
    verify(db, "\"join\"", kJoinQuery, "after the zero-change refreshes");

    // For context: a forced full refresh of each stream table vs REFRESH MATERIALIZED VIEW.
    progress("forced full refreshes (context)");
    for (const auto& [name, ident, query, mv] :
         {std::tuple{"agg", "agg", kAggQuery, "mv_agg"},
          std::tuple{"join", "\"join\"", kJoinQuery, "mv_join"}}) {
        std::vector<double> full, base;
        for (int i = 0; i < 3; ++i) {
            full.push_back(
                db.timed(fmt::format("CALL pgtrickle.refresh_stream_table('{}', true)", name)));
            base.push_back(db.timed(fmt::format("REFRESH MATERIALIZED VIEW {}", mv)));
        }
        verify(db, ident, query, "after a forced full refresh");
        g_samples.push_back(
            fmt::format("{} forced full refresh ms: {}; REFRESH MATERIALIZED VIEW ms: {}", name,
                        list(full, 1), list(base, 1)));
        g_rows.push_back({fmt::format("{}: forced full refresh (median of 3)", name),
                          fmt::format("{:.1f} ms", median(full)), "REFRESH MATERIALIZED VIEW",
                          fmt::format("{:.1f} ms", median(base)),
                          fmt::format("{:.2f}x the time", median(full) / median(base)), "(context)",
                          "-"});
    }
}

// ---------------------------------------------------------------------------------------
// 3: capture overhead on a bulk insert
// ---------------------------------------------------------------------------------------

void capture_overhead(Db& db, const Options& o) {
    progress("capture overhead: tables cap_t (captured by stream table cap_agg) and plain_t");
    db.exec(
        "CREATE TABLE cap_t (id bigint PRIMARY KEY, customer_id int, amount numeric(12,2), "
        "created_at timestamptz)");
    db.exec("CREATE INDEX cap_t_customer_id_idx ON cap_t (customer_id)");
    db.exec(
        "CREATE TABLE plain_t (id bigint PRIMARY KEY, customer_id int, amount numeric(12,2), "
        "created_at timestamptz)");
    db.exec("CREATE INDEX plain_t_customer_id_idx ON plain_t (customer_id)");
    create_stream_table(db, "cap_agg", kCapQuery);
    const std::string buffer = change_buffer(db, "cap_t");
    if (buffer.empty()) {
        throw std::runtime_error("cap_t is not captured after creating cap_agg");
    }

    const std::string gen = fmt::format(
        " SELECT g, 1 + g % {}, ((g % 100000) / 100.0)::numeric(12,2), timestamptz '2024-01-01' + "
        "g * interval '1 second' "
        "FROM generate_series(1, {}) AS g",
        o.customers, o.bulk_rows);
    std::vector<double> cap, plain;
    for (int rep = 0; rep < o.bulk_reps; ++rep) {
        db.exec("TRUNCATE plain_t");
        db.exec("TRUNCATE cap_t");
        db.exec("CALL pgtrickle.refresh_stream_table('cap_agg')");  // consumes the buffer
        db.exec("VACUUM plain_t, cap_t, " + buffer);
        for (int k = 0; k < 2; ++k) {
            const bool captured = (rep + k) % 2 == 0;
            db.exec("CHECKPOINT");
            const double t =
                db.timed(std::string("INSERT INTO ") + (captured ? "cap_t" : "plain_t") + gen);
            (captured ? cap : plain).push_back(t);
        }
        progress(fmt::format("bulk insert rep {}/{}: captured {:.1f} ms, plain {:.1f} ms", rep + 1,
                             o.bulk_reps, cap.back(), plain.back()));
    }
    const long long buffered = db.count("SELECT count(*) FROM " + buffer);
    if (buffered != o.bulk_rows) {
        throw CorrectnessError(fmt::format(
            "change buffer of cap_t holds {} rows after a {}-row insert", buffered, o.bulk_rows));
    }
    db.exec("CALL pgtrickle.refresh_stream_table('cap_agg')");
    verify(db, "cap_agg", kCapQuery, "after the bulk insert");
    g_samples.push_back("bulk insert captured ms: " + list(cap, 1) +
                        "; uncaptured ms: " + list(plain, 1));
    const double r = median(cap) / median(plain);
    g_rows.push_back({fmt::format("INSERT ... SELECT {} rows into captured table (median of {})",
                                  o.bulk_rows, o.bulk_reps),
                      fmt::format("{:.1f} ms", median(cap)), "same insert, uncaptured table",
                      fmt::format("{:.1f} ms", median(plain)), fmt::format("{:.2f}x the time", r),
                      "< 1.5x", verdict(r < 1.5)});
}

// ---------------------------------------------------------------------------------------
// Scheduler process helpers (sections 4 and 5)
// ---------------------------------------------------------------------------------------

/// CPU time (utime + stime) of process `pid` in ms from /proc/<pid>/stat; nullopt if gone.
std::optional<double> process_cpu_ms(int pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
    std::string s;
    if (pid <= 0 || !std::getline(f, s)) {
        return std::nullopt;
    }
    const auto rp = s.rfind(')');  // the command name may contain spaces and parentheses
    if (rp == std::string::npos) {
        return std::nullopt;
    }
    std::istringstream in(s.substr(rp + 1));
    std::vector<std::string> fields;  // fields[0] is field 3 (state)
    for (std::string x; in >> x;) {
        fields.push_back(x);
    }
    if (fields.size() < 13) {
        return std::nullopt;
    }
    const double ticks = std::stod(fields[11]) + std::stod(fields[12]);  // fields 14 and 15
    return ticks * 1000.0 / static_cast<double>(sysconf(_SC_CLK_TCK));
}

/// The pid of the database's scheduler (pgtrickle.scheduler_pid()), waiting for the launcher
/// to start one.
int wait_for_scheduler(Db& db, double timeout_s) {
    const auto t0 = Clock::now();
    for (;;) {
        const std::string pid = db.scalar("SELECT pgtrickle.scheduler_pid()");
        if (!pid.empty() && pid != "0") {
            return std::stoi(pid);
        }
        if (ms_since(t0) > timeout_s * 1000) {
            throw std::runtime_error("no pg_trickle scheduler started in time");
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
}

// ---------------------------------------------------------------------------------------
// 4: pgbench single-row UPDATE throughput
// ---------------------------------------------------------------------------------------

std::string pgbench_path() {
    std::string bindir;
    try {
        bindir = run_capture("pg_config --bindir 2>/dev/null");
    } catch (const std::exception&) {
    }
    while (!bindir.empty() && (bindir.back() == '\n' || bindir.back() == ' ')) {
        bindir.pop_back();
    }
    std::string p =
        (bindir.empty() ? std::string("/usr/lib/postgresql/15/bin") : bindir) + "/pgbench";
    if (access(p.c_str(), X_OK) != 0) {
        throw std::runtime_error("pgbench not found at " + p);
    }
    return p;
}

struct TempFile {
    std::string path;
    explicit TempFile(const std::string& content) {
        char tmpl[] = "/tmp/pgtrickle-bench-XXXXXX";
        const int fd = mkstemp(tmpl);
        if (fd < 0) {
            throw std::runtime_error("mkstemp failed");
        }
        close(fd);
        path = tmpl;
        std::ofstream(path) << content;
    }
    ~TempFile() { std::remove(path.c_str()); }
};

double run_pgbench(const Server& srv, const Options& o, int clients, const std::string& pgbench,
                   const std::string& script) {
    const std::string cmd =
        fmt::format("'{}' -n -c {} -j {} -T {} -f '{}' -h 127.0.0.1 -p {} -U postgres bench 2>&1",
                    pgbench, clients, clients, o.pgbench_seconds, script, srv.port());
    const std::string out = run_capture(cmd);
    std::smatch m;
    if (!std::regex_search(out, m, std::regex("tps = ([0-9.]+)"))) {
        throw std::runtime_error("no tps in pgbench output:\n" + out);
    }
    if (std::regex_search(out, m, std::regex("number of failed transactions: ([0-9]+)")) &&
        m[1] != "0") {
        throw std::runtime_error("pgbench reported failed transactions:\n" + out);
    }
    std::regex_search(out, m, std::regex("tps = ([0-9.]+)"));
    return std::stod(m[1]);
}

void pgbench_updates(Db& db, const Server& srv, const Options& o) {
    const std::string pgbench = pgbench_path();
    const std::string buffer = change_buffer(db, "cap_t");
    db.exec("VACUUM ANALYZE cap_t, plain_t");
    auto script = [&](const char* table) {
        return fmt::format(
            "\\set id random(1, {})\nUPDATE {} SET amount = amount + 1 WHERE id = :id;\n",
            o.bulk_rows, table);
    };
    TempFile cap_script(script("cap_t")), plain_script(script("plain_t"));
    // No stream table here has a schedule, but every commit to a captured table still wakes
    // this database's scheduler: its CPU time per run shows what those wake-ups cost.
    const int sched_pid = wait_for_scheduler(db, 20);
    // -c 2 saturates both cores (the target's configuration); -c 1 leaves CPU idle between
    // statements, so it shows the per-statement latency the capture trigger adds.
    for (int clients : {o.pgbench_clients, 1}) {
        progress(fmt::format("pgbench: {} round(s) of {} s per table, -c {} -j {}",
                             o.pgbench_rounds, o.pgbench_seconds, clients, clients));
        std::vector<double> cap, plain, cap_cpu, plain_cpu;
        for (int round = 0; round < o.pgbench_rounds; ++round) {
            for (int k = 0; k < 2; ++k) {
                const bool captured = (round + k) % 2 == 1;  // plain first in even rounds
                db.exec("CHECKPOINT");
                const auto cpu0 = process_cpu_ms(sched_pid);
                const double tps = run_pgbench(srv, o, clients, pgbench,
                                               captured ? cap_script.path : plain_script.path);
                const auto cpu1 = process_cpu_ms(sched_pid);
                (captured ? cap : plain).push_back(tps);
                (captured ? cap_cpu : plain_cpu).push_back(cpu0 && cpu1 ? *cpu1 - *cpu0 : -1);
                progress(fmt::format("pgbench -c {} round {}: {} {:.0f} tps", clients, round + 1,
                                     captured ? "captured" : "plain", tps));
                if (captured) {  // start every captured run with an empty buffer
                    db.exec("CALL pgtrickle.refresh_stream_table('cap_agg')");
                    db.exec("VACUUM " + buffer + ", cap_t");
                } else {
                    db.exec("VACUUM plain_t");
                }
            }
        }
        verify(db, "cap_agg", kCapQuery, "after pgbench");
        g_samples.push_back(fmt::format("pgbench -c {} tps captured: {}; uncaptured: {}", clients,
                                        list(cap, 0), list(plain, 0)));
        g_samples.push_back(fmt::format(
            "pgbench -c {}: CPU ms of database bench's scheduler (pid {}, no scheduled "
            "stream tables) per {} s run, captured: {}; uncaptured: {}",
            clients, sched_pid, o.pgbench_seconds, list(cap_cpu, 0), list(plain_cpu, 0)));
        const double r = median(cap) / median(plain);
        const double added_us = 1e6 * clients / median(cap) - 1e6 * clients / median(plain);
        g_rows.push_back(
            {fmt::format("pgbench 1-row UPDATE, captured table (-c {} -T {}, median of {})",
                         clients, o.pgbench_seconds, o.pgbench_rounds),
             fmt::format("{:.0f} tps", median(cap)), "same on uncaptured table",
             fmt::format("{:.0f} tps", median(plain)),
             fmt::format("{:.1f}% of plain (+{:.0f} us/txn)", 100.0 * r, added_us), ">= 90%",
             verdict(r >= 0.9)});
    }
}

// ---------------------------------------------------------------------------------------
// 5: scheduler: commit -> visible freshness under a steady write load; idle cost
// ---------------------------------------------------------------------------------------

/// ALTER SYSTEM SET (or RESET when `value` is empty) + reload, then give the scheduler time to
/// process its SIGHUP (it does so at the top of its loop, woken by the signal).
void set_system(Db& db, const std::string& name, const std::string& value) {
    db.exec(value.empty() ? "ALTER SYSTEM RESET " + name
                          : "ALTER SYSTEM SET " + name + " = " + db.quote(value));
    db.exec("SELECT pg_reload_conf()");
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
}

const char* const kFreshQuery =
    "SELECT customer_id, count(*) AS n, sum(amount) AS total FROM f_orders GROUP BY customer_id";
constexpr long long kFreshRows = 100000;
constexpr int kFreshCustomers = 1000;

struct Freshness {
    std::vector<double> latency_ms;  // one per commit
    long long commits = 0, late = 0, polls = 0;
    double write_s = 0, poll_rtt_us = 0, cpu_ms = 0;
    long long refreshes = 0, wake = 0, schedule = 0, failed = 0;  // from the refresh history
    double refresh_ms = 0, refresh_span_s = 0;
};

/// Writer: `rate` single-row autocommit statements per second for `seconds`, each adding exactly
/// 1.00 to sum(amount) of f_orders (alternately an INSERT with amount 1.00 and an UPDATE
/// amount = amount + 1.00 of a random original row). Probe: another connection polls the stream
/// table's sum(total) every `probe_ms`; commit k is visible once that sum reached base + k.
Freshness measure_freshness(const Server& srv, Db& db, const Options& o, int sched_pid,
                            const std::string& label) {
    // Start from a caught-up stream table (the '1s' schedule catches up by itself).
    const auto t_wait = Clock::now();
    while (
        db.scalar("SELECT (SELECT sum(total) FROM f_agg) = (SELECT sum(amount) FROM f_orders)") !=
        "t") {
        if (ms_since(t_wait) > 15000) {
            throw std::runtime_error("f_agg did not catch up with f_orders within 15 s");
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    const long long base = db.count("SELECT (sum(total) * 100)::bigint FROM f_agg");
    long long next_id = db.count("SELECT max(id) + 1 FROM f_orders");
    const std::string hist0 = db.scalar(
        "SELECT coalesce(max(history_id), 0) FROM pgtrickle.pgt_refresh_history h JOIN "
        "pgtrickle.pgt_stream_tables s "
        "USING (pgt_id) WHERE s.pgt_name = 'f_agg'");
    const long long k_total = static_cast<long long>(o.sched_rate) * o.sched_seconds;
    std::vector<double> commit_ms(static_cast<size_t>(k_total) + 1, 0);
    struct Poll {
        double at_ms;
        long long seen;
    };
    std::vector<Poll> seen;  // only polls that saw a new value
    std::vector<double> rtt_us;
    std::atomic<bool> writer_done{false};
    std::exception_ptr writer_err, probe_err;
    Freshness f;

    Db writer_db(srv.dsn("sched")), probe_db(srv.dsn("sched"));
    const auto cpu0 = process_cpu_ms(sched_pid);
    const auto t0 = Clock::now();
    std::thread writer([&] {
        try {
            std::mt19937_64 rng(7);
            std::uniform_int_distribution<long long> row(1, kFreshRows);
            std::uniform_int_distribution<int> cust(1, kFreshCustomers);
            const auto period = std::chrono::duration<double, std::milli>(1000.0 / o.sched_rate);
            for (long long k = 1; k <= k_total; ++k) {
                const auto due = t0 + std::chrono::duration_cast<Clock::duration>(
                                          period * static_cast<double>(k - 1));
                if (Clock::now() > due + period) {
                    ++f.late;  // the writer fell a full period behind
                }
                std::this_thread::sleep_until(due);
                if (k % 2) {
                    writer_db.exec(fmt::format("INSERT INTO f_orders VALUES ({}, {}, 1.00, now())",
                                               next_id++, cust(rng)));
                } else {
                    writer_db.exec(fmt::format(
                        "UPDATE f_orders SET amount = amount + 1.00 WHERE id = {}", row(rng)));
                }
                commit_ms[static_cast<size_t>(k)] = ms_since(t0);  // after COMMIT returned
            }
        } catch (...) {
            writer_err = std::current_exception();
        }
        writer_done = true;
    });
    std::thread probe([&] {
        try {
            long long last = 0;
            std::optional<Clock::time_point> done_at;
            for (;;) {
                const auto ts = Clock::now();
                const long long v =
                    (probe_db.count("SELECT (sum(total) * 100)::bigint FROM f_agg") - base) / 100;
                const double at = ms_since(t0);
                rtt_us.push_back(ms_since(ts) * 1000.0);
                if (v > last) {
                    seen.push_back({at, v});
                    last = v;
                }
                if (writer_done) {
                    if (!done_at) {
                        done_at = Clock::now();
                    }
                    if (last >= k_total || ms_since(*done_at) > 10000) {
                        break;
                    }
                }
                std::this_thread::sleep_for(std::chrono::milliseconds(o.probe_ms));
            }
        } catch (...) {
            probe_err = std::current_exception();
        }
    });
    writer.join();
    f.write_s = ms_since(t0) / 1000.0;
    probe.join();
    const auto cpu1 = process_cpu_ms(sched_pid);
    if (writer_err) {
        std::rethrow_exception(writer_err);
    }
    if (probe_err) {
        std::rethrow_exception(probe_err);
    }
    if (!cpu0 || !cpu1 ||
        db.scalar("SELECT pgtrickle.scheduler_pid()") != std::to_string(sched_pid)) {
        throw std::runtime_error(
            "the scheduler process changed during the freshness measurement (" + label + ")");
    }
    f.cpu_ms = *cpu1 - *cpu0;
    f.commits = k_total;
    f.polls = static_cast<long long>(rtt_us.size());
    f.poll_rtt_us = median(rtt_us);

    long long k = 1;
    for (const auto& p : seen) {
        for (; k <= p.seen && k <= k_total; ++k) {
            f.latency_ms.push_back(std::max(0.0, p.at_ms - commit_ms[k]));
        }
    }
    if (k <= k_total) {
        throw std::runtime_error(
            fmt::format("{}: {} of {} commits never became visible in f_agg within 10 s", label,
                        k_total - k + 1, k_total));
    }
    verify(db, "f_agg", kFreshQuery, "after the freshness run (" + label + ")");

    // The history keeps the last pg_trickle.history_rows_per_table (100) rows per stream table,
    // so these describe the end of the run.
    const auto h = db.exec(
        "SELECT count(*), count(*) FILTER (WHERE trigger = 'wake'), count(*) FILTER (WHERE trigger "
        "= 'schedule'), "
        "count(*) FILTER (WHERE mode = 'failed'), "
        "coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - "
        "started_at) * 1000), 0), "
        "coalesce(extract(epoch FROM max(started_at) - min(started_at)), 0) "
        "FROM pgtrickle.pgt_refresh_history h JOIN pgtrickle.pgt_stream_tables s USING (pgt_id) "
        "WHERE s.pgt_name = 'f_agg' AND history_id > " +
        hist0);
    f.refreshes = h[0][0].as<long long>();
    f.wake = h[0][1].as<long long>();
    f.schedule = h[0][2].as<long long>();
    f.failed = h[0][3].as<long long>();
    f.refresh_ms = h[0][4].as<double>();
    f.refresh_span_s = h[0][5].as<double>();
    progress(fmt::format(
        "freshness {}: p50 {:.1f} ms, p99 {:.1f} ms, max {:.1f} ms over {} commits; scheduler CPU "
        "{:.0f} ms in {:.1f} s",
        label, percentile(f.latency_ms, 50), percentile(f.latency_ms, 99), max_of(f.latency_ms),
        f.commits, f.cpu_ms, f.write_s));
    return f;
}

std::string describe(const Freshness& f) {
    const double rate =
        f.refresh_span_s > 0 ? static_cast<double>(f.refreshes - 1) / f.refresh_span_s : 0;
    return fmt::format(
        "{} commits in {:.1f} s ({} late by > 1 period); latency ms p50 {:.1f}, p90 {:.1f}, p99 "
        "{:.1f}, "
        "max {:.1f}; scheduler CPU {:.0f} ms ({:.1f}% of a core); last {} history rows: {} wake, "
        "{} "
        "schedule, {} failed, median refresh {:.2f} ms, {:.1f} refreshes/s; probe: {} polls, "
        "median "
        "round trip {:.0f} us (busy {:.1f}% of the time)",
        f.commits, f.write_s, f.late, percentile(f.latency_ms, 50), percentile(f.latency_ms, 90),
        percentile(f.latency_ms, 99), max_of(f.latency_ms), f.cpu_ms,
        100.0 * f.cpu_ms / (f.write_s * 1000), f.refreshes, f.wake, f.schedule, f.failed,
        f.refresh_ms, rate, f.polls, f.poll_rtt_us,
        100.0 * static_cast<double>(f.polls) * f.poll_rtt_us / 1e6 / f.write_s);
}

/// CPU ms of the scheduler over `seconds`; throws if the process changed meanwhile.
double scheduler_cpu_over(Db& db, int pid, int seconds) {
    const auto c0 = process_cpu_ms(pid);
    const auto t0 = Clock::now();
    std::this_thread::sleep_for(std::chrono::seconds(seconds));
    const auto c1 = process_cpu_ms(pid);
    const double wall = ms_since(t0);
    if (!c0 || !c1 || db.scalar("SELECT pgtrickle.scheduler_pid()") != std::to_string(pid)) {
        throw std::runtime_error("the scheduler process changed during the idle measurement");
    }
    return (*c1 - *c0) * (seconds * 1000.0 / wall);  // normalised to exactly `seconds`
}

void scheduler_section(const Server& srv, const Options& o) {
    progress("scheduler: database sched, f_orders (" + std::to_string(kFreshRows) + " rows, " +
             std::to_string(kFreshCustomers) +
             " customers), stream table f_agg with schedule '1s'");
    {
        Db admin(srv.dsn("postgres"));
        admin.exec("CREATE DATABASE sched");
    }
    Db db(srv.dsn("sched"));
    db.exec("CREATE EXTENSION pg_trickle");
    db.exec(
        "CREATE TABLE f_orders (id bigint PRIMARY KEY, customer_id int, amount numeric(12,2), "
        "created_at timestamptz)");
    db.exec(fmt::format(
        "INSERT INTO f_orders SELECT g, 1 + g % {}, ((g % 1000) / 10.0)::numeric(12,2), "
        "timestamptz '2024-01-01' + g * interval '1 second' FROM generate_series(1, {}) AS g",
        kFreshCustomers, kFreshRows));
    db.exec("CREATE INDEX f_orders_customer_id_idx ON f_orders (customer_id)");
    db.exec("VACUUM ANALYZE f_orders");
    db.exec(std::string("CALL pgtrickle.create_stream_table(name => 'f_agg', query => ") +
            db.quote(kFreshQuery) + ", schedule => '1s')");
    if (db.scalar(
            "SELECT effective_mode FROM pgtrickle.pgt_stream_tables WHERE pgt_name = 'f_agg'") !=
        "differential") {
        throw std::runtime_error("f_agg is not differential");
    }
    const int pid = wait_for_scheduler(db, 20);
    progress(fmt::format("scheduler of database sched: pid {}", pid));
    g_notes.push_back(fmt::format(
        "scheduler freshness: f_agg = `{}` over f_orders ({} rows, {} customers), schedule '1s'; a "
        "writer commits {} "
        "single-row statements/s for {} s (alternately INSERT amount 1.00 and UPDATE amount = "
        "amount + 1.00 of a random "
        "row, so every commit adds exactly 1.00 to the sum); a second connection polls `SELECT "
        "sum(total) FROM f_agg` "
        "(1,000 rows) every {} ms; commit k counts as visible at the end of the first poll whose "
        "sum reached base + k. "
        "Latency = that poll's return - the writer's COMMIT return (client steady clock), i.e. an "
        "upper bound that "
        "includes up to one poll interval plus round trip",
        kFreshQuery, kFreshRows, kFreshCustomers, o.sched_rate, o.sched_seconds, o.probe_ms));

    progress("freshness (a): schedule '1s', pg_trickle.wake_threshold_ms = 0 (wake-ups off)");
    set_system(db, "pg_trickle.wake_threshold_ms", "0");
    const Freshness off = measure_freshness(srv, db, o, pid, "wake-ups off");
    progress(
        "freshness (b): schedule '1s', pg_trickle.wake_threshold_ms default (1000, wake-ups on)");
    set_system(db, "pg_trickle.wake_threshold_ms", "");
    const Freshness on = measure_freshness(srv, db, o, pid, "wake-ups on");
    g_samples.push_back("freshness, wake-ups off: " + describe(off));
    g_samples.push_back("freshness, wake-ups on: " + describe(on));

    const std::string what =
        fmt::format("{} commits at {}/s, schedule 1s + wake-ups", on.commits, o.sched_rate);
    for (const auto& [name, p, target, limit] :
         {std::tuple{"p50", 50.0, "<= 50 ms", 50.0}, std::tuple{"p99", 99.0, "<= 1 s", 1000.0}}) {
        const double a = percentile(on.latency_ms, p), b = percentile(off.latency_ms, p);
        g_rows.push_back({fmt::format("commit->visible {} ({})", name, what),
                          fmt::format("{:.1f} ms", a), "same, wake_threshold_ms = 0",
                          fmt::format("{:.1f} ms", b), fmt::format("{:.1f}x lower", b / a), target,
                          verdict(a <= limit)});
    }
    g_rows.push_back({fmt::format("commit->visible max ({})", what),
                      fmt::format("{:.1f} ms", max_of(on.latency_ms)),
                      "same, wake_threshold_ms = 0",
                      fmt::format("{:.1f} ms", max_of(off.latency_ms)),
                      fmt::format("{:.1f}x lower", max_of(off.latency_ms) / max_of(on.latency_ms)),
                      "(context)", "-"});
    g_rows.push_back({fmt::format("scheduler CPU while writing ({} commits/s)", o.sched_rate),
                      fmt::format("{:.1f}% of a core", 100.0 * on.cpu_ms / (on.write_s * 1000)),
                      "same, wake_threshold_ms = 0",
                      fmt::format("{:.1f}% of a core", 100.0 * off.cpu_ms / (off.write_s * 1000)),
                      fmt::format("{:.1f}x", on.cpu_ms / std::max(off.cpu_ms, 1.0)), "(context)",
                      "-"});

    // Idle stream tables: half with schedule '1s', half '5s', sources never written.
    progress(fmt::format("idle cost: {} idle stream tables", o.idle_tables));
    for (int i = 1; i <= o.idle_tables; ++i) {
        const std::string t = fmt::format("idle_src_{:03d}", i);
        db.exec("CREATE TABLE " + t + " (id int PRIMARY KEY, v int)");
        db.exec("INSERT INTO " + t + " SELECT g, g % 3 FROM generate_series(1, 10) AS g");
        db.exec(
            fmt::format("CALL pgtrickle.create_stream_table(name => 'idle_{:03d}', query => "
                        "'SELECT id, v FROM {}', "
                        "schedule => '{}')",
                        i, t, i % 2 ? "1s" : "5s"));
    }
    // With the idle stream tables present, the same write load (wake-ups on) on f_orders, which
    // none of them reads.
    progress("freshness (c): wake-ups on, with the idle stream tables present");
    Options oc = o;
    oc.sched_seconds = std::max(5, o.sched_seconds / 2);
    const Freshness crowd = measure_freshness(srv, db, oc, pid, "wake-ups on, idle tables present");
    g_samples.push_back(
        fmt::format("freshness, wake-ups on, {} idle stream tables present: ", o.idle_tables) +
        describe(crowd));
    g_rows.push_back(
        {fmt::format("commit->visible p50, wake-ups, {} idle stream tables present", o.idle_tables),
         fmt::format("{:.1f} ms", percentile(crowd.latency_ms, 50)), "same without them",
         fmt::format("{:.1f} ms", percentile(on.latency_ms, 50)),
         fmt::format("{:.1f}x the latency",
                     percentile(crowd.latency_ms, 50) / percentile(on.latency_ms, 50)),
         "(context)", "-"});
    g_rows.push_back(
        {fmt::format("scheduler CPU while writing, {} idle stream tables present", o.idle_tables),
         fmt::format("{:.1f}% of a core", 100.0 * crowd.cpu_ms / (crowd.write_s * 1000)),
         "same without them",
         fmt::format("{:.1f}% of a core", 100.0 * on.cpu_ms / (on.write_s * 1000)),
         fmt::format("{:.1f}x",
                     crowd.cpu_ms / crowd.write_s / std::max(on.cpu_ms / on.write_s, 1e-9)),
         "(context)", "-"});

    // Only the idle stream tables remain scheduled.
    db.exec("CALL pgtrickle.drop_stream_table('f_agg')");
    std::this_thread::sleep_for(
        std::chrono::seconds(6));  // every idle table refreshed at least once
    const long long scheduled = db.count(
        "SELECT count(*) FROM pgtrickle.pgt_stream_tables WHERE schedule IS NOT NULL AND status = "
        "'active'");
    progress(
        fmt::format("idle cost: scheduler CPU over {} s with {} active scheduled stream tables",
                    o.idle_seconds, scheduled));
    const double busy = scheduler_cpu_over(db, pid, o.idle_seconds);
    progress("idle cost baseline: pg_trickle.enabled = off");
    set_system(db, "pg_trickle.enabled", "off");
    const double base = scheduler_cpu_over(db, pid, o.idle_seconds);
    set_system(db, "pg_trickle.enabled", "");
    const double per_min = busy * 60.0 / o.idle_seconds,
                 base_per_min = base * 60.0 / o.idle_seconds;
    const double tick_ms = 1000.0 / static_cast<double>(sysconf(_SC_CLK_TCK));
    g_samples.push_back(
        fmt::format("scheduler CPU over {} s: {:.0f} ms with {} idle stream tables, {:.0f} ms with "
                    "pg_trickle.enabled = off (resolution {:.0f} ms)",
                    o.idle_seconds, busy, scheduled, base, tick_ms));
    g_rows.push_back(
        {fmt::format("scheduler CPU, {} idle stream tables (half 1s, half 5s), {} s", scheduled,
                     o.idle_seconds),
         fmt::format("{:.0f} ms/min ({:.2f}% of a core)", per_min, per_min / 600.0),
         "same, pg_trickle.enabled = off",
         fmt::format("{:.0f} ms/min ({:.2f}% of a core)", base_per_min, base_per_min / 600.0),
         base > 0 ? fmt::format("{:.0f}x", busy / base)
                  : fmt::format("> {:.0f}x (baseline < 1 tick)", busy / tick_ms),
         "(context)", "-"});
}

// ---------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------

std::string first_line_of(const std::string& cmd) {
    try {
        std::string s = run_capture(cmd);
        const auto nl = s.find('\n');
        return nl == std::string::npos ? s : s.substr(0, nl);
    } catch (const std::exception&) {
        return "?";
    }
}

void report(const Options& o, const std::string& pg_version, const std::string& ext_version,
            const std::string& load_start) {
    std::cout << "pg_trickle benchmark (pgtrickle_bench)\n";
    std::cout << fmt::format("  server:  {}\n  pg_trickle {}\n", pg_version, ext_version);
    std::cout << fmt::format(
        "  machine: {}, {} cores, {}\n",
        first_line_of("sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo"),
        std::thread::hardware_concurrency(),
        first_line_of("awk '/MemTotal/ {printf \"%.0f GiB RAM\", $2/1048576}' /proc/meminfo"));
    std::cout << fmt::format(
        "  load average (1/5/15 min): {} at start, {} at end (2 cores: above ~0.5 at start\n"
        "           means other work competed with this run)\n",
        load_start, load_average());
    if (o.sections_1_to_4) {
        std::cout << fmt::format(
            "  data:    orders {} rows, customers {}, {} changes per cycle, {} cycles\n", o.rows,
            o.customers, o.changes, o.cycles);
    }
    if (o.scheduler) {
        std::cout << fmt::format(
            "  scheduler: {} commits/s for {} s per configuration, probe every {} ms; {} idle "
            "stream tables, {} s per CPU measurement\n",
            o.sched_rate, o.sched_seconds, o.probe_ms, o.idle_tables, o.idle_seconds);
    }
    std::cout << "  server settings: pgtmp.sh defaults (fsync=off, synchronous_commit=off, "
                 "shared_buffers=256MB)"
              << (o.server_log.empty()
                      ? ""
                      : ", log_min_duration_statement=0 (timings include statement logging)")
              << "\n  times are wall-clock at the client (localhost round trip included)\n\n";

    std::vector<std::string> head = {"measurement", "pg_trickle", "baseline", "baseline value",
                                     "ratio",       "target",     "result"};
    std::vector<size_t> w(head.size());
    auto cells = [](const Row& r) {
        return std::vector<std::string>{r.what,  r.ours,   r.baseline_name, r.baseline,
                                        r.ratio, r.target, r.verdict};
    };
    for (size_t i = 0; i < head.size(); ++i) {
        w[i] = head[i].size();
    }
    for (const auto& r : g_rows) {
        auto c = cells(r);
        for (size_t i = 0; i < c.size(); ++i) {
            w[i] = std::max(w[i], c[i].size());
        }
    }
    auto line = [&](const std::vector<std::string>& c) {
        std::string s = "|";
        for (size_t i = 0; i < c.size(); ++i) {
            s += " " + c[i] + std::string(w[i] - c[i].size(), ' ') + " |";
        }
        std::cout << s << "\n";
    };
    line(head);
    std::string sep = "|";
    for (size_t x : w) {
        sep += std::string(x + 2, '-') + "|";
    }
    std::cout << sep << "\n";
    for (const auto& r : g_rows) {
        line(cells(r));
    }

    int pass = 0, miss = 0;
    for (const auto& r : g_rows) {
        pass += r.verdict == "PASS";
        miss += r.verdict == "MISS";
    }
    std::cout << fmt::format(
        "\ntargets: {} PASS, {} MISS; every refresh was verified (EXCEPT ALL both ways = 0 rows)\n",
        pass, miss);
    std::cout << "\nnotes:\n";
    for (const auto& n : g_notes) {
        std::cout << "  - " << n << "\n";
    }
    std::cout << "\nsamples:\n";
    for (const auto& s : g_samples) {
        std::cout << "  - " << s << "\n";
    }
}

int run(const Options& o) {
    std::vector<std::string> settings = {"max_wal_size=4GB", "checkpoint_timeout=30min"};
    if (!o.server_log.empty()) {
        settings.push_back("log_min_duration_statement=0");
    }
    const std::string load_start = load_average();
    progress("starting a throwaway server (tests/support/pgtmp.sh); load average " + load_start);
    Server srv(settings);
    if (!o.server_log.empty()) {
        srv.keep_log_at(o.server_log);
    }
    progress("server on port " + srv.port() + " in " + srv.dir());
    {
        Db admin(srv.dsn("postgres"));
        admin.exec("CREATE DATABASE bench");
    }
    Db db(srv.dsn("bench"));
    const std::string pg_version = db.scalar("SELECT version()");
    try {
        if (o.sections_1_to_4) {
            setup(db, o);
            refresh_cycles(db, o);
            capture_overhead(db, o);
            pgbench_updates(db, srv, o);
        }
        if (o.scheduler) {
            scheduler_section(srv, o);
        }
    } catch (const std::exception&) {
        // A lost connection is usually a crashed backend (or a library replaced underneath the
        // server): the log says which, and it is removed with the server.
        std::cerr << "last lines of the server log:\n";
        std::system(("tail -n 15 '" + srv.server_log() + "' >&2").c_str());
        throw;
    }
    const std::string ext_version =
        db.scalar("SELECT default_version FROM pg_available_extensions WHERE name = 'pg_trickle'");
    progress("done; stopping the server");
    report(o, pg_version, ext_version, load_start);
    return 0;
}

}  // namespace
}  // namespace pgt::bench

int main(int argc, char** argv) {
    using namespace pgt::bench;
    const Options o = parse(argc, argv);
    try {
        return run(o);
    } catch (const CorrectnessError& e) {
        std::cerr << "\n*** CORRECTNESS FAILURE ***\n" << e.what() << "\n";
        std::cout << "CORRECTNESS FAILURE: " << e.what() << "\n";
        return 2;
    } catch (const std::exception& e) {
        std::cerr << "pgtrickle_bench: failed: " << e.what() << "\n";
        return 1;
    }
}
