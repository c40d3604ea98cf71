#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "core/pgoutput.h"

namespace pgt::pgoutput {
namespace {

// One row of pg_logical_slot_peek_binary_changes as captured by
// tests/support/capture_pgoutput.sh: lsn, xid, data.
struct Captured {
    Lsn lsn = 0;
    Xid xid = 0;
    std::string data;
};

std::string unhex(const std::string& hex) {
    std::string out;
    out.reserve(hex.size() / 2);
    for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
        out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
    }
    return out;
}

std::vector<Captured> load(const std::string& name) {
    const std::string path =
        std::string(PGTRICKLE_SOURCE_DIR) + "/tests/unit/data/pgoutput/" + name;
    std::ifstream in(path);
    EXPECT_TRUE(in.good()) << "cannot read " << path;
    std::vector<Captured> out;
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#') {
            continue;
        }
        std::istringstream fields(line);
        std::string lsn, xid, hex;
        std::getline(fields, lsn, '\t');
        std::getline(fields, xid, '\t');
        std::getline(fields, hex, '\t');
        const auto parsed = parse_lsn(lsn);
        EXPECT_TRUE(parsed.has_value()) << line;
        out.push_back({parsed.value_or(0), static_cast<Xid>(std::stoul(xid)), unhex(hex)});
    }
    return out;
}

std::vector<Message> decode_all(const std::vector<Captured>& captured, int proto_version) {
    StreamDecoder decoder(proto_version);
    std::vector<Message> out;
    out.reserve(captured.size());
    for (const auto& c : captured) {
        out.push_back(decoder.next(c.data));
    }
    return out;
}

std::string kinds(const std::vector<Message>& messages) {
    std::string out;
    for (const auto& m : messages) {
        out += out.empty() ? "" : " ";
        out += message_name(m);
    }
    return out;
}

TupleValue text(std::string s) {
    return {TupleValue::Kind::Text, std::move(s)};
}
const TupleValue kNull{TupleValue::Kind::Null, ""};
const TupleValue kUnchanged{TupleValue::Kind::UnchangedToast, ""};

using Values = std::vector<std::optional<std::string>>;

// Microseconds since 2000-01-01 of 2020-01-01 and 2100-01-01: a commit time of a capture
// must lie in between (the captures were made in 2026).
constexpr Timestamp k2020 = 631152000LL * 1000000;
constexpr Timestamp k2100 = 3786825600LL * 1000000;

// Checks what every captured transaction satisfies: BEGIN ... COMMIT with matching LSNs,
// xids and times, LSN column never decreasing, the COMMIT row at the commit's end LSN.
void expect_well_formed_transactions(const std::vector<Captured>& cap,
                                     const std::vector<Message>& msgs) {
    ASSERT_EQ(cap.size(), msgs.size());
    const Begin* open = nullptr;
    for (std::size_t i = 0; i < msgs.size(); ++i) {
        if (i > 0) {
            EXPECT_LE(cap[i - 1].lsn, cap[i].lsn) << "row " << i;
        }
        if (const auto* b = std::get_if<Begin>(&msgs[i])) {
            EXPECT_EQ(open, nullptr) << "nested BEGIN at row " << i;
            open = b;
            EXPECT_EQ(b->xid, cap[i].xid);
            EXPECT_GT(b->commit_time, k2020);
            EXPECT_LT(b->commit_time, k2100);
        } else if (const auto* c = std::get_if<Commit>(&msgs[i])) {
            ASSERT_NE(open, nullptr) << "COMMIT without BEGIN at row " << i;
            EXPECT_EQ(c->flags, 0);
            EXPECT_EQ(c->commit_lsn, open->final_lsn);
            EXPECT_EQ(c->commit_time, open->commit_time);
            EXPECT_LT(c->commit_lsn, c->end_lsn);
            EXPECT_EQ(cap[i].lsn, c->end_lsn);
            EXPECT_EQ(cap[i].xid, open->xid);
            open = nullptr;
        } else if (open != nullptr) {
            EXPECT_EQ(cap[i].xid, open->xid) << "row " << i;
        }
    }
    EXPECT_EQ(open, nullptr) << "transaction without COMMIT";
}

TEST(PgoutputLsn, formats_and_parses_postgres_text_form) {
    EXPECT_EQ(format_lsn(0), "0/0");
    EXPECT_EQ(format_lsn(0x16B3748), "0/16B3748");
    EXPECT_EQ(format_lsn(0x00000001000000A0ULL), "1/A0");
    EXPECT_EQ(format_lsn(~0ULL), "FFFFFFFF/FFFFFFFF");
    EXPECT_EQ(parse_lsn("0/16B3748"), 0x16B3748U);
    EXPECT_EQ(parse_lsn("1/a0"), 0x1000000A0ULL);
    EXPECT_EQ(parse_lsn("FFFFFFFF/FFFFFFFF"), ~0ULL);
    for (const Lsn v : {0ULL, 1ULL, 0xABCDEF0123456789ULL, 0xFFFFFFFFULL, 0x100000000ULL}) {
        EXPECT_EQ(parse_lsn(format_lsn(v)), v);
    }
    for (const char* bad :
         {"", "/", "0/", "/0", "0", "0x1/0", "1/2/3", "123456789/0", "0/ 1", "-1/0", "g/0"}) {
        EXPECT_EQ(parse_lsn(bad), std::nullopt) << bad;
    }
}

TEST(PgoutputDecode, captured_insert_transaction_has_relations_types_and_values) {
    const auto cap = load("insert_v1.hex");
    const auto msgs = decode_all(cap, 1);
    ASSERT_EQ(kinds(msgs),
              "BEGIN TYPE RELATION INSERT INSERT RELATION INSERT INSERT RELATION INSERT COMMIT");
    expect_well_formed_transactions(cap, msgs);

    const auto& mood = std::get<Type>(msgs[1]);
    EXPECT_EQ(mood.schema, "public");
    EXPECT_EQ(mood.name, "mood");
    EXPECT_FALSE(mood.xid.has_value());

    const auto& full = std::get<Relation>(msgs[2]);
    EXPECT_EQ(full.schema, "public");
    EXPECT_EQ(full.name, "ri_full");
    EXPECT_EQ(full.replica_identity, ReplicaIdentity::Full);
    const std::vector<std::pair<std::string, Oid>> expected_columns = {
        {"id", 23},     {"amount", 1700},      {"label", 25}, {"doc", 3802}, {"raw", 17},
        {"tags", 1007}, {"feeling", mood.oid}, {"at", 1184},  {"big", 25}};
    ASSERT_EQ(full.columns.size(), expected_columns.size());
    for (std::size_t i = 0; i < expected_columns.size(); ++i) {
        EXPECT_EQ(full.columns[i].name, expected_columns[i].first);
        EXPECT_EQ(full.columns[i].type_oid, expected_columns[i].second) << full.columns[i].name;
        EXPECT_TRUE(full.columns[i].is_key()) << "REPLICA IDENTITY FULL keys every column";
    }
    EXPECT_EQ(full.columns[1].type_modifier, (12 << 16 | 3) + 4);  // numeric(12,3)
    EXPECT_EQ(full.columns[0].type_modifier, -1);

    const auto& row1 = std::get<Insert>(msgs[3]);
    EXPECT_EQ(row1.relation_oid, full.oid);
    const Tuple expected_row1 = {text("1"),
                                 text("1234567.125"),
                                 text("grüße, 世界 ✓"),
                                 text(R"({"a": [1, 2.5, null], "b": "x"})"),
                                 text("\\xdeadbeef00"),
                                 text("{1,NULL,3}"),
                                 text("happy"),
                                 text("2024-02-29 12:34:56.789+00"),
                                 text([] {
                                     std::string s;
                                     for (int i = 0; i < 1000; ++i) {
                                         s += "toast-me ";
                                     }
                                     return s;
                                 }())};
    EXPECT_EQ(row1.new_tuple, expected_row1);
    const auto& row2 = std::get<Insert>(msgs[4]);
    Tuple expected_row2(9, kNull);
    expected_row2[0] = text("2");
    EXPECT_EQ(row2.new_tuple, expected_row2);

    const auto& def = std::get<Relation>(msgs[5]);
    EXPECT_EQ(def.name, "ri_default");
    EXPECT_EQ(def.replica_identity, ReplicaIdentity::Default);
    ASSERT_EQ(def.columns.size(), 2U);
    EXPECT_TRUE(def.columns[0].is_key());
    EXPECT_FALSE(def.columns[1].is_key());
    EXPECT_EQ(std::get<Insert>(msgs[6]).new_tuple, (Tuple{text("1"), text("one")}));
    EXPECT_EQ(std::get<Insert>(msgs[7]).new_tuple, (Tuple{text("2"), text("two")}));

    const auto& mixed = std::get<Relation>(msgs[8]);
    EXPECT_EQ(mixed.name, "Mixed Case");
    ASSERT_EQ(mixed.columns.size(), 2U);
    EXPECT_EQ(mixed.columns[0].type_oid, 20U);
    EXPECT_EQ(mixed.columns[1].type_oid, 16U);
    EXPECT_FALSE(mixed.columns[0].is_key());
    EXPECT_EQ(std::get<Insert>(msgs[9]).new_tuple, (Tuple{text("9007199254740993"), text("t")}));
}

TEST(PgoutputDecode, captured_updates_and_deletes_carry_old_tuples_by_replica_identity) {
    const auto cap = load("update_delete_v1.hex");
    const auto msgs = decode_all(cap, 1);
    ASSERT_EQ(kinds(msgs),
              "BEGIN TYPE RELATION INSERT COMMIT "
              "BEGIN UPDATE COMMIT "
              "BEGIN RELATION UPDATE COMMIT "
              "BEGIN UPDATE COMMIT "
              "BEGIN DELETE COMMIT "
              "BEGIN DELETE COMMIT");
    expect_well_formed_transactions(cap, msgs);
    const std::string x5000(5000, 'x');

    // REPLICA IDENTITY FULL: the whole old row; the unchanged TOASTed column is 'u'.
    const auto& upd_full = std::get<Update>(msgs[6]);
    EXPECT_EQ(upd_full.old_kind, OldTuple::Full);
    EXPECT_EQ(upd_full.old_tuple, (Tuple{text("3"), kNull, text("three"), kNull, kNull, kNull,
                                         kNull, kNull, text(x5000)}));
    EXPECT_EQ(upd_full.new_tuple, (Tuple{text("3"), text("0.500"), text("three*"), kNull, kNull,
                                         kNull, kNull, kNull, kUnchanged}));

    // REPLICA IDENTITY DEFAULT, key unchanged: no old tuple.
    const auto& upd_nokey = std::get<Update>(msgs[10]);
    EXPECT_EQ(upd_nokey.old_kind, OldTuple::None);
    EXPECT_TRUE(upd_nokey.old_tuple.empty());
    EXPECT_EQ(upd_nokey.new_tuple, (Tuple{text("1"), text("uno")}));

    // Key changed: the old key only.
    const auto& upd_key = std::get<Update>(msgs[13]);
    EXPECT_EQ(upd_key.old_kind, OldTuple::Key);
    EXPECT_EQ(upd_key.old_tuple, (Tuple{text("2"), kNull}));
    EXPECT_EQ(upd_key.new_tuple, (Tuple{text("20"), text("two")}));

    const auto& del_full = std::get<Delete>(msgs[16]);
    EXPECT_EQ(del_full.old_kind, OldTuple::Full);
    EXPECT_EQ(del_full.old_tuple, (Tuple{text("3"), text("0.500"), text("three*"), kNull, kNull,
                                         kNull, kNull, kNull, text(x5000)}));
    const auto& del_key = std::get<Delete>(msgs[19]);
    EXPECT_EQ(del_key.old_kind, OldTuple::Key);
    EXPECT_EQ(del_key.old_tuple, (Tuple{text("20"), kNull}));

    // The rolled-back insert of 99 is not decoded at all.
    for (const auto& c : cap) {
        EXPECT_EQ(c.data.find("rolled back"), std::string::npos);
    }
}

TEST(PgoutputDecode, captured_messages_and_truncates) {
    const auto cap = load("message_truncate_v1.hex");
    const auto msgs = decode_all(cap, 1);
    ASSERT_EQ(kinds(msgs),
              "BEGIN RELATION INSERT MESSAGE COMMIT "
              "MESSAGE "
              "BEGIN RELATION TRUNCATE COMMIT "
              "BEGIN TYPE RELATION RELATION TRUNCATE COMMIT");

    const auto& tx_msg = std::get<LogicalMessage>(msgs[3]);
    EXPECT_TRUE(tx_msg.transactional);
    EXPECT_EQ(tx_msg.prefix, "pgt.test");
    EXPECT_EQ(tx_msg.content, "transactional ü");
    EXPECT_EQ(tx_msg.lsn, cap[3].lsn);
    // A message's LSN is the end of its WAL record; here the commit record follows it.
    EXPECT_EQ(tx_msg.lsn, std::get<Begin>(msgs[0]).final_lsn);

    // Outside any transaction: xid 0 in the slot's row, no BEGIN/COMMIT around it.
    const auto& bare = std::get<LogicalMessage>(msgs[5]);
    EXPECT_FALSE(bare.transactional);
    EXPECT_EQ(bare.prefix, "pgt.test");
    EXPECT_EQ(bare.content, "");
    EXPECT_EQ(cap[5].xid, 0U);
    EXPECT_EQ(bare.lsn, cap[5].lsn);

    const auto& def = std::get<Relation>(msgs[7]);
    const auto& t1 = std::get<Truncate>(msgs[8]);
    EXPECT_EQ(t1.relation_oids, std::vector<Oid>{def.oid});
    EXPECT_FALSE(t1.cascade());
    EXPECT_FALSE(t1.restart_identity());

    const auto& full = std::get<Relation>(msgs[12]);
    const auto& mixed = std::get<Relation>(msgs[13]);
    EXPECT_EQ(full.name, "ri_full");
    EXPECT_EQ(mixed.name, "Mixed Case");
    const auto& t2 = std::get<Truncate>(msgs[14]);
    EXPECT_EQ(t2.relation_oids, (std::vector<Oid>{full.oid, mixed.oid}));
    EXPECT_TRUE(t2.cascade());
    EXPECT_TRUE(t2.restart_identity());

    // Transactions are well formed around the bare message too.
    std::vector<Captured> in_tx;
    std::vector<Message> in_tx_msgs;
    for (std::size_t i = 0; i < cap.size(); ++i) {
        if (i != 5) {
            in_tx.push_back(cap[i]);
            in_tx_msgs.push_back(msgs[i]);
        }
    }
    expect_well_formed_transactions(in_tx, in_tx_msgs);
}

TEST(PgoutputDecode, captured_streamed_transaction_in_protocol_2) {
    const auto cap = load("stream_v2.hex");
    const auto msgs = decode_all(cap, 2);
    ASSERT_FALSE(msgs.empty());
    const Xid xid = std::get<StreamStart>(msgs.front()).xid;
    EXPECT_TRUE(std::get<StreamStart>(msgs.front()).first_segment);
    const auto& commit = std::get<StreamCommit>(msgs.back());
    EXPECT_EQ(commit.xid, xid);
    EXPECT_LT(commit.commit_lsn, commit.end_lsn);
    EXPECT_EQ(cap.back().lsn, commit.end_lsn);

    int starts = 0;
    int stops = 0;
    std::vector<std::string> ids;
    bool inside = false;
    for (std::size_t i = 0; i + 1 < msgs.size(); ++i) {
        EXPECT_EQ(cap[i].xid, xid);
        if (const auto* s = std::get_if<StreamStart>(&msgs[i])) {
            EXPECT_FALSE(inside);
            EXPECT_EQ(s->xid, xid);
            EXPECT_EQ(s->first_segment, starts == 0);
            inside = true;
            ++starts;
        } else if (std::holds_alternative<StreamStop>(msgs[i])) {
            EXPECT_TRUE(inside);
            inside = false;
            ++stops;
        } else if (const auto* r = std::get_if<Relation>(&msgs[i])) {
            EXPECT_EQ(r->xid, xid);
            EXPECT_EQ(r->name, "ri_default");
        } else {
            const auto& ins = std::get<Insert>(msgs[i]);
            EXPECT_TRUE(inside);
            EXPECT_EQ(ins.xid, xid);
            ASSERT_EQ(ins.new_tuple.size(), 2U);
            ids.push_back(ins.new_tuple[0].data);
            EXPECT_EQ(ins.new_tuple[1].data, "streamed " + ins.new_tuple[0].data);
        }
    }
    EXPECT_GE(starts, 2) << "the capture should stream in several chunks";
    EXPECT_EQ(starts, stops);
    ASSERT_EQ(ids.size(), 1500U);
    for (std::size_t i = 0; i < ids.size(); ++i) {
        EXPECT_EQ(ids[i], std::to_string(i + 1));
    }
}

TEST(PgoutputDecode, stream_messages_need_protocol_2) {
    const auto cap = load("stream_v2.hex");
    EXPECT_THROW(decode(cap.front().data, 1), DecodeError);
    // A streamed INSERT read as if outside a stream misreads the xid as the relation OID
    // and then finds no 'N' where it expects one.
    EXPECT_THROW(decode(cap[2].data, 2, false), DecodeError);
    EXPECT_THROW(decode(cap[2].data, 3), std::invalid_argument);
    EXPECT_THROW(decode(cap[2].data, 1, true), std::invalid_argument);

    StreamDecoder d(2);
    EXPECT_THROW(d.next(std::string(1, 'E')), DecodeError);  // STOP outside a stream
    d.next(cap.front().data);
    EXPECT_TRUE(d.in_stream());
    EXPECT_THROW(d.next(cap.front().data), DecodeError);  // START inside a stream
    EXPECT_TRUE(d.in_stream());
}

TEST(PgoutputDecode, stream_abort_and_origin_synthetic) {
    // STREAM ABORT: xid 5, subxid 7.
    const std::string abort_msg("A\0\0\0\x05\0\0\0\x07", 9);
    const auto a = std::get<StreamAbort>(decode(abort_msg, 2));
    EXPECT_EQ(a.xid, 5U);
    EXPECT_EQ(a.subxid, 7U);
    // ORIGIN: LSN 1/2, name "node1".
    const std::string origin_msg("O\0\0\0\x01\0\0\0\x02node1\0", 15);
    const auto o = std::get<Origin>(decode(origin_msg, 1));
    EXPECT_EQ(o.commit_lsn, 0x100000002ULL);
    EXPECT_EQ(o.name, "node1");
}

// ---- errors ----

std::string decode_error(std::string_view bytes, int proto = 1) {
    try {
        decode(bytes, proto);
    } catch (const DecodeError& e) {
        return e.what();
    }
    return "(no error)";
}

TEST(PgoutputErrors, name_the_message_offset_and_what_was_expected) {
    // INSERT, relation 0x4007, 'N', 1 column, 't', then only 2 of the 4 length bytes.
    const std::string insert("I\0\0\x40\x07N\0\x01t\0\0", 11);
    EXPECT_EQ(decode_error(insert),
              "pgoutput: truncated INSERT message at offset 9: expected 4 bytes of column "
              "length, 2 left");
    const std::string short_data(
        "I\0\0\x40\x07N\0\x01t\0\0\0\x05"
        "ab",
        15);
    EXPECT_EQ(decode_error(short_data),
              "pgoutput: truncated INSERT message at offset 13: expected 5 bytes of column 1 "
              "data, 2 left");
    EXPECT_EQ(decode_error(""),
              "pgoutput: truncated message at offset 0: expected 1 byte of message type, 0 left");
    EXPECT_EQ(decode_error("z"), "pgoutput: unknown message type 'z' (0x7A) at offset 0");
    EXPECT_EQ(decode_error(std::string("I\0\0\x40\x07X", 6)),
              "pgoutput: invalid INSERT message at offset 5: unexpected tuple type 'X' (0x58) "
              "(expected 'N')");
    EXPECT_EQ(decode_error(std::string("I\0\0\x40\x07N\0\x01q", 9)),
              "pgoutput: invalid INSERT message at offset 8: unknown kind 'q' (0x71) of column 1 "
              "(expected 'n', 'u', 't' or 'b')");
    EXPECT_EQ(decode_error(std::string("I\0\0\x40\x07N\0\x01t\xff\xff\xff\xfe", 13)),
              "pgoutput: invalid INSERT message at offset 9: negative column length -2");
    EXPECT_EQ(decode_error(std::string("I\0\0\x40\x07N\0\x01n!!", 11)),
              "pgoutput: invalid INSERT message at offset 9: 2 trailing bytes after the message");
    EXPECT_EQ(decode_error(std::string("R\0\0\0\x01public", 11)),
              "pgoutput: invalid RELATION message at offset 5: expected a NUL-terminated "
              "namespace, 6 bytes left without a NUL");
    EXPECT_EQ(decode_error(std::string("E")),
              "pgoutput: invalid STREAM STOP message at offset 0: needs protocol version 2, the "
              "slot is read with version 1");
    // A huge column count fails before anything is allocated for it.
    EXPECT_EQ(decode_error(std::string("I\0\0\x40\x07N\xff\xff", 8)),
              "pgoutput: truncated INSERT message at offset 8: expected 65535 bytes of column "
              "kinds, 0 left");
    EXPECT_EQ(decode_error(std::string("T\xff\xff\xff\xff\0", 6)),
              "pgoutput: truncated TRUNCATE message at offset 6: expected 17179869180 bytes of "
              "relation OIDs, 0 left");
    try {
        decode(insert, 1);
        FAIL();
    } catch (const DecodeError& e) {
        EXPECT_EQ(e.offset(), 9U);
    }
}

// Every captured message, cut short at every length, must fail with DecodeError.
TEST(PgoutputErrors, every_truncation_of_captured_messages_is_a_decode_error) {
    for (const char* file : {"insert_v1.hex", "update_delete_v1.hex", "message_truncate_v1.hex"}) {
        for (const auto& c : load(file)) {
            const std::size_t step = std::max<std::size_t>(1, c.data.size() / 200);
            for (std::size_t n = 0; n < c.data.size(); n += step) {
                EXPECT_THROW(decode(std::string_view(c.data).substr(0, n), 1), DecodeError)
                    << file << " length " << n << " of " << c.data.size();
            }
        }
    }
}

// Bounded fuzzing: random truncations and byte mutations of real messages either decode
// or throw DecodeError; never anything else (run under ASan/UBSan to catch memory errors).
TEST(PgoutputErrors, mutated_captured_messages_decode_or_throw_decode_error) {
    std::vector<std::string> seeds;
    for (const char* file : {"insert_v1.hex", "update_delete_v1.hex", "message_truncate_v1.hex"}) {
        for (auto& c : load(file)) {
            if (c.data.size() < 400) {  // long TOASTed rows only slow the loop down
                seeds.push_back(std::move(c.data));
            }
        }
    }
    const auto stream = load("stream_v2.hex");
    for (std::size_t i = 0; i < 4; ++i) {
        seeds.push_back(stream[i].data);
    }
    seeds.push_back(stream.back().data);
    ASSERT_GT(seeds.size(), 20U);

    std::mt19937 rng(20261130);
    int decoded = 0;
    int rejected = 0;
    std::vector<ChangeRow> rows;
    RelationCache cache;
    for (int iter = 0; iter < 100000; ++iter) {
        std::string m = seeds[rng() % seeds.size()];
        const unsigned mutations = rng() % 4;
        for (unsigned k = 0; k < mutations && !m.empty(); ++k) {
            const std::size_t pos = rng() % m.size();
            switch (rng() % 4) {
                case 0:
                    m[pos] = static_cast<char>(rng());
                    break;
                case 1:
                    m[pos] = static_cast<char>(m[pos] ^ (1U << (rng() % 8)));
                    break;
                case 2:
                    m[pos] = (rng() % 2) != 0 ? '\xff' : '\0';
                    break;
                default:
                    m.insert(pos, 1, static_cast<char>(rng()));
                    break;
            }
        }
        if (rng() % 3 == 0 && !m.empty()) {
            m.resize(rng() % m.size());
        }
        const int proto = 1 + static_cast<int>(rng() % 2);
        const bool in_stream = proto == 2 && rng() % 2 == 0;
        try {
            const Message msg = decode(m, proto, in_stream);
            ++decoded;
            try {
                rows.clear();
                cache.apply(msg, rows);
            } catch (const ChangeError&) {
            }
        } catch (const DecodeError&) {
            ++rejected;
        }
    }
    EXPECT_GT(decoded, 1000);
    EXPECT_GT(rejected, 1000);
}

// ---- change rows ----

TEST(PgoutputChanges, inserts_and_full_identity_updates_and_deletes_become_rows) {
    RelationCache cache;
    std::vector<ChangeRow> rows;
    for (const auto& c : load("insert_v1.hex")) {
        cache.apply(decode(c.data, 1), rows);
    }
    ASSERT_EQ(rows.size(), 5U);
    const Relation* full = cache.find(rows[0].relation_oid);
    ASSERT_NE(full, nullptr);
    EXPECT_EQ(full->name, "ri_full");
    EXPECT_EQ(cache.find_type(full->columns[6].type_oid)->name, "mood");
    EXPECT_EQ(rows[0].action, ChangeRow::Action::Insert);
    EXPECT_EQ(rows[0].values[2], "grüße, 世界 ✓");
    EXPECT_EQ(rows[1].values, (Values{"2", std::nullopt, std::nullopt, std::nullopt, std::nullopt,
                                      std::nullopt, std::nullopt, std::nullopt, std::nullopt}));
    EXPECT_EQ(rows[4].values, (Values{"9007199254740993", "t"}));

    const auto cap = load("update_delete_v1.hex");
    rows.clear();
    const std::string x5000(5000, 'x');
    for (std::size_t i = 0; i <= 7; ++i) {  // insert 3, update 3
        cache.apply(decode(cap[i].data, 1), rows);
    }
    ASSERT_EQ(rows.size(), 3U);
    EXPECT_EQ(rows[1].action, ChangeRow::Action::Delete);
    EXPECT_EQ(rows[1].values, (Values{"3", std::nullopt, "three", std::nullopt, std::nullopt,
                                      std::nullopt, std::nullopt, std::nullopt, x5000}));
    EXPECT_EQ(rows[2].action, ChangeRow::Action::Insert);
    // The unchanged TOASTed "big" takes the old row's value.
    EXPECT_EQ(rows[2].values, (Values{"3", "0.500", "three*", std::nullopt, std::nullopt,
                                      std::nullopt, std::nullopt, std::nullopt, x5000}));

    rows.clear();
    cache.apply(decode(cap[16].data, 1), rows);  // delete 3
    ASSERT_EQ(rows.size(), 1U);
    EXPECT_EQ(rows[0].action, ChangeRow::Action::Delete);
    EXPECT_EQ(rows[0].values[2], "three*");
}

std::string change_error(RelationCache& cache, const Message& m) {
    std::vector<ChangeRow> rows;
    try {
        cache.apply(m, rows);
    } catch (const ChangeError& e) {
        EXPECT_TRUE(rows.empty());
        return e.what();
    }
    return "(no error)";
}

TEST(PgoutputChanges, default_identity_updates_and_deletes_require_replica_identity_full) {
    const auto cap = load("update_delete_v1.hex");
    RelationCache cache;
    cache.add(std::get<Relation>(decode(cap[9].data, 1)));
    EXPECT_EQ(change_error(cache, decode(cap[10].data, 1)),
              "pgoutput: UPDATE of \"public\".\"ri_default\" has no old row: REPLICA IDENTITY "
              "FULL is required (ALTER TABLE \"public\".\"ri_default\" REPLICA IDENTITY FULL)");
    EXPECT_EQ(change_error(cache, decode(cap[13].data, 1)),
              "pgoutput: UPDATE of \"public\".\"ri_default\" has only the key of the old row: "
              "REPLICA IDENTITY FULL is required (ALTER TABLE \"public\".\"ri_default\" REPLICA "
              "IDENTITY FULL)");
    EXPECT_EQ(change_error(cache, decode(cap[19].data, 1)),
              "pgoutput: DELETE of \"public\".\"ri_default\" has only the key of the old row: "
              "REPLICA IDENTITY FULL is required (ALTER TABLE \"public\".\"ri_default\" REPLICA "
              "IDENTITY FULL)");
}

TEST(PgoutputChanges, rejects_unknown_relations_binary_data_and_unresolvable_toast) {
    RelationCache cache;
    Relation rel;
    rel.oid = 42;
    rel.schema = "s";
    rel.name = "t";
    rel.replica_identity = ReplicaIdentity::Full;
    rel.columns = {{1, "a", 23, -1}, {1, "b", 25, -1}};
    EXPECT_EQ(change_error(cache, Insert{std::nullopt, 42, {text("1"), kNull}}),
              "pgoutput: INSERT of relation OID 42 before any RELATION message for it");
    cache.add(rel);
    EXPECT_EQ(change_error(cache, Insert{std::nullopt, 42, {text("1")}}),
              "pgoutput: INSERT of \"s\".\"t\" has 1 columns, its RELATION 2");
    EXPECT_EQ(
        change_error(cache, Insert{std::nullopt, 42, {text("1"), {TupleValue::Kind::Binary, "x"}}}),
        "pgoutput: INSERT of \"s\".\"t\" has binary data in column \"b\": read the slot without "
        "the 'binary' option");
    EXPECT_EQ(change_error(cache, Insert{std::nullopt, 42, {text("1"), kUnchanged}}),
              "pgoutput: INSERT of \"s\".\"t\" has an unchanged TOASTed value in column \"b\" and "
              "no old value for it: REPLICA IDENTITY FULL is required");
    Update upd{std::nullopt, 42, OldTuple::Full, {text("1"), kUnchanged}, {text("2"), kUnchanged}};
    EXPECT_EQ(change_error(cache, upd),
              "pgoutput: UPDATE of \"s\".\"t\" has an unchanged TOASTed value in column \"b\" and "
              "no old value for it: REPLICA IDENTITY FULL is required");
    std::vector<ChangeRow> rows;
    EXPECT_FALSE(cache.apply(Begin{}, rows));
    EXPECT_TRUE(rows.empty());
}

}  // namespace
}  // namespace pgt::pgoutput
