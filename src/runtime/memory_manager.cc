#include "runtime/memory_manager.h"

#include <google/protobuf/stubs/common.h>

#include "absl/strings/str_cat.h"
#include "common/ids.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "runtime/validation.h"

namespace agentd::runtime {
namespace {

bool IsSegmentChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == ':' || c == '-';
}

absl::Status BadChar(absl::string_view field, char c) {
  const auto byte = static_cast<unsigned char>(c);
  const std::string shown = byte >= 0x20 && byte < 0x7f ? absl::StrCat("'", std::string(1, c), "'")
                                                        : absl::StrCat("byte ", byte);
  return absl::InvalidArgumentError(absl::StrCat(
      field, " contains ", shown, "; allowed are letters, digits, '.', '_', ':', '-' and '/'"));
}

absl::Status NotFound(const std::string& name_space, const std::string& key) {
  return absl::NotFoundError(
      absl::StrCat("memory record \"", key, "\" in namespace \"", name_space, "\" not found"));
}

absl::Status CheckName(const std::string& name_space, const std::string& key) {
  AGENTD_RETURN_IF_ERROR(ValidateMemoryNamespace("namespace", name_space));
  return ValidateId("key", key);
}

}  // namespace

absl::Status ValidateMemoryNamespace(absl::string_view field, absl::string_view name_space) {
  if (name_space.empty() || name_space.size() > kMaxMemoryNamespaceBytes) {
    return absl::InvalidArgumentError(absl::StrCat(field, " must be 1..", kMaxMemoryNamespaceBytes,
                                                   " bytes long (got ", name_space.size(), ")"));
  }
  bool segment_empty = true;
  for (const char c : name_space) {
    if (c == '/') {
      if (segment_empty) break;
      segment_empty = true;
    } else if (IsSegmentChar(c)) {
      segment_empty = false;
    } else {
      return BadChar(field, c);
    }
  }
  if (segment_empty) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " \"", name_space,
                     "\" has an empty segment: segments are separated by single '/', with none "
                     "at the start or end"));
  }
  return absl::OkStatus();
}

absl::Status ValidateMemoryNamespacePrefix(absl::string_view field, absl::string_view prefix) {
  if (prefix.size() > kMaxMemoryNamespaceBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " is longer than ", kMaxMemoryNamespaceBytes, " bytes"));
  }
  for (const char c : prefix) {
    if (c != '/' && !IsSegmentChar(c)) return BadChar(field, c);
  }
  return absl::OkStatus();
}

absl::Status ValidateMemoryText(absl::string_view field, absl::string_view text) {
  if (text.empty()) return absl::InvalidArgumentError(absl::StrCat(field, " must not be empty"));
  if (text.size() > kMaxMemoryTextBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " is longer than ", kMaxMemoryTextBytes, " bytes"));
  }
  // Protobuf's own check, the one proto3 string fields get on the wire.
  if (!google::protobuf::internal::IsStructurallyValidUTF8(text.data(),
                                                           static_cast<int>(text.size()))) {
    return absl::InvalidArgumentError(absl::StrCat(field, " must be UTF-8"));
  }
  return absl::OkStatus();
}

absl::StatusOr<int32_t> NormalizeMemoryTopK(int32_t top_k) {
  if (top_k == 0) return kDefaultMemoryTopK;
  if (top_k < 0 || top_k > kMaxMemoryTopK) {
    return absl::InvalidArgumentError(
        absl::StrCat("top_k must be 0 (= ", kDefaultMemoryTopK, ") to ", kMaxMemoryTopK));
  }
  return top_k;
}

absl::StatusOr<v1::MemoryRecord> MemoryManager::Put(const std::string& project_id,
                                                    v1::MemoryRecord record) {
  AGENTD_RETURN_IF_ERROR(ValidateMemoryNamespace("namespace", record.namespace_()));
  if (record.key().empty()) {
    record.set_key(NewId(kMemoryKeyPrefix));
  } else {
    AGENTD_RETURN_IF_ERROR(ValidateId("key", record.key()));
  }
  AGENTD_RETURN_IF_ERROR(ValidateMemoryText("text", record.text()));
  AGENTD_RETURN_IF_ERROR(ValidateMetadata(record.metadata()));
  *record.mutable_update_time() = NowProto();
  *record.mutable_create_time() = record.update_time();  // the store keeps a replaced one's
  return store_->PutMemory(project_id, record);
}

absl::StatusOr<v1::MemoryRecord> MemoryManager::Get(const std::string& project_id,
                                                    const std::string& name_space,
                                                    const std::string& key) {
  AGENTD_RETURN_IF_ERROR(CheckName(name_space, key));
  absl::StatusOr<v1::MemoryRecord> record = store_->GetMemory(project_id, name_space, key);
  if (absl::IsNotFound(record.status())) return NotFound(name_space, key);
  return record;
}

absl::StatusOr<store::MemoryPage> MemoryManager::List(const std::string& project_id,
                                                      const std::string& namespace_prefix,
                                                      int32_t page_size,
                                                      const std::string& page_token) {
  AGENTD_RETURN_IF_ERROR(ValidateMemoryNamespacePrefix("namespace_prefix", namespace_prefix));
  AGENTD_ASSIGN_OR_RETURN(const int32_t size, NormalizePageSize(page_size, kDefaultMemoryPageSize));
  return store_->ListMemories(project_id, namespace_prefix, size, page_token);
}

absl::StatusOr<std::vector<store::ScoredMemoryRecord>> MemoryManager::Search(
    const std::string& project_id, const std::string& namespace_prefix, const std::string& query,
    int32_t top_k) {
  AGENTD_RETURN_IF_ERROR(ValidateMemoryNamespacePrefix("namespace_prefix", namespace_prefix));
  if (query.empty()) return absl::InvalidArgumentError("query must not be empty");
  if (query.size() > kMaxMemoryQueryBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("query is longer than ", kMaxMemoryQueryBytes, " bytes"));
  }
  AGENTD_RETURN_IF_ERROR(ValidateMemoryText("query", query));
  AGENTD_ASSIGN_OR_RETURN(const int32_t k, NormalizeMemoryTopK(top_k));
  return store_->SearchMemory(project_id, namespace_prefix, query, k);
}

absl::Status MemoryManager::Delete(const std::string& project_id, const std::string& name_space,
                                   const std::string& key) {
  AGENTD_RETURN_IF_ERROR(CheckName(name_space, key));
  absl::Status st = store_->DeleteMemory(project_id, name_space, key);
  if (absl::IsNotFound(st)) return NotFound(name_space, key);
  return st;
}

}  // namespace agentd::runtime
