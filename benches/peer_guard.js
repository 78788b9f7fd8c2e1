// Second peer for benches/guard.rs: mint-filter (npm, Aho–Corasick in JavaScript) over the
// same 10,000 phrases and messages, timed per message like benches/peer_guard.py.
//
// mint-filter folds case (toLowerCase per character) and nothing else: no full-width to
// half-width, no traditional->simplified, no dropping of inserted spaces or symbols, no
// repeat collapsing, no variant table, no exceptions, no regexes, no personal-data scan. It
// also reports only the longest phrase ending at each character (no overlapping matches).
//
// Usage: node --single-threaded peer_guard.js PHRASES MESSAGES
// (installed by benches/guard_peer.sh into benches/peer/node_modules, which git ignores).
'use strict';
const fs = require('fs');
const path = require('path');

let Mint;
try {
  Mint = require(path.join(__dirname, 'peer', 'node_modules', 'mint-filter')).Mint;
} catch (e) {
  Mint = require('mint-filter').Mint;
}

const phrases = fs.readFileSync(process.argv[2], 'utf8').split('\n');
const messages = fs.readFileSync(process.argv[3], 'utf8').split('\n');
const mint = new Mint(phrases);
const totalBytes = messages.reduce((n, m) => n + Buffer.byteLength(m, 'utf8'), 0);

function run() {
  let found = 0;
  for (const m of messages) {
    found += mint.filter(m, { replace: false }).words.length;
  }
  return found;
}

// CPU time of the process in seconds; with --single-threaded V8 runs no background
// threads (GC, compiler), so this is the measuring thread's time, like the Rust side.
function cpu() {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

const found = run();
let best = Infinity;
for (let r = 0; r < 5; r++) {
  const start = process.hrtime.bigint();
  const cpu0 = cpu();
  let passes = 0;
  while (Number(process.hrtime.bigint() - start) / 1e9 < 0.5) {
    run();
    passes++;
  }
  best = Math.min(best, (cpu() - cpu0) / passes);
}
const n = messages.length;
const label = 'mint-filter, 10,000 phrases, as written';
console.log(
  `${label.padEnd(44)} ${(totalBytes / best / 1e6).toFixed(1).padStart(8)} MB/s ` +
    `${(n / best).toFixed(0).padStart(10)} msg/s ${(best * 1e9 / n).toFixed(0).padStart(8)} ns/msg  findings ${found}`,
);
console.log(`peer2_ns_per_msg ${(best * 1e9 / n).toFixed(1)}`);
