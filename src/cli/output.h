// Printing for agentctl: aligned tables, protobuf JSON, and one-line renderings of agentd
// resources (agents, sessions, events, turn results, projects, keys, usage, audit records).
// Everything writes to std::cout unless stated otherwise.
#pragma once

#include <google/protobuf/message.h>

#include <ostream>
#include <string>
#include <vector>

#include "agentd/v1/agent.pb.h"
#include "agentd/v1/common.pb.h"
#include "agentd/v1/memory.pb.h"
#include "agentd/v1/project.pb.h"
#include "agentd/v1/session.pb.h"

namespace agentd::cli {

/// Columns left-aligned to the widest cell, separated by two spaces; header in upper case.
class Table {
 public:
  explicit Table(std::vector<std::string> header) : header_(std::move(header)) {}
  void Add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  void Print(std::ostream& out) const;

 private:
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
};

/// Protobuf JSON with the proto field names (`agent_id`, not `agentId`).
std::string ToJson(const google::protobuf::Message& message, bool pretty);
/// Pretty JSON of `message` followed by a newline.
void PrintJson(const google::protobuf::Message& message);
/// Compact JSON of `message` on one line (for streams: JSON Lines).
void PrintJsonLine(const google::protobuf::Message& message);

/// Enum value name without its prefix, in lower case: EVENT_TYPE_TOOL_CALL -> "tool_call".
std::string ShortEnumName(const std::string& full_name, const std::string& prefix);
std::string TurnStatusName(agentd::v1::TurnStatus status);
std::string SessionStatusName(agentd::v1::SessionStatus status);

/// RFC 3339 in whole seconds ("2024-05-01T12:00:00Z"); empty for an unset timestamp.
std::string TimeText(const google::protobuf::Timestamp& t);

/// `text` on one line (newlines shown as "\n"), cut to `max_bytes` on a UTF-8 boundary.
std::string OneLine(const std::string& text, size_t max_bytes);

/// "12 in / 5 out tokens, 1 model call, $0.000123".
std::string UsageText(const agentd::v1::Usage& usage);

void PrintAgents(const std::vector<agentd::v1::Agent>& agents);
/// The agent's tools: name, kind, description.
void PrintTools(const agentd::v1::Agent& agent);
void PrintSessions(const std::vector<agentd::v1::Session>& sessions);

/// Columns of one event row: seq, type, turn, body.
std::vector<std::string> EventRow(const agentd::v1::Event& event);
void PrintEvents(const std::vector<agentd::v1::Event>& events);
/// For `--follow`: one row (EventRow() or a header) with fixed column widths, since the table
/// cannot be measured in advance.
void PrintEventLine(const std::vector<std::string>& row);

/// Tool state: key, version, value (one line, cut to a readable width).
void PrintStateEntries(const std::vector<agentd::v1::StateEntry>& entries);
/// Long-term memory records: namespace, key, text (cut), metadata, update time.
void PrintMemoryRecords(const std::vector<agentd::v1::MemoryRecord>& records);
/// Search results, best first: score (4 decimals), namespace, key, text (cut).
void PrintScoredMemories(const std::vector<agentd::v1::ScoredMemory>& results);

std::string ApiKeyRoleName(agentd::v1::ApiKeyRole role);  // "admin", "member", "reader"
/// Short audit action: AUDIT_ACTION_AUTHENTICATION_FAILED -> "auth_failed",
/// AUDIT_ACTION_API_KEY_CREATED -> "key_created", otherwise the lower-case name without prefix.
std::string AuditActionName(agentd::v1::AuditAction action);

void PrintProjects(const std::vector<agentd::v1::Project>& projects);
/// One row per limit of `project` ("unlimited" for 0), under a line naming the project.
void PrintLimits(const agentd::v1::Project& project);
/// Key metadata only: ApiKey has no secret field, and no secret is ever printed here.
void PrintApiKeys(const std::vector<agentd::v1::ApiKey>& keys);
/// The usage rows under a `group_header` column (agent, session, model or day), then a TOTAL row.
void PrintUsage(const std::string& group_header, const agentd::v1::GetUsageResponse& usage);
void PrintAuditEvents(const std::vector<agentd::v1::AuditEvent>& events);

/// The tool calls a REQUIRES_ACTION turn waits for, and how to answer them.
void PrintRequiredToolCalls(const std::string& session_id,
                            const google::protobuf::RepeatedPtrField<agentd::v1::ToolCall>& calls);

/// "turn <id>: completed (usage ...; last_seq N)" to stderr, with the error if any.
void PrintTurnStatusLine(const agentd::v1::TurnResult& result);

}  // namespace agentd::cli
