// Sums up a Chromium trace written by the benchmark (TRACE=file
// end2end/bench/run): where the browser's time went while the trace ran.
//
//   node end2end/bench/trace-summary.mjs trace.json [rows]
//
// Prints, per thread, the time its top-level tasks took (a thread busy 70 %
// of the time on a 2-core machine leaves the others one core), then, for the
// page's main thread and the sync worker, the functions where the sampling
// profiler found them most often: by self time (the function itself) and by
// inclusive time (with what it called). A release wasm has no function
// names; for names, build it with them kept, after scripts/build --release:
//   wasm-split-cli target/wasm32-unknown-unknown/wasm-release/notesync.wasm D/split \
//     --out-name notesync
//   wasm-bindgen --target web --no-typescript --keep-lld-exports --out-dir D \
//     --out-name notesync D/split/notesync.wasm
//   node_modules/.bin/wasm-opt -Oz -g <the scripts/build flags> D/notesync_bg.wasm \
//     -o target/site/pkg/notesync.wasm
// (same code, same optimiser; only the name section is kept; the chunks
// loaded on first use keep the names scripts/build gave them, so leave
// import, export and the preview out of a traced run).

import { readFileSync } from 'node:fs';

const [file, rowsArg] = process.argv.slice(2);
if (!file) {
  console.error('usage: node end2end/bench/trace-summary.mjs trace.json [rows]');
  process.exit(2);
}
const ROWS = Number(rowsArg ?? 25);
const trace = JSON.parse(readFileSync(file, 'utf8'));
const events = Array.isArray(trace) ? trace : trace.traceEvents;

const processNames = new Map();
const threadNames = new Map();
for (const e of events) {
  if (e.ph !== 'M') continue;
  if (e.name === 'process_name') processNames.set(e.pid, e.args.name);
  if (e.name === 'thread_name') threadNames.set(`${e.pid}/${e.tid}`, e.args.name);
}
const threadOf = (e) => `${processNames.get(e.pid) ?? e.pid}/${threadNames.get(`${e.pid}/${e.tid}`) ?? e.tid}`;

let first = Infinity;
let last = -Infinity;
for (const e of events) {
  if (e.ph === 'M' || typeof e.ts !== 'number') continue;
  first = Math.min(first, e.ts);
  last = Math.max(last, e.ts);
}
const spanMs = (last - first) / 1000;
console.log(`trace of ${spanMs.toFixed(0)} ms\n\nbusy time of each thread (top-level tasks):`);
// One top-level task per run of a thread's loop; the two names are the
// same task seen by two layers, so only the outer one counts.
const busy = new Map();
for (const e of events) {
  if (e.ph !== 'X' || !(e.name === 'ThreadControllerImpl::RunTask' || e.name === 'ThreadPool_RunTask')) continue;
  busy.set(threadOf(e), (busy.get(threadOf(e)) ?? 0) + e.dur / 1000);
}
for (const [thread, ms] of [...busy].sort((a, b) => b[1] - a[1]).slice(0, 12)) {
  console.log(`  ${ms.toFixed(0).padStart(7)} ms  ${(100 * ms / spanMs).toFixed(0).padStart(3)} %  ${thread}`);
}

// The sampling profiler's chunks: nodes of a call tree, and samples naming
// the node that was running, each followed by the time to the next sample.
const profiles = new Map();
for (const e of events) {
  if (e.name === 'Profile') profiles.set(e.id, { thread: threadOf(e), nodes: new Map(), samples: [], deltas: [] });
}
for (const e of events) {
  if (e.name !== 'ProfileChunk' || !profiles.has(e.id)) continue;
  const profile = profiles.get(e.id);
  const data = e.args.data;
  for (const node of data.cpuProfile?.nodes ?? []) profile.nodes.set(node.id, node);
  for (const sample of data.cpuProfile?.samples ?? []) profile.samples.push(sample);
  for (const delta of data.timeDeltas ?? []) profile.deltas.push(delta);
}
for (const profile of profiles.values()) {
  if (!/CrRendererMain|DedicatedWorker/.test(profile.thread) || profile.samples.length === 0) continue;
  const name = (id) => {
    const frame = profile.nodes.get(id).callFrame;
    return frame.functionName || `(${(frame.url ?? '').split('/').pop() || 'anonymous'})`;
  };
  const self = new Map();
  const inclusive = new Map();
  profile.samples.forEach((id, k) => {
    const ms = (profile.deltas[k + 1] ?? 0) / 1000;
    self.set(name(id), (self.get(name(id)) ?? 0) + ms);
    const seen = new Set();
    for (let node = id; node !== undefined && profile.nodes.has(node); node = profile.nodes.get(node).parent) {
      const n = name(node);
      if (!seen.has(n)) inclusive.set(n, (inclusive.get(n) ?? 0) + ms);
      seen.add(n);
    }
  });
  const top = (map) => [...map].sort((a, b) => b[1] - a[1]).slice(0, ROWS)
    .map(([n, ms]) => `    ${ms.toFixed(1).padStart(8)} ms  ${n.slice(0, 110)}`).join('\n');
  console.log(`\n${profile.thread}, sampled: by self time\n${top(self)}\n  by inclusive time\n${top(inclusive)}`);
}
