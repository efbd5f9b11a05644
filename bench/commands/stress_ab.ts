// Before and after in one sitting: runs the stress command of two copies of
// the repository in turn (A, B, A, B, …), each with the same flags, and
// prints each run's verified iterations per second, each copy's median and
// the ratio B / A. Runs alternate so that a machine's drift weighs on both.
//
//   deno run --allow-read --allow-run bench/commands/stress_ab.ts A_DIR B_DIR [--runs N] [-- FLAGS]
//
// Default: 5 runs of each with the stress command's default flags. Exits 1
// if any run failed (not ok, or errors > 0).
import { type Command, type Flag, integer, runCommand } from "../../allocator/tools/flags.ts";

/** The stress_ab command's arguments and flags. */
export const STRESS_AB_COMMAND = {
  name: "stress_ab",
  synopsis:
    "deno run --allow-read --allow-run bench/commands/stress_ab.ts A_DIR B_DIR [--runs N] [-- FLAGS]",
  about: "Runs the stress command of two copies of the repository in turn, with the same\n" +
    "flags, and prints each copy's median verified iterations per second and B / A.",
  positionals: [
    { name: "A_DIR", help: "the copy before" },
    { name: "B_DIR", help: "the copy after" },
  ],
  rest: "stress flags for every run (default: none, the stress command's defaults)",
  flags: { runs: integer("runs of each copy (default 5)", { min: 1, max: 100 }) },
  notes: "Exit status: 0 when every run was ok, 1 otherwise, 2 for bad arguments.",
} satisfies Command<Record<string, Flag<unknown>>>;

async function stress(dir: string, flags: readonly string[]): Promise<number | string> {
  const script = `${dir.replace(/\/$/, "")}/bench/commands/stress.ts`;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", "--allow-env", script, "--json", ...flags],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout).trim().split("\n").pop() ?? "";
  try {
    const r = JSON.parse(text);
    if (r.ok === true && r.errors === 0) return r.iterationsPerSecond as number;
    return `not ok: ${r.error ?? `errors=${r.errors}`}`;
  } catch {
    return `exit ${out.code}: ${new TextDecoder().decode(out.stderr).trim().slice(-300)}`;
  }
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

async function main(a: string, b: string, runs: number, flags: readonly string[]): Promise<number> {
  const rates: Record<string, number[]> = { A: [], B: [] };
  let failed = 0;
  for (let i = 1; i <= runs; i++) {
    for (const [name, dir] of [["A", a], ["B", b]] as const) {
      const r = await stress(dir, flags);
      if (typeof r === "number") rates[name].push(r);
      else failed++;
      console.log(`run ${i} ${name}: ${typeof r === "number" ? `${r.toFixed(1)} it/s` : r}`);
    }
  }
  const ma = median(rates.A);
  const mb = median(rates.B);
  console.log(
    `median A ${ma.toFixed(1)} it/s, B ${mb.toFixed(1)} it/s, B / A ${(mb / ma).toFixed(3)}` +
      ` (${rates.A.length} + ${rates.B.length} runs ok, ${failed} failed)`,
  );
  return failed > 0 ? 1 : 0;
}

if (import.meta.main) {
  Deno.exitCode = await runCommand(STRESS_AB_COMMAND, Deno.args, (parsed) => {
    const [a, b] = parsed.positionals.map(String);
    return main(a, b, Number(parsed.flags.runs ?? 5), parsed.rest);
  });
}
