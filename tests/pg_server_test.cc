// The real agentd server on the PostgreSQL store (store.type: postgres, the DSN read from the
// env var named by store.postgres_dsn_env): a turn end to end through gRPC, a restart, and two
// servers (two replicas) sharing one database.
#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
#include <string>

#include "testing/pg_cluster.h"
#include "testing/server_harness.h"

namespace agentd {
namespace {

using testing::ServerHarness;

constexpr char kDsnEnv[] = "AGENTD_PG_SERVER_TEST_DSN";

class PgServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string dsn = testing::NewPgDatabaseOrFail();
    ASSERT_FALSE(dsn.empty());
    setenv(kDsnEnv, dsn.c_str(), 1);
  }
  static std::unique_ptr<ServerHarness> StartReplica() {
    return std::make_unique<ServerHarness>([](server::Config* config) {
      config->store.type = "postgres";
      config->store.postgres_dsn_env = kDsnEnv;
    });
  }
};

TEST_F(PgServerTest, EchoTurnRunsAndSurvivesARestart) {
  std::unique_ptr<ServerHarness> h = StartReplica();
  v1::Agent agent = h->CreateAgent("echo", "You are terse.");
  v1::Session s = h->CreateSession(agent.agent_id());
  v1::TurnResult r;
  ASSERT_TRUE(h->Send(s.session_id(), "hello postgres", &r).ok());
  EXPECT_EQ(r.status(), v1::TURN_STATUS_COMPLETED);
  EXPECT_EQ(r.output_text(), "hello postgres");
  EXPECT_EQ(r.last_seq(), 4);
  h->Restart();
  const std::vector<v1::Event> events = h->AllEvents(s.session_id());
  ASSERT_EQ(events.size(), 4u);
  for (size_t i = 0; i < events.size(); ++i)
    EXPECT_EQ(events[i].seq(), static_cast<int64_t>(i + 1));
  ASSERT_TRUE(h->Send(s.session_id(), "again", &r).ok());
  EXPECT_EQ(r.last_seq(), 8);
}

TEST_F(PgServerTest, TwoServersShareOneDatabase) {
  std::unique_ptr<ServerHarness> a = StartReplica();
  std::unique_ptr<ServerHarness> b = StartReplica();  // another data dir, the same database
  v1::Agent agent = a->CreateAgent("echo");
  v1::Session s = a->CreateSession(agent.agent_id());
  v1::TurnResult r;
  ASSERT_TRUE(b->Send(s.session_id(), "via b", &r).ok()) << "replica b sees a's session";
  ASSERT_TRUE(a->Send(s.session_id(), "via a", &r).ok());
  EXPECT_EQ(r.last_seq(), 8);
  const std::vector<v1::Event> from_a = a->AllEvents(s.session_id());
  const std::vector<v1::Event> from_b = b->AllEvents(s.session_id());
  ASSERT_EQ(from_a.size(), 8u);
  ASSERT_EQ(from_b.size(), 8u);
  for (size_t i = 0; i < from_a.size(); ++i) {
    EXPECT_EQ(from_a[i].seq(), static_cast<int64_t>(i + 1));
    EXPECT_EQ(from_a[i].SerializeAsString(), from_b[i].SerializeAsString()) << i;
  }
}

}  // namespace
}  // namespace agentd
