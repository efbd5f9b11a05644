// Runs the stress command many times with a tiny workload and counts the runs
// that did not exit 0, and among them the crashes (killed by a signal, such
// as an abort at process exit while a Worker's thread still held a device).
//
//   deno run --allow-read --allow-run bench/commands/stress_repeat.ts [runs] [-- stress flags]
//
// Default: 100 runs of `--workers 4 --iterations 4 --channels 4 --size 16
// --out-channels 8`. Exits 1 if any run failed.
const STRESS = new URL("./stress.ts", import.meta.url).pathname;
const split = Deno.args.indexOf("--");
const head = split >= 0 ? Deno.args.slice(0, split) : Deno.args;
const runs = head.length > 0 ? Number(head[0]) : 100;
if (!Number.isInteger(runs) || runs < 1) {
  console.error(`stress_repeat: runs must be a positive integer, got ${head[0]}`);
  Deno.exit(2);
}
const flags = split >= 0 ? Deno.args.slice(split + 1) : [
  "--workers",
  "4",
  "--iterations",
  "4",
  "--channels",
  "4",
  "--size",
  "16",
  "--out-channels",
  "8",
];

let failed = 0;
let crashed = 0;
const t0 = performance.now();
for (let i = 1; i <= runs; i++) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", "--allow-env", STRESS, "--json", ...flags],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (out.code !== 0) {
    failed++;
    // A signal, or the shell's 128 + signal convention.
    if (out.signal !== null || out.code >= 128) crashed++;
    const stderr = new TextDecoder().decode(out.stderr).trim().split("\n").slice(-3).join(" | ");
    console.error(`run ${i}: exit ${out.code}${out.signal ? ` (${out.signal})` : ""}: ${stderr}`);
  }
  if (i % 10 === 0) console.error(`${i}/${runs} runs, ${failed} failed`);
}
console.log(
  `stress x${runs}: ${failed} failed (${crashed} crashed) in ${
    ((performance.now() - t0) / 1000).toFixed(1)
  } s`,
);
Deno.exitCode = failed > 0 ? 1 : 0;
