// State copies (docs/architecture.md, "Citus sources: deltas at their buffers' frontier"): a
// Citus source whose rows a differential delta reads (the other side of a join, a rescanned
// group, EXISTS) is read from a coordinator-local copy, pgtrickle_changes.state_<stable name>,
// instead of through the Citus executor. The copy has the buffer's columns plus
// "__pgt_image" (pgtrickle.row_image_id of them), one row per source row. Every drain that
// writes the source's buffer applies the same rows to the copy in the same transaction, so
// any snapshot sees as much of the copy as of the buffer: the delta reads both under the
// refresh's one snapshot. A full refresh that locks and drains the source exactly fills the
// copy again from the source.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

extern "C" {
#include "postgres.h"
}

namespace pgt::capture::state {

/// The qualified, quoted copy of captured source `key`, when it has one.
std::optional<std::string> copy_of(const std::string& key);

struct CopyInfo {
    std::string name;  ///< qualified, quoted
    bool filled;       ///< false: created (or rebuilt) and not filled yet
};
/// The copy of `key` and whether it is filled, when it has one.
std::optional<CopyInfo> copy_info(const std::string& key);

/// Give Citus source `relid` (captured: its buffer exists) a copy if it has none: empty,
/// indexed on the image, on the distribution column and on the source's plain indexes'
/// columns; and index it on each of `lookup_keys` (attribute numbers: the columns a
/// reader's delta looks its rows up by), including the `used` columns (those the reader
/// reads; 0: all), so that a lookup reads the index alone. Its first reader's first (full)
/// refresh fills it (refill).
void ensure(Oid relid, const std::vector<std::vector<int>>& lookup_keys, const std::set<int>& used);

/// Fill the copy of `relid` (when it has one) from the source: its columns brought in line
/// with the buffer's first. The caller holds the source in SHARE mode and has drained its
/// slots exactly, so that the copy is at the buffer's frontier.
void refill(Oid relid);

/// After the buffer's columns changed (ALTER TABLE of the source): a copy whose columns no
/// longer match is emptied and rebuilt with the buffer's. Returns whether it was: its
/// readers must recompute (which refills it).
bool sync_columns(const std::string& key);

/// Drop the copy of `key` if it has one.
void drop(const std::string& key);

/// Applies drained buffer rows to a copy, batch by batch, in the draining transaction.
class Applier {
  public:
    explicit Applier(const std::string& key);
    /// Whether the source has a copy to keep.
    bool active() const { return !copy_.empty(); }
    /// Apply the buffer rows at `tids` ("(block,offset)"): inserted rows added, one copy of
    /// each deleted row removed (by image); markers are left to the readers (they recompute,
    /// which refills the copy).
    void apply(const std::vector<std::string>& tids);
    /// Deleted rows that found no copy so far (a deletion decoded before its insertion on
    /// another node): the copy is wrong until refilled.
    int64_t unmatched() const { return unmatched_; }

  private:
    std::string copy_, buffer_;
    std::string image_;   ///< the image of a buffer row "b"
    std::string insert_;  ///< INSERT INTO the copy SELECT a buffer row "b"'s values, image
    int64_t unmatched_ = 0;
};

}  // namespace pgt::capture::state
