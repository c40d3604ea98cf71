// Pure rendering helpers for the pgtrickle CLI: aligned text tables, one-line cells,
// durations, and password masking for connection strings that are echoed back.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace pgt::cli_format {

/// Width of s on a terminal, counting UTF-8 code points (no East Asian wide handling).
std::size_t display_width(std::string_view s);

/// s on one line: every run of newlines, tabs and carriage returns becomes one space.
std::string one_line(std::string_view s);

/// Renders an aligned table: a header line, a rule of dashes, then one line per row.
/// Columns are separated by two spaces; the last column is not padded. Rows shorter than
/// the header are padded with empty cells. Cells should already be one line.
std::string render_table(const std::vector<std::string>& headers,
                         const std::vector<std::vector<std::string>>& rows);

/// A compact human duration: "850ms", "12s", "3m04s", "2h05m", "3d04h".
/// Negative or non-finite input renders as "-".
std::string format_duration(double seconds);

/// A byte count as pg_size_pretty() shows it: "512 bytes", "12 kB", "3 MB", "7 GB", "2 TB"
/// (1024-based, a unit is used from 10240 of the one below, halves round away from zero).
/// Negative counts keep their sign; non-finite input renders as "-".
std::string format_bytes(double bytes);

/// The text that replaces a password in masked connection strings.
inline constexpr std::string_view masked_password = "********";

/// A libpq connection string with any password replaced by masked_password: the
/// `password` keyword of key=value strings, and in URIs both the user-info password
/// (postgresql://user:secret@host) and a `password=` query parameter.
std::string mask_password(std::string_view conninfo);

}  // namespace pgt::cli_format
