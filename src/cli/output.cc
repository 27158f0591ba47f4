#include "cli/output.h"

#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/time_util.h>

#include <algorithm>
#include <cctype>
#include <iomanip>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace agentd::cli {
namespace {

namespace v1 = agentd::v1;

constexpr size_t kBodyWidth = 100;

std::string Upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

// A limit's value; 0 means no limit.
template <typename T>
std::string LimitText(T value) {
  return value == 0 ? "unlimited" : absl::StrCat(value);
}

std::string RoleName(v1::Role role) { return ShortEnumName(v1::Role_Name(role), "ROLE_"); }

std::string CallText(const v1::ToolCall& call) {
  return absl::StrCat(call.name(), "(", call.arguments_json(), ")");
}

std::string MessageBody(const v1::Message& m) {
  std::string body = absl::StrCat(RoleName(m.role()), ": ", m.text());
  if (m.tool_calls_size() > 0) {
    std::vector<std::string> calls;
    for (const v1::ToolCall& call : m.tool_calls()) calls.push_back(CallText(call));
    absl::StrAppend(&body, m.text().empty() ? "" : " ", "[calls ", absl::StrJoin(calls, ", "), "]");
  }
  return body;
}

std::string TurnBody(const v1::Event& event) {
  const v1::TurnMarker& turn = event.turn();
  if (event.type() == v1::EVENT_TYPE_TURN_STARTED) {
    return turn.idempotency_key().empty()
               ? "started"
               : absl::StrCat("started (key ", turn.idempotency_key(), ")");
  }
  std::string body = TurnStatusName(turn.status());
  if (!turn.error().empty()) absl::StrAppend(&body, ": ", turn.error());
  if (turn.has_usage()) absl::StrAppend(&body, " (", UsageText(turn.usage()), ")");
  return body;
}

std::string EventBody(const v1::Event& event) {
  switch (event.body_case()) {
    case v1::Event::kMessage:
      return MessageBody(event.message());
    case v1::Event::kToolCall:
      return absl::StrCat("call ", event.tool_call().id(), ": ", CallText(event.tool_call()));
    case v1::Event::kToolResult: {
      const v1::ToolResult& r = event.tool_result();
      return absl::StrCat(r.is_error() ? "error " : "result ", r.tool_call_id(), ": ", r.output());
    }
    case v1::Event::kTurn:
      return TurnBody(event);
    case v1::Event::kSummary:
      return absl::StrCat("summary of ", event.summary().from_seq(), "..", event.summary().to_seq(),
                          ": ", event.summary().text());
    default:
      return "";
  }
}

}  // namespace

void Table::Print(std::ostream& out) const {
  std::vector<size_t> widths(header_.size(), 0);
  auto measure = [&widths](const std::vector<std::string>& row) {
    for (size_t i = 0; i < row.size() && i < widths.size(); ++i) {
      widths[i] = std::max(widths[i], row[i].size());
    }
  };
  measure(header_);
  for (const auto& row : rows_) measure(row);
  auto print = [&](const std::vector<std::string>& row, bool upper) {
    std::string line;
    for (size_t i = 0; i < row.size() && i < widths.size(); ++i) {
      const std::string cell = upper ? Upper(row[i]) : row[i];
      absl::StrAppend(&line, cell,
                      i + 1 < row.size() ? std::string(widths[i] - cell.size() + 2, ' ') : "");
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();  // empty last cells
    out << line << "\n";
  };
  print(header_, true);
  for (const auto& row : rows_) print(row, false);
  out.flush();
}

std::string TimeText(const google::protobuf::Timestamp& t) {
  if (t.seconds() == 0 && t.nanos() == 0) return "";
  google::protobuf::Timestamp whole = t;
  whole.set_nanos(0);
  return google::protobuf::util::TimeUtil::ToString(whole);
}

std::string ToJson(const google::protobuf::Message& message, bool pretty) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.add_whitespace = pretty;
  std::string json;
  const auto status = google::protobuf::util::MessageToJsonString(message, &json, options);
  if (!status.ok()) return absl::StrCat("{\"error\": \"", status.message().ToString(), "\"}");
  while (!json.empty() && json.back() == '\n') json.pop_back();
  return json;
}

void PrintJson(const google::protobuf::Message& message) {
  std::cout << ToJson(message, true) << std::endl;
}

void PrintJsonLine(const google::protobuf::Message& message) {
  std::cout << ToJson(message, false) << std::endl;
}

std::string ShortEnumName(const std::string& full_name, const std::string& prefix) {
  std::string name = full_name.rfind(prefix, 0) == 0 ? full_name.substr(prefix.size()) : full_name;
  for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return name;
}

std::string TurnStatusName(v1::TurnStatus status) {
  return ShortEnumName(v1::TurnStatus_Name(status), "TURN_STATUS_");
}

std::string SessionStatusName(v1::SessionStatus status) {
  return ShortEnumName(v1::SessionStatus_Name(status), "SESSION_STATUS_");
}

std::string OneLine(const std::string& text, size_t max_bytes) {
  std::string line;
  for (char c : text) {
    if (c == '\n') {
      line += "\\n";
    } else if (c == '\r' || c == '\t') {
      line += ' ';
    } else {
      line += c;
    }
  }
  if (line.size() <= max_bytes) return line;
  size_t cut = max_bytes;
  while (cut > 0 && (static_cast<unsigned char>(line[cut]) & 0xC0) == 0x80) {
    --cut;  // UTF-8 boundary
  }
  return line.substr(0, cut) + "...";
}

std::string UsageText(const v1::Usage& usage) {
  return absl::StrFormat("%d in / %d out tokens, %d model call%s, $%.6f", usage.input_tokens(),
                         usage.output_tokens(), usage.model_calls(),
                         usage.model_calls() == 1 ? "" : "s", usage.cost_usd());
}

void PrintAgents(const std::vector<v1::Agent>& agents) {
  Table table({"agent_id", "version", "name", "model", "tools", "updated"});
  for (const v1::Agent& a : agents) {
    table.Add({a.agent_id(), absl::StrCat(a.version()), a.name(), a.model(),
               absl::StrCat(a.tools_size()), TimeText(a.update_time())});
  }
  table.Print(std::cout);
}

void PrintSessions(const std::vector<v1::Session>& sessions) {
  Table table({"session_id", "agent_id", "version", "status", "last_seq", "created", "expires"});
  for (const v1::Session& s : sessions) {
    table.Add({s.session_id(), s.agent_id(), absl::StrCat(s.agent_version()),
               SessionStatusName(s.status()), absl::StrCat(s.last_seq()), TimeText(s.create_time()),
               TimeText(s.expire_time())});
  }
  table.Print(std::cout);
}

void PrintTools(const v1::Agent& agent) {
  Table tools({"tool", "kind", "description"});
  for (const v1::ToolSpec& t : agent.tools()) {
    tools.Add({t.name(), ShortEnumName(v1::ToolKind_Name(t.kind()), "TOOL_KIND_"),
               OneLine(t.description(), 80)});
  }
  tools.Print(std::cout);
}

void PrintStateEntries(const std::vector<v1::StateEntry>& entries) {
  Table table({"key", "version", "value"});
  for (const v1::StateEntry& e : entries) {
    table.Add({e.key(), absl::StrCat(e.version()), OneLine(e.value_json(), kBodyWidth)});
  }
  table.Print(std::cout);
}

namespace {
std::string MetadataText(const google::protobuf::Map<std::string, std::string>& metadata) {
  std::vector<std::pair<std::string, std::string>> sorted(metadata.begin(), metadata.end());
  std::sort(sorted.begin(), sorted.end());
  return absl::StrJoin(sorted, ",", absl::PairFormatter("="));
}
}  // namespace

void PrintMemoryRecords(const std::vector<v1::MemoryRecord>& records) {
  Table table({"namespace", "key", "text", "metadata", "updated"});
  for (const v1::MemoryRecord& r : records) {
    table.Add({r.namespace_(), r.key(), OneLine(r.text(), 60), MetadataText(r.metadata()),
               TimeText(r.update_time())});
  }
  table.Print(std::cout);
}

void PrintScoredMemories(const std::vector<v1::ScoredMemory>& results) {
  Table table({"score", "namespace", "key", "text"});
  for (const v1::ScoredMemory& s : results) {
    table.Add({absl::StrFormat("%.4f", s.score()), s.record().namespace_(), s.record().key(),
               OneLine(s.record().text(), 80)});
  }
  table.Print(std::cout);
}

std::vector<std::string> EventRow(const v1::Event& event) {
  return {absl::StrCat(event.seq()), ShortEnumName(v1::EventType_Name(event.type()), "EVENT_TYPE_"),
          event.turn_id(), OneLine(EventBody(event), kBodyWidth)};
}

void PrintEvents(const std::vector<v1::Event>& events) {
  Table table({"seq", "type", "turn", "body"});
  for (const v1::Event& event : events) table.Add(EventRow(event));
  table.Print(std::cout);
}

void PrintEventLine(const std::vector<std::string>& row) {
  std::cout << std::left << std::setw(6) << row[0] << "  " << std::setw(14) << row[1] << "  "
            << std::setw(20) << row[2] << "  " << row[3] << std::endl;
}

std::string ApiKeyRoleName(v1::ApiKeyRole role) {
  return ShortEnumName(v1::ApiKeyRole_Name(role), "API_KEY_ROLE_");
}

std::string AuditActionName(v1::AuditAction action) {
  switch (action) {
    case v1::AUDIT_ACTION_AUTHENTICATION_FAILED:
      return "auth_failed";
    case v1::AUDIT_ACTION_API_KEY_CREATED:
      return "key_created";
    case v1::AUDIT_ACTION_API_KEY_REVOKED:
      return "key_revoked";
    default:
      return ShortEnumName(v1::AuditAction_Name(action), "AUDIT_ACTION_");
  }
}

void PrintProjects(const std::vector<v1::Project>& projects) {
  Table table({"project_id", "name", "monthly_budget_usd", "daily_token_limit",
               "requests_per_minute", "created"});
  for (const v1::Project& p : projects) {
    const v1::ProjectLimits& l = p.limits();
    table.Add({p.project_id(), p.name(), LimitText(l.monthly_budget_usd()),
               LimitText(l.daily_token_limit()), LimitText(l.requests_per_minute()),
               TimeText(p.create_time())});
  }
  table.Print(std::cout);
}

void PrintLimits(const v1::Project& project) {
  std::cout << "project " << project.project_id() << " (" << project.name() << ")\n";
  const v1::ProjectLimits& l = project.limits();
  Table table({"limit", "value"});
  table.Add({"monthly_budget_usd", LimitText(l.monthly_budget_usd())});
  table.Add({"daily_token_limit", LimitText(l.daily_token_limit())});
  table.Add({"requests_per_minute", LimitText(l.requests_per_minute())});
  table.Add({"allowed_tools",
             !l.has_allowed_tools()                 ? std::string("all")
             : l.allowed_tools().tools().empty()    ? std::string("none")
                                                    : absl::StrJoin(l.allowed_tools().tools(), ", ")});
  table.Print(std::cout);
}

void PrintApiKeys(const std::vector<v1::ApiKey>& keys) {
  Table table({"key_id", "project_id", "role", "name", "status", "created", "revoked"});
  for (const v1::ApiKey& k : keys) {
    table.Add({k.key_id(), k.project_id(), ApiKeyRoleName(k.role()), k.name(),
               k.revoked() ? "revoked" : "active", TimeText(k.create_time()),
               TimeText(k.revoke_time())});
  }
  table.Print(std::cout);
}

void PrintUsage(const std::string& group_header, const v1::GetUsageResponse& usage) {
  Table table({group_header, "input_tokens", "output_tokens", "calls", "cost_usd"});
  auto add = [&table](const std::string& group, const v1::Usage& u) {
    table.Add({group, absl::StrCat(u.input_tokens()), absl::StrCat(u.output_tokens()),
               absl::StrCat(u.model_calls()), absl::StrFormat("%.6f", u.cost_usd())});
  };
  for (const v1::UsageRow& row : usage.rows()) add(row.group(), row.usage());
  add("TOTAL", usage.total());
  table.Print(std::cout);
}

void PrintAuditEvents(const std::vector<v1::AuditEvent>& events) {
  Table table({"time", "action", "key_id", "method", "outcome", "detail"});
  for (const v1::AuditEvent& e : events) {
    table.Add({TimeText(e.time()), AuditActionName(e.action()), e.key_id(), e.method(), e.outcome(),
               OneLine(e.detail(), 2 * kBodyWidth)});
  }
  table.Print(std::cout);
}

void PrintRequiredToolCalls(const std::string& session_id,
                            const google::protobuf::RepeatedPtrField<v1::ToolCall>& calls) {
  const v1::ToolCall* client = nullptr;
  const v1::ToolCall* approval = nullptr;
  for (const v1::ToolCall& call : calls) {
    (call.requires_approval() ? approval : client) = &call;
  }
  std::cout << "requires action: the agent called " << calls.size()
            << (approval == nullptr ? " client tool" : " tool") << (calls.size() == 1 ? "" : "s")
            << (approval == nullptr ? "" : " (some need approval)") << "\n";
  Table table({"call_id", "name", "arguments", "needs"});
  for (const v1::ToolCall& call : calls) {
    table.Add({call.id(), call.name(), OneLine(call.arguments_json(), 200),
               call.requires_approval() ? "approval" : "result"});
  }
  table.Print(std::cout);
  if (client != nullptr || approval == nullptr) {
    std::cout << "answer with: agentctl send " << session_id << " --tool-result "
              << (client == nullptr ? "CALL_ID" : client->id()) << "=OUTPUT" << std::endl;
  }
  if (approval != nullptr) {
    std::cout << "approve with: agentctl send " << session_id << " --approve " << approval->id()
              << "   (or --reject " << approval->id() << "=REASON)" << std::endl;
  }
}

void PrintTurnStatusLine(const v1::TurnResult& result) {
  std::cerr << "turn " << result.turn_id() << ": " << TurnStatusName(result.status());
  if (!result.error().empty()) std::cerr << ": " << OneLine(result.error(), 300);
  std::cerr << " (" << UsageText(result.usage()) << "; last_seq " << result.last_seq() << ")"
            << std::endl;
}

}  // namespace agentd::cli
