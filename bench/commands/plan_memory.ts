// Planned against online memory on the stress job's loop, one allocator on the
// real adapter: groups of GROUP seeded inputs, each through the three-stage
// pipeline, outputs copied to one readback block and disposed before the
// group's submit (as the stress job's Workers do). Each mode runs WARMUP
// groups, resets the peaks, then runs the rest; it prints peak reserved ÷
// peak allocated over those, createBuffer calls, submits, groups per second
// and, planned, the plan's size ÷ its peak live. The planned outputs must
// equal the online ones bit for bit (same kernels, same inputs).
//
//   deno run --allow-read --allow-env bench/commands/plan_memory.ts [GROUPS]   (default 40)
import { HeapAllocator, requestDevice } from "../../mod.ts";
import { commandBatchOf, pipeline, type Tensor, tensor } from "../../kernels/mod.ts";
import { mulberry32 } from "../../kernels/_random.ts";
import { formatBytes } from "../../allocator/format.ts";

const GROUP = 16;
const WARMUP = 2;
const SHAPE = [1, 16, 32, 32];
const CHANNELS = [16, 32, 32, 32];

const arg = Deno.args[0] ?? "40";
const groups = Number(arg);
if (!Number.isSafeInteger(groups) || groups <= WARMUP) {
  console.error(`plan_memory: GROUPS must be an integer above ${WARMUP}, got ${arg}`);
  Deno.exit(2);
}

const device = await requestDevice();
const info = device.adapterInfo;
const adapter = info?.description || info?.vendor || "unknown adapter";
const random = mulberry32(22);
const values = (n: number, scale = 1) =>
  Float32Array.from({ length: n }, () => (random() * 2 - 1) * scale);
const inputs = Array.from({ length: GROUP }, () => values(SHAPE.reduce((a, b) => a * b)));
const weightData = CHANNELS.slice(1).map((cout, i) => ({
  weight: values(cout * CHANNELS[i] * 9, 1 / Math.sqrt(CHANNELS[i] * 9)),
  bias: values(cout),
  shape: [cout, CHANNELS[i], 3, 3],
}));

interface Outcome {
  reservedPerAllocated: number;
  peakReserved: number;
  peakAllocated: number;
  createBufferCalls: number;
  submits: number;
  groupsPerSecond: number;
  plan: string;
  outputs: Float32Array[];
}

/**
 * One mode: online or planned; `uploadFirst` writes every input of a group
 * before its first pipeline (see the note at the end).
 */
async function run(planned: boolean, uploadFirst = false): Promise<Outcome> {
  const allocator = new HeapAllocator(device);
  const batch = commandBatchOf(allocator);
  const weights = weightData.map((w) => ({
    weight: tensor(allocator, w.weight, w.shape),
    bias: tensor(allocator, w.bias, [w.shape[0]]),
  }));
  let outputs: Float32Array[] = [];
  let start = 0;
  let createBufferCalls = 0;
  let submits = 0;
  for (let g = 0; g < groups; g++) {
    if (g === WARMUP) {
      allocator.resetPeakStats();
      createBufferCalls = allocator.memoryStats().createBufferCalls;
      submits = batch.submits;
      start = performance.now();
    }
    if (planned) allocator.beginIteration(SHAPE.join("x"));
    const ys: Tensor[] = [];
    const xs = uploadFirst ? inputs.map((data) => tensor(allocator, data, SHAPE)) : [];
    for (const [k, data] of inputs.entries()) {
      const x = uploadFirst ? xs[k] : tensor(allocator, data, SHAPE);
      ys.push(pipeline(x, weights));
      x.dispose();
    }
    const sizes = ys.map((y) => y.byteLength);
    const total = sizes.reduce((a, b) => a + b, 0);
    const staging = allocator.alloc(total, { usage: "readback" });
    let offset = 0;
    ys.forEach((y, i) => {
      batch.encoder().copyBufferToBuffer(
        y.block.buffer,
        y.block.offset,
        staging.buffer,
        offset,
        sizes[i],
      );
      offset += sizes[i];
      y.dispose();
    });
    batch.submit();
    if (planned) allocator.endIteration();
    await staging.buffer.mapAsync(GPUMapMode.READ, 0, total);
    const all = staging.buffer.getMappedRange(0, total).slice(0);
    staging.buffer.unmap();
    allocator.free(staging);
    if (g === groups - 1) {
      offset = 0;
      outputs = sizes.map((n) => new Float32Array(all.slice(offset, offset += n)));
    }
  }
  const seconds = (performance.now() - start) / 1000;
  const stats = allocator.memoryStats();
  const [p] = allocator.plans();
  const outcome: Outcome = {
    reservedPerAllocated: stats.reservedBytes.peak / stats.allocatedBytes.peak,
    peakReserved: stats.reservedBytes.peak,
    peakAllocated: stats.allocatedBytes.peak,
    createBufferCalls: stats.createBufferCalls - createBufferCalls,
    submits: batch.submits - submits,
    groupsPerSecond: (groups - WARMUP) / seconds,
    plan: p
      ? `plan ${formatBytes(p.size)} for ${formatBytes(p.peakLive)} peak live (${
        p.ratio.toFixed(3)
      }), ${p.blocks} blocks, ${p.departures} departures, ${p.safetySubmits} safety submits`
      : "-",
    outputs,
  };
  for (const w of weights) {
    w.weight.dispose();
    w.bias.dispose();
  }
  allocator.destroy();
  return outcome;
}

const online = await run(false);
const modes = [
  ["online", online],
  ["planned", await run(true)],
  ["planned, inputs uploaded first", await run(true, true)],
] as const;
const same = modes.every(([, m]) =>
  m.outputs.length === online.outputs.length &&
  online.outputs.every((o, i) => o.every((v, j) => Object.is(v, m.outputs[i][j])))
);
console.log(`${groups - WARMUP} groups of ${GROUP} after ${WARMUP} (${adapter})`);
for (const [name, o] of modes) {
  console.log(
    `${name}: reserved/allocated ${o.reservedPerAllocated.toFixed(3)} (${
      formatBytes(o.peakReserved)
    } / ${
      formatBytes(o.peakAllocated)
    }), ${o.createBufferCalls} createBuffer, ${o.submits} submits, ${
      o.groupsPerSecond.toFixed(1)
    } groups/s; ${o.plan}`,
  );
}
console.log(`outputs equal bit for bit: ${same}`);
if (!same) Deno.exitCode = 1;

// Note: an input written by queue.writeBuffer lands on the queue at once, ahead
// of the group's unsubmitted dispatches, so no input may take bytes freed since
// the group's last submit (trap 1): a group's inputs hold their bytes from their
// write to the submit, whenever they are written. Uploaded one by one, that
// time is outside their "live" span and the plan's size ÷ peak live shows it;
// uploaded first, it is inside, and the same memory reads as ≈ 1.
