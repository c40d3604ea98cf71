// The exit-code table of docs/exit-codes.md must match lib/core/exit_codes.h: the same
// codes, names and meanings, and the names must be those exit_code_name() returns.
#include "core/exit_codes.h"

#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <utility>

namespace {

struct Entry {
    std::string name;
    std::string meaning;
};

std::string read_file(const std::string& path) {
    std::ifstream in(path);
    EXPECT_TRUE(in.good()) << "cannot read " << path;
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// Enumerators with their `///<` comments: "    ok = 0,  ///< success".
std::map<int, Entry> header_entries() {
    const std::string text =
        read_file(std::string(PGTRICKLE_SOURCE_DIR) + "/lib/core/exit_codes.h");
    const std::regex line(R"(^\s*(\w+)\s*=\s*(\d+),\s*///<\s*(.*?)\s*$)");
    std::map<int, Entry> out;
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);) {
        std::smatch m;
        if (std::regex_match(l, m, line)) {
            out[std::stoi(m[2])] = {m[1], m[3]};
        }
    }
    return out;
}

// Rows of the docs table: "| 0 | `ok` | success |".
std::map<int, Entry> doc_entries() {
    const std::string text = read_file(std::string(PGTRICKLE_SOURCE_DIR) + "/docs/exit-codes.md");
    const std::regex row(R"(^\|\s*(\d+)\s*\|\s*`(\w+)`\s*\|\s*(.*?)\s*\|\s*$)");
    std::map<int, Entry> out;
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);) {
        std::smatch m;
        if (std::regex_match(l, m, row)) {
            const int code = std::stoi(m[1]);
            EXPECT_EQ(out.count(code), 0u) << "code " << code << " listed twice in the docs";
            out[code] = {m[2], m[3]};
        }
    }
    return out;
}

}  // namespace

TEST(ExitCodesDoc, docs_table_lists_exactly_the_header_codes_names_and_meanings) {
    const auto header = header_entries();
    const auto doc = doc_entries();
    ASSERT_FALSE(header.empty()) << "no enumerators parsed from exit_codes.h";
    ASSERT_FALSE(doc.empty()) << "no table rows parsed from docs/exit-codes.md";
    for (const auto& [code, e] : header) {
        auto it = doc.find(code);
        ASSERT_NE(it, doc.end()) << "exit code " << code << " (" << e.name << ") not in the docs";
        EXPECT_EQ(it->second.name, e.name) << "code " << code;
        EXPECT_EQ(it->second.meaning, e.meaning) << "code " << code;
    }
    for (const auto& [code, e] : doc) {
        EXPECT_EQ(header.count(code), 1u) << "docs list code " << code << " (" << e.name
                                          << ") which exit_codes.h does not define";
    }
}

TEST(ExitCodesDoc, header_names_are_the_json_names_of_the_compiled_enum) {
    for (const auto& [code, e] : header_entries()) {
        EXPECT_STREQ(pgt::exit_code_name(static_cast<pgt::ExitCode>(code)), e.name.c_str())
            << "code " << code;
    }
}
