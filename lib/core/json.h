// A small JSON value type with a writer and a parser. Pure C++17, no dependencies.
// Used for the CLI's --format json documents and for reading jsonb returned by the server.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace pgt::json {

/// A JSON value: null, boolean, integer, number, string, array or object.
/// Objects keep their keys in insertion order so that output is deterministic.
class Value {
  public:
    enum class Type { null, boolean, integer, number, string, array, object };
    using Array = std::vector<Value>;
    using Object = std::vector<std::pair<std::string, Value>>;

    Value() = default;
    Value(std::nullptr_t) {}
    Value(bool b) : v_(b) {}
    Value(int i) : v_(static_cast<std::int64_t>(i)) {}
    Value(long i) : v_(static_cast<std::int64_t>(i)) {}
    Value(long long i) : v_(static_cast<std::int64_t>(i)) {}
    Value(unsigned u) : v_(static_cast<std::int64_t>(u)) {}
    /// Sizes and counts; values above INT64_MAX wrap (never expected in practice).
    Value(unsigned long u) : v_(static_cast<std::int64_t>(u)) {}
    Value(double d) : v_(d) {}
    Value(const char* s) : v_(std::string(s)) {}
    Value(std::string s) : v_(std::move(s)) {}
    Value(std::string_view s) : v_(std::string(s)) {}
    Value(Array a) : v_(std::move(a)) {}
    Value(Object o) : v_(std::move(o)) {}

    /// An empty array / an empty object.
    static Value array() { return Value(Array{}); }
    static Value object() { return Value(Object{}); }

    Type type() const { return static_cast<Type>(v_.index()); }
    bool is_null() const { return type() == Type::null; }
    bool is_bool() const { return type() == Type::boolean; }
    bool is_integer() const { return type() == Type::integer; }
    /// True for integers and non-integral numbers alike.
    bool is_number() const { return type() == Type::integer || type() == Type::number; }
    bool is_string() const { return type() == Type::string; }
    bool is_array() const { return type() == Type::array; }
    bool is_object() const { return type() == Type::object; }

    /// Typed access; throws std::logic_error when the value has another type.
    bool as_bool() const;
    std::int64_t as_int() const;
    /// The value as a double (integers are converted).
    double as_double() const;
    const std::string& as_string() const;
    const Array& as_array() const;
    Array& as_array();
    const Object& as_object() const;

    /// Appends to an array; returns the appended element.
    Value& push_back(Value v);
    /// Sets a key of an object (replacing an existing one in place); returns the value.
    Value& set(std::string key, Value v);
    /// The member named key of an object, or nullptr when absent or not an object.
    const Value* find(std::string_view key) const;
    /// The member named key, or a null value when absent (never throws).
    const Value& operator[](std::string_view key) const;

    bool operator==(const Value& other) const { return v_ == other.v_; }
    bool operator!=(const Value& other) const { return !(*this == other); }

  private:
    std::variant<std::nullptr_t, bool, std::int64_t, double, std::string, Array, Object> v_;
};

/// Serialises a value. indent < 0: compact on one line; otherwise pretty-printed with
/// that many spaces per level. Non-finite numbers become null; invalid UTF-8 in strings
/// is replaced by U+FFFD so the output is always valid JSON.
std::string dump(const Value& v, int indent = -1);

/// A JSON string literal (with quotes) for s, escaped as dump() does.
std::string quote(std::string_view s);

/// The string `v` holds, or "" when it holds anything else (null, a number, ...).
std::string string_or_empty(const Value& v);

/// Thrown by parse() on malformed input; what() names the byte offset.
class ParseError : public std::runtime_error {
  public:
    ParseError(const std::string& msg, std::size_t offset);
    std::size_t offset() const { return offset_; }

  private:
    std::size_t offset_;
};

/// Parses one JSON document (RFC 8259); surrounding whitespace is allowed, anything
/// else after the document is an error. Integers that fit in int64 stay integers.
Value parse(std::string_view text);

}  // namespace pgt::json
