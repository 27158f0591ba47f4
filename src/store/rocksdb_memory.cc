// PLACEHOLDER while long-term memory is written (replaced in the same session).
#include "store/rocksdb_store.h"

namespace agentd::store {
namespace {
absl::Status Pending() { return absl::UnimplementedError("memory is not built yet"); }
}  // namespace

absl::StatusOr<v1::MemoryRecord> RocksDbStore::PutMemory(const std::string&,
                                                         const v1::MemoryRecord&) {
  return Pending();
}
absl::StatusOr<v1::MemoryRecord> RocksDbStore::GetMemory(const std::string&, const std::string&,
                                                         const std::string&) {
  return Pending();
}
absl::StatusOr<MemoryPage> RocksDbStore::ListMemories(const std::string&, const std::string&,
                                                      int32_t, const std::string&) {
  return Pending();
}
absl::StatusOr<std::vector<ScoredMemoryRecord>> RocksDbStore::SearchMemory(const std::string&,
                                                                           const std::string&,
                                                                           const std::string&,
                                                                           int32_t) {
  return Pending();
}
absl::Status RocksDbStore::DeleteMemory(const std::string&, const std::string&,
                                        const std::string&) {
  return Pending();
}
}  // namespace agentd::store
