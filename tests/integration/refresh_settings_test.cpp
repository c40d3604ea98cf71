// Settings that change what a query returns (TimeZone, DateStyle, ...) are recorded when a
// stream table is created: every refresh, from any session or the scheduler, runs the
// query under them, so the stream table always equals its query as its creator saw it.
#include "pg_fixture.h"

namespace pgt::test {
namespace {

class RefreshSettings : public PgTest {};

TEST_F(RefreshSettings, refreshes_use_the_creators_time_zone_and_date_style) {
    exec("CREATE TABLE ev (id int PRIMARY KEY, at timestamptz)");
    exec("INSERT INTO ev VALUES (1, '2026-01-01 00:30+00'), (2, '2026-06-30 23:30+00')");
    const std::string q = "SELECT id, at::date AS day, at::text AS shown FROM ev";
    const std::string agg = "SELECT at::date AS day, count(*) AS n FROM ev GROUP BY 1";
    exec("SET TimeZone = 'Pacific/Kiritimati'");  // UTC+14: other days than UTC
    exec("SET DateStyle = 'German, DMY'");
    exec("CALL pgtrickle.create_stream_table(name => 'flat', query => $$" + q +
         "$$, refresh_mode => 'differential')");
    exec("CALL pgtrickle.create_stream_table(name => 'days', query => $$" + agg +
         "$$, refresh_mode => 'differential')");
    // Writes and refreshes from a session with other settings.
    exec("RESET TimeZone");
    exec("RESET DateStyle");
    exec("SET TimeZone = 'America/Los_Angeles'");
    exec("INSERT INTO ev VALUES (3, '2026-03-01 01:00+00'), (4, '2026-03-01 20:00+00')");
    exec("UPDATE ev SET at = at + interval '1 hour' WHERE id = 2");
    exec("CALL pgtrickle.refresh_stream_table('flat')");
    exec("CALL pgtrickle.refresh_stream_table('days')");
    exec("CALL pgtrickle.refresh_stream_table('days', full => true)");
    // The stream tables equal the queries under the creator's settings.
    exec("SET TimeZone = 'Pacific/Kiritimati'");
    exec("SET DateStyle = 'German, DMY'");
    expect_matches_query("flat", q);
    expect_matches_query("days", agg);
    EXPECT_EQ(scalar("SELECT refresh_settings->>'TimeZone' FROM pgtrickle.pgt_stream_tables "
                     "WHERE pgt_name = 'flat'"),
              "Pacific/Kiritimati");
    // And the refreshing session's own settings are untouched.
    exec("RESET TimeZone");
    exec("SET TimeZone = 'America/Los_Angeles'");
    exec("CALL pgtrickle.refresh_stream_table('flat', full => true)");
    EXPECT_EQ(scalar("SELECT current_setting('TimeZone')"), "America/Los_Angeles");
}

}  // namespace
}  // namespace pgt::test
