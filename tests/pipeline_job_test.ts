// The stress job on the main thread, real adapter: one map per group of
// outputs, every output checked, and groups that leave the allocator as
// they found it.
import assert from "node:assert/strict";
import {
  PIPELINE_DATA_KEPT,
  pipelineData,
  pipelineJob,
  type PipelineJobReport,
  runPipelineJob,
  UncachedAllocator,
} from "../kernels/workers/mod.ts";
import { countCalls, withAllocator } from "./_kernels_util.ts";
import { parseStressFlags } from "../bench/commands/stress.ts";

const SHAPE = { channels: 4, size: 8, outChannels: 8 };

Deno.test("runPipelineJob() reads each group of outputs with one map, every output checked", async () => {
  await withAllocator(async (allocator) => {
    const job = pipelineJob({ iterations: 22, inFlight: 8, inputs: 3, shape: SHAPE });
    const [report, maps] = await countCalls(
      GPUBuffer.prototype,
      "mapAsync",
      () => runPipelineJob(allocator, job, pipelineData(job)),
    );
    assert.equal(report.error, null);
    assert.equal(report.iterations, 22);
    assert.equal(report.failed, 0);
    assert.ok(report.maxError > 0 && report.maxError <= job.tolerance, `error ${report.maxError}`);
    // Groups of inFlight/2 = 4: five full groups and one of 2.
    assert.equal(maps, 6);
    // Nothing of the job stays allocated: outputs, staging, weights, parameter slots.
    assert.equal(allocator.memoryStats().allocatedBytes.current, 0);
  }, { poison: false });
});

Deno.test("runPipelineJob() disposes a group's outputs before submitting it", async () => {
  await withAllocator(async (allocator) => {
    const job = pipelineJob({ iterations: 20, inFlight: 8, inputs: 3, shape: SHAPE });
    // At each submit, the storage blocks alive: the job's own (3 weights, 3
    // biases, and the 3 packed weights its convs keep) and nothing of the
    // group being submitted, so the next group gets the same blocks at the
    // same offsets.
    const live: number[] = [];
    const submit = allocator.submit.bind(allocator);
    allocator.submit = (commands) => {
      const pools = allocator.memoryStats().pools;
      live.push(pools.small.blocks + pools.large.blocks);
      submit(commands);
    };
    const report = await runPipelineJob(allocator, job, pipelineData(job));
    assert.equal(report.failed, 0);
    assert.equal(report.error, null);
    assert.ok(live.length >= 5, `${live.length} submits`);
    assert.deepEqual(new Set(live.slice(0, 5)), new Set([9]), `live blocks at submits: ${live}`);
  }, { poison: false });
});

Deno.test("runPipelineJob() groups leave the allocator as they found it: bind groups stop growing", async () => {
  await withAllocator(async (allocator, device) => {
    const job = pipelineJob({ iterations: 40, inFlight: 8, inputs: 3, shape: SHAPE });
    // Bind groups made so far, at each submit: one per group of 4, then the
    // job's last. Groups take the blocks and parameter slots of the groups
    // before them, so after a warm-up of a few groups they make none.
    const made: number[] = [];
    const WARMUP_GROUPS = 3;
    let count = 0;
    const create = device.createBindGroup;
    device.createBindGroup = function (descriptor: GPUBindGroupDescriptor) {
      count++;
      return create.call(this, descriptor);
    };
    const submit = allocator.submit.bind(allocator);
    allocator.submit = (commands) => {
      made.push(count);
      submit(commands);
    };
    let report;
    try {
      report = await runPipelineJob(allocator, job, pipelineData(job));
    } finally {
      device.createBindGroup = create;
    }
    assert.equal(report.error, null);
    assert.equal(report.failed, 0);
    assert.equal(report.iterations, 40);
    assert.ok(made.length >= 10, `${made.length} submits`);
    assert.ok(made[0] > 0, "the first group makes its bind groups");
    assert.equal(made.at(-1), made[WARMUP_GROUPS - 1], `bind groups made by each submit: ${made}`);
  }, { poison: false });
});

Deno.test("runPipelineJob() with plan: verified outputs, plans at peak live, no submit inside a group", async () => {
  // The stress command's shape (its groups outweigh the heaps of the weights). Three inputs
  // in groups of eight: a slot of a group gets another input each time, so a planned block
  // a kernel left unwritten would hold another input's output and fail the check.
  const options = { iterations: 66, inFlight: 16, inputs: 3 };
  const run = async (plan: boolean) => {
    let report: PipelineJobReport | null = null;
    // As a stress Worker's allocator; not poisoned: a poisoning writeBuffer would be a
    // write the plan has to keep apart, unlike the job's own.
    await withAllocator(async (allocator) => {
      const job = pipelineJob({ ...options, plan });
      report = await runPipelineJob(allocator, job, pipelineData(job));
    }, { poison: false, submitWhenShort: true });
    return report! as PipelineJobReport;
  };
  const online = await run(false);
  const planned = await run(true);
  for (const r of [online, planned]) {
    assert.equal(r.error, null);
    assert.equal(r.iterations, 66);
    assert.equal(r.failed, 0);
    assert.ok(r.maxError > 0 && r.maxError <= 1e-4, `error ${r.maxError}`);
  }
  const ratio = (r: PipelineJobReport) => r.peaks!.reserved / r.peaks!.allocated;
  assert.ok(
    ratio(planned) < ratio(online),
    `reserved ÷ allocated: planned ${ratio(planned)}, online ${ratio(online)}`,
  );
  // Eight groups of eight (one recorded, seven planned) and a last group of two (recorded).
  assert.deepEqual(planned.plans.map((p) => [p.runs, p.departures]), [[8, 0], [1, 0]]);
  for (const p of planned.plans) assert.ok(p.ratio <= 1.02, `plan ${p.key}: ${p.ratio}`);
  assert.equal(planned.submitsInGroups, 0, "no submit inside a planned group");
  assert.deepEqual(planned.checksums, online.checksums, "the same outputs bit for bit");
});

Deno.test("pipelineJob() and stress --plan plan only gpuheap jobs; a planned job needs an allocator that plans", async () => {
  assert.throws(
    () => pipelineJob({ plan: true, mode: "naive" }),
    /plan needs mode "gpuheap", got "naive"/,
  );
  assert.throws(
    () => pipelineJob({ plan: 1 as unknown as boolean }),
    /plan must be true or false, got 1/,
  );
  assert.equal(parseStressFlags(["--plan"]).job.plan, true);
  assert.equal(parseStressFlags([]).job.plan, false);
  assert.throws(
    () => parseStressFlags(["--plan", "--naive"]),
    /Flag --plan cannot go with --naive/,
  );
  await withAllocator(async (_, device) => {
    const job = pipelineJob({ iterations: 2, inFlight: 2, inputs: 1, shape: SHAPE, plan: true });
    const report = await runPipelineJob(new UncachedAllocator(device), job, pipelineData(job));
    assert.equal(report.error?.name, "TypeError");
    assert.match(
      report.error!.message,
      /Cannot run a planned pipeline job: its allocator cannot plan/,
    );
  });
});

Deno.test("pipelineData() keeps the data of the last few jobs only, however many seeds come", () => {
  const job = (seed: number) =>
    pipelineJob({ seed, inputs: 1, shape: { channels: 1, size: 8, outChannels: 1 } });
  const first = pipelineData(job(0));
  assert.equal(pipelineData(job(0)), first, "a repeated job gets the same data");
  // Recently used stays: job 0 used again between new seeds.
  for (let seed = 1; seed < PIPELINE_DATA_KEPT; seed++) pipelineData(job(seed));
  assert.equal(pipelineData(job(0)), first);
  // Past the bound, the least recently used is made again.
  for (let seed = 100; seed < 100 + PIPELINE_DATA_KEPT; seed++) pipelineData(job(seed));
  const again = pipelineData(job(0));
  assert.notEqual(again, first, "seed 0's data was let go");
  assert.deepEqual(again.references, first.references, "and is made the same");
});

Deno.test("pipelineJob() bounds every count, the tensors' size and the references' work", () => {
  for (
    const [options, message] of [
      [{ shape: { size: 100_000 } }, /shape\.size must be an integer from 8 to 4096, got 100000/],
      [{ shape: { channels: 100_000 } }, /shape\.channels must be an integer from 1 to 4096/],
      [{ inputs: 100_000 }, /inputs must be an integer from 1 to 4096, got 100000/],
      [{ shape: { size: 4096, channels: 64 } }, /tensor of 4294967296 bytes, over the limit/],
      [{ inputs: 4096 }, /float64 references of .* over the limit of 1\.07e\+9/],
    ] as const
  ) {
    const t0 = performance.now();
    assert.throws(
      () => pipelineJob(options),
      (e: Error) => e instanceof RangeError && message.test(e.message),
    );
    assert.ok(performance.now() - t0 < 100, "refused before any work");
  }
  // The stress command's default is well inside.
  assert.equal(pipelineJob().inputs, 8);
});

Deno.test("runPipelineJob() keeps weights and prepared weights in GPUBuffers of their own", async () => {
  await withAllocator(async (allocator) => {
    const job = pipelineJob({ shape: SHAPE, iterations: 8, inFlight: 4, inputs: 2, plan: true });
    let snapshot: ReturnType<typeof allocator.snapshot> | null = null;
    const report = await runPipelineJob(allocator, job, pipelineData(job), {
      onIteration: () => snapshot ??= allocator.snapshot(),
    });
    assert.equal(report.failed, 0);
    const long = /^(weight|bias|conv2d (packed weight|Winograd weights))$/;
    const owners = snapshot!.heaps.filter((h) => h.blocks.some((b) => long.test(b.label ?? "")));
    // Three convolutions: a weight, a bias and a prepared weight each, none beside another block.
    assert.equal(owners.length, 9, owners.map((h) => h.blocks.map((b) => b.label)).join("; "));
    for (const h of owners) assert.ok(!h.isSplit && h.blocks.length === 1, `heap #${h.id}`);
  }, { poison: false, submitWhenShort: true });
});
