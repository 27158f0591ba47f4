// Internal helpers of PostgresStore (pg_*.cc only): the input checks and page tokens it shares
// with the RocksDB store (store_checks.h), value parsing and small conversions.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/ids.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "store/context_store.h"
#include "store/pg_conn.h"
#include "store/schema.h"
#include "store/store_checks.h"

namespace agentd::store::pg {

using internal::CheckId;
using internal::CheckIds;
using internal::CheckStateKey;
using internal::CheckStateMutations;
using internal::CheckUsageDeltas;
using internal::DecodeHexToken;
using internal::DecodePageToken;
using internal::kDefaultPageSize;
using internal::kMaxPageSize;
using internal::NormalizePageSize;
using internal::NotFound;

/// Parses a protobuf column; DATA_LOSS naming `kind` and `id` when it does not parse.
template <typename T>
absl::Status ParseColumn(absl::string_view kind, absl::string_view id, absl::string_view bytes,
                         T* out) {
  if (out->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) return absl::OkStatus();
  return absl::DataLossError(absl::StrCat("corrupt ", kind, " record ", HexEncode(id)));
}

inline Param Proto(const google::protobuf::MessageLite& m) { return Bytes(m.SerializeAsString()); }

/// Unix microseconds, clamped like the RocksDB store's time keys (negatives and InfinitePast to
/// 0, InfiniteFuture to INT64_MAX).
inline int64_t Micros(absl::Time t) { return static_cast<int64_t>(schema::AuditKeyMicros(t)); }

/// The expire_micros column of a record (nullopt when it never expires).
inline std::optional<int64_t> ExpireMicros(const storage::SessionRecord& r) {
  if (!r.session().has_expire_time()) return std::nullopt;
  return absl::ToUnixMicros(FromProto(r.session().expire_time()));
}

inline bool IsExpired(const storage::SessionRecord& record, absl::Time now) {
  return record.session().has_expire_time() && FromProto(record.session().expire_time()) <= now;
}

/// A session is live at `now` when expire_micros IS NULL OR expire_micros > now: this SQL
/// condition (on a table aliased `s`, with `now` as parameter $n) matches IsExpired.
inline std::string LiveCondition(int now_param) {
  return absl::StrCat("(s.expire_micros IS NULL OR s.expire_micros > $", now_param, ")");
}
/// The `now` parameter for LiveCondition: microseconds, compared like FromProto(expire) <= now.
inline Param NowParam(absl::Time now) { return Int(absl::ToUnixMicros(now)); }

/// Adds every usage delta of `project_id` (checked with CheckUsageDeltas) inside a transaction:
/// one atomic upsert per counter, in key order so that concurrent writers lock counters in the
/// same order. (pg_tenancy.cc)
absl::Status ApplyUsage(Conn& conn, const std::string& project_id,
                        const std::vector<UsageDelta>& deltas);

}  // namespace agentd::store::pg
