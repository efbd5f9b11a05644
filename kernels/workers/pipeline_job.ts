/**
 * The stress job: the three-stage pipeline run many times on seeded inputs,
 * several iterations in flight, every output checked against the float64
 * reference. Runs on any thread; {@linkcode WorkerPool} runs it on Workers.
 *
 * @module
 */

import type { MemoryStats } from "../../allocator/stats.ts";
import type { HeapAllocator, PlanInfo } from "../../allocator/allocator.ts";
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
import { mulberry32, randomValues } from "../_random.ts";
import { relativeError } from "../reference.ts";
import { BUFFER_USAGE } from "../../allocator/gpu_memory.ts";
import type { JobContext, JobReport } from "./job.ts";
import { WorkerError } from "./worker_error.ts";

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
  /**
   * Plan each group's memory (gpuheap mode): the first group of each size
   * is recorded, later ones take every storage block at a planned offset
   * (`HeapAllocator.beginIteration`).
   */
  plan: boolean;
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
  /** Plan each group's memory (default false; gpuheap mode only). */
  plan?: boolean;
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
  /**
   * Peak bytes allocated and reserved in the steady state (gpuheap mode),
   * or null: from the job's start, leaving out the groups that recorded a
   * plan (they run on the online allocator, once per group size).
   */
  peaks: { allocated: number; reserved: number } | null;
  /**
   * Submits inside groups, besides each group's own: forced by memory (an
   * allocator that submits to reuse freed blocks, a plan's safety submit)
   * or by a batch grown long. Groups that recorded a plan are counted apart.
   */
  submitsInGroups: number;
  /** Submits inside the groups that recorded a plan (online, once per group size). */
  submitsInRecordings: number;
  /** The allocator's plans at the end (planned jobs), or an empty list. */
  plans: PlanInfo[];
}

/** The stress command's shape: batch 1, 16 channels, 32x32, 32 output channels. */
export const DEFAULT_PIPELINE_SHAPE: Readonly<PipelineShape> = Object.freeze({
  batch: 1,
  channels: 16,
  size: 32,
  outChannels: 32,
});

/**
 * The largest value of each of a job's counts. Each is far past what a
 * stress run needs, and low enough that a job within them is checked
 * before any memory is allocated: the sizes of its tensors and the
 * work of its references are bounded apart, below.
 */
export const PIPELINE_LIMITS: Readonly<{
  batch: number;
  channels: number;
  outChannels: number;
  size: number;
  inFlight: number;
  inputs: number;
}> = Object.freeze({
  batch: 1024,
  channels: 4096,
  outChannels: 4096,
  size: 4096,
  inFlight: 4096,
  inputs: 4096,
});

/** Largest tensor of a job, in bytes: WebGPU's default largest storage binding (128 MiB). */
const MAX_TENSOR_BYTES = 2 ** 27;

/**
 * Largest float64 reference work of a job (multiply-adds over all its
 * inputs), made on the CPU before it starts: about 2^30 takes some seconds
 * here; the stress command's default shape and 8 inputs take 2^26.
 */
const MAX_REFERENCE_WORK = 2 ** 30;

/** Multiply-adds of one input's reference: three 3x3 convolutions, each on a halved image. */
function referenceWork({ batch, channels, size, outChannels }: PipelineShape): number {
  const convs = [channels, outChannels, outChannels].map((cin, i) =>
    cin * outChannels * 9 * Math.floor(size / 2 ** i) ** 2
  );
  return batch * convs.reduce((a, b) => a + b, 0);
}

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
 * @throws {RangeError} a field out of range (the message names it, its value and the limit), or
 *   a shape whose tensors or references are too large (the message names the limit)
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
    plan: options.plan ?? false,
  };
  const L = PIPELINE_LIMITS;
  const ints: [string, number, number, number][] = [
    ["shape.batch", shape.batch, 1, L.batch],
    ["shape.channels", shape.channels, 1, L.channels],
    ["shape.outChannels", shape.outChannels, 1, L.outChannels],
    // Three 2x2 stride-2 pools: the input must survive three halvings.
    ["shape.size", shape.size, 8, L.size],
    // Iterations cost time, never memory: as many as asked.
    ["iterations", job.iterations, 0, Number.MAX_SAFE_INTEGER],
    ["inFlight", job.inFlight, 1, L.inFlight],
    ["inputs", job.inputs, 1, L.inputs],
  ];
  for (const [name, value, min, max] of ints) {
    if (!Number.isSafeInteger(value) || value < min || value > max) {
      throw new RangeError(
        `Invalid pipeline job: ${name} must be an integer from ${min} to ${max}, got ${value}`,
      );
    }
  }
  const { batch, channels, size, outChannels } = shape;
  const tensorBytes = 4 * batch * Math.max(channels, outChannels) * size * size;
  if (tensorBytes > MAX_TENSOR_BYTES) {
    throw new RangeError(
      `Invalid pipeline job: shape.batch x shape.channels (or shape.outChannels) x shape.size^2 makes a tensor of ${tensorBytes} bytes, over the limit of ${MAX_TENSOR_BYTES} (${
        MAX_TENSOR_BYTES / 2 ** 20
      } MiB)`,
    );
  }
  const work = job.inputs * referenceWork(shape);
  if (work > MAX_REFERENCE_WORK) {
    throw new RangeError(
      `Invalid pipeline job: inputs x shape makes float64 references of ${
        work.toExponential(2)
      } multiply-adds, over the limit of ${
        MAX_REFERENCE_WORK.toExponential(2)
      } (lower inputs, shape.size, shape.channels or shape.outChannels)`,
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
  if (typeof job.plan !== "boolean") {
    throw new RangeError(`Invalid pipeline job: plan must be true or false, got ${job.plan}`);
  }
  if (job.plan && job.mode !== "gpuheap") {
    throw new RangeError(`Invalid pipeline job: plan needs mode "gpuheap", got "${job.mode}"`);
  }
  if (!(job.tolerance > 0)) {
    throw new RangeError(`Invalid pipeline job: tolerance must be positive, got ${job.tolerance}`);
  }
  return job;
}

/**
 * Makes a job's seeded inputs and weights and the float64 reference of each
 * input, once per shape, seed and input count (a later call for one of the
 * last few returns the same data): every Worker checks against the same
 * references, so the CPU cost of checking an iteration is one comparison of
 * its output.
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
  if (data) {
    made.delete(key); // most recently used last
  } else {
    data = makeData(job);
    if (made.size >= PIPELINE_DATA_KEPT) made.delete(made.keys().next().value!);
  }
  made.set(key, data);
  return data;
}

/**
 * How many jobs' data {@linkcode pipelineData} keeps, the most recently used:
 * a warm-up and its run, or a few shapes a benchmark alternates, without
 * growing with every new seed.
 */
export const PIPELINE_DATA_KEPT = 4;

/**
 * Data made lately, by shape, seed and input count, least recently used
 * first: the references take a while (~50 ms per input at the default shape).
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
  /** Stops the job before its next group of iterations (its report's error is the abort reason). */
  signal?: AbortSignal;
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
  let commands: CommandBatch | null = null;
  let weights: ConvWeights[] = [];
  let groups: Groups | null = null;
  try {
    // Made on first use, from the allocator: it can run out of memory too.
    commands = commandBatchOf(heap);
    // Long-lived: placed among a group's activations, they would pin its heaps.
    weights = data.weights.map((w) => ({
      weight: tensor(heap, w.weight, w.weightShape, { label: "weight", longLived: true }),
      bias: tensor(heap, w.bias, [w.bias.length], { label: "bias", longLived: true }),
    }));
    const run: JobRun = { heap, job, data, weights, check, signal: options.signal };
    if (job.mode === "naive") await runNaive(run);
    else {
      groups = new Groups(heap, commands, job);
      await runPipelined(run, commands, groups);
    }
  } catch (error) {
    check.stop(error);
  } finally {
    for (const w of weights) {
      w.weight.dispose();
      w.bias?.dispose();
    }
    try {
      // The job leaves nothing allocated: its parameter slots go with the weights.
      commands?.releaseParams();
      commands?.submit();
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
    peaks: groups?.peaks() ?? null,
    submitsInGroups: groups?.submitsInGroups ?? 0,
    submitsInRecordings: groups?.submitsInRecordings ?? 0,
    plans: groups?.plans() ?? [],
  };
}

/** What a planned job asks of its allocator beyond a `TensorAllocator` (a `HeapAllocator` has it). */
type Planner = Pick<
  HeapAllocator,
  | "beginIteration"
  | "endIteration"
  | "plans"
  | "resetPeakStats"
  | "maxMemoryAllocated"
  | "maxMemoryReserved"
>;

/**
 * Runs each group of a gpuheap job as one iteration of the allocator, when
 * planned: named by the input shape and the group's size, so the first
 * group of each size is recorded and later ones replay its plan. Keeps the
 * steady-state peaks: reset at the job's start and at the start of the
 * group after each recorded one (which runs online, once); a stretch with
 * no other group in it is left out. Counts the submits inside groups.
 */
class Groups {
  /** Submits inside groups besides each group's own. */
  submitsInGroups = 0;
  /** The same, in groups that recorded a plan. */
  submitsInRecordings = 0;
  #heap: Planner | null;
  #commands: CommandBatch;
  /** The shape part of a group's key, or null when not planned. */
  #shape: string | null;
  /** Keys planned so far: the allocator's plans outlive a job. */
  #known: Set<string>;
  #allocated = 0;
  #reserved = 0;
  /** A group not recording a plan ran since the peaks were last reset. */
  #steady = false;
  /** A plan was recorded: reset the peaks once the next group has its arena. */
  #resetDue = false;

  constructor(heap: TensorAllocator, commands: CommandBatch, job: PipelineJob) {
    const planner = heap as Partial<Planner>;
    const can = ([
      "beginIteration",
      "endIteration",
      "plans",
      "resetPeakStats",
      "maxMemoryAllocated",
      "maxMemoryReserved",
    ] as const)
      .every((m) => typeof planner[m] === "function");
    if (job.plan && !can) {
      throw new TypeError(
        "Cannot run a planned pipeline job: its allocator cannot plan (it has no beginIteration; a HeapAllocator has)",
      );
    }
    this.#heap = can ? planner as Planner : null;
    this.#commands = commands;
    const { batch, channels, size, outChannels } = job.shape;
    this.#shape = job.plan ? `${batch}x${channels}x${size}x${size}->${outChannels}` : null;
    this.#known = new Set(job.plan ? this.#heap!.plans().map((p) => p.key) : []);
    this.#heap?.resetPeakStats();
  }

  /** Runs `record`, which records a group of `count` iterations and submits it once. */
  run<T>(count: number, record: () => T): T {
    const heap = this.#heap;
    const key = this.#shape === null ? null : `${this.#shape} x${count}`;
    const recording = key !== null && !this.#known.has(key);
    if (recording) this.#keepPeaks();
    if (key !== null) {
      // The staging block the last readback freed is reusable after a submit: one
      // now, outside the iteration, spares the group a third (an empty submit is cheap).
      this.#commands.submit();
      heap!.beginIteration(key);
      // The first run of a plan makes its arena, releasing the heaps the recording left idle.
      if (this.#resetDue) heap!.resetPeakStats();
      this.#resetDue = false;
    }
    const before = this.#commands.submits;
    try {
      return record();
    } finally {
      const extra = Math.max(0, this.#commands.submits - before - 1);
      if (recording) this.submitsInRecordings += extra;
      else this.submitsInGroups += extra;
      if (key !== null) {
        heap!.endIteration();
        if (recording) {
          this.#known.add(key);
          this.#resetDue = true;
          this.#steady = false;
        }
      }
      if (!recording) this.#steady = true;
    }
  }

  /** The steady-state peaks, or null when the allocator keeps no stats. */
  peaks(): { allocated: number; reserved: number } | null {
    if (this.#heap === null) return null;
    // A job of recorded groups alone has no steady state: its last stretch stands for it.
    if (this.#steady || this.#reserved === 0) this.#keepPeaks(true);
    return { allocated: this.#allocated, reserved: this.#reserved };
  }

  plans(): PlanInfo[] {
    return this.#shape === null ? [] : this.#heap!.plans();
  }

  /** Folds the peaks since the last reset into the job's, if a steady group ran since. */
  #keepPeaks(always = false): void {
    const heap = this.#heap;
    if (heap === null || !(this.#steady || always)) return;
    this.#allocated = Math.max(this.#allocated, heap.maxMemoryAllocated());
    this.#reserved = Math.max(this.#reserved, heap.maxMemoryReserved());
  }
}

/** What a run of a job works with: its allocator, inputs, weights, checker and abort signal. */
interface JobRun {
  heap: TensorAllocator;
  job: PipelineJob;
  data: PipelineData;
  weights: ConvWeights[];
  check: Checker;
  signal: AbortSignal | undefined;
}

async function runPipelined(run: JobRun, commands: CommandBatch, groups: Groups): Promise<void> {
  const { heap, job, data, weights, check, signal } = run;
  const group = Math.max(1, Math.ceil(job.inFlight / 2));
  const reading: Promise<void>[] = [];
  try {
    for (let started = 0; started < job.iterations;) {
      signal?.throwIfAborted();
      const count = Math.min(group, job.iterations - started);
      const which: number[] = [];
      for (let i = 0; i < count; i++) which.push((started + i) % data.inputs.length);
      started += count;
      // readGroup runs up to its mapAsync here: the group's blocks are freed within it.
      const read = groups.run(
        count,
        () => readGroup(heap, commands, recordGroup(heap, which, data, weights, job.plan)),
      );
      const checked = read.then((values) => values.forEach((v, i) => check.output(which[i], v)));
      checked.catch(() => {}); // awaited below; handled now so a rejection is never "unhandled"
      reading.push(checked);
      if (reading.length >= 2) await reading.shift();
    }
  } finally {
    const settled = await Promise.allSettled(reading);
    for (const s of settled) if (s.status === "rejected") check.stop(s.reason);
  }
  commands.submit();
}

/**
 * Records one pipeline per input index; returns the outputs. With
 * `uploadFirst` (planned jobs), every input is uploaded before the first
 * pipeline: a block `queue.writeBuffer` fills may not take bytes freed since
 * the last submit (trap 1), so in a group with one submit each input holds
 * bytes of its own until then wherever it is uploaded, and uploaded first,
 * that time is live time: the plan's size ÷ peak live reads ≈ 1. Online, an
 * input is uploaded just before its pipeline: an allocator that submits to
 * reuse memory (`submitWhenShort`) then reuses the inputs' bytes within the
 * group, for fewer bytes in all.
 */
function recordGroup(
  heap: TensorAllocator,
  which: readonly number[],
  data: PipelineData,
  weights: ConvWeights[],
  uploadFirst: boolean,
): Tensor[] {
  const inputs: Tensor[] = [];
  const outputs: Tensor[] = [];
  const record = (x: Tensor) => {
    outputs.push(pipeline(x, weights));
    x.dispose();
  };
  try {
    for (const k of which) {
      inputs.push(tensor(heap, data.inputs[k], data.inputShape));
      // Online, an input is recorded at once: its bytes come back at the next submit.
      if (!uploadFirst) record(inputs[inputs.length - 1]);
    }
    if (uploadFirst) inputs.forEach(record);
  } catch (error) {
    for (const t of [...inputs, ...outputs]) if (!t.disposed) t.dispose();
    throw error;
  }
  return outputs;
}

/**
 * Copies the outputs into one staging block, disposes them, submits, and
 * maps the block once. The outputs are disposed before the submit, so every
 * group leaves the allocator as it found it: the next group gets the same
 * blocks at the same offsets, and the command batch's cached bind groups fit again.
 */
async function readGroup(
  heap: TensorAllocator,
  commands: CommandBatch,
  outputs: Tensor[],
): Promise<Float32Array[]> {
  const sizes = outputs.map((y) => y.byteLength);
  const total = sizes.reduce((a, b) => a + b, 0);
  let staging: TensorBlock;
  try {
    staging = heap.alloc(total, { usage: "readback", label: "pipeline outputs" });
    const encoder = commands.encoder();
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
  commands.submit();
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

async function runNaive(run: JobRun): Promise<void> {
  const { heap, job, data, weights, check, signal } = run;
  for (let it = 0; it < job.iterations; it++) {
    signal?.throwIfAborted();
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

/** The allocator's GPUBuffer usage for each kind of block a tensor op asks for. */
const USAGE_FLAGS = {
  storage: BUFFER_USAGE.small,
  uniform: BUFFER_USAGE.uniform,
  readback: BUFFER_USAGE.readback,
  upload: BUFFER_USAGE.upload,
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

/** The stress job's input on a Worker: the job and its data, made once on the pool's thread. */
export interface PipelineRun {
  /** The job. */
  job: PipelineJob;
  /** Its inputs, weights and references ({@linkcode pipelineData}). */
  data: PipelineData;
}

/** How long a job that ended in an error waits for `device.lost` before it reports. */
const LOST_WAIT_MS = 100;

/**
 * The stress job as a pool job (this module's default export): runs
 * {@linkcode runPipelineJob} on the Worker's allocator (or an
 * {@linkcode UncachedAllocator} in naive mode), counting each checked
 * iteration as a step.
 *
 * @example
 * ```ts
 * import pipelineWorkerJob, { pipelineData, pipelineJob } from "./pipeline_job.ts";
 * import { HeapAllocator } from "@gpuheap/gpuheap";
 * import { requestDevice } from "@gpuheap/gpuheap";
 * import assert from "node:assert/strict";
 *
 * // As a Worker calls it.
 * const device = await requestDevice();
 * const allocator = new HeapAllocator(device);
 * const job = pipelineJob({ iterations: 2, inFlight: 2, shape: { channels: 2, size: 8, outChannels: 4 } });
 * let steps = 0;
 * const report = await pipelineWorkerJob({
 *   input: { job, data: pipelineData(job) },
 *   device,
 *   allocator,
 *   index: 0,
 *   workers: 1,
 *   signal: new AbortController().signal,
 *   progress: { step: (n = 1) => void (steps += n), steps: 0, failed: 0 },
 * });
 * assert.equal(report.iterations, 2);
 * assert.equal(steps, 2);
 * allocator.destroy();
 * device.destroy();
 * ```
 *
 * @param context the Worker's device, allocator, signal, progress and the run
 * @returns the job's report
 */
export default async function pipelineWorkerJob(
  context: JobContext<PipelineRun>,
): Promise<PipelineJobReport> {
  const { input: { job, data }, device, signal, progress } = context;
  const heap = job.mode === "naive" ? new UncachedAllocator(device) : context.allocator;
  const report = await runPipelineJob(heap, job, data, {
    onIteration: (ok) => progress.step(1, ok ? 0 : 1),
    signal,
  });
  // A destroyed device fails the job's readbacks before `lost` resolves, and
  // the loss, not the failed readback, is what to report.
  if (report.error !== null) {
    await Promise.race([device.lost, new Promise((r) => setTimeout(r, LOST_WAIT_MS))]);
  }
  return report;
}

/** What one Worker's stress job did, with the Worker's index. */
export interface WorkerReport extends PipelineJobReport {
  /** The Worker's index in the pool (0-based). */
  worker: number;
}

/** The part of `WorkerPool` that {@linkcode runPipelineOn} uses. */
export interface PipelinePool {
  /** Workers in the pool. */
  readonly size: number;
  /** Runs an input per Worker. */
  runEach(
    inputs: readonly (PipelineRun | null)[],
    options?: { timeout?: number; signal?: AbortSignal },
  ): Promise<JobReport<unknown>[]>;
}

/**
 * Runs the stress job on a pool started with the default job (one job for
 * all Workers, or one per Worker, `null` to leave a Worker idle), and
 * returns a {@linkcode WorkerReport} per Worker given a job. The inputs and
 * references are made here by {@linkcode pipelineData}: call it first to
 * keep that time out of a measurement. A Worker that ended, or sent a
 * report that is not one, reports a `WorkerError` (its report's `error`)
 * with the iterations it had checked.
 *
 * @example
 * ```ts ignore
 * import { WorkerPool } from "@gpuheap/gpuheap/workers";
 * import { pipelineJob, runPipelineOn } from "@gpuheap/gpuheap/workers";
 *
 * const pool = await WorkerPool.start({ workers: 2 });
 * const reports = await runPipelineOn(pool, pipelineJob({ iterations: 4 }));
 * await pool.close();
 * ```
 *
 * @param pool the pool
 * @param jobs the job, or a job per Worker
 * @param options a timeout per Worker, an abort signal
 * @returns a report per Worker given a job, by Worker
 */
export async function runPipelineOn(
  pool: PipelinePool,
  jobs: PipelineJob | readonly (PipelineJob | null)[],
  options: { timeout?: number; signal?: AbortSignal } = {},
): Promise<WorkerReport[]> {
  const list = Array.isArray(jobs) ? jobs : new Array(pool.size).fill(jobs);
  const inputs = list.map((job) => (job === null ? null : { job, data: pipelineData(job) }));
  const reports = await pool.runEach(inputs, options);
  return reports.map(workerReport);
}

/** A Worker's report, checked: a result that is not a report is the Worker's fault. */
function workerReport(r: JobReport<unknown>): WorkerReport {
  const bad = r.result === null ? null : reportFault(r.result);
  if (r.result !== null && bad === null) {
    const report = r.result as PipelineJobReport;
    return { ...report, error: report.error ?? r.error, worker: r.worker };
  }
  return {
    worker: r.worker,
    iterations: r.steps,
    failed: r.failed,
    maxError: NaN,
    seconds: NaN,
    checksums: [],
    error: bad === null
      ? r.error
      : new WorkerError(r.worker, `Worker ${r.worker + 1} sent a malformed report (${bad})`),
    memory: null,
    createBufferCalls: 0,
    peaks: null,
    submitsInGroups: 0,
    submitsInRecordings: 0,
    plans: [],
  };
}

/** What is wrong with a report from a Worker, or null. */
function reportFault(value: unknown): string | null {
  if (value === null || typeof value !== "object") return "not an object";
  const r = value as Record<string, unknown>;
  const counts = [
    "iterations",
    "failed",
    "createBufferCalls",
    "submitsInGroups",
    "submitsInRecordings",
  ];
  for (const key of counts) {
    const v = r[key];
    if (!Number.isSafeInteger(v) || (v as number) < 0) return `${key} is not a count`;
  }
  for (const key of ["maxError", "seconds"]) {
    if (typeof r[key] !== "number") return `${key} is not a number`;
  }
  if (!Array.isArray(r.checksums) || !r.checksums.every((c) => Number.isSafeInteger(c))) {
    return "checksums is not a list of integers";
  }
  const e = r.error as { name?: unknown; message?: unknown } | null;
  if (
    e !== null &&
    (typeof e !== "object" || typeof e.name !== "string" || typeof e.message !== "string")
  ) {
    return "error is neither null nor a name and a message";
  }
  if (r.memory !== null && typeof r.memory !== "object") return "memory is not an object";
  const p = r.peaks as { allocated?: unknown; reserved?: unknown } | null;
  if (
    p !== null &&
    (typeof p !== "object" || typeof p.allocated !== "number" || typeof p.reserved !== "number")
  ) {
    return "peaks is neither null nor two numbers";
  }
  if (!Array.isArray(r.plans)) return "plans is not a list";
  return null;
}
