// GPU-time figures of the kernels, printed as a table:
//   - relu GB/s against a plain copyBufferToBuffer of the same bytes,
//   - conv2d GFLOP/s of each layer of the target pipeline, Winograd, tiled
//     and (first layer) naive,
//   - the three-stage pipeline in ms and GFLOP/s, f32 and f16, with the
//     Winograd kernel (the default) and the tiled one (targets on an H100 at
//     batch 32, 32 channels, 128x128: <= 1.20 ms f32, <= 0.80 ms f16),
//   - the stress command's pipeline (batch 1, 16 channels, 32x32): GPU time
//     per iteration with 40 iterations in one command buffer,
//   - with --sweep, the pipeline with other tile sizes of either kernel.
//
// Every row is timed twice, the second time with the rows in reverse order,
// and the script exits 1 if the two disagree by more than 5%: a figure that
// depends on what ran before it is not a figure of the kernel. What made
// rows after the first pipeline row read 3-5x slow in an earlier version
// (the GPU's clock) is written below, at gpuTime.
//
// Times come from timestamp queries around the recorded work; without the
// "timestamp-query" feature, from the wall clock (onSubmittedWorkDone), taken
// as the slope between two repetition counts so the fixed wait cancels out.
// Correctness is checked first (image 0 against the float64 reference),
// never between timings.
//
//   deno run --allow-env --allow-read bench/commands/kernels_gpu.ts [--quick] [--sweep]
//     [--no-check] [--naive] [--reps N] [--tiles JSON] [--winograd-tiles JSON]
//     [--peer "name=ms"]...
//
// --naive times the naive kernel on every layer (default: the first only);
// --tiles and --winograd-tiles add a tile configuration to the sweep;
// --peer adds a figure measured elsewhere (say, PyTorch in the same lease)
// to the table as its own row.
//
// --quick runs small shapes (for the software adapter); the default is the
// target shape and needs a few GiB of GPU memory.
import { HeapAllocator } from "../../allocator/allocator.ts";
import { requestDevice } from "../../allocator/request_device.ts";
import {
  type CommandBatch,
  commandBatchOf,
  conv2dDefaultTiles,
  conv2dRelu,
  type Conv2dTiles,
  conv2dWinogradDefaultTiles,
  type Conv2dWinogradTiles,
  type ConvWeights,
  type DType,
  pipeline,
  pipelineRef,
  readAll,
  relativeError,
  relu,
  shaderCompilations,
  type Tensor,
  tensor,
} from "../../kernels/mod.ts";
import { parseOrExit } from "../../allocator/tools/flags.ts";
import { mulberry32, randomValues } from "../../kernels/_random.ts";
import { KERNELS_GPU_COMMAND } from "./_kernels_gpu_flags.ts";

/** The stress command's default shape. */
const STRESS: Shape = { n: 1, c: 16, hw: 32, channels: [32, 32, 32] };
const TARGET_F32_MS = 1.2;
const TARGET_F16_MS = 0.8;
/** Largest disagreement between a row's two timings. */
const AGREE = 0.05;

// ---- flags ----

/** A batch of images and the output channels of the pipeline's three convs. */
interface Shape {
  n: number;
  c: number;
  hw: number;
  channels: number[];
}

/** What the flags ask for, with the defaults they imply. */
interface Settings {
  quick: boolean;
  sweep: boolean;
  check: boolean;
  /** Time the naive kernel on every layer. */
  naive: boolean;
  reps: number;
  peers: { name: string; ms: number }[];
  tiles: Conv2dTiles | null;
  winogradTiles: Conv2dWinogradTiles | null;
  /** The pipeline's shape. */
  shape: Shape;
  /** Iterations of the stress pipeline in one command buffer. */
  stressReps: number;
  /** Wall time of busy warm-up before each timing, so the GPU's clock is up (see gpuTime). */
  warmMs: number;
  /** Busy time before the first row: an idle GPU takes over a second to reach its top clock. */
  spinUpMs: number;
}

/** Reads the flags (exits on bad ones, before any device is requested). */
function settings(args: readonly string[]): Settings {
  const { flags } = parseOrExit(KERNELS_GPU_COMMAND, args);
  const quick = flags.quick;
  return {
    quick,
    sweep: flags.sweep,
    check: !flags.noCheck,
    naive: flags.naive,
    reps: flags.reps ?? (quick ? 3 : 10),
    peers: flags.peer,
    tiles: flags.tiles ?? null,
    winogradTiles: flags.winogradTiles ?? null,
    // The target: batch 32, 32 channels, 128x128, three 3x3 pad-1 convs to 64
    // channels with 2x2 pools in between.
    shape: quick
      ? { n: 1, c: 8, hw: 32, channels: [16, 16, 16] }
      : { n: 32, c: 32, hw: 128, channels: [64, 64, 64] },
    // Six dispatches an iteration: 40 stay under the batch's automatic submit, which
    // would split the timed region in two command buffers, the CPU's recording time between.
    stressReps: quick ? 8 : 40,
    warmMs: quick ? 0 : 300,
    spinUpMs: quick ? 0 : 3000,
  };
}

/** The device, its allocator and batch, and what every part below shares. */
interface Bench {
  settings: Settings;
  device: GPUDevice;
  allocator: HeapAllocator;
  batch: CommandBatch;
  adapter: string;
  timestamps: boolean;
  /** WebGPU errors reported so far. */
  gpuErrors: string[];
}

async function openBench(s: Settings): Promise<Bench> {
  const device = await requestDevice();
  const info = device.adapterInfo;
  const adapter = `${info.description || info.device || "unknown adapter"} (vendor ${info.vendor}${
    info.architecture ? `, ${info.architecture}` : ""
  })`;
  const gpuErrors: string[] = [];
  device.addEventListener("uncapturederror", (e) => {
    const message = (e as GPUUncapturedErrorEvent).error.message;
    gpuErrors.push(message);
    console.error(`WebGPU error: ${message}`);
  });
  // No cache limit: a row's heaps stay cached through every other row, so no
  // timed region makes (and clears) heaps because another row's released them.
  const allocator = new HeapAllocator(device, { allocConf: "max_reserved_ratio:0" });
  return {
    settings: s,
    device,
    allocator,
    batch: commandBatchOf(allocator),
    adapter,
    timestamps: device.features.has("timestamp-query"),
    gpuErrors,
  };
}

// ---- timing ----

/** Times recorded work on the GPU: timestamp queries where the device has them. */
class GpuTimer {
  readonly #b: Bench;
  readonly #querySet: GPUQuerySet | null;
  readonly #resolveBuffer: GPUBuffer | null;
  readonly #readBuffer: GPUBuffer | null;

  constructor(b: Bench) {
    this.#b = b;
    const device = b.device;
    this.#querySet = b.timestamps ? device.createQuerySet({ type: "timestamp", count: 4 }) : null;
    // Query results can only be resolved into a QUERY_RESOLVE buffer, which the
    // allocator does not hand out; the readback buffer is made once beside it.
    this.#resolveBuffer = b.timestamps
      ? device.createBuffer({
        size: 32,
        usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
      })
      : null;
    this.#readBuffer = b.timestamps
      ? device.createBuffer({ size: 32, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST })
      : null;
  }

  /** Empty compute passes that only write timestamps mark the start and end. */
  #mark(begin: number): void {
    this.#b.batch.encoder().beginComputePass({
      timestampWrites: {
        querySet: this.#querySet!,
        beginningOfPassWriteIndex: begin,
        endOfPassWriteIndex: begin + 1,
      },
    }).end();
  }

  async #run(record: () => void, reps: number): Promise<number> {
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) record();
    this.#b.batch.submit();
    await this.#b.device.queue.onSubmittedWorkDone();
    return performance.now() - t0;
  }

  /** Heaps made and shaders compiled so far: a timed region must change neither. */
  #footprint(): [number, number] {
    return [this.#b.allocator.memoryStats().createBufferCalls, shaderCompilations(this.#b.device)];
  }

  /**
   * Keeps the GPU busy with `record` for `ms` of wall time: rounds of `reps`
   * submitted back to back, up to 16 in flight, so that even a row of 1 ms a
   * round keeps the GPU fed across Deno's 10 ms waits.
   */
  async busy(record: () => void, reps: number, ms: number): Promise<void> {
    const { batch, device } = this.#b;
    const start = performance.now();
    const inFlight: Promise<void>[] = [];
    do {
      for (let i = 0; i < reps; i++) record();
      batch.submit();
      inFlight.push(device.queue.onSubmittedWorkDone());
      if (inFlight.length >= 16) await inFlight.shift();
    } while (performance.now() - start < ms);
    await Promise.all(inFlight);
  }

  /**
   * Milliseconds of GPU time per repetition of `record`, and where the figure
   * comes from. `record` records into the allocator's batch.
   *
   * What made rows after the first pipeline row read 3-5x slow in an earlier
   * version: the GPU's clock. An H200 left with little work for a few seconds
   * (while the CPU computes a float64 reference, copies a 128 MiB readback
   * into JavaScript, sums its error, compiles shaders) lowers its SM clock
   * from 1980 MHz to as little as 345 MHz, and raises it again only after a
   * second or more of steady load; the old warm-up (one round of `reps`, a
   * few milliseconds, then an 11 ms wait) never gave it that, so rows after
   * such pauses ran at 345-1110 MHz (a clock log beside the run showed it).
   * Heaps made inside the timed region, readbacks and idle seconds alone
   * changed nothing there. So here: the checks run before all timing, a
   * `warmMs` spin-up keeps the GPU busy before every timed region, and a
   * timed region that makes a heap or compiles a shader is an error.
   */
  async gpuTime(what: string, record: () => void, reps: number): Promise<[number, string]> {
    const { batch, timestamps } = this.#b;
    await this.busy(record, reps, this.#b.settings.warmMs);
    if (timestamps) {
      const before = this.#footprint();
      const submits = batch.submits;
      this.#mark(0);
      for (let i = 0; i < reps; i++) record();
      this.#mark(2);
      const after = this.#footprint();
      if (after[0] !== before[0] || after[1] !== before[1]) {
        throw new Error(
          `${what}: the timed region made ${after[0] - before[0]} heaps and compiled ${
            after[1] - before[1]
          } shaders after warm-up`,
        );
      }
      if (batch.submits !== submits) {
        // The GPU would idle between the parts while the CPU records.
        throw new Error(`${what}: the timed region was submitted in parts; use fewer repetitions`);
      }
      const readBuffer = this.#readBuffer!;
      const enc = batch.encoder();
      enc.resolveQuerySet(this.#querySet!, 0, 4, this.#resolveBuffer!, 0);
      enc.copyBufferToBuffer(this.#resolveBuffer!, 0, readBuffer, 0, 32);
      batch.submit();
      await readBuffer.mapAsync(GPUMapMode.READ);
      const t = new BigUint64Array(readBuffer.getMappedRange().slice(0));
      readBuffer.unmap();
      // From the end of the opening mark to the end of the closing one: an
      // end-of-pass timestamp waits for the work before it, a beginning one
      // need not.
      const ns = Number(t[3] - t[1]);
      if (ns > 0) return [ns / 1e6 / reps, "timestamps"];
    }
    const few = await this.#run(record, reps);
    const many = await this.#run(record, 3 * reps);
    const slope = (many - few) / (2 * reps);
    return [
      slope,
      timestamps ? "wall clock (timestamps read 0)" : "wall clock (no timestamp-query)",
    ];
  }
}

interface RowSpec {
  what: string;
  shape: string;
  reps: number;
  record: () => void;
  /** The rate column from a time in ms. */
  rate: (ms: number) => string;
  note?: string;
}
interface Row extends RowSpec {
  times: number[];
  source: string;
}

function fmt(shape: readonly number[]): string {
  return `[${shape.join(",")}]`;
}

const gflops = (flops: number) => (ms: number) => `${(flops / (ms * 1e6)).toPrecision(3)} GFLOP/s`;

// ---- data ----

interface Layer {
  x: Tensor;
  w: ConvWeights;
  flops: number;
  shape: string;
}

/** A pipeline's input, the weights of its convs, and each conv alone on an input of its own. */
interface Data {
  x: Tensor;
  weights: ConvWeights[];
  convs: Layer[];
  flops: number;
}

function layers(allocator: HeapAllocator, shape: Shape, dtype: DType): Data {
  const upload = (dims: number[], seed: number, scale = 1) => {
    const count = dims.reduce((a, b) => a * b, 1);
    return tensor(allocator, randomValues(mulberry32(seed), count, scale), dims, { dtype });
  };
  const x = upload([shape.n, shape.c, shape.hw, shape.hw], 2);
  const weights: ConvWeights[] = [];
  const convs: Layer[] = [];
  let cin = shape.c;
  let hw = shape.hw;
  shape.channels.forEach((cout, i) => {
    const w = {
      weight: upload([cout, cin, 3, 3], 10 + i, 1 / Math.sqrt(cin * 9)),
      bias: upload([cout], 20 + i, 0.1),
    };
    weights.push(w);
    const input = i === 0 ? x : upload([shape.n, cin, hw, hw], 30 + i);
    const flops = 2 * shape.n * hw * hw * cout * cin * 9;
    convs.push({ x: input, w, flops, shape: `${fmt(input.shape)} -> ${cout}` });
    cin = cout;
    hw /= 2;
  });
  return { x, weights, convs, flops: convs.reduce((a, c) => a + c.flops, 0) };
}

/** The pipeline's stages with chosen Winograd tiles (pipeline() picks its own). */
function winogradPipeline(x: Tensor, weights: ConvWeights[], winogradTiles: Conv2dWinogradTiles) {
  let t = x;
  (["max", "max", "avg"] as const).forEach((pool, i) => {
    const y = conv2dRelu(t, weights[i].weight, weights[i].bias, {
      padding: 1,
      algorithm: "winograd",
      pool,
      winogradTiles,
    });
    if (t !== x) t.dispose();
    t = y;
  });
  return t;
}

// ---- correctness, before any timing ----

/** Checks pipelines' image 0 against the float64 reference. */
class Checker {
  readonly #b: Bench;
  readonly #references = new Map<Data, { one: Tensor; ref: Float64Array }>();

  constructor(b: Bench) {
    this.#b = b;
  }

  /** Image 0 of `data` as a tensor, and the float64 reference of its pipeline (made once). */
  async #imageZero(data: Data) {
    let r = this.#references.get(data);
    if (!r) {
      const shape = this.#b.settings.shape;
      const c = shape.c * shape.hw * shape.hw;
      const xs = (await data.x.read()).subarray(0, c);
      const one = tensor(this.#b.allocator, xs, [1, shape.c, shape.hw, shape.hw], {
        dtype: data.x.dtype,
      });
      // The reference takes the values the GPU holds (f16 ones already rounded).
      const refWeights = await Promise.all(data.weights.map(async (w) => {
        const [wd, bd] = await readAll([w.weight, w.bias!]);
        return {
          weight: { data: wd, shape: [...w.weight.shape] },
          bias: { data: bd, shape: [...w.bias!.shape] },
        };
      }));
      const ref = pipelineRef({ data: Float32Array.from(xs), shape: [...one.shape] }, refWeights);
      r = { one, ref: ref.data };
      this.#references.set(data, r);
    }
    return r;
  }

  /** Image 0's pipeline output against the float64 reference; throws past `tolerance`. */
  async pipeline(
    what: string,
    data: Data,
    run: (x: Tensor) => Tensor,
    tolerance: number,
  ): Promise<number> {
    const { one, ref } = await this.#imageZero(data);
    const y = run(one);
    const err = relativeError(await y.read(), ref);
    y.dispose();
    console.error(
      `  check: ${what}, image 0 vs float64 reference: relative error ${err.toExponential(2)}`,
    );
    if (!(err <= tolerance)) {
      throw new Error(`${what} is wrong on this adapter: relative error ${err} > ${tolerance}`);
    }
    return err;
  }
}

/** The default pipelines, f32 and f16, Winograd and tiled. */
async function checkPipelines(checker: Checker, f32: Data, f16: Data | null): Promise<void> {
  await checker.pipeline("pipeline f32", f32, (x) => pipeline(x, f32.weights), 1e-5);
  await checker.pipeline(
    "pipeline f32 tiled",
    f32,
    (x) => pipeline(x, f32.weights, { algorithm: "tiled" }),
    1e-5,
  );
  if (f16) {
    await checker.pipeline("pipeline f16", f16, (x) => pipeline(x, f16.weights), 1e-2);
    await checker.pipeline(
      "pipeline f16 tiled",
      f16,
      (x) => pipeline(x, f16.weights, { algorithm: "tiled" }),
      1e-2,
    );
  }
}

// ---- rows ----

/** Rows of the copy, relu, each conv, the pipelines and the stress pipeline. */
function kernelRows(b: Bench, f32: Data, f16: Data | null, small: Data): RowSpec[] {
  const { quick, reps: REPS } = b.settings;
  const specs: RowSpec[] = [];
  {
    const x = f32.convs[1].x;
    const bytes = x.byteLength;
    // A copy may not stay within one GPUBuffer, and blocks share heaps: the
    // destination is a buffer of its own.
    const dst = b.device.createBuffer({
      size: bytes,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST,
    });
    const gbs = (ms: number) => `${((2 * bytes) / (ms * 1e6)).toPrecision(3)} GB/s`;
    specs.push({
      what: "copyBufferToBuffer",
      shape: fmt(x.shape),
      reps: REPS,
      record: () =>
        b.batch.encoder().copyBufferToBuffer(x.block.buffer, x.block.offset, dst, 0, bytes),
      rate: gbs,
      note: "read + write",
    });
    // Each output is disposed at once; its memory is reused after the submit.
    specs.push({
      what: "relu",
      shape: fmt(x.shape),
      reps: REPS,
      record: () => relu(x).dispose(),
      rate: gbs,
    });
  }

  const reps = (flops: number) => Math.max(1, Math.min(REPS, Math.round(REPS * 2e10 / flops)));
  for (const [i, c] of f32.convs.entries()) {
    for (const algorithm of ["winograd", "tiled", "naive"] as const) {
      if (algorithm === "naive" && !quick && i > 0 && !b.settings.naive) continue;
      specs.push({
        what: `conv2d+bias+relu ${algorithm}`,
        shape: c.shape,
        reps: algorithm === "naive" ? 1 : reps(c.flops),
        record: () => conv2dRelu(c.x, c.w.weight, c.w.bias, { padding: 1, algorithm }).dispose(),
        rate: gflops(c.flops),
      });
    }
  }

  const pipelineNote = (target: number) => quick ? "" : `target <= ${target} ms`;
  specs.push({
    what: "pipeline (3 stages) f32, Winograd",
    shape: fmt(f32.x.shape),
    reps: REPS,
    record: () => pipeline(f32.x, f32.weights).dispose(),
    rate: gflops(f32.flops),
    note: pipelineNote(TARGET_F32_MS),
  });
  specs.push({
    what: "pipeline (3 stages) f32, tiled",
    shape: fmt(f32.x.shape),
    reps: REPS,
    record: () => pipeline(f32.x, f32.weights, { algorithm: "tiled" }).dispose(),
    rate: gflops(f32.flops),
  });
  if (f16) {
    specs.push({
      what: "pipeline (3 stages) f16, Winograd",
      shape: fmt(f16.x.shape),
      reps: REPS,
      record: () => pipeline(f16.x, f16.weights).dispose(),
      rate: gflops(f16.flops),
      note: pipelineNote(TARGET_F16_MS),
    });
    specs.push({
      what: "pipeline (3 stages) f16, tiled",
      shape: fmt(f16.x.shape),
      reps: REPS,
      record: () => pipeline(f16.x, f16.weights, { algorithm: "tiled" }).dispose(),
      rate: gflops(f16.flops),
    });
  } else {
    console.error("  pipeline f16: skipped, the device has no shader-f16");
  }
  specs.push({
    what: `stress pipeline, ${b.settings.stressReps} in one command buffer`,
    shape: fmt(small.x.shape),
    reps: b.settings.stressReps,
    record: () => pipeline(small.x, small.weights).dispose(),
    rate: (ms) => `${(1000 / ms).toFixed(0)} it/s`,
    note: "GPU time per iteration",
  });
  return specs;
}

/**
 * Rows of the pipeline with other tile sizes of either kernel, each checked
 * first; the names of those whose output failed go to `wrong`.
 */
async function sweepRows(
  b: Bench,
  checker: Checker,
  f32: Data,
  f16: Data | null,
  wrong: string[],
): Promise<RowSpec[]> {
  const { quick, check, reps: REPS, shape: SHAPE } = b.settings;
  const info = b.device.adapterInfo;
  const specs: RowSpec[] = [];
  const tiledSweep: Conv2dTiles[] = [
    { tileM: 128, tileN: 64, tileK: 8, threadM: 8, threadN: 8 },
    { tileM: 128, tileN: 64, tileK: 16, threadM: 8, threadN: 8 },
    { tileM: 128, tileN: 64, tileK: 16, threadM: 8, threadN: 4 },
    { tileM: 64, tileN: 64, tileK: 16, threadM: 4, threadN: 4 },
  ];
  const extraTiles = b.settings.tiles;
  if (extraTiles) tiledSweep.unshift(extraTiles);
  const winogradSweep: Conv2dWinogradTiles[] = [
    { tiles: 32, tileN: 32, tileK: 8, threadM: 8, threadN: 8, passChannels: 8 },
    { tiles: 32, tileN: 32, tileK: 4, threadM: 8, threadN: 8 },
    { tiles: 64, tileN: 32, tileK: 4, threadM: 16, threadN: 8, passChannels: 8 },
    { tiles: 64, tileN: 32, tileK: 4, threadM: 16, threadN: 8 },
    { tiles: 64, tileN: 32, tileK: 8, threadM: 16, threadN: 8 },
    { tiles: 64, tileN: 16, tileK: 8, threadM: 8, threadN: 8 },
    { tiles: 32, tileN: 64, tileK: 4, threadM: 8, threadN: 16 },
    { tiles: 16, tileN: 64, tileK: 8, threadM: 4, threadN: 16 },
  ];
  const halfTiledSweep: Conv2dTiles[] = [
    { tileM: 128, tileN: 64, tileK: 16, threadM: 8, threadN: 8 },
    { tileM: 128, tileN: 64, tileK: 16, threadM: 8, threadN: 8, half: true },
    { tileM: 128, tileN: 64, tileK: 32, threadM: 8, threadN: 8, half: true },
    { tileM: 128, tileN: 64, tileK: 8, threadM: 8, threadN: 8, half: true },
    { tileM: 128, tileN: 64, tileK: 16, threadM: 8, threadN: 4, half: true },
  ];
  const halfSweep: Conv2dWinogradTiles[] = [
    { tiles: 32, tileN: 64, tileK: 8, threadM: 8, threadN: 16, half: true, passChannels: 8 },
    { tiles: 32, tileN: 64, tileK: 8, threadM: 8, threadN: 16, half: true },
    { tiles: 32, tileN: 64, tileK: 4, threadM: 8, threadN: 16, half: true, passChannels: 8 },
    { tiles: 64, tileN: 64, tileK: 4, threadM: 16, threadN: 16, half: true, passChannels: 8 },
    { tiles: 32, tileN: 32, tileK: 16, threadM: 8, threadN: 8, half: true },
    { tiles: 64, tileN: 32, tileK: 4, threadM: 16, threadN: 8, half: true },
    { tiles: 64, tileN: 32, tileK: 4, threadM: 16, threadN: 8 },
  ];
  const extraWinograd = b.settings.winogradTiles;
  if (extraWinograd) (extraWinograd.half ? halfSweep : winogradSweep).unshift(extraWinograd);
  const defaults = JSON.stringify(
    conv2dDefaultTiles(SHAPE.c, SHAPE.channels[0], info.isFallbackAdapter),
  );
  const limit = b.device.limits.maxComputeWorkgroupStorageSize;
  const winogradDefaults = (dtype: DType) =>
    JSON.stringify(
      conv2dWinogradDefaultTiles(
        SHAPE.channels[0],
        SHAPE.n * (SHAPE.hw / 2) ** 2,
        limit,
        info.isFallbackAdapter,
        dtype === "f16" ? { cInG: SHAPE.c } : undefined,
      ),
    );
  const sweepCheck = async (what: string, data: Data, run: (x: Tensor) => Tensor) => {
    if (!check) return "";
    const tolerance = data.x.dtype === "f16" ? 1e-2 : 1e-5;
    try {
      return ` err ${(await checker.pipeline(what, data, run, tolerance)).toExponential(1)}`;
    } catch (error) {
      // Tiles the device cannot run (a RangeError before any work) are skipped, not wrong.
      if (error instanceof RangeError) throw error;
      wrong.push(what);
      return ` ${(error as Error).message.replace(/ is wrong.*: /, ": WRONG ")}`;
    }
  };
  /** Sweep rows of one kernel: each configuration checked, then timed. */
  const kernelSweep = async <T extends { half?: boolean }>(
    data: Data,
    list: T[],
    kernel: { label: (t: T) => string; run: (x: Tensor, t: T) => Tensor; defaults: string },
  ) => {
    for (const tiles of quick ? list.slice(0, 2) : list) {
      const name = `${data.x.dtype} ${kernel.label(tiles)}${tiles.half ? " f16 products" : ""}`;
      let err: string;
      try {
        err = await sweepCheck(name, data, (x) => kernel.run(x, tiles));
      } catch (error) {
        console.error(`  ${name}: skipped, ${(error as Error).message}`);
        continue;
      }
      specs.push({
        what: `sweep: pipeline ${name}`,
        shape: fmt(data.x.shape),
        reps: REPS,
        record: () => kernel.run(data.x, tiles).dispose(),
        rate: gflops(data.flops),
        note: (JSON.stringify(tiles) === kernel.defaults ? "default" : "") + err,
      });
    }
  };
  const tiled = (data: Data) => ({
    label: (t: Conv2dTiles) =>
      `tiled ${t.tileM}x${t.tileN}x${t.tileK} thread ${t.threadM}x${t.threadN}`,
    run: (x: Tensor, tiles: Conv2dTiles) => pipeline(x, data.weights, { tiles }),
    defaults,
  });
  const winograd = (data: Data) => ({
    label: (t: Conv2dWinogradTiles) =>
      `Winograd ${t.tiles}x${t.tileN}x${t.tileK} thread ${t.threadM}x${t.threadN}${
        t.passChannels ? ` passes of ${t.passChannels}` : ""
      }`,
    run: (x: Tensor, tiles: Conv2dWinogradTiles) => winogradPipeline(x, data.weights, tiles),
    defaults: winogradDefaults(data.x.dtype),
  });
  await kernelSweep(f32, tiledSweep, tiled(f32));
  if (f16) await kernelSweep(f16, halfTiledSweep, tiled(f16));
  await kernelSweep(f32, winogradSweep, winograd(f32));
  if (f16) await kernelSweep(f16, halfSweep, winograd(f16));
  return specs;
}

/** The rows whose work the device can run: tile configurations it cannot are dropped. */
async function runnable(b: Bench, specs: RowSpec[]): Promise<RowSpec[]> {
  const rows: RowSpec[] = [];
  for (const spec of specs) {
    try {
      spec.record();
      b.batch.submit();
      rows.push(spec);
    } catch (error) {
      console.error(`  ${spec.what}: skipped, ${(error as Error).message}`);
    }
  }
  await b.device.queue.onSubmittedWorkDone();
  return rows;
}

/** Times every row twice, the second pass in reverse order, after spinning the GPU up. */
async function timeRows(
  timer: GpuTimer,
  specs: RowSpec[],
  spinUp: () => void,
  s: Settings,
): Promise<Row[]> {
  const rows: Row[] = specs.map((spec) => ({ ...spec, times: [], source: "" }));
  await timer.busy(spinUp, s.reps, s.spinUpMs);
  for (const pass of [0, 1]) {
    const order = pass === 0 ? rows : [...rows].reverse();
    for (const row of order) {
      const [ms, source] = await timer.gpuTime(row.what, row.record, row.reps);
      row.times[pass] = ms;
      row.source = source;
      console.error(`  pass ${pass + 1}: ${row.what} ${row.shape}: ${ms.toFixed(3)} ms`);
    }
  }
  return rows;
}

// ---- table ----

/** Prints the table of rows (and peers' figures beside the f32 pipeline) on stdout. */
function printTable(b: Bench, rows: Row[], f32: Data): void {
  const header = [
    "measurement",
    "shape",
    "GPU ms / iter",
    "pass 1",
    "pass 2",
    "rate",
    "note",
    "timing",
    "adapter",
  ];
  const table = rows.map((r) => {
    const ms = (r.times[0] + r.times[1]) / 2;
    return [
      r.what,
      r.shape,
      ms.toFixed(3),
      r.times[0].toFixed(3),
      r.times[1].toFixed(3),
      r.rate(ms),
      r.note ?? "",
      r.source,
      b.adapter,
    ];
  });
  for (const p of b.settings.peers) {
    table.push([
      p.name,
      fmt(f32.x.shape),
      p.ms.toFixed(3),
      "",
      "",
      gflops(f32.flops)(p.ms),
      "peer",
      "given",
      "",
    ]);
  }
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((r) => r[i].length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(" | ")} |`;
  console.log(`adapter: ${b.adapter}`);
  console.log(
    `timing: ${
      b.timestamps
        ? "timestamp queries around the recorded work"
        : "wall clock (no timestamp-query): slope of onSubmittedWorkDone times"
    }; ${
      b.settings.quick ? "quick shapes" : "target shapes"
    }; ${b.settings.reps} repetitions; pass 2 in reverse order`,
  );
  console.log(line(header));
  console.log(line(widths.map((w) => "-".repeat(w))));
  for (const r of table) console.log(line(r));
}

/** Says on stderr why the figures cannot be trusted; true if nothing was wrong. */
function reportFailures(b: Bench, rows: Row[], wrong: string[]): boolean {
  let ok = true;
  if (b.gpuErrors.length > 0) {
    console.error(`${b.gpuErrors.length} WebGPU errors: the figures above are not valid`);
    ok = false;
  }
  for (const what of wrong) {
    console.error(`${what}: its output failed the check against the float64 reference`);
    ok = false;
  }
  for (const r of rows) {
    if (Math.abs(r.times[0] - r.times[1]) <= AGREE * Math.min(...r.times)) continue;
    console.error(
      `${r.what}: its two timings disagree by more than ${AGREE * 100}% (${
        r.times[0].toFixed(3)
      } and ${r.times[1].toFixed(3)} ms)`,
    );
    ok = false;
  }
  return ok;
}

/** Checks, then times, then prints the table; false when a figure cannot be trusted. */
async function main(args: readonly string[]): Promise<boolean> {
  const s = settings(args);
  const b = await openBench(s);
  const hasF16 = b.device.features.has("shader-f16");
  const timer = new GpuTimer(b);
  console.error(`adapter: ${b.adapter}`);
  console.error(
    `timing: ${b.timestamps ? "timestamp queries" : "wall clock (no timestamp-query feature)"}`,
  );
  const f32 = layers(b.allocator, s.shape, "f32");
  const f16 = hasF16 ? layers(b.allocator, s.shape, "f16") : null;
  const small = layers(b.allocator, STRESS, "f32");

  const checker = new Checker(b);
  if (s.check) await checkPipelines(checker, f32, f16);

  /** Sweep configurations whose output failed its check. */
  const wrong: string[] = [];
  const specs = kernelRows(b, f32, f16, small);
  if (s.sweep) specs.push(...await sweepRows(b, checker, f32, f16, wrong));
  const rows = await timeRows(
    timer,
    await runnable(b, specs),
    () => pipeline(f32.x, f32.weights).dispose(),
    s,
  );

  printTable(b, rows, f32);
  b.allocator.destroy();
  b.device.destroy();
  return reportFailures(b, rows, wrong);
}

if (import.meta.main && !(await main(Deno.args))) Deno.exit(1);
