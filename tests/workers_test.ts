// Pipelines on Workers sharing one budget, on the real adapter: results
// equal to a single-thread run, caches given back under pressure, an idle
// Worker answering pressure, OOM in every Worker when nothing fits, a Worker
// killed mid-run, every way a Worker can end (Worker faults injected by
// tests/testdata/faulty_worker.ts), and the stress command end to end (8 Workers in 8 MiB at the
// default shape; reserved within twice allocated). Small shapes elsewhere: the
// software adapter runs on 2 cores. Each GPU scenario runs in a process of its
// own (tests/testdata/workers_scenarios.ts says why).
import assert from "node:assert/strict";
import { readReply } from "../kernels/workers/_messages.ts";
import { arbitraryMessages } from "./testdata/_arbitrary.ts";

const SCENARIOS = new URL("./testdata/workers_scenarios.ts", import.meta.url).pathname;
/** A scenario still running after this long hung: it is killed and fails. */
const SCENARIO_TIMEOUT_MS = 120_000;
/**
 * Most reserved ÷ allocated bytes of a stress Worker: storage heaps grow only within 2x the
 * allocated peak (SHORT_RESERVED_RATIO), and the kernels' parameter slots (a 16-32 KiB uniform
 * heap of a ~450 KiB Worker) are reserved but count as cached, not allocated.
 */
const SUBMIT_RULE_RATIO = 2.1;

/**
 * Runs a scenario of tests/testdata/workers_scenarios.ts in a process of its
 * own, which must exit 0 in time: a Worker left running keeps it alive.
 */
async function scenario(
  name: string,
  flags: readonly string[] = ["--allow-read", "--allow-env"],
): Promise<void> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...flags, SCENARIOS, name],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let hung = false;
  const timer = setTimeout(() => {
    hung = true;
    child.kill("SIGKILL");
  }, SCENARIO_TIMEOUT_MS);
  const out = await child.output();
  clearTimeout(timer);
  const text = new TextDecoder();
  assert.ok(
    !hung && out.code === 0,
    `scenario ${name} ${hung ? `still ran after ${SCENARIO_TIMEOUT_MS} ms` : `exited ${out.code}`}${
      out.signal ? ` (${out.signal})` : ""
    }:\n` + text.decode(out.stderr) + text.decode(out.stdout),
  );
}

Deno.test("workers: every Worker's results equal the single-thread run and the float64 reference", async () => {
  await scenario("equal");
});

Deno.test("workers: 4 Workers under a budget that fits only if caches are given back all succeed", async () => {
  await scenario("caches");
});

Deno.test("workers: an idle Worker empties its cache when another sharer needs the room", async () => {
  await scenario("idle");
});

Deno.test("workers: a budget too small for one iteration gives each Worker an OutOfMemoryError", async () => {
  await scenario("small");
});

Deno.test("workers: a Worker killed mid-run gives its reservation back and the others finish", async () => {
  await scenario("killed");
});

Deno.test("WorkerPool.run() settles with a WorkerError when a Worker throws mid-job, and gives its slot back", async () => {
  await scenario("throws");
});

Deno.test("WorkerPool.run() settles with a WorkerError on an unhandled rejection in a Worker", async () => {
  await scenario("rejects");
});

Deno.test("WorkerPool.run() settles with a WorkerError when a Worker calls self.close() mid-job", async () => {
  await scenario("closes");
});

Deno.test("WorkerPool.run() settles with a WorkerError when a Worker calls Deno.exit() mid-job", async () => {
  await scenario("exits");
});

Deno.test("WorkerPool.run() settles with a WorkerError when a Worker is terminated mid-job", async () => {
  await scenario("terminated");
});

Deno.test("WorkerPool.run() settles with a WorkerError when a Worker's device is lost mid-job", async () => {
  await scenario("lost");
});

Deno.test("WorkerPool: a Worker that closes itself between jobs is noticed and its slot given back", async () => {
  await scenario("closesIdle");
});

Deno.test("WorkerPool.start() throws a WorkerError when a Worker finds no adapter, and keeps no slot", async () => {
  await scenario("noAdapter");
});

Deno.test("WorkerPool.start() throws a WorkerError when a Worker exits while starting, and keeps no slot", async () => {
  await scenario("exitsAtStart");
});

Deno.test("WorkerPool.start() refuses bad options before any Worker starts, and keeps no slot", async () => {
  await scenario("badOptions");
});

Deno.test("WorkerPool: a user's job module with its own kernel runs on 4 Workers under one budget, errors 0", async () => {
  await scenario("userJob");
});

Deno.test("WorkerPool: a Worker posting null ends with a WorkerError and the process lives on", async () => {
  await scenario("postsNull");
});

Deno.test("WorkerPool: a malformed reply or report is a WorkerError, never a success", async () => {
  await scenario("malformedReply");
});

Deno.test("WorkerPool: Workers posting arbitrary messages settle every run and leak no slot", async () => {
  await scenario("fuzzMessages");
});

Deno.test("WorkerPool.run() with a timeout ends a job that never answers", async () => {
  await scenario("runTimeout");
});

Deno.test("WorkerPool: a Worker whose event loop stays blocked is ended (heartbeat)", async () => {
  await scenario("stalled");
});

Deno.test("WorkerPool.close() while run() is in flight settles the run", async () => {
  await scenario("closeWhileRunning");
});

Deno.test("WorkerPool.closeSync() while run() is in flight settles the run", async () => {
  await scenario("closeSyncWhileRunning");
});

Deno.test("WorkerPool.start() throws a WorkerError for a job module it cannot use", async () => {
  await scenario("badJob");
});

Deno.test("WorkerPool.start() without --allow-read names the flag to add", async () => {
  await scenario("noRead", []);
});

Deno.test("readReply() checks arbitrary Worker messages against their types", () => {
  const next = arbitraryMessages(7);
  const t0 = performance.now();
  const kinds = new Map<string, number>();
  for (let i = 0; i < 20_000; i++) {
    const message = next();
    const reply = readReply(message);
    if (typeof reply === "string") {
      kinds.set("malformed", (kinds.get("malformed") ?? 0) + 1);
      assert.ok(reply.length < 200, `a short reason: ${reply.slice(0, 80)}`);
      continue;
    }
    kinds.set(reply.type, (kinds.get(reply.type) ?? 0) + 1);
    // What it accepts has every field of its type, of the right type.
    if (reply.type === "ending") {
      assert.equal(typeof reply.reason, "string");
      continue;
    }
    assert.ok(Number.isSafeInteger(reply.id) && reply.id >= 0);
    if (reply.type === "ready") {
      assert.equal(typeof reply.adapter, "string");
      assert.equal(typeof reply.fallback, "boolean");
    }
    const error = reply.type === "failed" || reply.type === "result" ? reply.error : null;
    if (error !== null) {
      assert.equal(typeof error.name, "string");
      assert.equal(typeof error.message, "string");
      assert.ok(error.message.length <= 4097);
    }
  }
  assert.ok((kinds.get("malformed") ?? 0) > 10_000, JSON.stringify([...kinds]));
  assert.ok(kinds.size >= 4, `accepted kinds: ${JSON.stringify([...kinds])}`);
  assert.ok(performance.now() - t0 < 10_000, "within its time");
  assert.equal(readReply(null), "not an object: null");
  assert.equal(readReply({ type: "result", id: 1, error: null }), `"result" without a result`);
});

const STRESS = new URL("../bench/commands/stress.ts", import.meta.url).pathname;

async function stress(
  ...args: string[]
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", "--allow-env", STRESS, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
}

Deno.test("workers: the stress command reports every figure, and exits 2 on bad flags", async () => {
  const run = await stress(
    "--workers=2",
    "--iterations",
    "6",
    "--channels",
    "2",
    "--size",
    "8",
    "--out-channels",
    "4",
    "--in-flight",
    "4",
    "--budget",
    "256MiB",
    "--json",
  );
  assert.equal(run.code, 0, run.stderr);
  const report = JSON.parse(run.stdout);
  assert.equal(report.name, "ConvPipeline");
  assert.equal(report.ok, true);
  assert.equal(report.iterations, 12);
  assert.equal(report.errors, 0);
  assert.equal(report.perWorker.length, 2);
  assert.ok(report.process.peakReserved > 0);
  assert.equal(report.process.reservedAtEnd, 0);
  assert.ok(report.perWorker[0].memory.cacheHitRate > 0.5);

  const text = await stress(
    "--workers",
    "1",
    "--iterations",
    "2",
    "--size",
    "8",
    "--channels",
    "2",
  );
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /^ConvPipeline: 2\/2 in \d+\.\d+ s, errors=0$/m);
  assert.match(text.stdout, /^process\s/m);

  for (
    const [args, message] of [
      [["--workers", "0"], /--workers needs an integer from 1 to 64, got "0"/],
      [["--bogus"], /Unknown flag "--bogus"/],
      [["--budget", "lots"], /--budget needs a size such as 512MiB, got "lots"/],
      [["--size", "4"], /--size needs an integer from 8 to 4096, got "4"/],
      [["--iterations"], /--iterations needs a value/],
      [["--in-flight", "x"], /--in-flight needs an integer, got "x"/],
      // Bounded before any memory is allocated or any reference made.
      [["--size", "100000"], /--size needs an integer from 8 to 4096, got "100000"/],
      [["--channels", "100000"], /--channels needs an integer from 1 to 4096, got "100000"/],
      [["--inputs", "100000"], /--inputs needs an integer from 1 to 4096, got "100000"/],
      [
        ["--size", "4096", "--channels", "64"],
        /--batch x --channels .* over the limit of 134217728/,
      ],
      [["--inputs", "4096"], /--inputs x shape makes float64 references .* over the limit/],
    ] as const
  ) {
    const bad = await stress(...args);
    assert.equal(bad.code, 2, `${args.join(" ")}: exit ${bad.code}`);
    assert.match(bad.stderr, message);
  }
});

Deno.test("workers: 8 Workers at the default shape fit an 8 MiB budget; pass or fail rises with the budget", async () => {
  // Budgets in MiB, smallest first: once one passes, every larger one must.
  const outcomes: [number, boolean][] = [];
  for (const mib of [1, 4, 8, 16, 36]) {
    const run = await stress(
      "--workers",
      "8",
      "--iterations",
      "16",
      "--budget",
      `${mib}MiB`,
      "--json",
    );
    const report = JSON.parse(run.stdout); // JSON even when the warm-up fails
    assert.equal(report.ok, run.code === 0, `${mib} MiB: ${run.stderr}`);
    outcomes.push([mib, report.ok]);
    if (mib === 1) assert.match(report.error, /warm-up failed on worker \d: .*out of memory/);
    if (mib === 8) {
      assert.equal(report.errors, 0);
      for (const w of report.perWorker) {
        const ratio = w.memory.peakReserved / w.memory.peakAllocated;
        assert.ok(ratio <= SUBMIT_RULE_RATIO, `worker ${w.worker}: reserved ÷ allocated ${ratio}`);
      }
    }
  }
  const first = outcomes.findIndex(([, ok]) => ok);
  assert.ok(first >= 0 && outcomes.slice(first).every(([, ok]) => ok), JSON.stringify(outcomes));
  assert.deepEqual(outcomes.find(([mib]) => mib === 8), [8, true]);
});

Deno.test("workers: the default stress reserves at most about twice what each Worker allocates", async () => {
  const run = await stress("--workers", "2", "--iterations", "32", "--json");
  assert.equal(run.code, 0, run.stderr);
  for (const w of JSON.parse(run.stdout).perWorker) {
    const ratio = w.memory.peakReserved / w.memory.peakAllocated;
    assert.ok(ratio <= SUBMIT_RULE_RATIO, `worker ${w.worker}: reserved ÷ allocated ${ratio}`);
  }
});
