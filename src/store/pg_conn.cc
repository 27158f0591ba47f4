#include "store/pg_conn.h"

#include <libpq-fe.h>

#include <chrono>
#include <cstring>
#include <thread>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace agentd::store::pg {
namespace {

constexpr unsigned int kByteaOid = 17;
constexpr unsigned int kInt8Oid = 20;
constexpr unsigned int kInt4Oid = 23;
constexpr unsigned int kTextOid = 25;
constexpr unsigned int kFloat8Oid = 701;
constexpr unsigned int kBoolOid = 16;

/// The status payload key that carries the SQLSTATE of a failed statement.
constexpr absl::string_view kSqlStatePayload = "agentd.postgres/sqlstate";

/// SQLSTATE used for a connection that broke without a server error.
constexpr absl::string_view kConnectionLost = "08006";

uint64_t ReadBigEndian(absl::string_view b) {
  uint64_t v = 0;
  for (const char c : b) v = (v << 8) | static_cast<uint8_t>(c);
  return v;
}

std::string BigEndian64(uint64_t v) {
  std::string out(8, '\0');
  for (int i = 7; i >= 0; --i) {
    out[static_cast<size_t>(i)] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
  return out;
}

std::string Trimmed(const char* msg) {
  if (msg == nullptr) return "";
  return std::string(absl::StripTrailingAsciiWhitespace(msg));
}

absl::Status WithState(absl::Status status, absl::string_view sqlstate) {
  status.SetPayload(kSqlStatePayload, absl::Cord(sqlstate));
  return status;
}

absl::Status ConnectionStatus(PGconn* conn, absl::string_view what) {
  return WithState(absl::UnavailableError(absl::StrCat("postgres ", what, ": connection lost (",
                                                       Trimmed(PQerrorMessage(conn)), ")")),
                   kConnectionLost);
}

/// Maps a failed result to a status (see the header).
absl::Status ToStatus(PGconn* conn, PGresult* res, absl::string_view what) {
  const char* state_c = res != nullptr ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : nullptr;
  if (state_c == nullptr || PQstatus(conn) == CONNECTION_BAD) {
    return ConnectionStatus(conn, what);
  }
  const std::string state = state_c;
  const std::string msg = absl::StrCat("postgres ", what, ": ",
                                       Trimmed(PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)),
                                       " (SQLSTATE ", state, ")");
  if (state == "23505") return WithState(absl::AlreadyExistsError(msg), state);
  if (state == "40001" || state == "40P01") return WithState(absl::AbortedError(msg), state);
  if (absl::StartsWith(state, "08") || state == "57P01" || state == "57P02" || state == "57P03") {
    return WithState(absl::UnavailableError(msg), state);
  }
  if (state == "53100" || state == "53200")
    return WithState(absl::ResourceExhaustedError(msg), state);
  if (state == "57014") return WithState(absl::DeadlineExceededError(msg), state);
  return WithState(absl::InternalError(msg), state);
}

}  // namespace

Param Bytes(absl::string_view bytes) { return {kByteaOid, std::string(bytes), true, false}; }
Param Int(int64_t v) { return {kInt8Oid, absl::StrCat(v), false, false}; }
Param Int4(int32_t v) { return {kInt4Oid, absl::StrCat(v), false, false}; }
Param Text(absl::string_view text) { return {kTextOid, std::string(text), false, false}; }
Param Double(double v) {
  uint64_t bits = 0;
  static_assert(sizeof(bits) == sizeof(v));
  std::memcpy(&bits, &v, sizeof(v));
  return {kFloat8Oid, BigEndian64(bits), true, false};
}
Param Bool(bool v) { return {kBoolOid, v ? "t" : "f", false, false}; }
Param Null(unsigned int type_oid) { return {type_oid, "", false, true}; }

// ---- Result ------------------------------------------------------------------------------

Result::~Result() {
  if (res_ != nullptr) PQclear(res_);
}

Result& Result::operator=(Result&& other) noexcept {
  if (this != &other) {
    if (res_ != nullptr) PQclear(res_);
    res_ = other.res_;
    other.res_ = nullptr;
  }
  return *this;
}

int Result::rows() const { return res_ == nullptr ? 0 : PQntuples(res_); }

int64_t Result::affected() const {
  if (res_ == nullptr) return 0;
  const char* n = PQcmdTuples(res_);
  return n == nullptr || *n == '\0' ? 0 : std::strtoll(n, nullptr, 10);
}

bool Result::IsNull(int row, int col) const { return PQgetisnull(res_, row, col) != 0; }

absl::string_view Result::Bytes(int row, int col) const {
  return absl::string_view(PQgetvalue(res_, row, col),
                           static_cast<size_t>(PQgetlength(res_, row, col)));
}

int64_t Result::Int(int row, int col) const {
  if (IsNull(row, col)) return 0;
  const absl::string_view b = Bytes(row, col);
  const uint64_t v = ReadBigEndian(b);
  switch (b.size()) {
    case 2:
      return static_cast<int16_t>(v);
    case 4:
      return static_cast<int32_t>(v);
    default:
      return static_cast<int64_t>(v);
  }
}

double Result::Double(int row, int col) const {
  if (IsNull(row, col)) return 0;
  const uint64_t bits = ReadBigEndian(Bytes(row, col));
  double v = 0;
  std::memcpy(&v, &bits, sizeof(v));
  return v;
}

bool Result::Bool(int row, int col) const {
  const absl::string_view b = Bytes(row, col);
  return !b.empty() && b[0] != 0;
}

std::string SqlState(const absl::Status& status) {
  const auto payload = status.GetPayload(kSqlStatePayload);
  return payload.has_value() ? std::string(*payload) : std::string();
}

bool IsRetryable(const absl::Status& status) {
  const std::string state = SqlState(status);
  return state == "40001" || state == "40P01";
}

bool IsConnectionError(const absl::Status& status) {
  const std::string state = SqlState(status);
  return absl::StartsWith(state, "08") || state == "57P01" || state == "57P02" || state == "57P03";
}

// ---- Conn --------------------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<Conn>> Conn::Connect(const std::string& dsn,
                                                    const std::string& setup_sql) {
  PGconn* raw = PQconnectdb(dsn.c_str());
  if (raw == nullptr) return absl::ResourceExhaustedError("postgres connect: out of memory");
  if (PQstatus(raw) != CONNECTION_OK) {
    // libpq's message names host and port, never the password.
    absl::Status st =
        absl::UnavailableError(absl::StrCat("postgres connect: ", Trimmed(PQerrorMessage(raw))));
    PQfinish(raw);
    return WithState(std::move(st), kConnectionLost);
  }
  // Notices (e.g. "relation already exists, skipping") would go to stderr: they carry nothing
  // the store acts on.
  PQsetNoticeProcessor(
      raw, [](void*, const char*) {}, nullptr);
  std::unique_ptr<Conn> conn(new Conn(raw, setup_sql));
  if (!setup_sql.empty()) {
    absl::Status st = conn->ExecScript("connection setup", setup_sql);
    if (!st.ok()) return st;
  }
  return conn;
}

Conn::~Conn() {
  if (conn_ != nullptr) PQfinish(conn_);
}

absl::StatusOr<Result> Conn::Exec(absl::string_view what, const std::string& sql,
                                  const std::vector<Param>& params) {
  std::vector<unsigned int> types(params.size());
  std::vector<const char*> values(params.size());
  std::vector<int> lengths(params.size());
  std::vector<int> formats(params.size());
  for (size_t i = 0; i < params.size(); ++i) {
    types[i] = params[i].type_oid;
    values[i] = params[i].null ? nullptr : params[i].value.data();
    lengths[i] = static_cast<int>(params[i].value.size());
    formats[i] = params[i].binary ? 1 : 0;
  }
  PGresult* raw = PQexecParams(conn_, sql.c_str(), static_cast<int>(params.size()), types.data(),
                               values.data(), lengths.data(), formats.data(), /*resultFormat=*/1);
  Result res(raw);
  const ExecStatusType st = raw == nullptr ? PGRES_FATAL_ERROR : PQresultStatus(raw);
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) return ToStatus(conn_, raw, what);
  return res;
}

absl::Status Conn::ExecScript(absl::string_view what, const std::string& sql) {
  PGresult* raw = PQexec(conn_, sql.c_str());
  Result res(raw);
  const ExecStatusType st = raw == nullptr ? PGRES_FATAL_ERROR : PQresultStatus(raw);
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) return ToStatus(conn_, raw, what);
  return absl::OkStatus();
}

bool Conn::Healthy() const {
  return PQstatus(conn_) == CONNECTION_OK && PQtransactionStatus(conn_) == PQTRANS_IDLE;
}

int Conn::BackendPid() const { return PQbackendPID(conn_); }

// ---- Pool --------------------------------------------------------------------------------

Pool::~Pool() {
  absl::MutexLock lock(&mu_);
  idle_.clear();
}

Pool::Lease::~Lease() {
  if (conn_ != nullptr) pool_->Return(std::move(conn_));
}

void Pool::Lease::Discard() {
  if (conn_ == nullptr) return;
  conn_.reset();
  absl::MutexLock lock(&pool_->mu_);
  --pool_->open_;
}

void Pool::Return(std::unique_ptr<Conn> conn) {
  const bool healthy = conn->Healthy();
  if (!healthy) conn.reset();  // closed outside the lock
  absl::MutexLock lock(&mu_);
  if (healthy) {
    idle_.push_back(std::move(conn));
  } else {
    --open_;
  }
}

absl::StatusOr<Pool::Lease> Pool::Acquire() {
  {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](Pool* p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(p->mu_) {
          return !p->idle_.empty() || p->open_ < p->options_.max_connections;
        },
        this));
    if (!idle_.empty()) {
      std::unique_ptr<Conn> conn = std::move(idle_.back());
      idle_.pop_back();
      return Lease(this, std::move(conn));
    }
    ++open_;
  }
  absl::StatusOr<std::unique_ptr<Conn>> conn = Conn::Connect(options_.dsn, options_.setup_sql);
  if (!conn.ok()) {
    absl::MutexLock lock(&mu_);
    --open_;
    return conn.status();
  }
  return Lease(this, *std::move(conn));
}

absl::Status Pool::Transaction(Mode mode, const std::function<absl::Status(Conn&)>& body) {
  const std::string begin =
      mode == Mode::kReadWrite ? "BEGIN" : "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";
  absl::Status last;
  for (int attempt = 1; attempt <= options_.max_attempts; ++attempt) {
    if (attempt > 1 && IsRetryable(last)) {
      // A short, growing pause lets the transaction that won the conflict finish.
      std::this_thread::sleep_for(std::chrono::microseconds(500 * attempt * attempt));
    }
    absl::StatusOr<Lease> lease = Acquire();
    if (!lease.ok()) return lease.status();
    absl::Status st = (*lease)->ExecScript("begin", begin);
    if (!st.ok()) {
      if (!IsConnectionError(st)) return st;
      lease->Discard();  // a terminated backend: reconnect and run again
      last = st;
      continue;
    }
    st = body(**lease);
    if (!st.ok()) {
      if (IsConnectionError(st)) {
        lease->Discard();
        last = st;
        continue;
      }
      if (!(*lease)->ExecScript("rollback", "ROLLBACK").ok()) lease->Discard();
      if (IsRetryable(st)) {
        last = st;
        continue;
      }
      return st;
    }
    st = (*lease)->ExecScript("commit", "COMMIT");
    if (st.ok()) return st;
    if (IsRetryable(st)) {
      last = st;
      continue;
    }
    if (IsConnectionError(st)) {
      lease->Discard();
      return absl::UnavailableError(absl::StrCat(
          "postgres: the connection was lost during COMMIT; the write may or may not have been "
          "applied (",
          st.message(), ")"));
    }
    return st;
  }
  if (IsRetryable(last)) {
    return absl::AbortedError(absl::StrCat("postgres: transaction gave up after ",
                                           options_.max_attempts, " attempts: ", last.message()));
  }
  return last;
}

absl::StatusOr<Result> Pool::Exec(absl::string_view what, const std::string& sql,
                                  const std::vector<Param>& params) {
  absl::Status last;
  for (int attempt = 1; attempt <= options_.max_attempts; ++attempt) {
    absl::StatusOr<Lease> lease = Acquire();
    if (!lease.ok()) return lease.status();
    absl::StatusOr<Result> res = (*lease)->Exec(what, sql, params);
    if (res.ok() || !(IsConnectionError(res.status()) || IsRetryable(res.status()))) return res;
    if (IsConnectionError(res.status())) lease->Discard();
    last = res.status();
  }
  return last;
}

}  // namespace agentd::store::pg
