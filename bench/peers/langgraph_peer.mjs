// langgraph_peer: agentd's loadgen step (docs/benchmarks.md, "Load generator") run by a LangGraph
// StateGraph with a durable checkpointer, for side-by-side numbers (issue #8).
//
// One step = graph.invoke({messages: [200-byte HumanMessage]}, {thread_id, durability: "sync"})
// on a StateSchema {messages: MessagesValue (--messages full, default) or MessagesDeltaValue
// (--messages delta, LangGraph 1.7's beta delta channel), boundary}:
//   agent node: POST /v1/chat/completions to bench/mock-openai with plain fetch (keep-alive):
//     a 2 KB system prompt + the thread's history (windowed like agentd's default context
//     policy, --window-tokens) + tools=[one function tool] → ~1 KB assistant message, ONE tool call
//   tools node: a 1 KB tool result as a ToolMessage
//   agent node again: the last message is a tool message → a ~1 KB final answer → END
// Every super-step's checkpoint is written before the next one starts (durability "sync"):
//   --store sqlite    SqliteSaver (better-sqlite3) on a file in --data-dir; the saver's WAL
//                     journal, synchronous=FULL (fsync of the WAL on every commit)
//   --store postgres  PostgresSaver (pg Pool) on --dsn; setup() first; PostgreSQL's defaults
//                     (fsync on, synchronous_commit on)
// Closed loop: --sessions N concurrent session loops × --turns M steps (each session's steps
// back to back), after one unmeasured warm-up step on each of min(N, 64) separate threads.
// Every step is checked: the returned state ends with the human message, an assistant message
// with one tool call, its tool result and a final assistant message, and holds 4 messages per
// step of the thread. Prints a table and one `RESULT {json}` line with loadgen's keys; --csv
// writes loadgen's CSV. Exit 1 if any step failed, 2 if the run could not be set up.
//
//   node langgraph_peer.mjs --modules DIR --mock-url http://127.0.0.1:PORT/v1 --store sqlite \
//     --data-dir DIR [--sessions N] [--turns M] [--csv FILE] [--label L] [--mock-pid PID]
//     [--messages full|delta] [--window-tokens N (0 = full history)]
//   ... --store postgres --dsn postgresql://... [--pg-data DIR (CPU/writes of the PG server)]
import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";

import * as st from "./peer_stats.mjs";

const USAGE = "usage: langgraph_peer.mjs --mock-url URL --store sqlite|postgres [--data-dir DIR | --dsn DSN] ...";

function die(code, message) {
  process.stderr.write(`langgraph_peer: ${message}\n`);
  process.exit(code);
}

function parseOptions() {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        modules: { type: "string" },
        "mock-url": { type: "string" },
        store: { type: "string" },
        "data-dir": { type: "string" },
        dsn: { type: "string" },
        "pg-data": { type: "string" },
        "pg-pool": { type: "string", default: "10" },
        sessions: { type: "string", default: "16" },
        turns: { type: "string", default: "20" },
        "warmup-steps": { type: "string", default: "1" },
        "window-tokens": { type: "string", default: "32768" },
        messages: { type: "string", default: "full" },
        "timeout-ms": { type: "string", default: "30000" },
        "mock-pid": { type: "string" },
        csv: { type: "string" },
        label: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (e) {
    die(2, `${e.message}\n${USAGE}`);
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const int = (name, lo, hi) => {
    const v = Number(values[name]);
    if (!Number.isInteger(v) || v < lo || v > hi) die(2, `--${name} must be an integer in ${lo}..${hi}`);
    return v;
  };
  const o = {
    modules:
      values.modules ??
      process.env.AGENTD_BENCH_PEERS_DIR ??
      join(process.env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "agentd-bench-peers"),
    mockUrl: values["mock-url"],
    store: values.store,
    dataDir: values["data-dir"],
    dsn: values.dsn,
    pgData: values["pg-data"],
    pgPool: int("pg-pool", 1, 1000),
    sessions: int("sessions", 1, 100000),
    turns: int("turns", 1, 10000000),
    warmupSteps: int("warmup-steps", 0, 1000),
    windowTokens: int("window-tokens", 0, 10000000),
    timeoutMs: int("timeout-ms", 1, 3600000),
    mockPid: values["mock-pid"] ? int("mock-pid", 1, 1 << 30) : 0,
    messages: values.messages,
    csv: values.csv,
    label: values.label,
  };
  if (o.messages !== "full" && o.messages !== "delta") die(2, "--messages must be full or delta");
  if (!o.mockUrl) die(2, `--mock-url is required\n${USAGE}`);
  if (o.store === "sqlite") {
    if (!o.dataDir) die(2, "--store sqlite needs --data-dir");
  } else if (o.store === "postgres") {
    if (!o.dsn) die(2, "--store postgres needs --dsn");
  } else {
    die(2, `--store must be sqlite or postgres\n${USAGE}`);
  }
  return o;
}

/** Imports a package's ESM entry point from `modulesDir` (the packages live outside the repo). */
async function importFrom(modulesDir, name, subpath = ".") {
  const root = join(modulesDir, "node_modules", name);
  let pkg;
  try {
    pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
  } catch {
    die(2, `${name} is not installed in ${modulesDir} (run bench/peers/run_all.sh, which installs the peers)`);
  }
  let entry = pkg.exports?.[subpath] ?? (subpath === "." ? pkg.main : undefined);
  if (entry && typeof entry === "object") entry = entry.import ?? entry.default;
  if (entry && typeof entry === "object") entry = entry.default;
  if (typeof entry !== "string") die(2, `cannot find the ESM entry of ${name} ${subpath}`);
  return import(pathToFileURL(join(root, entry)).href);
}

// The texts of loadgen.cc and mock_openai_main.cc, so every system carries the same bytes.
const SYSTEM_PROMPT = st.filledText(
  "You are the loadgen benchmark agent.",
  2048,
  " You are a careful assistant. Use the tools you are given, cite what they return, and answer briefly.",
);
const TOOL_NAME = "state_get";
const TOOLS = [
  {
    type: "function",
    function: {
      name: TOOL_NAME,
      description: "Reads a key of the session's state and returns the document stored under it.",
      parameters: { type: "object", properties: { key: { type: "string" } }, required: ["key"] },
    },
  },
];
const TOOL_RESULT_BYTES = 1024;
const MESSAGE_BYTES = 200;

// agentd's estimate (docs/context.md): 4 + ceil(bytes / 4) per message.
const estimate = (bytes) => 4 + Math.ceil(bytes / 4);

async function main() {
  const o = parseOptions();
  const { StateGraph, StateSchema, MessagesValue, MessagesDeltaValue, START, END } = await importFrom(
    o.modules,
    "@langchain/langgraph",
  );
  const { z } = await importFrom(o.modules, "zod");
  const { AIMessage, ToolMessage, HumanMessage } = await importFrom(o.modules, "@langchain/core", "./messages");

  const typeOf = (m) => (typeof m.getType === "function" ? m.getType() : m._getType());

  /** OpenAI chat message of a LangChain message; its token estimate is stored alongside. */
  function toOpenAi(m) {
    const type = typeOf(m);
    const content = typeof m.content === "string" ? m.content : JSON.stringify(m.content);
    if (type === "human") return { role: "user", content };
    if (type === "tool") return { role: "tool", tool_call_id: m.tool_call_id, content };
    if (type === "ai") {
      const msg = { role: "assistant", content: content || null };
      if (m.tool_calls?.length) {
        msg.tool_calls = m.tool_calls.map((c) => ({
          id: c.id,
          type: "function",
          function: { name: c.name, arguments: JSON.stringify(c.args ?? {}) },
        }));
      }
      return msg;
    }
    throw new Error(`unexpected message type ${type}`);
  }
  function tokensOf(m) {
    const content = typeof m.content === "string" ? m.content : JSON.stringify(m.content);
    let bytes = Buffer.byteLength(content);
    for (const c of m.tool_calls ?? []) bytes += c.name.length + JSON.stringify(c.args ?? {}).length;
    return estimate(bytes);
  }

  // Context window like agentd's SLIDING_WINDOW policy (docs/context.md): the messages after
  // `boundary` are sent; when they do not fit the budget, the boundary moves forward so that at
  // most half the budget stays (whole tool-call units, never the current turn's messages), and
  // the new boundary is kept in the graph's state (checkpointed like the messages).
  const fixedTokens = estimate(SYSTEM_PROMPT.length) + estimate(JSON.stringify(TOOLS).length);
  function windowStart(messages, boundary) {
    if (o.windowTokens === 0) return 0;
    const budget = Math.max(0, o.windowTokens - fixedTokens);
    let total = 0;
    for (let i = boundary; i < messages.length; ++i) total += tokensOf(messages[i]);
    if (total <= budget) return boundary;
    let turnStart = messages.length - 1;
    while (turnStart > 0 && typeOf(messages[turnStart]) !== "human") --turnStart;
    let kept = 0;
    let start = messages.length;
    while (start > boundary) {
      // The unit ending at start-1: tool results and the assistant message that called them.
      let unit = start - 1;
      while (unit > boundary && typeOf(messages[unit]) === "tool") --unit;
      let cost = 0;
      for (let i = unit; i < start; ++i) cost += tokensOf(messages[i]);
      if (unit >= turnStart || kept + cost <= budget / 2) {
        kept += cost;
        start = unit;
      } else {
        break;
      }
    }
    return start;
  }

  // --messages full: MessagesValue (the StateSchema form of MessagesAnnotation): every checkpoint
  // holds the whole message list. delta: MessagesDeltaValue (beta in 1.7): checkpoints hold the
  // step's new messages, with a full snapshot every 100 updates.
  const State = new StateSchema({
    messages: o.messages === "delta" ? MessagesDeltaValue : MessagesValue,
    boundary: z.number().default(0),
  });

  let modelCalls = 0;
  let modelMs = 0;  // time in the model's HTTP calls (fetch + reading the reply), like agentd's histogram
  let requestBytes = 0;
  let maxRequestBytes = 0;
  async function agent(state) {
    const boundary = windowStart(state.messages, state.boundary);
    const body = {
      model: "mock-1",
      messages: [{ role: "system", content: SYSTEM_PROMPT }, ...state.messages.slice(boundary).map(toOpenAi)],
      tools: TOOLS,
    };
    const json = JSON.stringify(body);
    requestBytes += json.length;
    maxRequestBytes = Math.max(maxRequestBytes, json.length);
    const callStart = performance.now();
    const res = await fetch(`${o.mockUrl}/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: "Bearer mock" },
      body: json,
      signal: AbortSignal.timeout(o.timeoutMs),
    });
    if (!res.ok) throw new Error(`model HTTP ${res.status}: ${(await res.text()).slice(0, 200)}`);
    const reply = await res.json();
    modelMs += performance.now() - callStart;
    ++modelCalls;
    const msg = reply.choices?.[0]?.message;
    if (!msg) throw new Error("model reply has no choices[0].message");
    const toolCalls = (msg.tool_calls ?? []).map((c) => ({
      id: c.id,
      name: c.function.name,
      args: JSON.parse(c.function.arguments || "{}"),
      type: "tool_call",
    }));
    return {
      messages: [new AIMessage({ content: msg.content ?? "", tool_calls: toolCalls })],
      boundary,
    };
  }

  async function tools(state) {
    const last = state.messages[state.messages.length - 1];
    return {
      messages: last.tool_calls.map(
        (c) =>
          new ToolMessage({
            tool_call_id: c.id,
            name: c.name,
            content: st.filledText(`{"result":"${c.name} found:`, TOOL_RESULT_BYTES - 2) + '"}',
          }),
      ),
    };
  }

  const route = (state) => (state.messages[state.messages.length - 1].tool_calls?.length ? "tools" : END);

  // The checkpointer.
  let saver;
  let closeSaver = async () => {};
  let dataBytes = () => -1;
  let serverReading = () => null;
  let storeDetail = {};
  if (o.store === "sqlite") {
    const { SqliteSaver } = await importFrom(o.modules, "@langchain/langgraph-checkpoint-sqlite");
    const dbPath = join(o.dataDir, "checkpoints.sqlite");
    try {
      saver = SqliteSaver.fromConnString(dbPath);
      saver.setup();  // sets journal_mode=WAL
    } catch (e) {
      die(2, `cannot open SQLite at ${dbPath}: ${e.message} (is better-sqlite3's native binding built?)`);
    }
    saver.db.pragma("synchronous=FULL");
    storeDetail = {
      journal_mode: saver.db.pragma("journal_mode", { simple: true }),
      synchronous: saver.db.pragma("synchronous", { simple: true }),  // 2 = FULL
      sqlite_version: saver.db.prepare("select sqlite_version() v").get().v,
    };
    if (storeDetail.synchronous !== 2) die(2, "SQLite did not accept synchronous=FULL");
    closeSaver = async () => saver.db.close();
    dataBytes = () => st.dirBytes(o.dataDir);
  } else {
    const { PostgresSaver } = await importFrom(o.modules, "@langchain/langgraph-checkpoint-postgres");
    const pg = (await importFrom(o.modules, "pg")).default;
    const pool = new pg.Pool({ connectionString: o.dsn, max: o.pgPool });
    saver = new PostgresSaver(pool);
    try {
      await saver.setup();
      const settings = await pool.query(
        "select current_setting('fsync') fsync, current_setting('synchronous_commit') sc, version() v",
      );
      storeDetail = {
        fsync: settings.rows[0].fsync,
        synchronous_commit: settings.rows[0].sc,
        pg_version: settings.rows[0].v.split(" ").slice(0, 2).join(" "),
        pg_pool: o.pgPool,
      };
    } catch (e) {
      die(2, `cannot set up PostgreSQL at ${o.dsn}: ${e.message}`);
    }
    closeSaver = async () => saver.end();
    // The checkpoint tables (with indexes and TOAST); the cluster's own catalogs and WAL are not
    // counted.
    dataBytes = async () =>
      Number(
        (
          await pool.query(
            "select coalesce(sum(pg_total_relation_size(c.oid)), 0) b from pg_class c " +
              "join pg_namespace n on n.oid = c.relnamespace where n.nspname = 'public' and c.relkind = 'r'",
          )
        ).rows[0].b,
      );
    if (o.pgData) {
      let postmaster = 0;
      try {
        postmaster = Number(readFileSync(join(o.pgData, "postmaster.pid"), "utf8").split("\n")[0]);
      } catch (e) {
        die(2, `cannot read ${o.pgData}/postmaster.pid: ${e.message}`);
      }
      serverReading = () => st.readProcTree(postmaster);
    }
  }

  const graph = new StateGraph(State)
    .addNode("agent", agent)
    .addNode("tools", tools)
    .addEdge(START, "agent")
    .addConditionalEdges("agent", route, ["tools", END])
    .addEdge("tools", "agent")
    .compile({ checkpointer: saver });

  // Sessions: a loop per session, its steps back to back.
  const runId = `${process.pid}-${Date.now()}`;
  const errors = { total: 0, byKind: {}, samples: [] };
  function addError(kind, message) {
    errors.total += 1;
    errors.byKind[kind] = (errors.byKind[kind] ?? 0) + 1;
    if (errors.samples.length < 10) errors.samples.push(`${kind}: ${message}`);
  }

  /** One step on `threadId` (its `turn`-th); returns an error kind and message, or null. */
  async function step(threadId, turn) {
    const text = st.filledText(`step ${turn} of ${threadId}:`, MESSAGE_BYTES);
    let out;
    try {
      out = await graph.invoke(
        { messages: [new HumanMessage(text)] },
        { configurable: { thread_id: threadId }, durability: "sync", recursionLimit: 10 },
      );
    } catch (e) {
      return ["invoke", String(e?.message ?? e).split("\n")[0]];
    }
    const m = out.messages;
    if (m.length !== 4 * turn) return ["check:history", `${m.length} messages after step ${turn}`];
    const [human, call, result, final] = m.slice(-4);
    if (typeOf(human) !== "human" || human.content !== text) return ["check:human", "not the step's message"];
    if (typeOf(call) !== "ai" || call.tool_calls?.length !== 1 || call.tool_calls[0].name !== TOOL_NAME)
      return ["check:tool_call", "no assistant message with one tool call"];
    if (typeOf(result) !== "tool" || result.tool_call_id !== call.tool_calls[0].id || result.content.length !== TOOL_RESULT_BYTES)
      return ["check:tool_result", "no 1 KB tool result for the call"];
    if (typeOf(final) !== "ai" || final.tool_calls?.length || !final.content)
      return ["check:final", "no final assistant message"];
    return null;
  }

  async function runClosedLoop(threads, turns, samples) {
    await Promise.all(
      threads.map(async (threadId) => {
        for (let turn = 1; turn <= turns; ++turn) {
          const t0 = performance.now();
          const err = await step(threadId, turn);
          const ms = performance.now() - t0;
          if (err) {
            addError(samples ? err[0] : `warmup:${err[0]}`, `${threadId} step ${turn}: ${err[1]}`);
          } else if (samples) {
            samples.push({ turn, ms });
          }
        }
      }),
    );
  }

  const warmupThreads = [];
  if (o.warmupSteps > 0) {
    for (let i = 0; i < Math.min(o.sessions, 64); ++i) warmupThreads.push(`warmup-${i}-${runId}`);
  }
  await runClosedLoop(warmupThreads, o.warmupSteps, null);

  const threads = [];
  for (let i = 0; i < o.sessions; ++i) threads.push(`session-${i}-${runId}`);
  const samples = [];
  const callsBefore = modelCalls;
  const modelMsBefore = modelMs;
  const requestBytesBefore = requestBytes;
  const loadBefore = st.loadAverage();
  // Readings of the machine, this process, the store's server and the mock at one moment.
  const snapshot = () => ({
    busy: st.systemBusySeconds(),
    self: st.readSelf(),
    server: serverReading(),
    mock: o.mockPid ? st.readProc(o.mockPid) : null,
  });
  const before = snapshot();
  const t0 = performance.now();
  await runClosedLoop(threads, o.turns, samples);
  const wallS = (performance.now() - t0) / 1000;
  const after = snapshot();
  const loadAfter = st.loadAverage();

  const steps = samples.length;
  const overall = st.summarize(samples.map((s) => s.ms));
  const buckets = st.byBucket(samples);
  const label = o.label ?? `langgraph-${o.store}`;
  const result = {
    mode: "closed",
    model: "mock",
    tool: "graph-node",
    system: label,
    sessions: o.sessions,
    steps,
    errors: errors.total,
    wall_s: st.r3(wallS),
    steps_per_s: st.r3(wallS > 0 ? steps / wallS : 0),
    p50_ms: st.r3(overall.p50),
    p90_ms: st.r3(overall.p90),
    p99_ms: st.r3(overall.p99),
    max_ms: st.r3(overall.max),
    model_calls: modelCalls - callsBefore,
    // Runtime overhead as loadgen estimates it for agentd: a step's latency minus the mean
    // time per step spent in the model's HTTP calls.
    ...(steps > 0 && {
      model_ms_per_step: st.r3((modelMs - modelMsBefore) / steps),
      overhead_p50_ms: st.r3(Math.max(0, overall.p50 - (modelMs - modelMsBefore) / steps)),
      overhead_p99_ms: st.r3(Math.max(0, overall.p99 - (modelMs - modelMsBefore) / steps)),
    }),
    model_request_bytes_mean: Math.round(
      (requestBytes - requestBytesBefore) / Math.max(1, modelCalls - callsBefore),
    ),
    model_request_bytes_max: maxRequestBytes,
    loadavg_1m_before: loadBefore,
    loadavg_1m_after: loadAfter,
    turns_per_session: o.turns,
    label,
    store: o.store,
    messages_channel: o.messages,
    window_tokens: o.windowTokens,
    ...storeDetail,
    by_turn_index: Object.fromEntries(buckets.map(([l, s]) => [l, st.summaryJson(s)])),
    errors_by_kind: errors.byKind,
  };
  // The peer is one process (client, graph runtime and, for SQLite, the store): its CPU and
  // writes are the "server" figures; with PostgreSQL the PG server processes' are added.
  let watchedCpu = 0;
  if (steps > 0) {
    let cpu = after.self.cpu_s - before.self.cpu_s;
    let written = after.self.write_bytes - before.self.write_bytes;
    let writesKnown = before.self.write_bytes >= 0 && after.self.write_bytes >= 0;
    result.peer_process_cpu_ms_per_step = st.r3((cpu * 1000) / steps);
    if (before.server && after.server) {
      const pgCpu = after.server.cpu_s - before.server.cpu_s;
      result.pg_cpu_ms_per_step = st.r3((pgCpu * 1000) / steps);
      result.pg_processes = after.server.processes;
      cpu += pgCpu;
      if (before.server.write_bytes >= 0 && after.server.write_bytes >= 0) {
        const pgWritten = after.server.write_bytes - before.server.write_bytes;
        result.pg_write_bytes_per_step = Math.round(pgWritten / steps);
        written += pgWritten;
      } else {
        writesKnown = false;
      }
    }
    watchedCpu += cpu;
    result.server_cpu_ms_per_step = st.r3((cpu * 1000) / steps);
    if (writesKnown) result.server_write_bytes_per_step = Math.round(written / steps);
    if (before.mock && after.mock) {
      const mockCpu = after.mock.cpu_s - before.mock.cpu_s;
      watchedCpu += mockCpu;
      result.mock_cpu_ms_per_step = st.r3((mockCpu * 1000) / steps);
    }
  }
  if (wallS > 0) {
    result.other_load_cores = st.r3(Math.max(0, (after.busy - before.busy - watchedCpu) / wallS));
  }
  try {
    result.data_dir_bytes = await dataBytes();
  } catch (e) {
    addError("measure", `data size: ${e.message}`);
    result.errors = errors.total;
  }
  await closeSaver();

  const pad = (s, n) => String(s).padStart(n);
  const row = (l, s) =>
    `  ${l.padEnd(12)} ${pad(s.n, 8)} ${pad(s.p50.toFixed(3), 9)} ${pad(s.p90.toFixed(3), 9)} ${pad(s.p99.toFixed(3), 9)} ${pad(s.max.toFixed(3), 9)}`;
  const lines = [
    `langgraph_peer: closed loop, ${o.sessions} sessions, store ${o.store}, mock ${o.mockUrl}`,
    `  steps ${steps} in ${wallS.toFixed(3)} s = ${(wallS > 0 ? steps / wallS : 0).toFixed(1)} steps/s, errors ${errors.total}`,
    `  ${"turn index".padEnd(12)} ${pad("n", 8)} ${pad("p50_ms", 9)} ${pad("p90_ms", 9)} ${pad("p99_ms", 9)} ${pad("max_ms", 9)}`,
    row("all", overall),
    ...buckets.map(([l, s]) => row(l, s)),
  ];
  for (const key of [
    "server_cpu_ms_per_step",
    "peer_process_cpu_ms_per_step",
    "pg_cpu_ms_per_step",
    "server_write_bytes_per_step",
    "mock_cpu_ms_per_step",
    "data_dir_bytes",
    "other_load_cores",
  ]) {
    if (key in result) lines.push(`  ${key}: ${result[key]}`);
  }
  for (const [kind, n] of Object.entries(errors.byKind)) lines.push(`  errors ${kind}: ${n}`);
  for (const e of errors.samples) lines.push(`  error: ${e}`);
  lines.push(`RESULT ${JSON.stringify(result)}`);
  process.stdout.write(lines.join("\n") + "\n");
  if (o.csv) {
    try {
      st.writeIndexCsv(o.csv, samples);
    } catch (e) {
      die(2, `cannot write ${o.csv}: ${e.message}`);
    }
  }
  process.exitCode = errors.total > 0 ? 1 : 0;
}

main().catch((e) => die(2, String(e?.stack ?? e).split("\n")[0]));
