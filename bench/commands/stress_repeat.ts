// Runs the stress command many times with a tiny workload and counts the runs
// that did not exit 0, and among them the crashes (killed by a signal, such
// as an abort at process exit while a Worker's thread still held a device).
//
//   deno run --allow-read --allow-run bench/commands/stress_repeat.ts [runs] [-- stress flags]
//
// Default: 100 runs of `--workers 4 --iterations 4 --channels 4 --size 16
// --out-channels 8`. Exits 1 if any run failed, 2 for bad flags.
import { type Command, type Flag, integer, runCommand } from "../../allocator/tools/flags.ts";

const STRESS = new URL("./stress.ts", import.meta.url).pathname;
/** What each run gets when no stress flags are given: a tiny workload. */
const TINY = [
  ...["--workers", "4", "--iterations", "4"],
  ...["--channels", "4", "--size", "16", "--out-channels", "8"],
];

/** The stress_repeat command's arguments and flags. */
export const STRESS_REPEAT_COMMAND = {
  name: "stress_repeat",
  synopsis: "deno run --allow-read --allow-run bench/commands/stress_repeat.ts [RUNS] [-- FLAGS]",
  about: "Runs the stress command many times and counts the runs that did not exit 0,\n" +
    "and among them the crashes (killed by a signal). The tiny workload of each run:\n" +
    `  ${TINY.join(" ")}`,
  positionals: [{ name: "RUNS", optional: true, ...integer("runs (default 100)", { min: 1 }) }],
  rest: "stress flags for every run (default: a tiny workload, see above)",
  flags: {},
  notes: "Exit status: 0 when every run exited 0, 1 otherwise, 2 for bad flags.",
} satisfies Command<Record<string, Flag<unknown>>>;

async function main(runs: number, flags: readonly string[]): Promise<number> {
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
  return failed > 0 ? 1 : 0;
}

if (import.meta.main) {
  Deno.exitCode = await runCommand(STRESS_REPEAT_COMMAND, Deno.args, (parsed) => {
    const runs = parsed.positionals.length > 0 ? Number(parsed.positionals[0]) : 100;
    const flags = Deno.args.includes("--") ? parsed.rest : TINY;
    return main(runs, flags);
  });
}
