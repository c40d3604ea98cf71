#include "core/json.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace pgt::json {

namespace {

[[noreturn]] void type_error(const char* wanted) {
    throw std::logic_error(std::string("json value is not ") + wanted);
}

const Value& null_value() {
    static const Value v;
    return v;
}

// Length of the valid UTF-8 sequence starting at s[i], or 0 when it is invalid
// (overlong forms, surrogates and code points above U+10FFFF are invalid).
std::size_t utf8_sequence_length(std::string_view s, std::size_t i) {
    auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
    unsigned char c = byte(i);
    std::size_t len;
    unsigned min_cp;
    unsigned cp;
    if (c < 0x80) {
        return 1;
    } else if ((c & 0xE0) == 0xC0) {
        len = 2, min_cp = 0x80, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
        len = 3, min_cp = 0x800, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
        len = 4, min_cp = 0x10000, cp = c & 0x07;
    } else {
        return 0;
    }
    if (i + len > s.size()) {
        return 0;
    }
    for (std::size_t k = 1; k < len; ++k) {
        if ((byte(i + k) & 0xC0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (byte(i + k) & 0x3F);
    }
    if (cp < min_cp || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
        return 0;
    }
    return len;
}

void append_utf8(std::string& out, unsigned cp) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
}

void write_string(std::string& out, std::string_view s) {
    static const char* const hex = "0123456789abcdef";
    out += '"';
    for (std::size_t i = 0; i < s.size();) {
        unsigned char c = static_cast<unsigned char>(s[i]);
        switch (c) {
            case '"':
                out += "\\\"";
                break;
            case '\\':
                out += "\\\\";
                break;
            case '\b':
                out += "\\b";
                break;
            case '\f':
                out += "\\f";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\r':
                out += "\\r";
                break;
            case '\t':
                out += "\\t";
                break;
            default:
                if (c < 0x20) {
                    out += "\\u00";
                    out += hex[c >> 4];
                    out += hex[c & 0xF];
                } else if (c >= 0x80) {
                    std::size_t len = utf8_sequence_length(s, i);
                    if (len == 0) {
                        out += "\xEF\xBF\xBD";  // U+FFFD for one invalid byte
                        ++i;
                    } else {
                        out.append(s.substr(i, len));
                        i += len;
                    }
                    continue;
                } else {
                    out += static_cast<char>(c);
                }
        }
        ++i;
    }
    out += '"';
}

void write_number(std::string& out, double d) {
    if (!std::isfinite(d)) {
        out += "null";
        return;
    }
    // The shortest of %.15g / %.17g that reads back as the same double.
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.15g", d);
    if (std::strtod(buf, nullptr) != d) {
        std::snprintf(buf, sizeof buf, "%.17g", d);
    }
    out += buf;
}

void newline(std::string& out, int indent, int depth) {
    if (indent >= 0) {
        out += '\n';
        out.append(static_cast<std::size_t>(indent) * static_cast<std::size_t>(depth), ' ');
    }
}

void write(std::string& out, const Value& v, int indent, int depth) {
    switch (v.type()) {
        case Value::Type::null:
            out += "null";
            break;
        case Value::Type::boolean:
            out += v.as_bool() ? "true" : "false";
            break;
        case Value::Type::integer:
            out += std::to_string(v.as_int());
            break;
        case Value::Type::number:
            write_number(out, v.as_double());
            break;
        case Value::Type::string:
            write_string(out, v.as_string());
            break;
        case Value::Type::array: {
            const auto& a = v.as_array();
            out += '[';
            for (std::size_t i = 0; i < a.size(); ++i) {
                out += i ? "," : "";
                newline(out, indent, depth + 1);
                write(out, a[i], indent, depth + 1);
            }
            if (!a.empty()) {
                newline(out, indent, depth);
            }
            out += ']';
            break;
        }
        case Value::Type::object: {
            const auto& o = v.as_object();
            out += '{';
            for (std::size_t i = 0; i < o.size(); ++i) {
                out += i ? "," : "";
                newline(out, indent, depth + 1);
                write_string(out, o[i].first);
                out += indent >= 0 ? ": " : ":";
                write(out, o[i].second, indent, depth + 1);
            }
            if (!o.empty()) {
                newline(out, indent, depth);
            }
            out += '}';
            break;
        }
    }
}

// Recursive-descent parser over a string_view; pos_ is the current byte offset.
class Parser {
  public:
    explicit Parser(std::string_view text) : s_(text) {}

    Value document() {
        Value v = value(0);
        skip_ws();
        if (pos_ != s_.size()) {
            fail("unexpected data after the JSON document");
        }
        return v;
    }

  private:
    static constexpr int max_depth = 512;

    [[noreturn]] void fail(const std::string& msg) const { throw ParseError(msg, pos_); }

    void skip_ws() {
        while (pos_ < s_.size() &&
               (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) {
            ++pos_;
        }
    }

    bool consume(char c) {
        skip_ws();
        if (pos_ < s_.size() && s_[pos_] == c) {
            ++pos_;
            return true;
        }
        return false;
    }

    void expect(char c) {
        if (!consume(c)) {
            fail(std::string("expected '") + c + "'");
        }
    }

    void literal(std::string_view word) {
        if (s_.substr(pos_, word.size()) != word) {
            fail("invalid literal");
        }
        pos_ += word.size();
    }

    Value value(int depth) {
        if (depth > max_depth) {
            fail("nesting too deep");
        }
        skip_ws();
        if (pos_ >= s_.size()) {
            fail("unexpected end of input");
        }
        char c = s_[pos_];
        switch (c) {
            case '{':
                return object(depth);
            case '[':
                return array(depth);
            case '"':
                return Value(string());
            case 't':
                literal("true");
                return Value(true);
            case 'f':
                literal("false");
                return Value(false);
            case 'n':
                literal("null");
                return Value();
            default:
                if (c == '-' || (c >= '0' && c <= '9')) {
                    return number();
                }
                fail(std::string("unexpected character '") + c + "'");
        }
    }

    Value object(int depth) {
        ++pos_;  // '{'
        Value obj = Value::object();
        if (consume('}')) {
            return obj;
        }
        do {
            skip_ws();
            if (pos_ >= s_.size() || s_[pos_] != '"') {
                fail("expected a string key");
            }
            std::string key = string();
            expect(':');
            obj.set(std::move(key), value(depth + 1));
        } while (consume(','));
        expect('}');
        return obj;
    }

    Value array(int depth) {
        ++pos_;  // '['
        Value arr = Value::array();
        if (consume(']')) {
            return arr;
        }
        do {
            arr.push_back(value(depth + 1));
        } while (consume(','));
        expect(']');
        return arr;
    }

    unsigned hex4() {
        if (pos_ + 4 > s_.size()) {
            fail("truncated \\u escape");
        }
        unsigned cp = 0;
        for (int k = 0; k < 4; ++k) {
            char h = s_[pos_++];
            cp <<= 4;
            if (h >= '0' && h <= '9') {
                cp |= static_cast<unsigned>(h - '0');
            } else if (h >= 'a' && h <= 'f') {
                cp |= static_cast<unsigned>(h - 'a' + 10);
            } else if (h >= 'A' && h <= 'F') {
                cp |= static_cast<unsigned>(h - 'A' + 10);
            } else {
                fail("invalid \\u escape");
            }
        }
        return cp;
    }

    unsigned escaped_code_point() {
        unsigned cp = hex4();
        if (cp >= 0xDC00 && cp <= 0xDFFF) {
            fail("unpaired low surrogate");
        }
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (s_.substr(pos_, 2) != "\\u") {
                fail("unpaired high surrogate");
            }
            pos_ += 2;
            unsigned low = hex4();
            if (low < 0xDC00 || low > 0xDFFF) {
                fail("invalid low surrogate");
            }
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
        }
        return cp;
    }

    std::string string() {
        ++pos_;  // opening quote
        std::string out;
        while (true) {
            if (pos_ >= s_.size()) {
                fail("unterminated string");
            }
            unsigned char c = static_cast<unsigned char>(s_[pos_]);
            if (c == '"') {
                ++pos_;
                return out;
            }
            if (c < 0x20) {
                fail("control character in string");
            }
            if (c >= 0x80) {
                std::size_t len = utf8_sequence_length(s_, pos_);
                if (len == 0) {
                    fail("invalid UTF-8 in string");
                }
                out.append(s_.substr(pos_, len));
                pos_ += len;
                continue;
            }
            ++pos_;
            if (c != '\\') {
                out += static_cast<char>(c);
                continue;
            }
            if (pos_ >= s_.size()) {
                fail("unterminated escape");
            }
            char e = s_[pos_++];
            switch (e) {
                case '"':
                    out += '"';
                    break;
                case '\\':
                    out += '\\';
                    break;
                case '/':
                    out += '/';
                    break;
                case 'b':
                    out += '\b';
                    break;
                case 'f':
                    out += '\f';
                    break;
                case 'n':
                    out += '\n';
                    break;
                case 'r':
                    out += '\r';
                    break;
                case 't':
                    out += '\t';
                    break;
                case 'u':
                    append_utf8(out, escaped_code_point());
                    break;
                default:
                    fail("invalid escape");
            }
        }
    }

    Value number() {
        std::size_t start = pos_;
        auto digits = [&] {
            std::size_t d = pos_;
            while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') {
                ++pos_;
            }
            return pos_ - d;
        };
        if (s_[pos_] == '-') {
            ++pos_;
        }
        if (pos_ < s_.size() && s_[pos_] == '0') {
            ++pos_;
        } else if (digits() == 0) {
            fail("invalid number");
        }
        bool integral = true;
        if (pos_ < s_.size() && s_[pos_] == '.') {
            ++pos_;
            integral = false;
            if (digits() == 0) {
                fail("invalid number: digits expected after '.'");
            }
        }
        if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
            ++pos_;
            integral = false;
            if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-')) {
                ++pos_;
            }
            if (digits() == 0) {
                fail("invalid number: digits expected in exponent");
            }
        }
        std::string text(s_.substr(start, pos_ - start));
        if (integral) {
            errno = 0;
            long long i = std::strtoll(text.c_str(), nullptr, 10);
            if (errno != ERANGE) {
                return Value(i);
            }
        }
        return Value(std::strtod(text.c_str(), nullptr));
    }

    std::string_view s_;
    std::size_t pos_ = 0;
};

}  // namespace

bool Value::as_bool() const {
    if (!is_bool()) {
        type_error("a boolean");
    }
    return std::get<bool>(v_);
}

std::int64_t Value::as_int() const {
    if (!is_integer()) {
        type_error("an integer");
    }
    return std::get<std::int64_t>(v_);
}

double Value::as_double() const {
    if (is_integer()) {
        return static_cast<double>(std::get<std::int64_t>(v_));
    }
    if (type() != Type::number) {
        type_error("a number");
    }
    return std::get<double>(v_);
}

const std::string& Value::as_string() const {
    if (!is_string()) {
        type_error("a string");
    }
    return std::get<std::string>(v_);
}

const Value::Array& Value::as_array() const {
    if (!is_array()) {
        type_error("an array");
    }
    return std::get<Array>(v_);
}

Value::Array& Value::as_array() {
    if (!is_array()) {
        type_error("an array");
    }
    return std::get<Array>(v_);
}

const Value::Object& Value::as_object() const {
    if (!is_object()) {
        type_error("an object");
    }
    return std::get<Object>(v_);
}

Value& Value::push_back(Value v) {
    auto& a = as_array();
    a.push_back(std::move(v));
    return a.back();
}

Value& Value::set(std::string key, Value v) {
    if (!is_object()) {
        type_error("an object");
    }
    auto& o = std::get<Object>(v_);
    for (auto& member : o) {
        if (member.first == key) {
            member.second = std::move(v);
            return member.second;
        }
    }
    o.emplace_back(std::move(key), std::move(v));
    return o.back().second;
}

const Value* Value::find(std::string_view key) const {
    if (!is_object()) {
        return nullptr;
    }
    for (const auto& member : std::get<Object>(v_)) {
        if (member.first == key) {
            return &member.second;
        }
    }
    return nullptr;
}

const Value& Value::operator[](std::string_view key) const {
    const Value* v = find(key);
    return v ? *v : null_value();
}

std::string dump(const Value& v, int indent) {
    std::string out;
    write(out, v, indent, 0);
    return out;
}

std::string string_or_empty(const Value& v) {
    return v.is_string() ? v.as_string() : "";
}

std::string quote(std::string_view s) {
    std::string out;
    write_string(out, s);
    return out;
}

ParseError::ParseError(const std::string& msg, std::size_t offset)
    : std::runtime_error("invalid JSON at byte " + std::to_string(offset) + ": " + msg),
      offset_(offset) {}

Value parse(std::string_view text) {
    return Parser(text).document();
}

}  // namespace pgt::json
