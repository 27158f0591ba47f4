// `agentctl memory put|get|list|search|delete`: the project's long-term memory (MemoryService).
#include <iostream>

#include "cli/cli_common.h"
#include "cli/output.h"

namespace agentd::cli {
namespace {

namespace v1 = agentd::v1;
using Stub = v1::MemoryService::Stub;

// Pages of at most 4 MiB even at the largest records (64 KiB text + 64 × 2 KiB metadata, ~192
// KiB): gRPC clients refuse bigger answers by default, and a page must fit max_message_bytes.
constexpr int32_t kMemoriesPerPage = 20;

struct PutOptions {
  std::string name_space = "default";
  std::string key;
  std::string text;
  std::vector<std::string> metadata;
};

struct RecordOptions {
  std::string name_space;
  std::string key;
};

struct SearchOptions {
  std::string query;
  std::string prefix;
  int32_t top_k = 0;
};

// One unary MemoryService call with a fresh context; reports a failure (exit 1).
template <typename Request, typename Response>
int Call(Connection& c,
         grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&, Response*),
         const Request& request, Response* response) {
  auto context = c.NewContext();
  const grpc::Status status = (c.memory().*method)(context.get(), request, response);
  return status.ok() ? kExitOk : c.Fail(status, *context);
}

int PrintRecord(Connection& c, const v1::MemoryRecord& record) {
  if (c.structured()) return c.Print(record), kExitOk;
  PrintMemoryRecords({record});
  return kExitOk;
}

int PutMemory(Connection& c, const PutOptions& o) {
  v1::PutMemoryRequest request;
  request.set_namespace_(o.name_space);
  request.set_key(o.key);
  request.set_text(o.text);
  for (const std::string& kv : o.metadata) {
    auto [key, value] = SplitKeyValue(kv);
    (*request.mutable_metadata())[key] = value;
  }
  v1::MemoryRecord record;
  if (int rc = Call(c, &Stub::PutMemory, request, &record); rc != kExitOk) return rc;
  return PrintRecord(c, record);
}

int GetMemory(Connection& c, const RecordOptions& o) {
  v1::GetMemoryRequest request;
  request.set_namespace_(o.name_space);
  request.set_key(o.key);
  v1::MemoryRecord record;
  if (int rc = Call(c, &Stub::GetMemory, request, &record); rc != kExitOk) return rc;
  if (c.structured()) return c.Print(record), kExitOk;
  PrintMemoryRecords({record});
  std::cout << "\ntext: " << record.text() << std::endl;
  return kExitOk;
}

int ListMemories(Connection& c, const std::string& prefix) {
  v1::ListMemoriesRequest request;
  request.set_namespace_prefix(prefix);
  request.set_page_size(kMemoriesPerPage);
  v1::ListMemoriesResponse all;
  do {
    v1::ListMemoriesResponse page;
    if (int rc = Call(c, &Stub::ListMemories, request, &page); rc != kExitOk) return rc;
    for (v1::MemoryRecord& r : *page.mutable_memories()) *all.add_memories() = std::move(r);
    request.set_page_token(page.next_page_token());
  } while (!request.page_token().empty());
  if (c.structured()) return c.Print(all), kExitOk;
  PrintMemoryRecords({all.memories().begin(), all.memories().end()});
  return kExitOk;
}

int SearchMemory(Connection& c, const SearchOptions& o) {
  v1::SearchMemoryRequest request;
  request.set_namespace_prefix(o.prefix);
  request.set_query(o.query);
  request.set_top_k(o.top_k);
  v1::SearchMemoryResponse response;
  if (int rc = Call(c, &Stub::SearchMemory, request, &response); rc != kExitOk) return rc;
  if (c.structured()) return c.Print(response), kExitOk;
  PrintScoredMemories({response.results().begin(), response.results().end()});
  return kExitOk;
}

int DeleteMemory(Connection& c, const RecordOptions& o) {
  v1::DeleteMemoryRequest request;
  request.set_namespace_(o.name_space);
  request.set_key(o.key);
  google::protobuf::Empty response;
  if (int rc = Call(c, &Stub::DeleteMemory, request, &response); rc != kExitOk) return rc;
  if (c.structured()) return c.Print(response), kExitOk;
  std::cout << "deleted memory " << o.name_space << " " << o.key << std::endl;
  return kExitOk;
}

void AddRecordArgs(CLI::App* cmd, RecordOptions* o) {
  cmd->add_option("NAMESPACE", o->name_space, "Namespace, e.g. users/alice/preferences")
      ->required();
  cmd->add_option("KEY", o->key, "Record key")->required();
}

}  // namespace

void AddMemoryCommands(CLI::App& app, Dispatch* d) {
  CLI::App* memory = AddCommand(
      app, "memory", "Store, read and search the project's long-term memory",
      "  agentctl memory put --namespace users/alice --key tea 'Alice drinks green tea'\n"
      "  agentctl memory search 'what tea' --prefix users/alice");
  memory->require_subcommand(1);

  auto p = std::make_shared<PutOptions>();
  CLI::App* put = AddCommand(
      *memory, "put", "Store a record (replacing the record with the same namespace and key)",
      "  agentctl memory put --namespace users/alice --key tea 'Alice drinks green tea' "
      "--meta source=chat\n"
      "  agentctl memory put 'A note in the default namespace, with a server-assigned key'");
  put->add_option("TEXT", p->text, "The text to remember (up to 64 KiB)")->required();
  put->add_option("--namespace,-n", p->name_space, "Namespace (segments separated by /)")
      ->capture_default_str();
  put->add_option("--key,-k", p->key, "Record key (default: the server assigns mem_...)");
  put->add_option("--meta", p->metadata, "Metadata (repeatable)")
      ->allow_extra_args(false)
      ->check(KeyValue())
      ->type_name("KEY=VALUE");
  put->callback([d, p] { d->action = [p](Connection& c) { return PutMemory(c, *p); }; });

  auto g = std::make_shared<RecordOptions>();
  CLI::App* get = AddCommand(*memory, "get", "Show one record (NOT_FOUND if absent)",
                             "  agentctl memory get users/alice tea -o json");
  AddRecordArgs(get, g.get());
  get->callback([d, g] { d->action = [g](Connection& c) { return GetMemory(c, *g); }; });

  auto prefix = std::make_shared<std::string>();
  CLI::App* list = AddCommand(
      *memory, "list", "List records in (namespace, key) order, optionally under a prefix",
      "  agentctl memory list\n  agentctl memory list --prefix users/alice/");
  list->add_option("--prefix", *prefix,
                   "Namespace prefix (a plain string prefix: users/a also covers users/ab)");
  list->callback(
      [d, prefix] { d->action = [prefix](Connection& c) { return ListMemories(c, *prefix); }; });

  auto s = std::make_shared<SearchOptions>();
  CLI::App* search =
      AddCommand(*memory, "search", "Find the records that best match a query (BM25), best first",
                 "  agentctl memory search 'green tea'\n"
                 "  agentctl memory search 'tea' --prefix users/alice --top-k 3 -o yaml");
  search->add_option("QUERY", s->query, "Words to search for")->required();
  search->add_option("--prefix", s->prefix, "Only records whose namespace starts with this");
  search->add_option("--top-k", s->top_k, "At most N results (0 = 10, max 100)")
      ->check(CLI::Range(0, 100));
  search->callback([d, s] { d->action = [s](Connection& c) { return SearchMemory(c, *s); }; });

  auto del = std::make_shared<RecordOptions>();
  CLI::App* remove = AddCommand(*memory, "delete", "Delete one record (NOT_FOUND if absent)",
                                "  agentctl memory delete users/alice tea");
  AddRecordArgs(remove, del.get());
  remove->callback(
      [d, del] { d->action = [del](Connection& c) { return DeleteMemory(c, *del); }; });
}

}  // namespace agentd::cli
