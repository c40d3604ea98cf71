// SQL text building blocks: identifier and literal quoting. Every identifier pg_trickle
// generates goes through quote_ident, so generated SQL never depends on case folding,
// keywords or search_path.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace pgt::sql {

/// "name" with embedded double quotes doubled. Always quotes (also plain lowercase names).
std::string quote_ident(std::string_view name);

/// "schema"."name".
std::string qualified(std::string_view schema, std::string_view name);

/// 'text' with quotes doubled; E'...' with doubled backslashes when the text has any, so
/// the literal means the same under either standard_conforming_strings setting.
std::string quote_literal(std::string_view text);

/// parts joined with sep (e.g. ", " for select lists, " AND " for conditions).
std::string join(const std::vector<std::string>& parts, std::string_view sep);

}  // namespace pgt::sql
