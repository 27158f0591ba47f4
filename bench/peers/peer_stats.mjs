// Measurement helpers for the peer benchmarks, matching bench/loadgen_stats.h and
// bench/bench_util.h so a peer's RESULT line and CSV read like loadgen's: nearest-rank
// percentiles, the same turn-index buckets, /proc readings of this and other processes, and
// directory sizes.
import { readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** Exactly `bytes` of text: `head`, then `filler` repeated (cut at `bytes`), like FilledText. */
export function filledText(head, bytes, filler = " the quick brown fox jumps over.") {
  let text = head;
  while (text.length < bytes) text += filler;
  return text.slice(0, bytes);
}

/** The p-quantile (0..1), nearest rank, as bench_util.h's Percentile (0 for no samples). */
export function percentile(sorted, p) {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

export function summarize(ms) {
  const s = [...ms].sort((a, b) => a - b);
  return {
    n: s.length,
    p50: percentile(s, 0.5),
    p90: percentile(s, 0.9),
    p99: percentile(s, 0.99),
    max: s.length ? s[s.length - 1] : 0,
  };
}

export const r3 = (x) => Math.round(x * 1000) / 1000;

export function summaryJson(s) {
  return { n: s.n, p50_ms: r3(s.p50), p90_ms: r3(s.p90), p99_ms: r3(s.p99), max_ms: r3(s.max) };
}

// loadgen_stats.h Buckets(): 1, 2-10, 11-100, 101-1000, 1001+.
const BUCKETS = [
  [1, 1],
  [2, 10],
  [11, 100],
  [101, 1000],
  [1001, Infinity],
];
function bucketLabel([lo, hi]) {
  if (lo === hi) return String(lo);
  if (hi === Infinity) return `${lo}+`;
  return `${lo}-${hi}`;
}

/** [label, summary] for every bucket with samples, in bucket order. samples: {turn, ms}. */
export function byBucket(samples) {
  const per = BUCKETS.map(() => []);
  for (const { turn, ms } of samples) {
    const b = BUCKETS.findIndex(([lo, hi]) => turn >= lo && turn <= hi);
    if (b >= 0) per[b].push(ms);
  }
  const out = [];
  per.forEach((ms, b) => {
    if (ms.length) out.push([bucketLabel(BUCKETS[b]), summarize(ms)]);
  });
  return out;
}

/** `turn_index,n,p50_ms,p90_ms,p99_ms,max_ms` per turn index, as loadgen's WriteIndexCsv. */
export function writeIndexCsv(path, samples) {
  const per = new Map();
  for (const { turn, ms } of samples) {
    if (!per.has(turn)) per.set(turn, []);
    per.get(turn).push(ms);
  }
  const lines = ["turn_index,n,p50_ms,p90_ms,p99_ms,max_ms"];
  for (const turn of [...per.keys()].sort((a, b) => a - b)) {
    const s = summarize(per.get(turn));
    lines.push(`${turn},${s.n},${r3(s.p50)},${r3(s.p90)},${r3(s.p99)},${r3(s.max)}`);
  }
  writeFileSync(path, lines.join("\n") + "\n");
}

const CLK_TCK = 100;  // USER_HZ: Linux reports /proc times in 1/100 s on every architecture

/** { cpu_s, write_bytes, ppid } of a process from /proc, or null if it is gone. */
export function readProc(pid) {
  let stat;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return null;
  }
  // Fields after the parenthesised command name: state is field 3, ppid 4, utime 14, stime 15.
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const r = { cpu_s: (Number(f[11]) + Number(f[12])) / CLK_TCK, write_bytes: -1, ppid: Number(f[1]) };
  try {
    const m = /^write_bytes:\s*(\d+)/m.exec(readFileSync(`/proc/${pid}/io`, "utf8"));
    if (m) r.write_bytes = Number(m[1]);
  } catch {
    // not readable (another user's process without privileges): stays -1
  }
  return r;
}

/**
 * A process and all its current children (one level: PostgreSQL's backends and auxiliary
 * processes are children of the postmaster), summed. Children that exit between two readings
 * are missed; the peer's pooled connections live for the whole run.
 */
export function readProcTree(rootPid) {
  const root = readProc(rootPid);
  if (!root) return null;
  const total = { cpu_s: root.cpu_s, write_bytes: root.write_bytes, processes: 1 };
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const p = readProc(Number(name));
    if (!p || p.ppid !== rootPid) continue;
    total.cpu_s += p.cpu_s;
    if (p.write_bytes >= 0 && total.write_bytes >= 0) total.write_bytes += p.write_bytes;
    else total.write_bytes = -1;
    total.processes += 1;
  }
  return total;
}

/** This process: CPU (process.cpuUsage) and bytes written (/proc/self/io). */
export function readSelf() {
  const u = process.cpuUsage();
  const io = readProc(process.pid);
  return { cpu_s: (u.user + u.system) / 1e6, write_bytes: io ? io.write_bytes : -1 };
}

/** CPU seconds all CPUs spent busy since boot, as bench_util.h's SystemBusySeconds. */
export function systemBusySeconds() {
  const f = readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).map(Number);
  // cpu user nice system idle iowait irq softirq steal
  return (f[1] + f[2] + f[3] + f[6] + f[7] + f[8]) / CLK_TCK;
}

export function loadAverage() {
  try {
    return Number(readFileSync("/proc/loadavg", "utf8").split(" ")[0]);
  } catch {
    return -1;
  }
}

/** Total size of the regular files under `dir` (-1 if it cannot be walked). */
export function dirBytes(dir) {
  try {
    let total = 0;
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) {
        const sub = dirBytes(p);
        if (sub < 0) return -1;
        total += sub;
      } else if (e.isFile()) {
        total += statSync(p).size;
      }
    }
    return total;
  } catch {
    return -1;
  }
}
