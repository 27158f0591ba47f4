// PLACEHOLDER while the state/fork/retention work is written (replaced in the same session).
#include "store/rocksdb_store.h"

namespace agentd::store {
namespace {
absl::Status Pending() { return absl::UnimplementedError("tool state is not built yet"); }
}  // namespace

absl::StatusOr<v1::StateEntry> RocksDbStore::GetState(const std::string&, const std::string&,
                                                      const std::string&) {
  return Pending();
}
absl::StatusOr<std::vector<v1::StateEntry>> RocksDbStore::ListState(const std::string&,
                                                                    const std::string&) {
  return Pending();
}
absl::StatusOr<v1::StateEntry> RocksDbStore::PutState(const std::string&, const std::string&,
                                                      const StateMutation&) {
  return Pending();
}
absl::Status RocksDbStore::ForkSession(const std::string&, const storage::SessionRecord&) {
  return Pending();
}
absl::StatusOr<int64_t> RocksDbStore::DeleteExpiredSessions(absl::Time, int64_t) {
  return Pending();
}
}  // namespace agentd::store
