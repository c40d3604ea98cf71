// Process-local state shared between the SQL API and the event triggers.
#pragma once

namespace pgt {

/// True while pg_trickle itself drops a stream table's objects (the sql_drop event trigger
/// then lets the drop through).
extern bool g_dropping;

/// Sets g_dropping for a C++ scope; restored also when an error unwinds the scope.
class DroppingGuard {
  public:
    DroppingGuard() : saved_(g_dropping) { g_dropping = true; }
    ~DroppingGuard() { g_dropping = saved_; }
    DroppingGuard(const DroppingGuard&) = delete;
    DroppingGuard& operator=(const DroppingGuard&) = delete;

  private:
    bool saved_;
};

}  // namespace pgt
