// pgoutput decoder: see pgoutput.h. Field layouts follow PostgreSQL's documentation
// "Logical Replication Message Formats"; every read goes through Reader, which checks
// the bounds and names what it expected when the input ends early.
#include "core/pgoutput.h"

#include <string>
#include <utility>

#include "core/sql_ident.h"

namespace pgt::pgoutput {
namespace {

constexpr char kHex[] = "0123456789ABCDEF";

// "'I' (0x49)" for printable ASCII, "0x01" otherwise.
std::string describe_byte(std::uint8_t b) {
    std::string hex = "0x";
    hex += kHex[b >> 4U];
    hex += kHex[b & 0xFU];
    if (b >= 0x20 && b < 0x7F) {
        return std::string("'") + static_cast<char>(b) + "' (" + hex + ")";
    }
    return hex;
}

// Bounds-checked big-endian reader over one message. `kind` names the message in errors.
class Reader {
  public:
    explicit Reader(std::string_view data) : data_(data) {}

    void set_kind(const char* kind) { kind_ = kind; }
    std::size_t offset() const { return pos_; }
    std::size_t left() const { return data_.size() - pos_; }

    [[noreturn]] void truncated(std::uint64_t need, const std::string& what) const {
        std::string msg = "pgoutput: truncated ";
        if (kind_ != nullptr) {
            msg += kind_;
            msg += ' ';
        }
        msg += "message at offset " + std::to_string(pos_) + ": expected " + std::to_string(need) +
               (need == 1 ? " byte of " : " bytes of ") + what + ", " + std::to_string(left()) +
               " left";
        throw DecodeError(msg, pos_);
    }

    [[noreturn]] void invalid(std::size_t at, const std::string& detail) const {
        std::string msg = "pgoutput: invalid ";
        if (kind_ != nullptr) {
            msg += kind_;
            msg += ' ';
        }
        msg += "message at offset " + std::to_string(at) + ": " + detail;
        throw DecodeError(msg, at);
    }

    std::uint64_t uint(std::size_t n, const char* what) {
        if (left() < n) {
            truncated(n, what);
        }
        std::uint64_t v = 0;
        for (std::size_t i = 0; i < n; ++i) {
            v = (v << 8U) | static_cast<unsigned char>(data_[pos_ + i]);
        }
        pos_ += n;
        return v;
    }
    std::uint8_t u8(const char* what) { return static_cast<std::uint8_t>(uint(1, what)); }
    std::uint16_t u16(const char* what) { return static_cast<std::uint16_t>(uint(2, what)); }
    std::uint32_t u32(const char* what) { return static_cast<std::uint32_t>(uint(4, what)); }
    std::uint64_t u64(const char* what) { return uint(8, what); }
    std::int32_t i32(const char* what) { return static_cast<std::int32_t>(u32(what)); }
    std::int64_t i64(const char* what) { return static_cast<std::int64_t>(u64(what)); }

    // A length-prefixed byte string (Int32 length, then the bytes); a negative length is
    // invalid. `what` names the bytes ("column 3 data").
    std::string counted(const char* length_what, const std::string& what) {
        const std::size_t at = pos_;
        const std::int32_t len = i32(length_what);
        if (len < 0) {
            invalid(at, std::string("negative ") + length_what + " " + std::to_string(len));
        }
        const auto n = static_cast<std::size_t>(len);
        if (left() < n) {
            truncated(n, what);
        }
        std::string out(data_.substr(pos_, n));
        pos_ += n;
        return out;
    }

    // A NUL-terminated string.
    std::string cstring(const char* what) {
        const std::size_t end = data_.find('\0', pos_);
        if (end == std::string_view::npos) {
            invalid(pos_, std::string("expected a NUL-terminated ") + what + ", " +
                              std::to_string(left()) + " bytes left without a NUL");
        }
        std::string out(data_.substr(pos_, end - pos_));
        pos_ = end + 1;
        return out;
    }

    // Guards a count read from the input before reserving memory for it: each element
    // takes at least min_bytes, so a count that cannot fit is an early truncation error.
    void need_elements(std::uint64_t count, std::size_t min_bytes, const char* what) const {
        if (count * min_bytes > left()) {
            truncated(count * min_bytes, what);
        }
    }

    void expect_end() const {
        if (left() != 0) {
            invalid(pos_, std::to_string(left()) + " trailing bytes after the message");
        }
    }

  private:
    std::string_view data_;
    std::size_t pos_ = 0;
    const char* kind_ = nullptr;
};

Tuple read_tuple(Reader& r) {
    const std::uint16_t ncols = r.u16("tuple column count");
    r.need_elements(ncols, 1, "column kinds");
    Tuple tuple;
    tuple.reserve(ncols);
    for (std::uint16_t i = 0; i < ncols; ++i) {
        const std::size_t at = r.offset();
        const std::uint8_t kind = r.u8("column kind");
        TupleValue v;
        switch (kind) {
            case 'n':
                v.kind = TupleValue::Kind::Null;
                break;
            case 'u':
                v.kind = TupleValue::Kind::UnchangedToast;
                break;
            case 't':
            case 'b':
                v.kind = kind == 't' ? TupleValue::Kind::Text : TupleValue::Kind::Binary;
                v.data = r.counted("column length", "column " + std::to_string(i + 1) + " data");
                break;
            default:
                r.invalid(at, "unknown kind " + describe_byte(kind) + " of column " +
                                  std::to_string(i + 1) + " (expected 'n', 'u', 't' or 'b')");
        }
        tuple.push_back(std::move(v));
    }
    return tuple;
}

std::optional<Xid> read_stream_xid(Reader& r, bool in_stream) {
    if (!in_stream) {
        return std::nullopt;
    }
    return r.u32("transaction id");
}

Relation read_relation(Reader& r, bool in_stream) {
    Relation m;
    m.xid = read_stream_xid(r, in_stream);
    m.oid = r.u32("relation OID");
    m.schema = r.cstring("namespace");
    m.name = r.cstring("relation name");
    const std::size_t at = r.offset();
    const std::uint8_t ident = r.u8("replica identity");
    switch (ident) {
        case 'd':
        case 'n':
        case 'f':
        case 'i':
            m.replica_identity = static_cast<ReplicaIdentity>(ident);
            break;
        default:
            r.invalid(at, "unknown replica identity " + describe_byte(ident) +
                              " (expected 'd', 'n', 'f' or 'i')");
    }
    const std::uint16_t ncols = r.u16("column count");
    // flags, an empty name's NUL, type OID, type modifier
    r.need_elements(ncols, 10, "column descriptions");
    m.columns.reserve(ncols);
    for (std::uint16_t i = 0; i < ncols; ++i) {
        RelationColumn c;
        c.flags = r.u8("column flags");
        c.name = r.cstring("column name");
        c.type_oid = r.u32("column type OID");
        c.type_modifier = r.i32("column type modifier");
        m.columns.push_back(std::move(c));
    }
    return m;
}

// UPDATE and DELETE: the old tuple's tag, 'K' or 'O'; for UPDATE also 'N' (no old tuple).
std::uint8_t read_tuple_tag(Reader& r, bool allow_new) {
    const std::size_t at = r.offset();
    const std::uint8_t tag = r.u8("tuple type");
    if (tag == 'K' || tag == 'O' || (allow_new && tag == 'N')) {
        return tag;
    }
    r.invalid(at, "unexpected tuple type " + describe_byte(tag) +
                      (allow_new ? " (expected 'K', 'O' or 'N')" : " (expected 'K' or 'O')"));
}

void expect_new_tag(Reader& r) {
    const std::size_t at = r.offset();
    const std::uint8_t tag = r.u8("tuple type");
    if (tag != 'N') {
        r.invalid(at, "unexpected tuple type " + describe_byte(tag) + " (expected 'N')");
    }
}

void check_version(int proto_version, bool in_stream) {
    if (proto_version != 1 && proto_version != 2) {
        throw std::invalid_argument("pgoutput: unsupported protocol version " +
                                    std::to_string(proto_version) + " (expected 1 or 2)");
    }
    if (in_stream && proto_version < 2) {
        throw std::invalid_argument("pgoutput: streamed transactions need protocol version 2");
    }
}

const char* kind_name(std::uint8_t type) {
    switch (type) {
        case 'B':
            return "BEGIN";
        case 'C':
            return "COMMIT";
        case 'O':
            return "ORIGIN";
        case 'R':
            return "RELATION";
        case 'Y':
            return "TYPE";
        case 'I':
            return "INSERT";
        case 'U':
            return "UPDATE";
        case 'D':
            return "DELETE";
        case 'T':
            return "TRUNCATE";
        case 'M':
            return "MESSAGE";
        case 'S':
            return "STREAM START";
        case 'E':
            return "STREAM STOP";
        case 'c':
            return "STREAM COMMIT";
        case 'A':
            return "STREAM ABORT";
        default:
            return nullptr;
    }
}

}  // namespace

std::string format_lsn(Lsn lsn) {
    auto hex = [](std::uint32_t v) {
        std::string s;
        do {
            s.insert(s.begin(), kHex[v & 0xFU]);
            v >>= 4U;
        } while (v != 0);
        return s;
    };
    return hex(static_cast<std::uint32_t>(lsn >> 32U)) + "/" +
           hex(static_cast<std::uint32_t>(lsn & 0xFFFFFFFFU));
}

std::optional<Lsn> parse_lsn(std::string_view text) {
    const std::size_t slash = text.find('/');
    if (slash == std::string_view::npos) {
        return std::nullopt;
    }
    auto half = [](std::string_view s) -> std::optional<std::uint64_t> {
        if (s.empty() || s.size() > 8) {
            return std::nullopt;
        }
        std::uint64_t v = 0;
        for (const char c : s) {
            int d = 0;
            if (c >= '0' && c <= '9') {
                d = c - '0';
            } else if (c >= 'a' && c <= 'f') {
                d = c - 'a' + 10;
            } else if (c >= 'A' && c <= 'F') {
                d = c - 'A' + 10;
            } else {
                return std::nullopt;
            }
            v = (v << 4U) | static_cast<std::uint64_t>(d);
        }
        return v;
    };
    const auto hi = half(text.substr(0, slash));
    const auto lo = half(text.substr(slash + 1));
    if (!hi || !lo) {
        return std::nullopt;
    }
    return (*hi << 32U) | *lo;
}

Message decode(std::string_view bytes, int proto_version, bool in_stream) {
    check_version(proto_version, in_stream);
    Reader r(bytes);
    const std::uint8_t type = r.u8("message type");
    const char* name = kind_name(type);
    if (name == nullptr) {
        throw DecodeError("pgoutput: unknown message type " + describe_byte(type) + " at offset 0",
                          0);
    }
    r.set_kind(name);
    const bool is_stream_message = type == 'S' || type == 'E' || type == 'c' || type == 'A';
    if (is_stream_message && proto_version < 2) {
        r.invalid(0, "needs protocol version 2, the slot is read with version " +
                         std::to_string(proto_version));
    }

    Message out;
    switch (type) {
        case 'B': {
            Begin m;
            m.final_lsn = r.u64("final LSN");
            m.commit_time = r.i64("commit timestamp");
            m.xid = r.u32("transaction id");
            out = m;
            break;
        }
        case 'C': {
            Commit m;
            m.flags = r.u8("flags");
            m.commit_lsn = r.u64("commit LSN");
            m.end_lsn = r.u64("end LSN");
            m.commit_time = r.i64("commit timestamp");
            out = m;
            break;
        }
        case 'O': {
            Origin m;
            m.commit_lsn = r.u64("origin commit LSN");
            m.name = r.cstring("origin name");
            out = std::move(m);
            break;
        }
        case 'R':
            out = read_relation(r, in_stream);
            break;
        case 'Y': {
            Type m;
            m.xid = read_stream_xid(r, in_stream);
            m.oid = r.u32("type OID");
            m.schema = r.cstring("namespace");
            m.name = r.cstring("type name");
            out = std::move(m);
            break;
        }
        case 'I': {
            Insert m;
            m.xid = read_stream_xid(r, in_stream);
            m.relation_oid = r.u32("relation OID");
            expect_new_tag(r);
            m.new_tuple = read_tuple(r);
            out = std::move(m);
            break;
        }
        case 'U': {
            Update m;
            m.xid = read_stream_xid(r, in_stream);
            m.relation_oid = r.u32("relation OID");
            const std::uint8_t tag = read_tuple_tag(r, true);
            if (tag != 'N') {
                m.old_kind = static_cast<OldTuple>(tag);
                m.old_tuple = read_tuple(r);
                expect_new_tag(r);
            }
            m.new_tuple = read_tuple(r);
            out = std::move(m);
            break;
        }
        case 'D': {
            Delete m;
            m.xid = read_stream_xid(r, in_stream);
            m.relation_oid = r.u32("relation OID");
            m.old_kind = static_cast<OldTuple>(read_tuple_tag(r, false));
            m.old_tuple = read_tuple(r);
            out = std::move(m);
            break;
        }
        case 'T': {
            Truncate m;
            m.xid = read_stream_xid(r, in_stream);
            const std::uint32_t n = r.u32("relation count");
            m.options = r.u8("options");
            r.need_elements(n, 4, "relation OIDs");
            m.relation_oids.reserve(n);
            for (std::uint32_t i = 0; i < n; ++i) {
                m.relation_oids.push_back(r.u32("relation OID"));
            }
            out = std::move(m);
            break;
        }
        case 'M': {
            LogicalMessage m;
            m.xid = read_stream_xid(r, in_stream);
            m.transactional = (r.u8("flags") & 1U) != 0;
            m.lsn = r.u64("message LSN");
            m.prefix = r.cstring("prefix");
            m.content = r.counted("content length", "content");
            out = std::move(m);
            break;
        }
        case 'S': {
            StreamStart m;
            m.xid = r.u32("transaction id");
            m.first_segment = r.u8("first-segment flag") != 0;
            out = m;
            break;
        }
        case 'E':
            out = StreamStop{};
            break;
        case 'c': {
            StreamCommit m;
            m.xid = r.u32("transaction id");
            m.flags = r.u8("flags");
            m.commit_lsn = r.u64("commit LSN");
            m.end_lsn = r.u64("end LSN");
            m.commit_time = r.i64("commit timestamp");
            out = m;
            break;
        }
        default: {  // 'A': kind_name() knows no other type
            StreamAbort m;
            m.xid = r.u32("transaction id");
            m.subxid = r.u32("subtransaction id");
            out = m;
            break;
        }
    }
    r.expect_end();
    return out;
}

const char* message_name(const Message& message) {
    static constexpr const char* kNames[] = {
        "BEGIN",        "COMMIT",      "ORIGIN",        "RELATION",    "TYPE",
        "INSERT",       "UPDATE",      "DELETE",        "TRUNCATE",    "MESSAGE",
        "STREAM START", "STREAM STOP", "STREAM COMMIT", "STREAM ABORT"};
    static_assert(sizeof(kNames) / sizeof(kNames[0]) == std::variant_size_v<Message>);
    return kNames[message.index()];
}

StreamDecoder::StreamDecoder(int proto_version) : proto_version_(proto_version) {
    check_version(proto_version, false);
}

Message StreamDecoder::next(std::string_view bytes) {
    Message m = decode(bytes, proto_version_, in_stream_);
    if (std::holds_alternative<StreamStart>(m)) {
        if (in_stream_) {
            throw DecodeError("pgoutput: STREAM START inside a stream (no STREAM STOP before it)",
                              0);
        }
        in_stream_ = true;
    } else if (std::holds_alternative<StreamStop>(m)) {
        if (!in_stream_) {
            throw DecodeError("pgoutput: STREAM STOP outside a stream", 0);
        }
        in_stream_ = false;
    }
    return m;
}

// ---- change rows ----

namespace {

std::string relation_label(const Relation& rel) {
    return rel.schema.empty() ? sql::quote_ident(rel.name) : sql::qualified(rel.schema, rel.name);
}

// old: the old tuple to take unchanged TOASTed values from (UPDATE's new tuple only).
ChangeRow to_row(const Relation& rel, ChangeRow::Action action, const Tuple& tuple,
                 const Tuple* old, const char* what) {
    if (tuple.size() != rel.columns.size()) {
        throw ChangeError("pgoutput: " + std::string(what) + " of " + relation_label(rel) +
                          " has " + std::to_string(tuple.size()) + " columns, its RELATION " +
                          std::to_string(rel.columns.size()));
    }
    ChangeRow row;
    row.action = action;
    row.relation_oid = rel.oid;
    row.values.reserve(tuple.size());
    for (std::size_t i = 0; i < tuple.size(); ++i) {
        const TupleValue* v = &tuple[i];
        if (v->kind == TupleValue::Kind::UnchangedToast && old != nullptr) {
            v = &(*old)[i];  // sizes checked: the old tuple went through to_row first
        }
        switch (v->kind) {
            case TupleValue::Kind::Null:
                row.values.emplace_back(std::nullopt);
                break;
            case TupleValue::Kind::Text:
                row.values.emplace_back(v->data);
                break;
            case TupleValue::Kind::Binary:
                throw ChangeError("pgoutput: " + std::string(what) + " of " + relation_label(rel) +
                                  " has binary data in column " +
                                  sql::quote_ident(rel.columns[i].name) +
                                  ": read the slot without the 'binary' option");
            case TupleValue::Kind::UnchangedToast:
                throw ChangeError("pgoutput: " + std::string(what) + " of " + relation_label(rel) +
                                  " has an unchanged TOASTed value in column " +
                                  sql::quote_ident(rel.columns[i].name) +
                                  " and no old value for it: REPLICA IDENTITY FULL is required");
        }
    }
    return row;
}

void require_full_old(const Relation& rel, OldTuple kind, const char* what) {
    if (kind == OldTuple::Full) {
        return;
    }
    throw ChangeError(
        "pgoutput: " + std::string(what) + " of " + relation_label(rel) +
        (kind == OldTuple::Key ? " has only the key of the old row" : " has no old row") +
        ": REPLICA IDENTITY FULL is required (ALTER TABLE " + relation_label(rel) +
        " REPLICA IDENTITY FULL)");
}

}  // namespace

void RelationCache::add(Relation relation) {
    const Oid oid = relation.oid;
    relations_[oid] = std::move(relation);
}

void RelationCache::add(Type type) {
    const Oid oid = type.oid;
    types_[oid] = std::move(type);
}

const Relation* RelationCache::find(Oid oid) const {
    const auto it = relations_.find(oid);
    return it == relations_.end() ? nullptr : &it->second;
}

const Type* RelationCache::find_type(Oid oid) const {
    const auto it = types_.find(oid);
    return it == types_.end() ? nullptr : &it->second;
}

const Relation& RelationCache::relation_for(Oid oid, const char* what) const {
    const Relation* rel = find(oid);
    if (rel == nullptr) {
        throw ChangeError("pgoutput: " + std::string(what) + " of relation OID " +
                          std::to_string(oid) + " before any RELATION message for it");
    }
    return *rel;
}

void RelationCache::changes(const Insert& m, std::vector<ChangeRow>& out) const {
    const Relation& rel = relation_for(m.relation_oid, "INSERT");
    out.push_back(to_row(rel, ChangeRow::Action::Insert, m.new_tuple, nullptr, "INSERT"));
}

void RelationCache::changes(const Update& m, std::vector<ChangeRow>& out) const {
    const Relation& rel = relation_for(m.relation_oid, "UPDATE");
    require_full_old(rel, m.old_kind, "UPDATE");
    ChangeRow old_row = to_row(rel, ChangeRow::Action::Delete, m.old_tuple, nullptr, "UPDATE");
    ChangeRow new_row = to_row(rel, ChangeRow::Action::Insert, m.new_tuple, &m.old_tuple, "UPDATE");
    out.push_back(std::move(old_row));
    out.push_back(std::move(new_row));
}

void RelationCache::changes(const Delete& m, std::vector<ChangeRow>& out) const {
    const Relation& rel = relation_for(m.relation_oid, "DELETE");
    require_full_old(rel, m.old_kind, "DELETE");
    out.push_back(to_row(rel, ChangeRow::Action::Delete, m.old_tuple, nullptr, "DELETE"));
}

bool RelationCache::apply(const Message& m, std::vector<ChangeRow>& out) {
    if (const auto* rel = std::get_if<Relation>(&m)) {
        add(*rel);
    } else if (const auto* type = std::get_if<Type>(&m)) {
        add(*type);
    } else if (const auto* ins = std::get_if<Insert>(&m)) {
        changes(*ins, out);
        return true;
    } else if (const auto* upd = std::get_if<Update>(&m)) {
        changes(*upd, out);
        return true;
    } else if (const auto* del = std::get_if<Delete>(&m)) {
        changes(*del, out);
        return true;
    }
    return false;
}

}  // namespace pgt::pgoutput
