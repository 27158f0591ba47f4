// A small RAII layer over libpq for PostgresStore: results, connections, a connection pool and
// the transaction runner (retries, error mapping). Include only from src/store/pg_*.cc and the
// store's tests; nothing outside src/store sees libpq.
//
// Every statement is sent with PQexecParams: values travel as parameters (bytea and float8 in
// binary, integers as text with an explicit type), never inside the SQL text. Results are
// requested in binary format, so bytea columns come back as raw bytes.
//
// Error mapping (ToStatus): SQLSTATE 23505 (unique violation) → ALREADY_EXISTS; 40001
// (serialization failure) and 40P01 (deadlock) → ABORTED, marked retryable so that
// PgPool::Transaction runs the transaction again; connection failures (class 08, 57P01..57P03,
// CONNECTION_BAD) → UNAVAILABLE; anything else → INTERNAL. Messages carry the server's message
// and SQLSTATE, never the connection string.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

// libpq's types, so that this header does not pull in libpq-fe.h.
typedef struct pg_conn PGconn;
typedef struct pg_result PGresult;

namespace agentd::store::pg {

/// One statement parameter. Build with the helpers below.
struct Param {
  unsigned int type_oid = 0;  // 17 bytea, 20 int8, 23 int4, 25 text, 701 float8, 16 bool
  std::string value;
  bool binary = false;
  bool null = false;
};
Param Bytes(absl::string_view bytes);  // bytea, binary
Param Int(int64_t v);                  // int8
Param Int4(int32_t v);                 // int4
Param Text(absl::string_view text);    // text (must not contain NUL)
Param Double(double v);                // float8, binary (exact)
Param Bool(bool v);
Param Null(unsigned int type_oid);

/// A query result (owned). Columns are binary: use the typed getters.
class Result {
 public:
  Result() = default;
  explicit Result(PGresult* res) : res_(res) {}
  ~Result();
  Result(Result&& other) noexcept : res_(other.res_) { other.res_ = nullptr; }
  Result& operator=(Result&& other) noexcept;
  Result(const Result&) = delete;
  Result& operator=(const Result&) = delete;

  int rows() const;
  /// Rows changed by an INSERT/UPDATE/DELETE.
  int64_t affected() const;
  bool IsNull(int row, int col) const;
  absl::string_view Bytes(int row, int col) const;
  /// An int2, int4 or int8 column (by its binary length); 0 for NULL.
  int64_t Int(int row, int col) const;
  double Double(int row, int col) const;
  bool Bool(int row, int col) const;

 private:
  PGresult* res_ = nullptr;
};

/// The SQLSTATE carried by a status made by ToStatus ("" when none).
std::string SqlState(const absl::Status& status);
/// True for a serialization failure or a deadlock: the transaction may simply run again.
bool IsRetryable(const absl::Status& status);
/// True when the connection broke (the statement may not have reached the server).
bool IsConnectionError(const absl::Status& status);

/// One connection. Not thread-safe: a connection is used by one thread at a time (the pool
/// hands it out).
class Conn {
 public:
  /// Connects and runs `setup_sql` (e.g. SET synchronous_commit). UNAVAILABLE when the server
  /// cannot be reached; the message never includes the connection string.
  static absl::StatusOr<std::unique_ptr<Conn>> Connect(const std::string& dsn,
                                                       const std::string& setup_sql);
  ~Conn();
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;

  /// Runs one parameterized statement. `what` names it in error messages.
  absl::StatusOr<Result> Exec(absl::string_view what, const std::string& sql,
                              const std::vector<Param>& params = {});
  /// Runs a script without parameters (several statements; migrations, BEGIN/COMMIT).
  absl::Status ExecScript(absl::string_view what, const std::string& sql);
  /// True when the connection is usable and idle (no transaction open).
  bool Healthy() const;
  /// The backend's process id (pg_backend_pid), for tests that terminate it.
  int BackendPid() const;
  PGconn* raw() { return conn_; }

 private:
  Conn(PGconn* conn, std::string setup_sql) : conn_(conn), setup_sql_(std::move(setup_sql)) {}
  PGconn* conn_;
  std::string setup_sql_;
};

struct PoolOptions {
  std::string dsn;
  int max_connections = 8;
  std::string setup_sql;  // run on every new connection
  int max_attempts = 5;   // of a transaction that hits 40001/40P01 or a broken connection
};

/// A fixed-size pool of connections, created lazily. Thread-safe.
class Pool {
 public:
  explicit Pool(PoolOptions options) : options_(std::move(options)) {}
  ~Pool();
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  /// A connection lent to the caller; returned to the pool when destroyed (dropped instead when
  /// it is broken or left inside a transaction).
  class Lease {
   public:
    Lease(Pool* pool, std::unique_ptr<Conn> conn) : pool_(pool), conn_(std::move(conn)) {}
    ~Lease();
    Lease(Lease&&) = default;
    Conn* operator->() { return conn_.get(); }
    Conn& operator*() { return *conn_; }
    /// Drops the connection instead of returning it (after an error that broke it).
    void Discard();

   private:
    Pool* pool_;
    std::unique_ptr<Conn> conn_;
  };

  /// Waits for a free connection (creating one while under max_connections). UNAVAILABLE when a
  /// new connection cannot be made.
  absl::StatusOr<Lease> Acquire();

  enum class Mode { kReadWrite, kReadOnlySnapshot };
  /// Runs `body` inside BEGIN … COMMIT on one connection. kReadWrite is READ COMMITTED (the
  /// bodies take row locks where they read-check-write); kReadOnlySnapshot is REPEATABLE READ
  /// READ ONLY (one snapshot for multi-statement reads). When `body` or COMMIT fails with a
  /// serialization failure or deadlock, or the connection breaks before COMMIT is sent, the
  /// transaction is rolled back and run again (with a fresh connection), up to max_attempts;
  /// `body` must therefore reset whatever it outputs. A connection lost during COMMIT is
  /// UNAVAILABLE (the outcome is unknown). Any other error of `body` rolls back and is returned.
  absl::Status Transaction(Mode mode, const std::function<absl::Status(Conn&)>& body);
  absl::Status Transaction(const std::function<absl::Status(Conn&)>& body) {
    return Transaction(Mode::kReadWrite, body);
  }
  /// One statement outside an explicit transaction, retried like Transaction on a broken
  /// connection (statements run this way must be safe to repeat: reads, idempotent writes).
  absl::StatusOr<Result> Exec(absl::string_view what, const std::string& sql,
                              const std::vector<Param>& params = {});

 private:
  void Return(std::unique_ptr<Conn> conn);

  const PoolOptions options_;
  absl::Mutex mu_;
  std::vector<std::unique_ptr<Conn>> idle_ ABSL_GUARDED_BY(mu_);
  int open_ ABSL_GUARDED_BY(mu_) = 0;  // connections in existence (idle or lent)
};

}  // namespace agentd::store::pg
