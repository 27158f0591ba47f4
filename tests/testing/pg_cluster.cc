#include "testing/pg_cluster.h"

#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "testing/free_port.h"
#include "testing/subprocess.h"

namespace agentd::testing {
namespace {

constexpr char kDefaultBinDir[] = "/usr/lib/postgresql/15/bin";
constexpr auto kStartTimeout = std::chrono::seconds(60);

absl::Mutex g_shared_mu;
PgCluster* g_shared ABSL_GUARDED_BY(g_shared_mu) = nullptr;
absl::Status* g_shared_error ABSL_GUARDED_BY(g_shared_mu) = nullptr;

/// Stops the shared cluster after the last test of the binary.
class PgClusterEnvironment : public ::testing::Environment {
 public:
  void TearDown() override { PgCluster::StopShared(); }
};
[[maybe_unused]] ::testing::Environment* const kEnvironment =
    ::testing::AddGlobalTestEnvironment(new PgClusterEnvironment);

std::string Tail(const std::string& text, size_t n = 2000) {
  return text.size() <= n ? text : "..." + text.substr(text.size() - n);
}

}  // namespace

absl::StatusOr<PgCluster*> PgCluster::Shared() {
  absl::MutexLock lock(&g_shared_mu);
  if (g_shared != nullptr) return g_shared;
  if (g_shared_error != nullptr) return *g_shared_error;
  const char* state = std::getenv("AGENTD_TEST_PG_CLUSTER");
  absl::StatusOr<std::unique_ptr<PgCluster>> started =
      state != nullptr && *state != '\0' ? Attach(state) : Start();
  if (!started.ok()) {
    g_shared_error = new absl::Status(started.status());
    return *g_shared_error;
  }
  g_shared = started->release();
  return g_shared;
}

void PgCluster::StopShared() {
  absl::MutexLock lock(&g_shared_mu);
  delete g_shared;
  g_shared = nullptr;
}

absl::StatusOr<std::unique_ptr<PgCluster>> PgCluster::Start() {
  std::unique_ptr<PgCluster> cluster(new PgCluster());
  const char* env = std::getenv("AGENTD_PG_BIN");
  cluster->bin_dir_ = env != nullptr && *env != '\0' ? env : kDefaultBinDir;
  for (const char* tool : {"initdb", "pg_ctl", "postgres"}) {
    const std::string path = cluster->bin_dir_ + "/" + tool;
    if (access(path.c_str(), X_OK) != 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("PostgreSQL server binary ", path,
                       " not found: install PostgreSQL 15 (apt-get install postgresql-15) or set "
                       "AGENTD_PG_BIN to its bin directory"));
    }
  }
  absl::Status st = cluster->Init();
  if (!st.ok()) return st;
  return cluster;
}

absl::StatusOr<std::unique_ptr<PgCluster>> PgCluster::Attach(const std::string& state_file) {
  std::ifstream in(state_file);
  std::unique_ptr<PgCluster> cluster(new PgCluster());
  if (!(in >> cluster->port_) || !std::getline(in >> std::ws, cluster->dir_) ||
      !std::getline(in, cluster->bin_dir_)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "AGENTD_TEST_PG_CLUSTER names ", state_file,
        ", which does not describe a running test cluster (run the pg_cluster_start test, or "
        "unset the variable to start a cluster per test binary)"));
  }
  cluster->owned_ = false;
  cluster->started_ = true;
  absl::StatusOr<std::string> up = cluster->Query("postgres", "SELECT 1");
  if (!up.ok()) {
    return absl::UnavailableError(absl::StrCat("the test cluster of ", state_file,
                                               " does not answer: ", up.status().message()));
  }
  return cluster;
}

absl::Status PgCluster::Detach(const std::string& state_file) {
  std::ofstream out(state_file, std::ios::trunc);
  out << port_ << "\n" << dir_ << "\n" << bin_dir_ << "\n";
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", state_file));
  owned_ = false;
  return absl::OkStatus();
}

absl::Status PgCluster::StopFromState(const std::string& state_file) {
  absl::StatusOr<std::unique_ptr<PgCluster>> attached = Attach(state_file);
  std::error_code ec;
  std::filesystem::remove(state_file, ec);
  if (!attached.ok()) return attached.status();
  (*attached)->owned_ = true;  // the destructor stops it and removes its directory
  attached->reset();
  return absl::OkStatus();
}

absl::Status PgCluster::RunPg(const std::string& binary, const std::string& args) {
  // PostgreSQL refuses to run as root. cd /tmp: the server user may not be able to read the
  // current directory.
  const std::string runner = geteuid() == 0 ? "runuser -u postgres -- " : "";
  const std::string command =
      absl::StrCat("cd /tmp && ", runner, ShellQuote(bin_dir_ + "/" + binary), " ", args);
  const CommandResult r = RunCommand(command, dir_);
  if (r.code == 0) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(binary, " failed (exit ", r.code, "): ", Tail(r.all())));
}

absl::Status PgCluster::Init() {
  char tmpl[] = "/tmp/agentd-pg-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return absl::InternalError("mkdtemp failed");
  dir_ = tmpl;
  if (geteuid() == 0) {
    const passwd* pw = getpwnam("postgres");
    if (pw == nullptr) {
      return absl::FailedPreconditionError(
          "running as root, but there is no `postgres` user to run PostgreSQL as (install "
          "postgresql-15, which creates it)");
    }
    if (chown(dir_.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
      return absl::InternalError(absl::StrCat("chown ", dir_, " failed"));
    }
  }
  chmod(dir_.c_str(), 0700);
  const std::string data = dir_ + "/data";
  absl::Status st = RunPg("initdb", absl::StrCat("-D ", ShellQuote(data),
                                                 " -A trust -U agentd -E UTF8 --locale=C "
                                                 "--no-sync --no-instructions"));
  if (!st.ok()) return st;
  port_ = FreePort();
  const std::string options =
      absl::StrCat("-c listen_addresses=127.0.0.1 -p ", port_, " -k ", dir_,
                   " -c fsync=on -c max_connections=300 -c shared_buffers=64MB");
  st = RunPg("pg_ctl",
             absl::StrCat("-D ", ShellQuote(data), " -l ", ShellQuote(dir_ + "/server.log"),
                          " -W -o ", ShellQuote(options), " start"));
  if (!st.ok()) return st;
  started_ = true;
  // Ready when a real connection succeeds (bounded).
  const auto deadline = std::chrono::steady_clock::now() + kStartTimeout;
  for (;;) {
    PGconn* conn = PQconnectdb(Dsn("postgres").c_str());
    const bool ok = PQstatus(conn) == CONNECTION_OK;
    PQfinish(conn);
    if (ok) return absl::OkStatus();
    if (std::chrono::steady_clock::now() > deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("PostgreSQL did not accept connections within 60 s; server log: ",
                       Tail(ReadWholeFile(dir_ + "/server.log"))));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

PgCluster::~PgCluster() {
  if (!owned_) return;
  if (started_) {
    (void)RunPg("pg_ctl", absl::StrCat("-D ", ShellQuote(dir_ + "/data"), " -m fast -w stop"));
  }
  if (!dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
}

std::string PgCluster::Dsn(const std::string& dbname) const {
  return absl::StrCat("host=127.0.0.1 port=", port_, " user=agentd dbname=", dbname,
                      " connect_timeout=10");
}

absl::Status PgCluster::Exec(const std::string& dbname, const std::string& sql) {
  return Query(dbname, sql).status();
}

absl::StatusOr<std::string> PgCluster::Query(const std::string& dbname, const std::string& sql) {
  PGconn* conn = PQconnectdb(Dsn(dbname).c_str());
  absl::StatusOr<std::string> out;
  if (PQstatus(conn) != CONNECTION_OK) {
    out = absl::UnavailableError(absl::StrCat("connect: ", PQerrorMessage(conn)));
  } else {
    PGresult* res = PQexec(conn, sql.c_str());
    const ExecStatusType s = PQresultStatus(res);
    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
      out = absl::InternalError(absl::StrCat(sql, ": ", PQresultErrorMessage(res)));
    } else {
      out = PQntuples(res) > 0 && PQnfields(res) > 0 ? PQgetvalue(res, 0, 0) : "";
    }
    PQclear(res);
  }
  PQfinish(conn);
  return out;
}

absl::StatusOr<std::string> PgCluster::NewDatabase() {
  std::string name;
  {
    absl::MutexLock lock(&mu_);
    name = absl::StrCat("t_", getpid(), "_", ++next_db_);  // unique across attached processes
  }
  absl::Status st = Exec("postgres", absl::StrCat("CREATE DATABASE ", name));
  if (!st.ok()) return st;
  return Dsn(name);
}

std::string NewPgDatabaseOrFail() {
  absl::StatusOr<PgCluster*> cluster = PgCluster::Shared();
  if (!cluster.ok()) {
    ADD_FAILURE() << "no PostgreSQL test cluster: " << cluster.status();
    return "";
  }
  absl::StatusOr<std::string> dsn = (*cluster)->NewDatabase();
  if (!dsn.ok()) {
    ADD_FAILURE() << "cannot create a test database: " << dsn.status();
    return "";
  }
  return *dsn;
}

}  // namespace agentd::testing
