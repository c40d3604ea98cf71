// Decoder for PostgreSQL's pgoutput logical replication protocol (the messages a
// `pg_logical_slot_peek_binary_changes(slot, ..., 'proto_version', '1', 'publication_names',
// 'pub')` call returns, one message per row), and the step from decoded messages to the
// rows of a change buffer.
//
// The format is PostgreSQL's "Logical Replication Message Formats" (protocol versions 1
// and 2; PostgreSQL 15 writes it in src/backend/replication/logical/proto.c). All integers
// are big-endian. Pure C++17: no I/O, no PostgreSQL headers; every read is bounds-checked,
// so malformed input raises DecodeError and never reads out of bounds.
#pragma once
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>
#include <vector>

namespace pgt::pgoutput {

/// A WAL position (PostgreSQL's XLogRecPtr).
using Lsn = std::uint64_t;
/// A transaction id (32 bits on the wire).
using Xid = std::uint32_t;
/// An object id.
using Oid = std::uint32_t;
/// A timestamp: microseconds since 2000-01-01 00:00:00 UTC (PostgreSQL's TimestampTz).
using Timestamp = std::int64_t;

/// The LSN in PostgreSQL's text form "X/X" (upper and lower 32 bits in upper-case hex,
/// no padding), e.g. "0/16B3748".
std::string format_lsn(Lsn lsn);

/// Parses PostgreSQL's "X/X" text form (1 to 8 hex digits each side, either case).
/// Returns nullopt for anything else.
std::optional<Lsn> parse_lsn(std::string_view text);

/// Base class of the errors of this module.
class Error : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

/// Malformed input: what() reads like "pgoutput: truncated INSERT message at offset 17:
/// expected 4 bytes of column length, 2 left".
class DecodeError : public Error {
  public:
    DecodeError(const std::string& message, std::size_t offset) : Error(message), offset_(offset) {}
    /// The byte offset within the message where decoding failed.
    std::size_t offset() const { return offset_; }

  private:
    std::size_t offset_;
};

/// Well-formed messages that cannot become change rows (missing RELATION, an old tuple
/// that is not complete, binary column data, ...). what() names the relation.
class ChangeError : public Error {
  public:
    using Error::Error;
};

/// BEGIN ('B'): starts the messages of one committed transaction.
struct Begin {
    Lsn final_lsn = 0;  ///< LSN of the commit record
    Timestamp commit_time = 0;
    Xid xid = 0;
};

/// COMMIT ('C'): ends the transaction that the last BEGIN started.
struct Commit {
    std::uint8_t flags = 0;  ///< unused by PostgreSQL 15, always 0
    Lsn commit_lsn = 0;      ///< LSN of the commit record (equals Begin::final_lsn)
    Lsn end_lsn = 0;         ///< end of the commit record: where to resume after it
    Timestamp commit_time = 0;
};

/// ORIGIN ('O'): the transaction was replicated from another node with this origin.
struct Origin {
    Lsn commit_lsn = 0;  ///< commit LSN on the origin server
    std::string name;
};

/// REPLICA IDENTITY setting of a relation (pg_class.relreplident).
enum class ReplicaIdentity : char {
    Default = 'd',  ///< primary key
    Nothing = 'n',
    Full = 'f',   ///< all columns
    Index = 'i',  ///< a chosen unique index
};

/// One column of a RELATION message.
struct RelationColumn {
    std::uint8_t flags = 0;  ///< bit 1: part of the replica identity key
    std::string name;
    Oid type_oid = 0;
    std::int32_t type_modifier = -1;  ///< atttypmod; -1 when there is none
    bool is_key() const { return (flags & 1U) != 0; }
};

/// RELATION ('R'): describes a relation before the first change to it in a decoding
/// session (and again after its definition changed). Columns are the published ones,
/// in attribute order, without dropped and generated columns.
struct Relation {
    std::optional<Xid> xid;  ///< set inside a streamed transaction (protocol 2)
    Oid oid = 0;
    std::string schema;  ///< empty for pg_catalog
    std::string name;
    ReplicaIdentity replica_identity = ReplicaIdentity::Default;
    std::vector<RelationColumn> columns;
};

/// TYPE ('Y'): names a non-built-in type used by a following RELATION.
struct Type {
    std::optional<Xid> xid;
    Oid oid = 0;
    std::string schema;  ///< empty for pg_catalog
    std::string name;
};

/// One column value of a tuple.
struct TupleValue {
    enum class Kind : char {
        Null = 'n',
        UnchangedToast = 'u',  ///< a TOASTed value the UPDATE did not change; not sent
        Text = 't',            ///< data holds the type's text output
        Binary = 'b',          ///< data holds the type's binary send output
    };
    Kind kind = Kind::Null;
    std::string data;  ///< empty unless Text or Binary

    bool operator==(const TupleValue& o) const { return kind == o.kind && data == o.data; }
};

/// The values of one row, in the order of the RELATION's columns.
using Tuple = std::vector<TupleValue>;

/// Which old tuple an UPDATE or DELETE carries.
enum class OldTuple : char {
    None = 0,    ///< no old tuple (UPDATE under REPLICA IDENTITY DEFAULT/INDEX, key unchanged)
    Key = 'K',   ///< only the replica identity key columns are set, the others are null
    Full = 'O',  ///< the whole old row (REPLICA IDENTITY FULL)
};

/// INSERT ('I').
struct Insert {
    std::optional<Xid> xid;
    Oid relation_oid = 0;
    Tuple new_tuple;
};

/// UPDATE ('U').
struct Update {
    std::optional<Xid> xid;
    Oid relation_oid = 0;
    OldTuple old_kind = OldTuple::None;
    Tuple old_tuple;  ///< empty when old_kind is None
    Tuple new_tuple;
};

/// DELETE ('D').
struct Delete {
    std::optional<Xid> xid;
    Oid relation_oid = 0;
    OldTuple old_kind = OldTuple::Key;  ///< Key or Full
    Tuple old_tuple;
};

/// TRUNCATE ('T').
struct Truncate {
    std::optional<Xid> xid;
    std::uint8_t options = 0;  ///< bit 1: CASCADE, bit 2: RESTART IDENTITY
    std::vector<Oid> relation_oids;
    bool cascade() const { return (options & 1U) != 0; }
    bool restart_identity() const { return (options & 2U) != 0; }
};

/// MESSAGE ('M'): a logical decoding message (pg_logical_emit_message). Only sent when
/// the slot is read with the option 'messages' 'true'.
struct LogicalMessage {
    std::optional<Xid> xid;
    bool transactional = false;  ///< sent inside its transaction; else on its own
    Lsn lsn = 0;
    std::string prefix;
    std::string content;
};

/// STREAM START ('S', protocol 2): the following messages, up to STREAM STOP, belong to
/// the in-progress transaction xid and carry its xid.
struct StreamStart {
    Xid xid = 0;
    bool first_segment = false;
};

/// STREAM STOP ('E', protocol 2).
struct StreamStop {};

/// STREAM COMMIT ('c', protocol 2): the streamed transaction xid committed.
struct StreamCommit {
    Xid xid = 0;
    std::uint8_t flags = 0;
    Lsn commit_lsn = 0;
    Lsn end_lsn = 0;
    Timestamp commit_time = 0;
};

/// STREAM ABORT ('A', protocol 2): the streamed (sub)transaction subxid of xid aborted;
/// its streamed changes are to be discarded (all of them when subxid == xid).
struct StreamAbort {
    Xid xid = 0;
    Xid subxid = 0;
};

/// One decoded pgoutput message.
using Message =
    std::variant<Begin, Commit, Origin, Relation, Type, Insert, Update, Delete, Truncate,
                 LogicalMessage, StreamStart, StreamStop, StreamCommit, StreamAbort>;

/// Decodes one message. proto_version is the slot's 'proto_version' option: 1 or 2
/// (std::invalid_argument otherwise); the STREAM messages need 2. in_stream says that the
/// message is between STREAM START and STREAM STOP, where RELATION, TYPE, INSERT, UPDATE,
/// DELETE, TRUNCATE and MESSAGE start with the transaction's xid; StreamDecoder tracks it.
/// Throws DecodeError on malformed input, including trailing bytes.
Message decode(std::string_view bytes, int proto_version, bool in_stream = false);

/// The name of a message ("BEGIN", "INSERT", ...), for logs and errors.
const char* message_name(const Message& message);

/// Decodes a sequence of messages of one slot read, following STREAM START/STOP.
class StreamDecoder {
  public:
    /// proto_version as for decode().
    explicit StreamDecoder(int proto_version);
    /// Decodes the next message; throws DecodeError (also for a STREAM START inside a
    /// stream or a STREAM STOP outside one). After an exception the state is unchanged.
    Message next(std::string_view bytes);
    bool in_stream() const { return in_stream_; }

  private:
    int proto_version_;
    bool in_stream_ = false;
};

/// One row for a change buffer: an UPDATE gives a Delete of the old row and an Insert of
/// the new one.
struct ChangeRow {
    enum class Action : char { Insert = 'I', Delete = 'D' };
    Action action = Action::Insert;
    Oid relation_oid = 0;
    /// Column values in the RELATION's column order, as text; nullopt is SQL NULL.
    std::vector<std::optional<std::string>> values;
};

/// Keeps the latest RELATION (and TYPE) message per OID and turns INSERT, UPDATE and
/// DELETE into ChangeRows.
///
/// Rules, because a change buffer needs whole rows:
///  - the old row of an UPDATE or DELETE must be complete ('O', REPLICA IDENTITY FULL);
///    a key-only old tuple ('K') or none is a ChangeError naming the relation;
///  - values must be text: read the slot without the 'binary' option ('b' is an error);
///  - an unchanged TOASTed value ('u') in an UPDATE's new tuple takes the old tuple's
///    value at the same column (REPLICA IDENTITY FULL logs old values de-TOASTed); 'u'
///    anywhere else, or with no old value to take, is a ChangeError;
///  - a tuple must have as many columns as its RELATION.
class RelationCache {
  public:
    /// Remembers (or replaces) a relation description.
    void add(Relation relation);
    /// Remembers a type name.
    void add(Type type);
    /// The relation with this OID, or nullptr.
    const Relation* find(Oid oid) const;
    /// The type with this OID (from a TYPE message), or nullptr.
    const Type* find_type(Oid oid) const;

    /// Appends the change rows of an INSERT (1), UPDATE (2: delete, insert) or DELETE (1).
    /// Throws ChangeError as described above; nothing is appended then.
    void changes(const Insert& m, std::vector<ChangeRow>& out) const;
    void changes(const Update& m, std::vector<ChangeRow>& out) const;
    void changes(const Delete& m, std::vector<ChangeRow>& out) const;

    /// Feeds any message: RELATION and TYPE are remembered, INSERT/UPDATE/DELETE append
    /// their rows, the others are ignored. Returns true when rows were appended.
    bool apply(const Message& m, std::vector<ChangeRow>& out);

  private:
    const Relation& relation_for(Oid oid, const char* what) const;
    std::unordered_map<Oid, Relation> relations_;
    std::unordered_map<Oid, Type> types_;
};

}  // namespace pgt::pgoutput
