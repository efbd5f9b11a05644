// A user's own job module for WorkerPool, as a user would write one: its own
// WGSL kernel (out = a * x + y) on the package's shader prelude, run twice in
// a chain inside `scope` (the middle tensor is disposed with it), the output
// held with `using`, poisoned before the kernel writes it, and checked
// against a float64 reference. Each round is a progress step.
import type { JobContext } from "../../../kernels/workers/mod.ts";
import {
  commandBatchOf,
  empty,
  getShader,
  makeShader,
  relativeError,
  scope,
  shaderProgram,
  type Tensor,
  tensor,
} from "../../../kernels/mod.ts";
import { mulberry32, randomValues } from "../../../kernels/_random.ts";
import type { MemoryStats } from "../../../mod.ts";

/** What each Worker is given. */
export interface SaxpyInput {
  /** Elements per vector. */
  length: number;
  /** Rounds of upload, two kernels, readback and check. */
  rounds: number;
  /** Seed; each Worker adds its index. */
  seed: number;
}

/** What each Worker returns. */
export interface SaxpyResult {
  worker: number;
  rounds: number;
  maxError: number;
  /** Tensor bytes (storage pools) still allocated at the end: 0 if scope and using freed all. */
  allocatedAtEnd: number;
}

const WORKGROUP = 64;

const saxpyShader = shaderProgram(
  "saxpy",
  (program: { params: "uniform" | "storage" }) =>
    makeShader({
      kernel: "saxpy",
      dtype: "f32",
      params: program.params,
      fields: ["total"],
      f32Fields: ["a"],
      tensors: [{ name: "x", type: "f32" }, { name: "y", type: "f32" }, {
        name: "out",
        type: "f32",
      }],
      workgroupSize: WORKGROUP,
      index: "thread",
      bound: "p.total",
      body: "  out[i] = p.a * x[i] + y[i];",
    }),
);

function saxpy(a: number, x: Tensor, y: Tensor): Tensor {
  const batch = commandBatchOf(x.allocator);
  const shader = getShader(batch.device, saxpyShader({ params: batch.paramsSpace }));
  const out = empty(x.allocator, x.shape, { label: "saxpy" });
  // Poisoned: a kernel that wrote nothing would be read as NaN, never as stale data.
  batch.device.queue.writeBuffer(
    out.block.buffer,
    out.block.offset,
    new Float32Array(x.numel).fill(NaN),
  );
  const params = new ArrayBuffer(8);
  new Int32Array(params, 0, 1)[0] = x.numel;
  new Float32Array(params, 4, 1)[0] = a;
  batch.record([{
    shader,
    params,
    storage: [x.block, y.block, out.block],
    grid: [Math.ceil(x.numel / WORKGROUP), 1, 1],
  }]);
  return out;
}

function storageBytes(stats: MemoryStats): number {
  return stats.pools.small.allocatedBytes.current + stats.pools.large.allocatedBytes.current;
}

/** The job: `rounds` checked chains of two saxpy kernels. */
export default async function saxpyJob(
  { input, allocator, index, signal, progress }: JobContext<SaxpyInput>,
): Promise<SaxpyResult> {
  const random = mulberry32(input.seed + index);
  let maxError = 0;
  for (let r = 0; r < input.rounds; r++) {
    signal.throwIfAborted();
    const a = randomValues(random, 1, 2)[0];
    const xs = randomValues(random, input.length);
    const ys = randomValues(random, input.length);
    using out = scope(() => {
      const x = tensor(allocator, xs, [input.length]);
      const y = tensor(allocator, ys, [input.length]);
      return saxpy(a, saxpy(a, x, y), y);
    });
    const got = await out.read();
    const ref = Float64Array.from(xs, (v, i) => a * (a * v + ys[i]) + ys[i]);
    const error = relativeError(got, ref);
    progress.step(1, error <= 1e-6 ? 0 : 1);
    if (!(error <= maxError)) maxError = error;
  }
  return {
    worker: index,
    rounds: input.rounds,
    maxError,
    // The storage pools: the kernels' parameter slots are uniform blocks that stay.
    allocatedAtEnd: storageBytes(allocator.memoryStats()),
  };
}
