// The Prometheus text exposition format, version 0.0.4: metric families with # HELP and
// # TYPE lines, label values escaped as the format requires. Pure; used by
// `pgtrickle status --format prometheus` (stdout, --output FILE and --listen).
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pgt::prometheus {

/// The Content-Type of the text format, for HTTP responses.
inline constexpr std::string_view content_type = "text/plain; version=0.0.4; charset=utf-8";

/// The metric types this renderer writes.
enum class Type { gauge, counter, untyped };

/// "gauge", "counter" or "untyped".
const char* type_name(Type t);

/// One labelled value of a family.
struct Sample {
    std::vector<std::pair<std::string, std::string>> labels;  ///< name, value (raw, unescaped)
    double value = 0;
};

/// All samples of one metric name, with its help text and type.
struct Family {
    std::string name;
    std::string help;
    Type type = Type::gauge;
    std::vector<Sample> samples;

    /// Appends a sample; returns *this for chaining.
    Family& add(std::vector<std::pair<std::string, std::string>> labels, double value);
};

/// Thrown by render() for names the format does not allow or a family named twice.
class InvalidMetric : public std::invalid_argument {
  public:
    using std::invalid_argument::invalid_argument;
};

/// [a-zA-Z_:][a-zA-Z0-9_:]*
bool valid_metric_name(std::string_view name);

/// [a-zA-Z_][a-zA-Z0-9_]*, not starting with "__" (reserved for Prometheus itself).
bool valid_label_name(std::string_view name);

/// A label value for inside double quotes: backslash, double quote and newline become
/// \\, \" and \n; invalid UTF-8 is replaced by U+FFFD.
std::string escape_label_value(std::string_view value);

/// A HELP text: backslash and newline become \\ and \n; invalid UTF-8 is replaced.
std::string escape_help(std::string_view help);

/// A sample value as Go's ParseFloat reads it: integers (|v| < 2^53) without exponent or
/// decimal point, other finite values in the fewest digits (15 to 17) that read back
/// exactly, and NaN, +Inf, -Inf.
std::string format_value(double value);

/// The exposition text of the families, in order: for each, # HELP, # TYPE, then one
/// line per sample. A family without samples still gets its HELP and TYPE lines.
/// Throws InvalidMetric on an invalid metric or label name, a label repeated in a sample,
/// or a repeated family name.
std::string render(const std::vector<Family>& families);

}  // namespace pgt::prometheus
