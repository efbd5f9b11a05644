/**
 * The stress job: the three-stage pipeline run many times on seeded inputs,
 * several iterations in flight, every output checked against the float64
 * reference. Runs on any thread; {@linkcode WorkerPool} runs it on Workers.
 *
 * @module
 */

import type { MemoryStats } from "../../allocator/stats.ts";
import {
  type CommandBatch,
  commandBatchOf,
  type TensorAllocator,
  type TensorAllocOptions,
  type TensorBlock,
} from "../command_batch.ts";
import { type ConvWeights, pipeline } from "../pipeline.ts";
import { pipelineRef } from "../reference.ts";
import { type Tensor, tensor } from "../tensor.ts";
import { mulberry32 } from "../_random.ts";
import { relativeError } from "../reference.ts";

/** Input shape and channels of the pipeline's convolutions. */
export interface PipelineShape {
  /** Images per input (N). */
  batch: number;
  /** Input channels (C). */
  channels: number;
  /** Height and width of the input. */
  size: number;
  /** Output channels of each of the three convolutions. */
  outChannels: number;
}

/** How a job allocates: through a `HeapAllocator`, or a GPUBuffer per block with one readback per iteration. */
export type PipelineMode = "gpuheap" | "naive";

/** What to run: a fully specified job, as {@linkcode pipelineJob} makes it. */
export interface PipelineJob {
  /** The input shape and channels. */
  shape: PipelineShape;
  /** Iterations to run. */
  iterations: number;
  /** Iterations recorded and not yet read back, at most (gpuheap mode). */
  inFlight: number;
  /** Seed of the inputs and weights. */
  seed: number;
  /** Distinct inputs, cycled through; each one's reference is computed once. */
  inputs: number;
  /** `"gpuheap"` or `"naive"`. */
  mode: PipelineMode;
  /** Largest relative L2 error an output may have. */
  tolerance: number;
}

/** Options of {@linkcode pipelineJob}; each defaults to the stress command's. */
export interface PipelineJobOptions {
  /** Input shape (default batch 1, 16 channels, 32x32, 32 output channels). */
  shape?: Partial<PipelineShape>;
  /** Iterations (default 100). */
  iterations?: number;
  /** Iterations in flight (default 32). */
  inFlight?: number;
  /** Seed (default 1). */
  seed?: number;
  /** Distinct inputs (default 8). */
  inputs?: number;
  /** Mode (default `"gpuheap"`). */
  mode?: PipelineMode;
  /** Tolerance (default 1e-4). */
  tolerance?: number;
}

/** The inputs, weights and float64 references of a job: made once, shared by every Worker. */
export interface PipelineData {
  /** `[batch, channels, size, size]`. */
  inputShape: number[];
  /** The seeded inputs. */
  inputs: Float32Array[];
  /** The three convolutions' weights and biases. */
  weights: { weight: Float32Array; weightShape: number[]; bias: Float32Array }[];
  /** The float64 reference output of each input. */
  references: Float64Array[];
  /** The output's shape. */
  outputShape: number[];
}

/** What a job did. */
export interface PipelineJobReport {
  /** Iterations whose output was read back and checked. */
  iterations: number;
  /** Outputs over the tolerance (or with NaN). */
  failed: number;
  /** Largest relative L2 error seen. */
  maxError: number;
  /** Seconds from the first upload to the last check. */
  seconds: number;
  /** A hash of the first output of each distinct input, to compare runs bit for bit. */
  checksums: number[];
  /** The first failure's description, or the error that stopped the job. */
  error: { name: string; message: string } | null;
  /** The allocator's figures at the end (gpuheap mode), or null. */
  memory: MemoryStats | null;
  /** GPUBuffers the job created (naive mode counts one per block). */
  createBufferCalls: number;
}

/** The stress command's shape: batch 1, 16 channels, 32x32, 32 output channels. */
export const DEFAULT_PIPELINE_SHAPE: Readonly<PipelineShape> = Object.freeze({
  batch: 1,
  channels: 16,
  size: 32,
  outChannels: 32,
});

/**
 * Fills in a job's defaults and checks every field.
 *
 * @example
 * ```ts
 * import { pipelineJob } from "@gpuheap/gpuheap/workers";
 * import assert from "node:assert/strict";
 *
 * const job = pipelineJob({ iterations: 10, shape: { size: 16 } });
 * assert.equal(job.shape.channels, 16);
 * assert.throws(() => pipelineJob({ shape: { size: 6 } }), /size must be/);
 * ```
 *
 * @param options the fields to set
 * @returns the complete job
 * @throws {RangeError} a field out of range (the message names it and its value)
 */
export function pipelineJob(options: PipelineJobOptions = {}): PipelineJob {
  const d = DEFAULT_PIPELINE_SHAPE;
  const given = options.shape ?? {};
  const shape: PipelineShape = {
    batch: given.batch ?? d.batch,
    channels: given.channels ?? d.channels,
    size: given.size ?? d.size,
    outChannels: given.outChannels ?? d.outChannels,
  };
  const job: PipelineJob = {
    shape,
    iterations: options.iterations ?? 100,
    inFlight: options.inFlight ?? 32,
    seed: options.seed ?? 1,
    inputs: options.inputs ?? 8,
    mode: options.mode ?? "gpuheap",
    tolerance: options.tolerance ?? 1e-4,
  };
  const ints: [string, number, number][] = [
    ["shape.batch", shape.batch, 1],
    ["shape.channels", shape.channels, 1],
    ["shape.outChannels", shape.outChannels, 1],
    ["iterations", job.iterations, 0],
    ["inFlight", job.inFlight, 1],
    ["inputs", job.inputs, 1],
  ];
  for (const [name, value, min] of ints) {
    if (!Number.isSafeInteger(value) || value < min) {
      throw new RangeError(
        `Invalid pipeline job: ${name} must be an integer >= ${min}, got ${value}`,
      );
    }
  }
  // Three 2x2 stride-2 pools: the input must survive three halvings.
  if (!Number.isSafeInteger(shape.size) || shape.size < 8) {
    throw new RangeError(
      `Invalid pipeline job: shape.size must be an integer >= 8 (three 2x2 pools), got ${shape.size}`,
    );
  }
  if (!Number.isSafeInteger(job.seed)) {
    throw new RangeError(`Invalid pipeline job: seed must be an integer, got ${job.seed}`);
  }
  if (job.mode !== "gpuheap" && job.mode !== "naive") {
    throw new RangeError(
      `Invalid pipeline job: mode must be "gpuheap" or "naive", got ${JSON.stringify(job.mode)}`,
    );
  }
  if (!(job.tolerance > 0)) {
    throw new RangeError(`Invalid pipeline job: tolerance must be positive, got ${job.tolerance}`);
  }
  return job;
}

/**
 * Makes a job's seeded inputs and weights and the float64 reference of each
 * input, once per shape, seed and input count (later calls return the same
 * data): every
 * Worker checks against the same references, so the CPU cost of checking an
 * iteration is one comparison of its output.
 *
 * @example
 * ```ts
 * import { pipelineData, pipelineJob } from "@gpuheap/gpuheap/workers";
 * import assert from "node:assert/strict";
 *
 * const data = pipelineData(pipelineJob({ inputs: 2, shape: { channels: 2, size: 8, outChannels: 4 } }));
 * assert.equal(data.inputs.length, 2);
 * assert.deepEqual(data.outputShape, [1, 4, 1, 1]);
 * ```
 *
 * @param job the job
 * @returns inputs, weights and references
 */
export function pipelineData(job: PipelineJob): PipelineData {
  const { batch, channels, size, outChannels } = job.shape;
  const key = [batch, channels, size, outChannels, job.seed, job.inputs].join(",");
  let data = made.get(key);
  if (!data) {
    data = makeData(job);
    made.set(key, data);
  }
  return data;
}

/**
 * Data already made, by shape, seed and input count: the references take a
 * while (~50 ms per input at the default shape).
 */
const made = new Map<string, PipelineData>();

function makeData(job: PipelineJob): PipelineData {
  const { batch, channels, size, outChannels } = job.shape;
  const random = mulberry32(job.seed);
  const weights = [channels, outChannels, outChannels].map((cin) => {
    // Scaled as PyTorch's default init, so activations stay O(1) across stages.
    const scale = 1 / Math.sqrt(cin * 9);
    const weight = randomValues(random, outChannels * cin * 9, scale);
    return {
      weight,
      weightShape: [outChannels, cin, 3, 3],
      bias: randomValues(random, outChannels, 1),
    };
  });
  const inputShape = [batch, channels, size, size];
  const refWeights = weights.map((w) => ({
    weight: { data: w.weight, shape: w.weightShape },
    bias: { data: w.bias, shape: [outChannels] },
  }));
  const inputs: Float32Array[] = [];
  const references: Float64Array[] = [];
  let outputShape: number[] = [];
  for (let i = 0; i < job.inputs; i++) {
    const x = randomValues(random, batch * channels * size * size, 1);
    const ref = pipelineRef({ data: x, shape: inputShape }, refWeights);
    inputs.push(x);
    references.push(ref.data);
    outputShape = ref.shape;
  }
  return { inputShape, inputs, weights, references, outputShape };
}

/** Options of {@linkcode runPipelineJob}. */
export interface RunPipelineJobOptions {
  /** Called after each iteration is checked, with whether it passed. */
  onIteration?: (ok: boolean) => void;
}

/**
 * Runs a job on one allocator. In gpuheap mode, iterations are recorded in
 * groups of half of `inFlight`, each group submitted once with its outputs
 * copied into one staging block, read back with one `mapAsync` while the
 * next group is recorded: Deno's `mapAsync` takes about 11 ms, so this is
 * what throughput rests on. In naive mode, each
 * iteration is submitted and read back alone. A verification failure is
 * counted and the job goes on; an exception (say, out of memory) stops the
 * job and is returned in the report, after every readback in flight ended.
 *
 * @example
 * ```ts
 * import { HeapAllocator, requestDevice } from "@gpuheap/gpuheap";
 * import { pipelineData, pipelineJob, runPipelineJob } from "@gpuheap/gpuheap/workers";
 * import assert from "node:assert/strict";
 *
 * const job = pipelineJob({ iterations: 4, inFlight: 2, shape: { channels: 2, size: 8, outChannels: 4 } });
 * const device = await requestDevice();
 * const heap = new HeapAllocator(device);
 * const report = await runPipelineJob(heap, job, pipelineData(job));
 * assert.equal(report.iterations, 4);
 * assert.equal(report.failed, 0);
 * heap.destroy();
 * device.destroy();
 * ```
 *
 * @param heap the allocator (a `HeapAllocator`, or an {@linkcode UncachedAllocator} in naive mode)
 * @param job the job
 * @param data its inputs, weights and references, from {@linkcode pipelineData}
 * @param options a per-iteration callback
 * @returns what the job did
 */
export async function runPipelineJob(
  heap: TensorAllocator,
  job: PipelineJob,
  data: PipelineData,
  options: RunPipelineJobOptions = {},
): Promise<PipelineJobReport> {
  const check = new Checker(job, data, options.onIteration);
  const start = performance.now();
  let batch: CommandBatch | null = null;
  let weights: ConvWeights[] = [];
  try {
    // Made on first use, from the allocator: it can run out of memory too.
    batch = commandBatchOf(heap);
    weights = data.weights.map((w) => ({
      weight: tensor(heap, w.weight, w.weightShape),
      bias: tensor(heap, w.bias, [w.bias.length]),
    }));
    if (job.mode === "naive") await runNaive(heap, job, data, weights, check);
    else await runPipelined(heap, batch, job, data, weights, check);
  } catch (error) {
    check.stop(error);
  } finally {
    for (const w of weights) {
      w.weight.dispose();
      w.bias?.dispose();
    }
    try {
      // The job leaves nothing allocated: its parameter slots go with the weights.
      batch?.releaseParams();
      batch?.submit();
    } catch (error) {
      check.stop(error);
    }
  }
  const stats = heap as unknown as { memoryStats?: () => MemoryStats; createBufferCalls?: number };
  const memory = typeof stats.memoryStats === "function" ? stats.memoryStats() : null;
  return {
    iterations: check.iterations,
    failed: check.failed,
    maxError: check.maxError,
    seconds: (performance.now() - start) / 1000,
    checksums: check.checksums,
    error: check.error,
    memory,
    createBufferCalls: memory?.createBufferCalls ?? stats.createBufferCalls ?? 0,
  };
}

async function runPipelined(
  heap: TensorAllocator,
  batch: CommandBatch,
  job: PipelineJob,
  data: PipelineData,
  weights: ConvWeights[],
  check: Checker,
): Promise<void> {
  const group = Math.max(1, Math.ceil(job.inFlight / 2));
  const reading: Promise<void>[] = [];
  try {
    for (let started = 0; started < job.iterations;) {
      const count = Math.min(group, job.iterations - started);
      const which: number[] = [];
      for (let i = 0; i < count; i++) which.push((started + i) % data.inputs.length);
      started += count;
      const read = readGroup(heap, batch, recordGroup(heap, which, data, weights));
      const checked = read.then((values) => values.forEach((v, i) => check.output(which[i], v)));
      checked.catch(() => {}); // awaited below; handled now so a rejection is never "unhandled"
      reading.push(checked);
      if (reading.length >= 2) await reading.shift();
    }
  } finally {
    const settled = await Promise.allSettled(reading);
    for (const s of settled) if (s.status === "rejected") check.stop(s.reason);
  }
  batch.submit();
}

/** Records one pipeline per input index; returns the outputs. */
function recordGroup(
  heap: TensorAllocator,
  which: readonly number[],
  data: PipelineData,
  weights: ConvWeights[],
): Tensor[] {
  const outputs: Tensor[] = [];
  try {
    for (const k of which) {
      const x = tensor(heap, data.inputs[k], data.inputShape);
      try {
        outputs.push(pipeline(x, weights));
      } finally {
        x.dispose();
      }
    }
  } catch (error) {
    for (const y of outputs) y.dispose();
    throw error;
  }
  return outputs;
}

/**
 * Copies the outputs into one staging block, disposes them, submits, and
 * maps the block once. The outputs are disposed before the submit, so every
 * group leaves the allocator as it found it: the next group gets the same
 * blocks at the same offsets, and the batch's cached bind groups fit again.
 */
async function readGroup(
  heap: TensorAllocator,
  batch: CommandBatch,
  outputs: Tensor[],
): Promise<Float32Array[]> {
  const sizes = outputs.map((y) => y.byteLength);
  const total = sizes.reduce((a, b) => a + b, 0);
  let staging: TensorBlock;
  try {
    staging = heap.alloc(total, { usage: "readback", label: "pipeline outputs" });
    const encoder = batch.encoder();
    let offset = 0;
    outputs.forEach((y, i) => {
      encoder.copyBufferToBuffer(
        y.block.buffer,
        y.block.offset,
        staging.buffer,
        staging.offset + offset,
        sizes[i],
      );
      offset += sizes[i];
    });
  } finally {
    for (const y of outputs) y.dispose();
  }
  batch.submit();
  try {
    await staging.buffer.mapAsync(GPUMapMode.READ, staging.offset, total);
    const all = staging.buffer.getMappedRange(staging.offset, total).slice(0);
    let offset = 0;
    return outputs.map((y, i) => {
      const values = new Float32Array(all, offset, y.numel);
      offset += sizes[i];
      return values;
    });
  } finally {
    if (staging.buffer.mapState === "mapped") staging.buffer.unmap();
    heap.free(staging);
  }
}

async function runNaive(
  heap: TensorAllocator,
  job: PipelineJob,
  data: PipelineData,
  weights: ConvWeights[],
  check: Checker,
): Promise<void> {
  for (let it = 0; it < job.iterations; it++) {
    const k = it % data.inputs.length;
    const x = tensor(heap, data.inputs[k], data.inputShape);
    let y: Tensor;
    try {
      y = pipeline(x, weights);
    } finally {
      x.dispose();
    }
    try {
      check.output(k, await y.read());
    } finally {
      y.dispose();
    }
  }
}

/** Compares outputs with the references and keeps the tallies. */
class Checker {
  iterations = 0;
  failed = 0;
  maxError = 0;
  checksums: number[];
  error: { name: string; message: string } | null = null;
  #job: PipelineJob;
  #references: Float64Array[];
  #onIteration: ((ok: boolean) => void) | undefined;

  constructor(job: PipelineJob, data: PipelineData, onIteration?: (ok: boolean) => void) {
    this.#job = job;
    this.#references = data.references;
    this.#onIteration = onIteration;
    this.checksums = new Array(data.references.length).fill(0);
  }

  output(k: number, values: ArrayLike<number>): void {
    const ref = this.#references[k];
    const err = relativeError(values, ref);
    const ok = err <= this.#job.tolerance; // false for NaN
    this.iterations++;
    if (!(err <= this.maxError)) this.maxError = err;
    if (!ok) {
      this.failed++;
      this.error ??= {
        name: "VerificationError",
        message:
          `iteration ${this.iterations} (input ${k}): relative L2 error ${err} > ${this.#job.tolerance}`,
      };
    }
    if (this.checksums[k] === 0) this.checksums[k] = checksum(values);
    this.#onIteration?.(ok);
  }

  stop(error: unknown): void {
    const e = error instanceof Error ? error : new Error(String(error));
    // An exception outranks a verification failure: it is why the job stopped.
    if (this.error === null || this.error.name === "VerificationError") {
      this.error = { name: e.name, message: e.message };
    }
  }
}

/** FNV-1a over the float32 bits, never 0 (0 marks "not seen yet"). */
function checksum(values: ArrayLike<number>): number {
  const bits = new Uint32Array(Float32Array.from(values).buffer);
  let h = 0x811c9dc5;
  for (const b of bits) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return h || 1;
}

function randomValues(random: () => number, count: number, scale: number): Float32Array {
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = (random() * 2 - 1) * scale;
  return out;
}

const USAGE_FLAGS = {
  storage: 0x80 | 0x08 | 0x04, // STORAGE | COPY_DST | COPY_SRC
  uniform: 0x40 | 0x08, // UNIFORM | COPY_DST
  readback: 0x01 | 0x08, // MAP_READ | COPY_DST
  upload: 0x02 | 0x04, // MAP_WRITE | COPY_SRC
};

/**
 * The naive path the benchmarks compare against: a GPUBuffer created for
 * every block and destroyed after the submit that follows its free.
 *
 * @example
 * ```ts
 * import { relu, requestDevice, tensor } from "@gpuheap/gpuheap";
 * import { UncachedAllocator } from "@gpuheap/gpuheap/workers";
 * import assert from "node:assert/strict";
 *
 * const device = await requestDevice();
 * const heap = new UncachedAllocator(device);
 * assert.deepEqual([...await relu(tensor(heap, [-1, 2], [2])).read()], [0, 2]);
 * assert.ok(heap.createBufferCalls >= 3);
 * device.destroy();
 * ```
 */
export class UncachedAllocator implements TensorAllocator {
  /** The device buffers are created on. */
  readonly device: GPUDevice;
  /** GPUBuffers created so far. */
  createBufferCalls = 0;
  #pending: GPUBuffer[] = [];
  #hooks = new Set<() => GPUCommandBuffer[]>();

  /**
   * Makes the allocator.
   *
   * @param device the device to create buffers on
   */
  constructor(device: GPUDevice) {
    this.device = device;
  }

  /** Creates a GPUBuffer of `size` bytes (rounded up to 4). */
  alloc(size: number, options: TensorAllocOptions = {}): TensorBlock {
    const usage = options.usage ?? "storage";
    const bytes = Math.max(4, Math.ceil(size / 4) * 4);
    const buffer = this.device.createBuffer({ size: bytes, usage: USAGE_FLAGS[usage] });
    this.createBufferCalls++;
    return { buffer, offset: 0, size: bytes, requestedSize: size, pool: usage };
  }

  /** Destroys the block's buffer after the next submit (recorded work may still use it). */
  free(block: TensorBlock): void {
    if (block.buffer.mapState !== "unmapped") block.buffer.unmap();
    this.#pending.push(block.buffer);
  }

  /** Submits (the work of `beforeSubmit` hooks first), then destroys the buffers freed before. */
  submit(commandBuffers: GPUCommandBuffer[] = []): void {
    const first = [...this.#hooks].flatMap((hook) => hook());
    this.device.queue.submit([...first, ...commandBuffers]);
    for (const buffer of this.#pending) buffer.destroy();
    this.#pending = [];
  }

  /** Registers work to submit ahead of every `submit`; returns its removal. */
  beforeSubmit(hook: () => GPUCommandBuffer[]): () => void {
    this.#hooks.add(hook);
    return () => this.#hooks.delete(hook);
  }
}
