// MemoryService end to end: an in-process agentd (real RocksDB in a temp dir) driven through the
// generated gRPC stubs — records, server-assigned keys, paging, BM25 search, the status codes of
// docs/api.md, and project isolation (another project's key sees none of it).
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "agentd/v1/memory.grpc.pb.h"
#include "agentd/v1/project.grpc.pb.h"
#include "testing/server_harness.h"

namespace agentd {
namespace {

using testing::Ctx;

class MemoryTest : public ::testing::Test {
 protected:
  void SetUp() override { memory_ = v1::MemoryService::NewStub(harness_.channel()); }

  static v1::PutMemoryRequest PutReq(const std::string& ns, const std::string& key,
                                     const std::string& text) {
    v1::PutMemoryRequest req;
    req.set_namespace_(ns);
    req.set_key(key);
    req.set_text(text);
    return req;
  }

  grpc::Status Put(v1::MemoryService::Stub& stub, const v1::PutMemoryRequest& req,
                   v1::MemoryRecord* out = nullptr) {
    v1::MemoryRecord ignored;
    return stub.PutMemory(Ctx().get(), req, out != nullptr ? out : &ignored);
  }
  grpc::Status Put(const std::string& ns, const std::string& key, const std::string& text,
                   v1::MemoryRecord* out = nullptr) {
    return Put(*memory_, PutReq(ns, key, text), out);
  }

  grpc::Status Get(v1::MemoryService::Stub& stub, const std::string& ns, const std::string& key,
                   v1::MemoryRecord* out) {
    v1::GetMemoryRequest req;
    req.set_namespace_(ns);
    req.set_key(key);
    return stub.GetMemory(Ctx().get(), req, out);
  }

  grpc::Status Delete(v1::MemoryService::Stub& stub, const std::string& ns,
                      const std::string& key) {
    v1::DeleteMemoryRequest req;
    req.set_namespace_(ns);
    req.set_key(key);
    google::protobuf::Empty empty;
    return stub.DeleteMemory(Ctx().get(), req, &empty);
  }

  grpc::Status Search(v1::MemoryService::Stub& stub, const std::string& prefix,
                      const std::string& query, int32_t top_k, v1::SearchMemoryResponse* out) {
    v1::SearchMemoryRequest req;
    req.set_namespace_prefix(prefix);
    req.set_query(query);
    req.set_top_k(top_k);
    return stub.SearchMemory(Ctx().get(), req, out);
  }

  /// "namespace|key" of each search result (fails the test on error).
  std::vector<std::string> SearchNames(v1::MemoryService::Stub& stub, const std::string& prefix,
                                       const std::string& query, int32_t top_k = 0) {
    v1::SearchMemoryResponse resp;
    grpc::Status st = Search(stub, prefix, query, top_k, &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    std::vector<std::string> names;
    for (const v1::ScoredMemory& m : resp.results()) {
      EXPECT_GT(m.score(), 0);
      names.push_back(m.record().namespace_() + "|" + m.record().key());
    }
    return names;
  }

  grpc::Status List(v1::MemoryService::Stub& stub, const std::string& prefix, int32_t page_size,
                    const std::string& token, v1::ListMemoriesResponse* out) {
    v1::ListMemoriesRequest req;
    req.set_namespace_prefix(prefix);
    req.set_page_size(page_size);
    req.set_page_token(token);
    return stub.ListMemories(Ctx().get(), req, out);
  }

  /// A stub acting with a new key of a new project (created by the harness's operator key).
  std::unique_ptr<v1::MemoryService::Stub> OtherProject(v1::ApiKeyRole role,
                                                        std::string* project_id = nullptr) {
    auto projects = v1::ProjectService::NewStub(harness_.channel());
    v1::CreateProjectRequest preq;
    preq.set_name("other");
    v1::Project project;
    grpc::Status st = projects->CreateProject(Ctx().get(), preq, &project);
    EXPECT_TRUE(st.ok()) << st.error_message();
    v1::CreateApiKeyRequest kreq;
    kreq.set_project_id(project.project_id());
    kreq.set_role(role);
    kreq.set_name("memory-test");
    v1::CreateApiKeyResponse key;
    st = projects->CreateApiKey(Ctx().get(), kreq, &key);
    EXPECT_TRUE(st.ok()) << st.error_message();
    if (project_id != nullptr) *project_id = project.project_id();
    return v1::MemoryService::NewStub(
        harness_.NewChannel(grpc::InsecureChannelCredentials(), key.secret()));
  }

  testing::ServerHarness harness_;
  std::unique_ptr<v1::MemoryService::Stub> memory_;
};

TEST_F(MemoryTest, PutGetReplaceAndDelete) {
  v1::PutMemoryRequest req = PutReq("users/alice/preferences", "drink", "Alice drinks green tea");
  (*req.mutable_metadata())["source"] = "chat";
  v1::MemoryRecord first;
  grpc::Status st = Put(*memory_, req, &first);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(first.namespace_(), "users/alice/preferences");
  EXPECT_EQ(first.key(), "drink");
  EXPECT_EQ(first.metadata().at("source"), "chat");
  EXPECT_GT(first.create_time().seconds(), 0);
  EXPECT_EQ(first.update_time().seconds(), first.create_time().seconds());

  v1::MemoryRecord got;
  ASSERT_TRUE(Get(*memory_, "users/alice/preferences", "drink", &got).ok());
  EXPECT_EQ(got.SerializeAsString(), first.SerializeAsString());

  v1::MemoryRecord second;
  ASSERT_TRUE(Put("users/alice/preferences", "drink", "Alice switched to coffee", &second).ok());
  EXPECT_EQ(second.text(), "Alice switched to coffee");
  EXPECT_TRUE(second.metadata().empty());  // a put replaces the whole record
  EXPECT_EQ(second.create_time().SerializeAsString(), first.create_time().SerializeAsString());
  EXPECT_GE(second.update_time().seconds() * 1000000000LL + second.update_time().nanos(),
            first.update_time().seconds() * 1000000000LL + first.update_time().nanos());

  EXPECT_TRUE(SearchNames(*memory_, "", "tea").empty());
  EXPECT_EQ(SearchNames(*memory_, "", "coffee"),
            (std::vector<std::string>{"users/alice/preferences|drink"}));

  ASSERT_TRUE(Delete(*memory_, "users/alice/preferences", "drink").ok());
  EXPECT_EQ(Get(*memory_, "users/alice/preferences", "drink", &got).error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Delete(*memory_, "users/alice/preferences", "drink").error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_TRUE(SearchNames(*memory_, "", "coffee").empty());
}

TEST_F(MemoryTest, EmptyKeyIsAssignedByTheServer) {
  std::set<std::string> keys;
  for (int i = 0; i < 3; ++i) {
    v1::MemoryRecord r;
    ASSERT_TRUE(Put("notes", "", "note number " + std::to_string(i), &r).ok());
    EXPECT_TRUE(absl::StartsWith(r.key(), "mem_")) << r.key();
    EXPECT_EQ(r.key().size(), 4u + 32u) << r.key();
    keys.insert(r.key());
    v1::MemoryRecord got;
    ASSERT_TRUE(Get(*memory_, "notes", r.key(), &got).ok());
    EXPECT_EQ(got.text(), r.text());
  }
  EXPECT_EQ(keys.size(), 3u);
}

TEST_F(MemoryTest, MissingRecordsAreNotFound) {
  v1::MemoryRecord got;
  grpc::Status st = Get(*memory_, "users/bob", "nothing", &got);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_TRUE(absl::StrContains(st.error_message(), "nothing")) << st.error_message();
  EXPECT_EQ(Delete(*memory_, "users/bob", "nothing").error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(MemoryTest, InvalidInputIsInvalidArgument) {
  const auto invalid = grpc::StatusCode::INVALID_ARGUMENT;
  for (const std::string& ns :
       {std::string(""), std::string("a//b"), std::string("/a"), std::string("a/"),
        std::string("a b"), std::string("a\\b"), std::string(257, 'n')}) {
    EXPECT_EQ(Put(ns, "k", "text").error_code(), invalid) << "namespace \"" << ns << "\"";
  }
  EXPECT_TRUE(Put(std::string(256, 'n'), "k", "text").ok());
  EXPECT_TRUE(Put("Team.A:1/user_2/x-y", "k", "text").ok());
  for (const std::string& key : {std::string("a/b"), std::string("a b"), std::string(129, 'k')}) {
    EXPECT_EQ(Put("ns", key, "text").error_code(), invalid) << "key \"" << key << "\"";
  }
  EXPECT_EQ(Put("ns", "k", "").error_code(), invalid);
  EXPECT_EQ(Put("ns", "k", std::string(64 * 1024 + 1, 'x')).error_code(), invalid);
  EXPECT_TRUE(Put("ns", "big", std::string(64 * 1024, 'x')).ok());
  v1::PutMemoryRequest req = PutReq("ns", "k", "text");
  for (int i = 0; i < 65; ++i) (*req.mutable_metadata())["m" + std::to_string(i)] = "v";
  EXPECT_EQ(Put(*memory_, req).error_code(), invalid);

  v1::MemoryRecord got;
  EXPECT_EQ(Get(*memory_, "a//b", "k", &got).error_code(), invalid);
  EXPECT_EQ(Get(*memory_, "ns", "", &got).error_code(), invalid);
  EXPECT_EQ(Delete(*memory_, "", "k").error_code(), invalid);

  v1::SearchMemoryResponse found;
  EXPECT_EQ(Search(*memory_, "", "", 0, &found).error_code(), invalid);
  EXPECT_EQ(Search(*memory_, "", "q", -1, &found).error_code(), invalid);
  EXPECT_EQ(Search(*memory_, "", "q", 101, &found).error_code(), invalid);
  EXPECT_EQ(Search(*memory_, "a b", "q", 0, &found).error_code(), invalid);
  EXPECT_EQ(Search(*memory_, "", std::string(4097, 'q'), 0, &found).error_code(), invalid);
  EXPECT_TRUE(Search(*memory_, "", "q", 100, &found).ok());

  v1::ListMemoriesResponse page;
  EXPECT_EQ(List(*memory_, "", -1, "", &page).error_code(), invalid);
  EXPECT_EQ(List(*memory_, "", 10, "not-a-token", &page).error_code(), invalid);
  EXPECT_EQ(List(*memory_, "a b", 10, "", &page).error_code(), invalid);
}

TEST_F(MemoryTest, ListPagesByNamespacePrefix) {
  for (const char* ns : {"users/a", "users/ab", "users/a/x", "users/b"}) {
    for (const char* key : {"k2", "k1"}) ASSERT_TRUE(Put(ns, key, "some text").ok());
  }
  std::vector<std::string> names;
  std::string token;
  int pages = 0;
  do {
    v1::ListMemoriesResponse page;
    grpc::Status st = List(*memory_, "users/a", 3, token, &page);
    ASSERT_TRUE(st.ok()) << st.error_message();
    EXPECT_LE(page.memories_size(), 3);
    for (const v1::MemoryRecord& r : page.memories()) {
      names.push_back(r.namespace_() + "|" + r.key());
    }
    token = page.next_page_token();
    ++pages;
  } while (!token.empty() && pages < 10);
  EXPECT_EQ(pages, 2);
  EXPECT_EQ(names, (std::vector<std::string>{"users/a|k1", "users/a|k2", "users/a/x|k1",
                                             "users/a/x|k2", "users/ab|k1", "users/ab|k2"}));
  v1::ListMemoriesResponse all;
  ASSERT_TRUE(List(*memory_, "", 0, "", &all).ok());
  EXPECT_EQ(all.memories_size(), 8);
  EXPECT_TRUE(all.next_page_token().empty());
}

TEST_F(MemoryTest, SearchRanksByBm25) {
  ASSERT_TRUE(Put("users/alice", "tea", "Alice likes green tea in the morning").ok());
  ASSERT_TRUE(Put("users/alice", "city", "Alice lives in Lyon").ok());
  ASSERT_TRUE(Put("users/bob", "tea", "Bob never drinks tea; he likes coffee").ok());
  ASSERT_TRUE(Put("users/bob", "coffee", "Bob likes coffee coffee and more coffee").ok());

  v1::SearchMemoryResponse resp;
  ASSERT_TRUE(Search(*memory_, "", "coffee", 0, &resp).ok());
  ASSERT_EQ(resp.results_size(), 2);
  EXPECT_EQ(resp.results(0).record().key(), "coffee");  // three occurrences beat one
  EXPECT_EQ(resp.results(0).record().text(), "Bob likes coffee coffee and more coffee");
  EXPECT_GT(resp.results(0).score(), resp.results(1).score());

  EXPECT_EQ(SearchNames(*memory_, "users/alice", "Where does ALICE live?"),
            (std::vector<std::string>{"users/alice|city", "users/alice|tea"}));
  EXPECT_EQ(SearchNames(*memory_, "users/", "green tea").front(), "users/alice|tea");
  EXPECT_EQ(SearchNames(*memory_, "users/bob", "green tea"),
            (std::vector<std::string>{"users/bob|tea"}));
  EXPECT_TRUE(SearchNames(*memory_, "", "the and of").empty());  // stopwords only

  // top_k: 0 means 10; larger values cut the list where asked.
  for (int i = 0; i < 12; ++i) {
    ASSERT_TRUE(Put("bulk", "k" + std::to_string(i), "walnut " + std::to_string(i)).ok());
  }
  EXPECT_EQ(SearchNames(*memory_, "", "walnut").size(), 10u);
  EXPECT_EQ(SearchNames(*memory_, "", "walnut", 3).size(), 3u);
  EXPECT_EQ(SearchNames(*memory_, "", "walnut", 100).size(), 12u);
}

TEST_F(MemoryTest, AnotherProjectSeesNothing) {
  ASSERT_TRUE(Put("users/alice", "secret", "MARKER-memory-A zebra").ok());
  std::string other_id;
  auto other = OtherProject(v1::API_KEY_ROLE_MEMBER, &other_id);
  v1::MemoryRecord got;
  EXPECT_EQ(Get(*other, "users/alice", "secret", &got).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Delete(*other, "users/alice", "secret").error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_TRUE(SearchNames(*other, "", "zebra").empty());
  v1::ListMemoriesResponse page;
  ASSERT_TRUE(List(*other, "", 0, "", &page).ok());
  EXPECT_EQ(page.memories_size(), 0);

  // The same (namespace, key) in the other project is a different record.
  ASSERT_TRUE(Put(*other, PutReq("users/alice", "secret", "the other project's zebra")).ok());
  ASSERT_TRUE(Get(*memory_, "users/alice", "secret", &got).ok());
  EXPECT_EQ(got.text(), "MARKER-memory-A zebra");
  v1::SearchMemoryResponse found;
  ASSERT_TRUE(Search(*other, "", "zebra", 0, &found).ok());
  ASSERT_EQ(found.results_size(), 1);
  EXPECT_FALSE(absl::StrContains(found.SerializeAsString(), "MARKER-memory-A"));
  ASSERT_TRUE(Delete(*other, "users/alice", "secret").ok());
  EXPECT_EQ(SearchNames(*memory_, "", "zebra"), (std::vector<std::string>{"users/alice|secret"}));
}

TEST_F(MemoryTest, ReaderMaySearchButNotWrite) {
  ASSERT_TRUE(Put("users/alice", "k", "hello").ok());
  auto reader = OtherProject(v1::API_KEY_ROLE_READER);
  EXPECT_EQ(Put(*reader, PutReq("ns", "k", "text")).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Delete(*reader, "ns", "k").error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(SearchNames(*reader, "", "hello").empty());
}

TEST_F(MemoryTest, SurvivesARestart) {
  ASSERT_TRUE(Put("users/alice", "k1", "remember the blue umbrella").ok());
  ASSERT_TRUE(Put("users/alice", "k2", "the red umbrella is broken").ok());
  harness_.Restart();
  memory_ = v1::MemoryService::NewStub(harness_.channel());
  EXPECT_EQ(SearchNames(*memory_, "", "blue umbrella"),
            (std::vector<std::string>{"users/alice|k1", "users/alice|k2"}));
  v1::MemoryRecord got;
  ASSERT_TRUE(Get(*memory_, "users/alice", "k2", &got).ok());
  EXPECT_EQ(got.text(), "the red umbrella is broken");
}

}  // namespace
}  // namespace agentd
