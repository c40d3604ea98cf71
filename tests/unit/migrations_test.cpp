// Every upgrade script has a downgrade, the chain from 0.31.0 reaches the current version,
// and the installable versions have install scripts.
#include <gtest/gtest.h>

#include <dirent.h>

#include <fstream>
#include <regex>
#include <set>
#include <string>

namespace {

std::set<std::string> files_in(const std::string& dir) {
    std::set<std::string> out;
    if (DIR* d = opendir(dir.c_str())) {
        while (dirent* e = readdir(d)) {
            out.insert(e->d_name);
        }
        closedir(d);
    }
    return out;
}

TEST(Migrations, every_upgrade_has_a_downgrade_and_the_chain_reaches_the_current_version) {
    const auto files = files_in(PGTRICKLE_SOURCE_DIR "/migrations");
    const std::regex name("pg_trickle--([0-9.]+)--([0-9.]+)\\.sql");
    std::set<std::pair<std::string, std::string>> steps;
    for (const auto& f : files) {
        std::smatch m;
        if (std::regex_match(f, m, name)) {
            steps.emplace(m[1], m[2]);
        }
    }
    ASSERT_FALSE(steps.empty());
    for (const auto& [from, to] : steps) {
        EXPECT_TRUE(steps.count({to, from}))
            << "pg_trickle--" << from << "--" << to << ".sql has no downgrade";
    }
    std::string v = "0.31.0";
    for (int hops = 0; v != PGTRICKLE_VERSION && hops < 50; ++hops) {
        std::string next;
        for (const auto& [from, to] : steps) {
            if (from == v && to > v && (next.empty() || to < next)) {
                next = to;
            }
        }
        ASSERT_FALSE(next.empty()) << "no upgrade from " << v;
        v = next;
    }
    EXPECT_EQ(v, PGTRICKLE_VERSION);
}

TEST(Migrations,
     installable_versions_have_install_scripts_and_the_control_file_defaults_to_current) {
    const auto sql = files_in(PGTRICKLE_SOURCE_DIR "/sql");
    EXPECT_TRUE(sql.count("pg_trickle--0.31.0.sql"));
    EXPECT_TRUE(sql.count(std::string("pg_trickle--") + PGTRICKLE_VERSION + ".sql"));
    std::ifstream control(PGTRICKLE_SOURCE_DIR "/sql/pg_trickle.control");
    std::string text((std::istreambuf_iterator<char>(control)), std::istreambuf_iterator<char>());
    EXPECT_NE(text.find(std::string("default_version = '") + PGTRICKLE_VERSION + "'"),
              std::string::npos);
}

}  // namespace
