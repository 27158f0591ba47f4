#!/usr/bin/env bash
# Regenerates the seed corpora in fuzz/corpus/<harness>/ (checked in; rerun after a proto or
# harness input-format change). Protobuf seeds are encoded from text format with /usr/bin/protoc,
# so they are exactly what a client would send. Seeds that fuzzing found (regressions) are
# named regress-* and are kept.
set -euo pipefail
cd "$(dirname "$0")/.."
PROTOC=/usr/bin/protoc
C=fuzz/corpus
for h in request_validation auth_header config sse_parser stored_records openai_request; do
  mkdir -p "$C/$h"
  find "$C/$h" -type f ! -name 'regress-*' -delete
done

# seed <dir> <name> <selector byte (decimal) or ""> <message type> <text proto>
seed() {
  local dir=$1 name=$2 sel=$3 type=$4 text=$5 out="$C/$1/$2"
  {
    [ -n "$sel" ] && printf "\\x$(printf %02x "$sel")"
    printf '%s' "$text" | "$PROTOC" -I proto --encode="$type" \
      proto/agentd/v1/agent.proto proto/agentd/v1/session.proto proto/agentd/v1/memory.proto \
      proto/agentd/v1/project.proto proto/agentd/v1/admin.proto proto/agentd/v1/tool.proto \
      proto/agentd/storage/records.proto
  } > "$out"
}

# ---- request_validation: byte 0 = index in the harness's Checkers() list (37 = ImportSession) --
R=request_validation
AGENT='agent { agent_id: "support" name: "Support" model: "echo" instructions: "Be brief."
  tools { name: "lookup" description: "Find an order" kind: TOOL_KIND_CLIENT
          parameters_json_schema: "{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"string\",\"maxLength\":64}},\"required\":[\"id\"]}" }
  context_policy { max_context_tokens: 8000 strategy: CONTEXT_STRATEGY_SLIDING_WINDOW keep_last_events: 20 }
  max_steps_per_turn: 8 metadata { key: "team" value: "cx" }
  output_schema_json: "{\"type\":\"object\",\"properties\":{\"answer\":{\"type\":\"string\"}}}" }'
seed $R create_agent 0 agentd.v1.CreateAgentRequest "$AGENT"
seed $R get_agent 1 agentd.v1.GetAgentRequest 'agent_id: "support" version: 2'
seed $R list_agents 2 agentd.v1.ListAgentsRequest 'page_size: 10 page_token: "abc"'
seed $R update_agent 3 agentd.v1.UpdateAgentRequest "$AGENT"
seed $R delete_agent 4 agentd.v1.DeleteAgentRequest 'agent_id: "support"'
seed $R create_session 5 agentd.v1.CreateSessionRequest 'agent_id: "support" session_id: "s1" ttl_seconds: 3600 metadata { key: "user" value: "u1" }'
seed $R get_session 6 agentd.v1.GetSessionRequest 'session_id: "s1"'
seed $R list_sessions 7 agentd.v1.ListSessionsRequest 'agent_id: "support" status: SESSION_STATUS_IDLE page_size: 5'
seed $R delete_session 8 agentd.v1.DeleteSessionRequest 'session_id: "s1"'
seed $R fork_session 9 agentd.v1.ForkSessionRequest 'session_id: "s1" at_seq: 4 new_session_id: "s1-fork"'
seed $R run_turn 10 agentd.v1.RunTurnRequest 'session_id: "s1" input { role: ROLE_USER text: "hello" } idempotency_key: "turn-1" on_busy: BUSY_POLICY_ENQUEUE'
seed $R run_turn_tools 10 agentd.v1.RunTurnRequest 'session_id: "s1" tool_results { tool_call_id: "call_1" output: "{\"ok\":true}" } approvals { tool_call_id: "call_2" approved: true reason: "fine" }'
seed $R cancel_turn 11 agentd.v1.CancelTurnRequest 'session_id: "s1"'
seed $R list_events 12 agentd.v1.ListEventsRequest 'session_id: "s1" after_seq: 2 limit: 50'
seed $R watch_events 13 agentd.v1.WatchEventsRequest 'session_id: "s1" after_seq: 2'
seed $R get_state 14 agentd.v1.GetStateRequest 'session_id: "s1" key: "cart"'
seed $R put_state 15 agentd.v1.PutStateRequest 'session_id: "s1" key: "cart" value_json: "{\"items\":[1,2]}" expected_version: 1'
seed $R list_state 16 agentd.v1.ListStateRequest 'session_id: "s1"'
seed $R export_session 17 agentd.v1.ExportSessionRequest 'session_id: "s1"'
seed $R replay_session 18 agentd.v1.ReplaySessionRequest 'session_id: "s1" model: "echo" new_session_id: "s1-replay"'
seed $R put_memory 19 agentd.v1.PutMemoryRequest 'namespace: "users/u1" key: "pref" text: "likes tea" metadata { key: "src" value: "chat" }'
seed $R get_memory 20 agentd.v1.GetMemoryRequest 'namespace: "users/u1" key: "pref"'
seed $R list_memories 21 agentd.v1.ListMemoriesRequest 'namespace_prefix: "users/" page_size: 20'
seed $R search_memory 22 agentd.v1.SearchMemoryRequest 'namespace_prefix: "users/" query: "tea" top_k: 5'
seed $R delete_memory 23 agentd.v1.DeleteMemoryRequest 'namespace: "users/u1" key: "pref"'
seed $R create_project 24 agentd.v1.CreateProjectRequest 'name: "Team A"'
seed $R set_limits 31 agentd.v1.SetLimitsRequest 'project_id: "p1"'
seed $R revoke_key 29 agentd.v1.RevokeApiKeyRequest 'key_id: "k0123456789abcdef"'
# ImportSession: varint length + ExportChunk, repeated.
imp=$(mktemp -d)
seed_chunk() { printf '%s' "$2" | "$PROTOC" -I proto --encode=agentd.v1.ExportChunk proto/agentd/v1/session.proto > "$imp/$1"; }
seed_chunk 1 'session { session_id: "s1" agent_id: "support" agent_version: 1 status: SESSION_STATUS_IDLE last_seq: 2 }'
seed_chunk 2 "agent { agent_id: \"support\" version: 1 model: \"echo\" }"
seed_chunk 3 'event { session_id: "s1" seq: 1 type: EVENT_TYPE_TURN_STARTED }'
seed_chunk 4 'event { session_id: "s1" seq: 2 type: EVENT_TYPE_MESSAGE message { role: ROLE_USER text: "hi" } }'
seed_chunk 5 'state { key: "cart" value_json: "[]" version: 1 }'
{
  printf '\x25'
  for i in 1 2 3 4 5; do
    n=$(stat -c %s "$imp/$i"); printf "\\x$(printf %02x "$n")"; cat "$imp/$i"
  done
} > "$C/$R/import_session"
rm -rf "$imp"

# ---- auth_header: byte 0 = method index (0 CreateAgent, 2 RunTurn, 4 CreateProject, 11 unknown) -
A=auth_header
printf '\x00Bearer fuzz-admin-key-0123456789abcdef' > "$C/$A/admin_create_agent"
printf '\x04Bearer fuzz-admin-key-0123456789abcdef' > "$C/$A/admin_create_project"
printf '\x02bearer \tagd_k0123456789abcdef_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef ' > "$C/$A/member_run_turn"
printf '\x04Bearer agd_k0123456789abcdef_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef' > "$C/$A/member_denied"
printf '\x01Bearer fuzz-reader-key-0123456789abcdef' > "$C/$A/reader_get"
printf '\x00Bearer fuzz-reader-key-0123456789abcdef' > "$C/$A/reader_denied"
printf '\x01Bearer fuzz-revoked-key-0123456789abcdef' > "$C/$A/revoked"
printf '\x01Basic dXNlcjpwYXNz' > "$C/$A/basic"
printf '\x0bBearer fuzz-admin-key-0123456789abcdef' > "$C/$A/unknown_method"
printf '\x01Bearer short' > "$C/$A/short_key"

# ---- config: YAML files (docs/configuration.md shapes) ---------------------------------------
G=config
cp deploy/container/agentd.yaml "$C/$G/container.yaml"
cat > "$C/$G/minimal.yaml" <<'EOF'
listen: 127.0.0.1:7070
data_dir: ./data
EOF
cat > "$C/$G/full.yaml" <<'EOF'
listen: 127.0.0.1:7070
data_dir: /var/lib/agentd
durability: relaxed
metrics_listen: 127.0.0.1:9090
http_listen: 127.0.0.1:8080
log_level: debug
log_format: json
drain_grace_ms: 5000
max_message_bytes: 4194304
turn_threads: 8
audit_retention_days: 30
tls:
  cert_file: /etc/agentd/tls.crt
  key_file: /etc/agentd/tls.key
backends:
  - name: openai
    type: openai
    base_url: https://api.openai.com/v1
    api_key_env: OPENAI_API_KEY
    timeout_ms: 30000
models:
  - name: gpt-4o-mini
    backend: openai
    deployments:
      - backend: openai
        model: gpt-4o-mini
mcp_servers:
  - name: everything
    url: http://127.0.0.1:3001/mcp
    headers:
      X-Team: cx
EOF
printf 'listen: [unclosed\n' > "$C/$G/bad_syntax.yaml"
printf 'a: 1\n---\nb: 2\n' > "$C/$G/two_docs.yaml"
printf 'models:\n  - name: m\n    backend: missing\n' > "$C/$G/bad_reference.yaml"

# ---- sse_parser: byte 0 = split seed, then the stream --------------------------------------
S=sse_parser
printf '\x07data: {"choices":[{"index":0,"delta":{"content":"Hel"}}]}\n\ndata: {"choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":2}}\n\ndata: [DONE]\n\n' > "$C/$S/openai_stream"
printf '\x03data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"lookup","arguments":"{\\"id\\":"}}]}}]}\r\n\r\ndata: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\\"42\\"}"}}]},"finish_reason":"tool_calls"}]}\r\n\r\ndata: [DONE]\r\n\r\n' > "$C/$S/openai_tool_calls"
printf '\x11\xef\xbb\xbf: keep-alive\revent: message\rid: 7\rdata: {"jsonrpc":"2.0","id":1,"result":{"tools":[]}}\r\r' > "$C/$S/mcp_bom_cr"
printf '\x01event: error\ndata: {"error":{"message":"overloaded","type":"server_error"}}\n\n' > "$C/$S/stream_error"
printf '\x02{"id":"c1","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1}}' > "$C/$S/non_streaming_body"
printf '\x05data: line one\ndata: line two\nretry: 10\nunknown: x\n\ndata' > "$C/$S/multiline_cut"

# ---- stored_records: byte 0 = value type (harness ValueMessage order); keys use all bytes ---
D=stored_records
seed $D session_record 0 agentd.storage.SessionRecord 'session { session_id: "s1" agent_id: "support" agent_version: 1 status: SESSION_STATUS_REQUIRES_ACTION last_seq: 5 metadata { key: "u" value: "1" } pending_tool_calls { id: "call_1" name: "lookup" arguments_json: "{}" } } running_turn_id: "t1" revision: 9 fork_ids: "s2"'
seed $D agent_head 1 agentd.storage.AgentHead 'latest_version: 3 create_time { seconds: 1700000000 }'
seed $D agent 2 agentd.v1.Agent 'agent_id: "support" version: 3 model: "echo" tools { name: "t" kind: TOOL_KIND_CLIENT }'
seed $D event 3 agentd.v1.Event 'session_id: "s1" seq: 4 turn_id: "t1" type: EVENT_TYPE_TOOL_CALL tool_call { id: "call_1" name: "lookup" arguments_json: "{\"id\":\"42\"}" } token_estimate: 12'
seed $D idempotency 4 agentd.storage.IdempotencyRecord 'request_digest: "0123456789abcdef" result: "\n\x02s1" create_time { seconds: 1700000000 nanos: 5 }'
seed $D format_info 6 agentd.storage.FormatInfo 'version: 1 written_by: "agentd 0.1.0"'
seed $D api_key_record 7 agentd.storage.ApiKeyRecord 'key { key_id: "k0123456789abcdef" project_id: "default" role: API_KEY_ROLE_ADMIN name: "bootstrap" } salt: "0123456789abcdef" hash: "01234567890123456789012345678901"'
seed $D state_entry 8 agentd.v1.StateEntry 'key: "cart" value_json: "{\"n\":1}" version: 2'
seed $D usage 11 agentd.v1.Usage 'input_tokens: 10 output_tokens: 20 model_calls: 1 cost_usd: 0.25'
# Keys (the selector byte is part of the key bytes; every decoder is tried on every input).
printf '\x07default\x02s1' > "$C/$D/key_session"
printf '\x07default\x02s1\x00\x00\x00\x00\x00\x00\x00\x05' > "$C/$D/key_event"
printf '\x07default\x07support\x00\x00\x00\x00\x00\x00\x00\x00' > "$C/$D/key_agent_head"
printf '\x07default\x02s1cart' > "$C/$D/key_state"
printf '\x07default\x03\x02s1\x00\x00\x4e\x20' > "$C/$D/key_usage_session"
printf '\x07default\x00\x06\x0b\x1a\x2b\x3c\x4d\x5eaud_1' > "$C/$D/key_audit"
printf '\x02\x00\x06\x0b\x1a\x2b\x3c\x4d\x5e\x07default\x02s1turn-1' > "$C/$D/key_expiry_idem"
printf 'users/u1\x00pref' > "$C/$D/memory_doc_id"
printf '\x05\x03tea\x02\x05water\x01' > "$C/$D/doc_entry"
printf '\x03\x07' > "$C/$D/posting"

# ---- openai_request: POST /v1/responses bodies ---------------------------------------------
O=openai_request
printf '{"model":"echo","input":"hello"}' > "$C/$O/simple"
printf '{"model":"agent:support","instructions":"Be brief.","stream":true,"store":false,"input":[{"role":"user","content":[{"type":"input_text","text":"hi"}]}]}' > "$C/$O/agent_stream"
printf '{"model":"echo","previous_response_id":"resp_abc","input":[{"type":"function_call_output","call_id":"call_1","output":"{\\"ok\\":true}"}],"tools":[{"type":"function","name":"lookup","description":"d","parameters":{"type":"object","properties":{"id":{"type":"string"}}}}]}' > "$C/$O/tool_output"
printf '{"model":"echo","conversation":"s1","input":[{"type":"mcp_approval_response","approval_request_id":"call_2","approve":false,"reason":"no"}]}' > "$C/$O/approval"
printf '{"model":7}' > "$C/$O/wrong_type"

for h in request_validation auth_header config sse_parser stored_records openai_request; do
  echo "$h: $(ls "$C/$h" | wc -l) seeds"
done
