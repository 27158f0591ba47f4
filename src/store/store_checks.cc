#include "store/store_checks.h"

#include <algorithm>

#include "store/memory_index.h"

namespace agentd::store::internal {

absl::Status CheckUsageDeltas(const std::vector<UsageDelta>& deltas) {
  for (size_t i = 0; i < deltas.size(); ++i) {
    const UsageDelta& d = deltas[i];
    const std::string what = absl::StrCat("usage delta ", i, ": ");
    if (!schema::IsValidUsageDimension(d.dimension)) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, "unknown dimension ", static_cast<int>(d.dimension)));
    }
    if (d.day < 0) {
      return absl::InvalidArgumentError(absl::StrCat(what, "day must be >= 0 (got ", d.day, ")"));
    }
    if (d.dimension == UsageDimension::kDay) {
      if (!d.group.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat(what, "a day-total delta must have an empty group (got \"",
                         absl::CHexEscape(d.group), "\")"));
      }
    } else if (!schema::IsValidKeyComponent(d.group)) {
      return absl::InvalidArgumentError(absl::StrCat(what, "group must be 1..", kMaxIdLength,
                                                     " bytes long (got ", d.group.size(), ")"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckStateKey(absl::string_view key) {
  if (schema::IsValidStateKey(key)) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("state key must be 1..", schema::kMaxStateKeyBytes,
                                                 " bytes of printable ASCII (got ", key.size(),
                                                 " bytes)"));
}

absl::Status CheckStateMutations(const std::vector<StateMutation>& mutations) {
  for (const StateMutation& m : mutations) {
    AGENTD_RETURN_IF_ERROR(CheckStateKey(m.key));
    if (m.value_json.size() > schema::kMaxStateValueBytes) {
      return absl::InvalidArgumentError(absl::StrCat("value_json of state key \"", m.key,
                                                     "\" is larger than ",
                                                     schema::kMaxStateValueBytes, " bytes"));
    }
    if (m.expected_version < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("expected_version of state key \"", m.key, "\" must be >= 0"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckSessionWrite(const SessionWrite& write) {
  const std::string& session_id = write.session_id;
  AGENTD_RETURN_IF_ERROR(CheckIds(write.project_id, "session_id", session_id));
  if (!write.idempotency_key.empty()) {
    AGENTD_RETURN_IF_ERROR(CheckId("idempotency_key", write.idempotency_key));
  }
  if (write.record.session().session_id() != session_id ||
      std::any_of(write.events.begin(), write.events.end(),
                  [&](const v1::Event& e) { return e.session_id() != session_id; })) {
    return absl::InvalidArgumentError(
        absl::StrCat("the record and every event must have session_id ", session_id));
  }
  AGENTD_RETURN_IF_ERROR(CheckUsageDeltas(write.usage));
  return CheckStateMutations(write.state);
}

absl::Status CheckFork(const std::string& project_id, const storage::SessionRecord& child) {
  const v1::Session& cs = child.session();
  AGENTD_RETURN_IF_ERROR(CheckIds(project_id, "session_id", cs.session_id()));
  AGENTD_RETURN_IF_ERROR(CheckId("parent_session_id", cs.parent_session_id()));
  if (cs.parent_session_id() == cs.session_id()) {
    return absl::InvalidArgumentError("a session cannot be forked into itself");
  }
  if (cs.fork_seq() < 0) return absl::InvalidArgumentError("fork_seq must be >= 0");
  return absl::OkStatus();
}

absl::Status CheckMemoryName(const std::string& name_space, const std::string& key) {
  if (schema::IsValidMemoryName(name_space, key)) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("memory namespace must be 1..", schema::kMaxMemoryNamespaceLength,
                   " bytes without NUL and key 1..", schema::kMaxMemoryKeyLength, " bytes (got ",
                   name_space.size(), " and ", key.size(), ")"));
}

absl::Status CheckMemoryPrefix(const std::string& namespace_prefix) {
  if (namespace_prefix.size() <= schema::kMaxMemoryNamespaceLength &&
      namespace_prefix.find('\0') == std::string::npos) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat("memory namespace_prefix must be at most ",
                                                 schema::kMaxMemoryNamespaceLength,
                                                 " bytes without NUL"));
}

absl::Status MemoryNotFound(absl::string_view name_space, absl::string_view key) {
  return absl::NotFoundError(
      absl::StrCat("memory record (namespace ", name_space, ", key ", key, ") not found"));
}

absl::Status CheckAudit(const v1::AuditEvent& audit) {
  AGENTD_RETURN_IF_ERROR(CheckId("audit event project_id", audit.project_id()));
  AGENTD_RETURN_IF_ERROR(CheckId("audit_id", audit.audit_id()));
  if (!audit.has_time()) {
    return absl::InvalidArgumentError(
        absl::StrCat("audit event ", audit.audit_id(), " has no time"));
  }
  return absl::OkStatus();
}

absl::Status CheckWriteAgainstStored(const SessionWrite& write,
                                     const storage::SessionRecord& stored) {
  const std::string& session_id = write.session_id;
  if (stored.revision() != write.expected_revision) {
    return absl::AbortedError(absl::StrCat("session ", session_id, " is at revision ",
                                           stored.revision(), ", not ", write.expected_revision));
  }
  const int64_t stored_last = stored.session().last_seq();
  for (size_t i = 0; i < write.events.size(); ++i) {
    const int64_t want = stored_last + 1 + static_cast<int64_t>(i);
    if (write.events[i].seq() != want) {
      return absl::InvalidArgumentError(absl::StrCat("session ", session_id, ": event seq ",
                                                     write.events[i].seq(), ", expected ", want));
    }
  }
  const int64_t new_last = write.events.empty() ? stored_last : write.events.back().seq();
  if (write.record.session().last_seq() != new_last) {
    return absl::InvalidArgumentError(absl::StrCat("session ", session_id, ": record last_seq ",
                                                   write.record.session().last_seq(), ", expected ",
                                                   new_last));
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::StateEntry> NextStateEntry(const std::string& session_id,
                                              const StateMutation& m, int64_t current) {
  if (m.expected_version != 0 && m.expected_version != current) {
    return absl::AbortedError(absl::StrCat("state key \"", m.key, "\" of session ", session_id,
                                           " is at version ", current, ", not ",
                                           m.expected_version));
  }
  v1::StateEntry entry;
  entry.set_key(m.key);
  entry.set_value_json(m.value_json);
  entry.set_version(current + 1);
  return entry;
}

absl::StatusOr<std::vector<std::string>> CheckSearch(const std::string& project_id,
                                                     const std::string& namespace_prefix,
                                                     const std::string& query, int32_t top_k) {
  AGENTD_RETURN_IF_ERROR(CheckId("project_id", project_id));
  AGENTD_RETURN_IF_ERROR(CheckMemoryPrefix(namespace_prefix));
  if (top_k < 1 || static_cast<size_t>(top_k) > kMaxTopK) {
    return absl::InvalidArgumentError(absl::StrCat("top_k must be 1..", kMaxTopK));
  }
  std::vector<std::string> terms = memory::QueryTerms(query);
  if (terms.size() > memory::kMaxQueryTerms) {
    return absl::InvalidArgumentError(absl::StrCat(
        "query has ", terms.size(), " distinct terms; at most ", memory::kMaxQueryTerms));
  }
  return terms;
}

absl::Status CheckUsageRead(const std::string& project_id, UsageDimension dimension) {
  AGENTD_RETURN_IF_ERROR(CheckId("project_id", project_id));
  if (!schema::IsValidUsageDimension(dimension)) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown usage dimension ", static_cast<int>(dimension)));
  }
  return absl::OkStatus();
}

}  // namespace agentd::store::internal
