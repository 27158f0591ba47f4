// Summarizes bench/peers/run_all.sh's runs: reads its manifest (one tab-separated line per run:
// round, workload key, system, sessions, turns, exit status, log file, CSV file), takes each
// log's `RESULT {json}` line, and writes into OUT:
//   results.json  every RESULT (with round, workload, system and exit status added)
//   results.md    one table: medians over rounds per system and workload, with the ratios
//                 agentd ÷ peer (steps/s) and peer ÷ agentd (p50)
//   plot/*.dat, latency_by_turn.gp  p50 latency by turn index (1-session workload), binned,
//                 for gnuplot (run_all.sh runs it)
// Exit 1 if a run has no RESULT line or failed; the files are written anyway.
//
//   node summarize.mjs MANIFEST OUT
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

import { r3 } from "./peer_stats.mjs";

const [manifestPath, out] = process.argv.slice(2);
if (!manifestPath || !out) {
  process.stderr.write("usage: summarize.mjs MANIFEST OUT_DIR\n");
  process.exit(2);
}

const runs = [];
let failed = 0;
for (const line of readFileSync(manifestPath, "utf8").split("\n")) {
  if (!line.trim()) continue;
  const [round, workload, system, sessions, turns, status, log, csv] = line.split("\t");
  const run = { round: Number(round), workload, system, sessions: Number(sessions), turns: Number(turns), exit_status: Number(status), log, csv };
  let text = "";
  try {
    text = readFileSync(log, "utf8");
  } catch {
    // no log: counted as a failed run below
  }
  const m = /^RESULT (\{.*\})$/m.exec(text);
  if (m) run.result = JSON.parse(m[1]);
  if (!run.result || run.exit_status !== 0 || run.result.errors > 0) {
    failed += 1;
    process.stderr.write(`summarize: ${system} ${workload} round ${round} failed (exit ${status}; see ${log})\n`);
  }
  runs.push(run);
}

writeFileSync(
  join(out, "results.json"),
  JSON.stringify(
    runs.map((r) => ({ round: r.round, workload: r.workload, system: r.system, exit_status: r.exit_status, ...(r.result ?? {}) })),
    null,
    1,
  ) + "\n",
);

const median = (xs) => {
  const v = xs.filter((x) => typeof x === "number" && Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return undefined;
  return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
};

const workloads = [...new Set(runs.map((r) => r.workload))];
const systems = [...new Set(runs.map((r) => r.system))];
const rows = [];
for (const workload of workloads) {
  for (const system of systems) {
    const mine = runs.filter((r) => r.workload === workload && r.system === system && r.result);
    if (!mine.length) continue;
    const med = (key) => median(mine.map((r) => r.result[key]));
    const buckets = {};
    for (const label of ["1", "2-10", "11-100", "101-1000", "1001+"]) {
      buckets[label] = median(mine.map((r) => r.result.by_turn_index?.[label]?.p50_ms));
    }
    rows.push({
      buckets,
      workload,
      system,
      shape: `${mine[0].sessions} × ${mine[0].turns}`,
      runs: mine.length,
      steps_per_s: med("steps_per_s"),
      p50: med("p50_ms"),
      p90: med("p90_ms"),
      p99: med("p99_ms"),
      cpu: med("server_cpu_ms_per_step"),
      written: med("server_write_bytes_per_step"),
      data: med("data_dir_bytes"),
      other: med("other_load_cores"),
      model: med("model_ms_per_step"),
      overhead: med("overhead_p50_ms"),
    });
  }
}

const fmt = (x, digits = 1) => {
  if (x === undefined) return "—";
  if (Math.abs(x) >= 1000) return Math.round(x).toLocaleString("en-US");
  return x.toFixed(digits);
};
const bytes = (x) => (x === undefined ? "—" : x >= 1e6 ? `${(x / 1e6).toFixed(1)} MB` : x >= 1e3 ? `${(x / 1e3).toFixed(1)} kB` : `${Math.round(x)} B`);
const lines = [
  "| system | workload (sessions × steps) | runs | steps/s | p50 ms | p90 ms | p99 ms | model ms/step | overhead p50 ms | CPU ms/step | bytes written/step | data after run | other cores | agentd ÷ peer steps/s | peer ÷ agentd p50 |",
  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
];
for (const r of rows) {
  const base = rows.find((b) => b.workload === r.workload && b.system === "agentd");
  const isPeer = r.system !== "agentd" && base;
  const ratio = (a, b) => (a && b ? `${(a / b).toFixed(1)}×` : "—");
  lines.push(
    `| ${r.system} | ${r.shape} | ${r.runs} | ${fmt(r.steps_per_s)} | ${fmt(r.p50, 2)} | ${fmt(r.p90, 2)} | ${fmt(r.p99, 2)} | ${fmt(r.model, 2)} | ${fmt(r.overhead, 2)} | ${fmt(r.cpu, 2)} | ${bytes(r.written)} | ${bytes(r.data)} | ${fmt(r.other, 2)} | ` +
      `${isPeer ? ratio(base.steps_per_s, r.steps_per_s) : "—"} | ${isPeer ? ratio(r.p50, base.p50) : "—"} |`,
  );
}
// The same turn indexes side by side: a peer runs fewer steps per session, and its step cost
// grows with the history, so the overall ratios above flatter it.
lines.push(
  "",
  "p50 ms by turn index within the session (medians over rounds; — = no steps there):",
  "",
  "| system | workload | 1 | 2–10 | 11–100 | 101–1000 | 1001+ |",
  "|---|---|---|---|---|---|---|",
);
for (const r of rows) {
  const b = Object.values(r.buckets).map((x) => fmt(x, 2));
  lines.push(`| ${r.system} | ${r.shape} | ${b.join(" | ")} |`);
}
const loads = runs.filter((r) => r.result).map((r) => r.result.loadavg_1m_before);
const md = [
  "# agentd vs peers: one step = 200-byte message → model call → tool call → 1 KB tool result → model call → durable",
  "",
  `Generated ${new Date().toISOString()} by bench/peers/run_all.sh; medians over rounds (interleaved). ` +
    `CPU ms/step and bytes written/step: agentd's process; the LangGraph peer's Node process (client, graph and, for SQLite, the store) ` +
    `plus, for PostgreSQL, the PostgreSQL server processes. ` +
    (loads.length ? `1-minute load average before the runs: ${fmt(Math.min(...loads), 2)}–${fmt(Math.max(...loads), 2)}.` : ""),
  "",
  ...lines,
  "",
  failed ? `**${failed} run(s) failed; see results.json and logs/.**` : "All runs completed with 0 errors.",
  "",
];
writeFileSync(join(out, "results.md"), md.join("\n"));
process.stdout.write(md.join("\n"));

// The plot: 1-session workload, per system the per-step latencies of every round merged, then
// binned by turn index (the same bin width for every system), p50 per bin.
const single = runs.filter((r) => r.workload === workloads[0] && r.result && r.csv);
const series = new Map();
for (const r of single) {
  let text = "";
  try {
    text = readFileSync(r.csv, "utf8");
  } catch {
    continue;
  }
  const s = series.get(r.system) ?? [];
  for (const row of text.trim().split("\n").slice(1)) {
    const [turn, , p50] = row.split(",").map(Number);
    s.push([turn, p50]);
  }
  series.set(r.system, s);
}
mkdirSync(join(out, "plot"), { recursive: true });
if (!series.size) {
  process.stderr.write("summarize: no per-turn CSV of the 1-session workload; no plot\n");
  process.exit(1);
}
const shortest = Math.min(...[...series.values()].map((s) => Math.max(...s.map(([t]) => t))));
const width = Math.max(1, Math.floor(shortest / 20));
const plots = [];
for (const [system, points] of series) {
  const bins = new Map();
  for (const [turn, ms] of points) {
    const b = Math.floor((turn - 1) / width);
    if (!bins.has(b)) bins.set(b, []);
    bins.get(b).push(ms);
  }
  const dat = [...bins.keys()]
    .sort((a, b) => a - b)
    .map((b) => `${r3(b * width + (width + 1) / 2)} ${r3(median(bins.get(b)))}`);
  const file = join(out, "plot", `${system}.dat`);
  writeFileSync(file, `# turn_index(bin centre) p50_ms\n${dat.join("\n")}\n`);
  plots.push(`'${file}' using 1:2 with linespoints pt 7 ps 0.5 title '${system}'`);
}
writeFileSync(
  join(out, "latency_by_turn.gp"),
  [
    "set terminal pngcairo size 1000,600 font ',11'",
    `set output '${join(out, "latency_by_turn.png")}'`,
    `set title 'Step latency by turn index, 1 session (p50 per bin of ${width} step${width > 1 ? "s" : ""})'`,
    "set xlabel 'turn index within the session'",
    "set ylabel 'step latency p50 (ms, log scale)'",
    "set logscale y",
    "set grid",
    "set key top right box opaque",
    `plot ${plots.join(", \\\n     ")}`,
    "",
  ].join("\n"),
);
process.exitCode = failed ? 1 : 0;
