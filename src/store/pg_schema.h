// The PostgreSQL schema of PostgresStore and its versioned migrations. docs/storage-postgres.md
// explains the tables; keep the two in step.
//
// Every table is keyed by project_id first (the tenant), except agentd_api_keys, whose key ids
// are global (a key is looked up before its project is known) and which carries project_id as a
// column with its own index. Ids and keys are bytea (the store accepts any 1..128 bytes); records
// are serialized protobuf in bytea, next to the columns that queries filter or lock on.
//
// Migrations: agentd_schema_migrations(version int primary key, applied_at timestamptz) lists the
// applied versions. Each migration runs in its own transaction that first takes
// pg_advisory_xact_lock(kMigrationLockKey), so replicas starting together apply it once. A
// migration is never edited once released: add a new one at the end of kMigrations.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "store/pg_conn.h"

namespace agentd::store::pg {

/// The newest schema version this build knows (the number of migrations).
int32_t LatestSchemaVersion();

/// The advisory lock key that serializes migrations (an arbitrary constant: "agentd" in ASCII).
inline constexpr int64_t kMigrationLockKey = 0x6167656e7464;

/// Brings the database to LatestSchemaVersion(), one transaction per missing migration.
/// FAILED_PRECONDITION when the database is at a newer version than this build knows (a newer
/// agentd migrated it: run that version, or restore a backup taken before the upgrade).
absl::Status Migrate(Pool& pool);

/// The version recorded in the database (0 when agentd never migrated it).
absl::StatusOr<int32_t> CurrentSchemaVersion(Pool& pool);

}  // namespace agentd::store::pg
