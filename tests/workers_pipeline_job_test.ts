// The stress job on the main thread, real adapter: one map per group of
// outputs, and groups that leave the allocator as they found it.
import assert from "node:assert/strict";
import { pipelineData, pipelineJob, runPipelineJob } from "../kernels/workers/mod.ts";
import { withHeap } from "./_kernels_util.ts";

const SHAPE = { channels: 4, size: 8, outChannels: 8 };

/** Counts calls of `target[name]` while `fn` runs (the method is wrapped in place). */
async function counting<T>(
  target: object,
  name: string,
  fn: () => Promise<T>,
): Promise<[T, number]> {
  const o = target as Record<string, unknown>;
  const original = o[name] as (...args: unknown[]) => unknown;
  let calls = 0;
  o[name] = function (this: unknown, ...args: unknown[]) {
    calls++;
    return original.apply(this, args);
  };
  try {
    return [await fn(), calls];
  } finally {
    o[name] = original;
  }
}

Deno.test("runPipelineJob() reads each group of outputs with one map, every output checked", async () => {
  await withHeap(async (heap) => {
    const job = pipelineJob({ iterations: 22, inFlight: 8, inputs: 3, shape: SHAPE });
    const [report, maps] = await counting(
      GPUBuffer.prototype,
      "mapAsync",
      () => runPipelineJob(heap, job, pipelineData(job)),
    );
    assert.equal(report.error, null);
    assert.equal(report.iterations, 22);
    assert.equal(report.failed, 0);
    assert.ok(report.maxError > 0 && report.maxError <= job.tolerance, `error ${report.maxError}`);
    // Groups of inFlight/2 = 4: five full groups and one of 2.
    assert.equal(maps, 6);
    // Nothing of the job stays allocated: outputs, staging, weights, parameter slots.
    assert.equal(heap.memoryStats().allocatedBytes.current, 0);
  }, { poison: false });
});

Deno.test("runPipelineJob() disposes a group's outputs before submitting it", async () => {
  await withHeap(async (heap) => {
    const job = pipelineJob({ iterations: 20, inFlight: 8, inputs: 3, shape: SHAPE });
    // At each submit, the storage blocks alive: the job's own (3 weights, 3
    // biases) and nothing of the group being submitted, so the next group
    // gets the same blocks at the same offsets.
    const live: number[] = [];
    const submit = heap.submit.bind(heap);
    heap.submit = (commands) => {
      const pools = heap.memoryStats().pools;
      live.push(pools.small.blocks + pools.large.blocks);
      submit(commands);
    };
    const report = await runPipelineJob(heap, job, pipelineData(job));
    assert.equal(report.failed, 0);
    assert.ok(live.length >= 5, `${live.length} submits`);
    assert.deepEqual(new Set(live.slice(0, 5)), new Set([6]), `live blocks at submits: ${live}`);
  }, { poison: false });
});

Deno.test("runPipelineJob() groups leave the allocator as they found it: no new bind groups", async () => {
  await withHeap(async (heap, device) => {
    const job = pipelineJob({ iterations: 24, inFlight: 8, inputs: 3, shape: SHAPE });
    const data = pipelineData(job);
    const first = await runPipelineJob(heap, job, data);
    assert.equal(first.failed, 0);
    const [second, groups] = await counting(
      device,
      "createBindGroup",
      () => runPipelineJob(heap, job, data),
    );
    assert.equal(second.failed, 0);
    assert.equal(second.iterations, 24);
    // Every group gets the same blocks at the same offsets as the first job's.
    assert.equal(groups, 0, "bind groups made in the second job");
  }, { poison: false });
});
