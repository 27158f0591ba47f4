// agentctl's Projects API commands (projects, keys, usage, limits, audit) end to end: the real
// agentctl binary against a real agentd child process, checking output, exit codes and that a
// key's secret is printed by `keys create` only.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

#include "agentctl_runner.h"
#include "json_yaml_texts.h"
#include "nlohmann/json.hpp"
#include "testing/child_server.h"
#include "yaml-cpp/yaml.h"

namespace agentd {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;
using testing::Texts;
using Result = testing::CliResult;

// The whitespace-separated cells of the first line of `table` whose first cell is `first`.
std::vector<std::string> Row(const std::string& table, const std::string& first) {
  std::istringstream lines(table);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream cells(line);
    std::vector<std::string> row;
    for (std::string cell; cells >> cell;) row.push_back(cell);
    if (!row.empty() && row[0] == first) return row;
  }
  return {};
}

class AgentctlTest : public testing::ChildServerSuite {
 protected:
  // Runs agentctl against the server with `key` (empty: none).
  static Result Agentctl(const std::vector<std::string>& args,
                         const std::string& key = testing::kTestAdminKey) {
    return testing::RunAgentctl({server_->address(), key, args, "", dir_->path()});
  }

  // Runs a command that must succeed with `-o json` and returns its parsed stdout.
  static nlohmann::json Json(std::vector<std::string> args,
                             const std::string& key = testing::kTestAdminKey) {
    args.insert(args.end(), {"-o", "json"});
    const Result r = Agentctl(args, key);
    EXPECT_EQ(r.code, 0) << r.all();
    return nlohmann::json::parse(r.out, nullptr, /*allow_exceptions=*/false);
  }

  // A new project (created by the operator) and a new ADMIN key of it.
  struct Tenant {
    std::string project_id;
    std::string key_id;
    std::string secret;
  };
  static Tenant NewTenant(const std::string& name) {
    Tenant t;
    t.project_id = Json({"projects", "create", name}).value("project_id", "");
    const nlohmann::json key = Json({"keys", "create", "--role", "admin", "--name", name + "-admin",
                                     "--project", t.project_id});
    t.key_id = key["key"].value("key_id", "");
    t.secret = key.value("secret", "");
    return t;
  }
};

TEST_F(AgentctlTest, ProjectsCreateGetAndList) {
  Result created = Agentctl({"projects", "create", "team-table"});
  ASSERT_EQ(created.code, 0) << created.all();
  EXPECT_THAT(created.out, HasSubstr("PROJECT_ID"));
  EXPECT_THAT(created.out, HasSubstr("team-table"));

  const std::string id = Json({"projects", "create", "team-json"}).value("project_id", "");
  ASSERT_THAT(id, StartsWith("proj_"));
  const Result got = Agentctl({"projects", "get", id});
  ASSERT_EQ(got.code, 0) << got.all();
  const std::vector<std::string> row = Row(got.out, id);
  ASSERT_EQ(row.size(), 6u) << got.out;
  EXPECT_EQ(row[1], "team-json");
  EXPECT_EQ(row[2], "unlimited");

  // No id: the caller's own project.
  EXPECT_EQ(Json({"projects", "get"}).value("project_id", ""), "default");

  std::vector<std::string> listed;
  const nlohmann::json projects = Json({"projects", "list"})["projects"];
  for (const auto& p : projects) listed.push_back(p.value("project_id", ""));
  EXPECT_THAT(listed, ::testing::IsSupersetOf({std::string("default"), id}));

  const Result missing = Agentctl({"projects", "get", "proj_does_not_exist"});
  EXPECT_EQ(missing.code, 1);
  EXPECT_THAT(missing.err, HasSubstr("error: NOT_FOUND: "));
  EXPECT_EQ(missing.out, "");
}

TEST_F(AgentctlTest, KeysCreateListRevokeNeverListSecrets) {
  const Tenant t = NewTenant("keys-team");
  ASSERT_THAT(t.secret, StartsWith("agd_" + t.key_id + "_"));

  // Table mode prints the secret once, with the warning, and the key row.
  const Result created =
      Agentctl({"keys", "create", "--role", "reader", "--name", "dashboards"}, t.secret);
  ASSERT_EQ(created.code, 0) << created.all();
  EXPECT_THAT(created.out, HasSubstr("not shown again"));
  const std::vector<std::string> secret_row = Row(created.out, "secret:");
  ASSERT_EQ(secret_row.size(), 2u) << created.out;
  const std::string reader_secret = secret_row[1];
  const std::string reader_id = reader_secret.substr(4, reader_secret.find('_', 4) - 4);
  EXPECT_EQ(Row(created.out, reader_id).at(2), "reader");

  // JSON mode includes the secret; the warning goes to stderr.
  const Result json_created =
      Agentctl({"keys", "create", "--role", "member", "-o", "json"}, t.secret);
  ASSERT_EQ(json_created.code, 0) << json_created.all();
  EXPECT_THAT(json_created.err, HasSubstr("not shown again"));
  const std::string member_secret = nlohmann::json::parse(json_created.out).value("secret", "");
  EXPECT_THAT(member_secret, StartsWith("agd_"));

  for (const char* format : {"table", "json"}) {
    const Result listed = Agentctl({"keys", "list", "-o", format}, t.secret);
    ASSERT_EQ(listed.code, 0) << listed.all();
    EXPECT_THAT(listed.out, HasSubstr(t.key_id));
    EXPECT_THAT(listed.out, HasSubstr(reader_id));
    for (const std::string& secret : {t.secret, reader_secret, member_secret}) {
      EXPECT_THAT(listed.all(), Not(HasSubstr(secret.substr(secret.rfind('_') + 1))))
          << format << " output shows a secret";
    }
    EXPECT_THAT(listed.out, Not(HasSubstr("secret")));
  }
  EXPECT_EQ(Row(Agentctl({"keys", "list"}, t.secret).out, reader_id).at(4), "active");

  // The new key works, sees its own project, and not another one.
  EXPECT_EQ(Json({"projects", "get"}, reader_secret).value("project_id", ""), t.project_id);
  EXPECT_EQ(Agentctl({"projects", "get", "default"}, reader_secret).code, 1);

  const Result revoked = Agentctl({"keys", "revoke", reader_id}, t.secret);
  ASSERT_EQ(revoked.code, 0) << revoked.all();
  EXPECT_THAT(revoked.out, HasSubstr("revoked key " + reader_id));
  const std::vector<std::string> row = Row(Agentctl({"keys", "list"}, t.secret).out, reader_id);
  ASSERT_GE(row.size(), 7u);
  EXPECT_EQ(row[4], "revoked");
  const Result rejected = Agentctl({"projects", "get"}, reader_secret);
  EXPECT_EQ(rejected.code, 1);
  EXPECT_THAT(rejected.err, HasSubstr("error: UNAUTHENTICATED: "));

  const Result unknown = Agentctl({"keys", "revoke", "k0000000000000000"}, t.secret);
  EXPECT_EQ(unknown.code, 1);
  EXPECT_THAT(unknown.err, HasSubstr("NOT_FOUND"));
}

TEST_F(AgentctlTest, UsageAfterAnEchoTurn) {
  const Tenant t = NewTenant("usage-team");
  const std::string agent_id =
      Json({"agent", "create", "--name", "usage-agent", "--model", "echo"}, t.secret)
          .value("agent_id", "");
  ASSERT_FALSE(agent_id.empty());
  const std::string session_id =
      Json({"session", "create", "--agent", agent_id}, t.secret).value("session_id", "");
  ASSERT_FALSE(session_id.empty());
  const Result sent = Agentctl({"send", session_id, "hello usage"}, t.secret);
  ASSERT_EQ(sent.code, 0) << sent.all();
  EXPECT_THAT(sent.out, HasSubstr("hello usage"));

  const Result by_model = Agentctl({"usage", "--by", "model"}, t.secret);
  ASSERT_EQ(by_model.code, 0) << by_model.all();
  EXPECT_THAT(by_model.out, StartsWith("MODEL  "));
  EXPECT_THAT(by_model.out, HasSubstr("INPUT_TOKENS"));
  const std::vector<std::string> echo = Row(by_model.out, "echo");
  ASSERT_EQ(echo.size(), 5u) << by_model.out;
  EXPECT_EQ(echo[3], "1");         // one model call
  EXPECT_EQ(echo[4], "0.000000");  // echo is free
  const std::vector<std::string> total = Row(by_model.out, "TOTAL");
  ASSERT_EQ(total.size(), 5u) << by_model.out;
  EXPECT_EQ(total[1], echo[1]);
  EXPECT_EQ(total[3], "1");
  EXPECT_EQ(total[4], "0.000000");

  // The operator reads the same project by id, grouped by agent and session.
  const Result by_agent = Agentctl({"usage", "--project", t.project_id, "--by", "agent"});
  EXPECT_EQ(Row(by_agent.out, agent_id).at(3), "1") << by_agent.all();
  const Result by_session = Agentctl({"usage", "-p", t.project_id, "--by", "session"});
  EXPECT_EQ(Row(by_session.out, session_id).at(3), "1") << by_session.all();

  const nlohmann::json json = Json({"usage", "--by", "day"}, t.secret);
  EXPECT_EQ(json["total"].value("model_calls", ""), "1");  // int64 is a JSON string
  ASSERT_EQ(json["rows"].size(), 1u);

  // A range in the future holds nothing: only the TOTAL row, all zero.
  const Result future = Agentctl({"usage", "--since", "2999-01-01"}, t.secret);
  ASSERT_EQ(future.code, 0) << future.all();
  EXPECT_EQ(Row(future.out, "TOTAL"),
            (std::vector<std::string>{"TOTAL", "0", "0", "0", "0.000000"}));
  const Result all_time =
      Agentctl({"usage", "--since", "2000-01-01T00:00:00Z", "--until", "2999-12-31"}, t.secret);
  EXPECT_EQ(Row(all_time.out, "TOTAL").at(3), "1") << all_time.all();
}

TEST_F(AgentctlTest, LimitsSetGetRoundTrip) {
  const Tenant t = NewTenant("limits-team");
  const Result initial = Agentctl({"limits", "get", "--project", t.project_id});
  ASSERT_EQ(initial.code, 0) << initial.all();
  EXPECT_EQ(Row(initial.out, "monthly_budget_usd").at(1), "unlimited");
  EXPECT_EQ(Row(initial.out, "requests_per_minute").at(1), "unlimited");

  const Result set = Agentctl({"limits", "set", "--project", t.project_id, "--monthly-budget-usd",
                               "12.5", "--daily-token-limit", "100000"});
  ASSERT_EQ(set.code, 0) << set.all();
  EXPECT_EQ(Row(set.out, "monthly_budget_usd").at(1), "12.5");
  EXPECT_EQ(Row(set.out, "daily_token_limit").at(1), "100000");

  // Flags not given keep their values (the project's own admin key, no --project).
  const nlohmann::json limits =
      Json({"limits", "set", "--requests-per-minute", "60"}, t.secret)["limits"];
  EXPECT_EQ(limits.value("monthly_budget_usd", 0.0), 12.5);
  EXPECT_EQ(limits.value("daily_token_limit", ""), "100000");
  EXPECT_EQ(limits.value("requests_per_minute", 0), 60);
  EXPECT_EQ(Json({"limits", "get"}, t.secret)["limits"], limits);

  const Result cleared = Agentctl({"limits", "set", "--monthly-budget-usd", "0"}, t.secret);
  ASSERT_EQ(cleared.code, 0) << cleared.all();
  EXPECT_EQ(Row(cleared.out, "monthly_budget_usd").at(1), "unlimited");
  EXPECT_EQ(Row(cleared.out, "daily_token_limit").at(1), "100000");
  EXPECT_EQ(Row(cleared.out, "requests_per_minute").at(1), "60");
  EXPECT_THAT(Agentctl({"projects", "get", t.project_id}).out, HasSubstr("100000"));
}

TEST_F(AgentctlTest, AuditShowsKeyCreationRevocationAndFailedAuth) {
  const Tenant t = NewTenant("audit-team");
  const nlohmann::json created =
      Json({"keys", "create", "--role", "member", "--name", "short-lived"}, t.secret);
  const std::string member_id = created["key"].value("key_id", "");
  const std::string member_secret = created.value("secret", "");
  ASSERT_EQ(Agentctl({"keys", "revoke", member_id}, t.secret).code, 0);
  ASSERT_EQ(Agentctl({"agent", "list"}, member_secret).code, 1);  // revoked: auth_failed

  const Result audit = Agentctl({"audit", "--project", t.project_id});
  ASSERT_EQ(audit.code, 0) << audit.all();
  EXPECT_THAT(audit.out, StartsWith("TIME  "));
  EXPECT_THAT(audit.out, HasSubstr("project_created"));
  EXPECT_THAT(audit.out, HasSubstr("key_created"));
  EXPECT_THAT(audit.out, HasSubstr("key_revoked"));
  EXPECT_THAT(audit.out, HasSubstr("auth_failed"));
  EXPECT_THAT(audit.out, HasSubstr("key " + member_id + " revoked"));
  for (const std::string& secret : {t.secret, member_secret}) {
    EXPECT_THAT(audit.out, Not(HasSubstr(secret.substr(secret.rfind('_') + 1))));
  }

  // The project's admin reads its own log; JSON has the full enum names, oldest first.
  const nlohmann::json events = Json({"audit"}, t.secret)["events"];
  std::vector<std::string> actions;
  for (const auto& e : events) actions.push_back(e.value("action", ""));
  EXPECT_THAT(actions,
              ::testing::ElementsAre("AUDIT_ACTION_PROJECT_CREATED", "AUDIT_ACTION_API_KEY_CREATED",
                                     "AUDIT_ACTION_API_KEY_CREATED", "AUDIT_ACTION_API_KEY_REVOKED",
                                     "AUDIT_ACTION_AUTHENTICATION_FAILED"));
  EXPECT_EQ(events[3].value("key_id", ""), t.key_id);  // who revoked
  EXPECT_EQ(events[3].value("method", ""), "RevokeApiKey");
  EXPECT_EQ(events[4].value("key_id", ""), member_id);

  const nlohmann::json first = Json({"audit", "--limit", "1"}, t.secret)["events"];
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].value("action", ""), "AUDIT_ACTION_PROJECT_CREATED");
  EXPECT_EQ(Json({"audit", "--since", "2999-01-01"}, t.secret).value("events", nlohmann::json()),
            nlohmann::json());

  // A member key may not read the audit log.
  const std::string member2 =
      Json({"keys", "create", "--role", "member"}, t.secret).value("secret", "");
  const Result denied = Agentctl({"audit"}, member2);
  EXPECT_EQ(denied.code, 1);
  EXPECT_THAT(denied.err, HasSubstr("error: PERMISSION_DENIED: "));
}

TEST_F(AgentctlTest, YamlOutputHasTheJsonContent) {
  const Tenant t = NewTenant("yaml-team");
  ASSERT_EQ(Agentctl({"limits", "set", "--monthly-budget-usd", "2.5"}, t.secret).code, 0);
  const std::vector<std::vector<std::string>> reads = {
      {"projects", "list"},       {"projects", "get"}, {"keys", "list"},
      {"usage", "--by", "model"}, {"limits", "get"},   {"audit"}};
  for (const auto& args : reads) {
    std::vector<std::string> json_args = args;
    json_args.insert(json_args.end(), {"-o", "json"});
    std::vector<std::string> yaml_args = args;
    yaml_args.insert(yaml_args.end(), {"-o", "yaml"});
    const Result json = Agentctl(json_args, t.secret);
    const Result yaml = Agentctl(yaml_args, t.secret);
    ASSERT_EQ(json.code, 0) << json.all();
    ASSERT_EQ(yaml.code, 0) << yaml.all();
    if (json.out != "{}\n") {
      EXPECT_THAT(yaml.out, Not(StartsWith("{"))) << ::testing::PrintToString(args);  // block style
    }
    EXPECT_EQ(Texts(YAML::Load(yaml.out)), Texts(nlohmann::json::parse(json.out)))
        << ::testing::PrintToString(args) << "\n"
        << yaml.out;
  }
}

TEST_F(AgentctlTest, BadFlagValuesAreUsageErrors) {
  const std::vector<std::vector<std::string>> cases = {
      {"keys", "create", "--role", "boss"},
      {"keys", "create"},  // --role is required
      {"usage", "--by", "week"},
      {"usage", "--since", "yesterday"},
      {"audit", "--until", "2024-02-30"},
      {"audit", "--since", "2024-05-03", "--until", "2024-05-01"},
      {"audit", "--limit", "many"},
      {"limits", "set"},  // nothing to set
      {"limits", "set", "--monthly-budget-usd", "nan"},
      {"limits", "set", "--requests-per-minute", "99999999999"},
      {"projects", "create"},
      {"keys", "revoke"},
  };
  for (const auto& args : cases) {
    const Result r = Agentctl(args);
    EXPECT_EQ(r.code, 2) << ::testing::PrintToString(args) << ": " << r.all();
    EXPECT_THAT(r.err, Not(HasSubstr("error: INVALID_ARGUMENT"))) << "reached the server";
  }
  const Result role = Agentctl({"keys", "create", "--role", "boss"});
  EXPECT_THAT(role.err, HasSubstr("--role"));
  const Result since = Agentctl({"usage", "--since", "yesterday"});
  EXPECT_THAT(since.err, HasSubstr("RFC 3339"));
}

TEST_F(AgentctlTest, EveryCommandHasHelpWithExamples) {
  const std::vector<std::vector<std::string>> commands = {{"projects", "create"},
                                                          {"projects", "get"},
                                                          {"projects", "list"},
                                                          {"keys", "create"},
                                                          {"keys", "list"},
                                                          {"keys", "revoke"},
                                                          {"usage"},
                                                          {"limits", "set"},
                                                          {"limits", "get"},
                                                          {"audit"}};
  for (std::vector<std::string> args : commands) {
    std::string prefix = "  agentctl";
    for (const std::string& a : args) prefix += " " + a;
    args.push_back("--help");
    const Result r = Agentctl(args, "");
    EXPECT_EQ(r.code, 0) << r.all();
    EXPECT_THAT(r.out, HasSubstr("Examples:\n" + prefix)) << r.out;
  }
}

}  // namespace
}  // namespace agentd
