/**
 * Replays a trace on a device without a GPU: the same allocator code, under
 * the trace's settings or other ones, to measure what a policy would have
 * reserved for the same sequence of requests.
 *
 * @module
 */

import { type Block, HeapAllocator, type PlanInfo, type Usage } from "../allocator.ts";
import type { MemoryBudget } from "../budget.ts";
import { type AllocatorDevice, type AllocatorLimits, FakeDevice } from "../device.ts";
import { AllocatorError, OutOfMemoryError } from "../errors.ts";
import { formatBytes } from "../format.ts";
import type { Trace, TraceEvent } from "../trace.ts";
import { isStaging, POOL_NAMES, type PoolName, USAGES } from "../size_classes.ts";
import { describe, readTrace, TraceError } from "./read_trace.ts";

/** Options of {@linkcode replay}; each unset one takes the trace's recorded setting. */
export interface ReplayOptions {
  /** Alloc conf applied on top of the trace's (later keys win), e.g. `"caching:0"`. */
  allocConf?: string;
  /** Hard limit on reserved bytes, as a number or `"512MiB"` (0: none). */
  highWatermark?: number | string;
  /** Soft limit on reserved bytes (0: none). */
  lowWatermark?: number | string;
  /** Device limits to replay under (merged over the trace's, then the fake device's defaults). */
  limits?: Partial<AllocatorLimits>;
  /**
   * Bytes of device memory (0: unlimited). A heap past it is refused when it
   * is made, as the allocator's shared budget would refuse it, so the
   * allocator releases cached heaps and retries, or counts an OOM.
   */
  memory?: number;
  /** Replay as on a fallback (CPU) adapter, which gets larger extra-large heaps. */
  fallbackAdapter?: boolean;
  /**
   * Record the replay itself and return its trace (with heap events, for a
   * picture) and, for each event of it, the replayed event it came from.
   */
  record?: boolean;
  /**
   * Replay `iter` marks as `beginIteration` / `endIteration`: the first run of
   * each key is recorded, later ones are planned. A trace does not say which
   * blocks `writeBuffer` filled, so the plans treat none as written.
   */
  plan?: boolean;
}

/** What {@linkcode replay} measured. */
export interface ReplayResult {
  /** The alloc conf replayed under, every key spelled out. */
  allocConf: string;
  /** Events replayed. */
  events: number;
  /** Allocations and scalars replayed. */
  allocations: number;
  /** Frees replayed. */
  frees: number;
  /** Submits replayed. */
  submits: number;
  /** Peak of bytes in live blocks (rounded block sizes). */
  peakAllocated: number;
  /** Peak of bytes live blocks asked for (requested sizes). */
  peakRequested: number;
  /**
   * Peak of bytes the program holds: live blocks plus blocks freed but
   * waiting for a submit (their memory cannot be handed out yet).
   */
  peakInUse: number;
  /** Peak of bytes in GPUBuffers held. */
  peakReserved: number;
  /** `peakReserved / peakAllocated` (0 when nothing was allocated). */
  ratio: number;
  /** `peakReserved / peakRequested` (0 when nothing was allocated). */
  requestedRatio: number;
  /** `peakReserved / peakInUse` (0 when nothing was allocated). */
  inUseRatio: number;
  /** Storage, uniform and scalar heaps made (split heaps and dedicated ones). */
  heapsCreated: number;
  /** Readback and upload buffers made. */
  stagingBuffersCreated: number;
  /** `createBuffer` calls on the device, all kinds. */
  createBufferCalls: number;
  /** Allocations served from cached memory. */
  cacheHits: number;
  /** Heap creations retried after releasing cached memory. */
  retries: number;
  /** Requests that failed with `OutOfMemoryError` in the replay. */
  ooms: number;
  /** Frees skipped because the replay could not allocate that block. */
  skippedFrees: number;
  /** The plans made from `iter` marks (with {@linkcode ReplayOptions.plan}; else none). */
  plans: PlanInfo[];
  /**
   * Peak of bytes in live blocks after the first run of every iteration key
   * (the runs a plan serves); 0 without `iter` marks.
   */
  steadyPeakAllocated: number;
  /** Peak of bytes in GPUBuffers held over the same events. */
  steadyPeakReserved: number;
  /** The replay's own trace, when `record` was set. */
  trace?: Trace;
  /**
   * For each event of {@linkcode ReplayResult.trace}, the index of the
   * replayed event during which the allocator recorded it (a heap made for
   * an allocation comes from that allocation), when `record` was set.
   */
  source?: Int32Array;
}

const POOL_USAGE: Record<string, Usage | "scalar"> = {
  small: "storage",
  large: "storage",
  uniform: "uniform",
  scalar: "scalar",
  readback: "readback",
  upload: "upload",
};
const USAGE_NAMES: ReadonlySet<string> = new Set(USAGES);

/**
 * Replays a trace (a {@linkcode Trace}, a plain list of events, or JSON text
 * of either) on a device without a GPU and returns the peaks and counts.
 * Frees marked pending wait for the next submit, as in the recorded run;
 * frees in a plain list are immediate. Heap, release, split and resetPeak events
 * are not replayed: the replay makes its own heaps and keeps its peaks over
 * the whole trace. An `oom` event is tried again (and freed at once if it
 * fits now). Labels of `a` events are passed on to the allocator.
 *
 * @throws {TraceError} malformed JSON or events, an unknown event, a free of
 *   an id that is not live, or a request the device's limits refuse (the
 *   message names the event's index)
 *
 * @example
 * ```ts
 * import { replay } from "@gpuheap/gpuheap/tools";
 * import assert from "node:assert/strict";
 *
 * const events = [["a", 1, 3 << 20], ["f", 1], ["a", 2, 3 << 20]];
 * const cached = replay(events);
 * const uncached = replay(events, { allocConf: "caching:0" });
 * assert.equal(cached.peakReserved, 32 << 20); // one large heap, reused
 * assert.equal(cached.createBufferCalls, 1);
 * assert.equal(uncached.createBufferCalls, 2); // released when empty, made again
 * ```
 */
export function replay(
  trace: Trace | readonly unknown[] | string,
  options: ReplayOptions = {},
): ReplayResult {
  return replayTrace(readTrace(trace), options);
}

/**
 * @internal {@linkcode replay} of a trace that {@linkcode readTrace} has
 * read, for a caller that reads it once for its own use too.
 *
 * @example
 * ```ts
 * import { readTrace } from "@gpuheap/gpuheap/tools";
 * import { replayTrace } from "./replay.ts";
 * import assert from "node:assert/strict";
 *
 * const trace = readTrace([["a", 1, 4096], ["f", 1]]);
 * const r = replayTrace(trace, { record: true });
 * // heap, a, f: the heap came with the allocation, event 0.
 * assert.deepEqual([...r.source!], [0, 0, 1]);
 * ```
 */
export function replayTrace(t: Trace, options: ReplayOptions = {}): ReplayResult {
  const settings = t.settings;
  const device = new ReplayDevice(
    { ...settings?.limits, ...options.limits },
    options.fallbackAdapter ?? settings?.fallbackAdapter ?? false,
  );
  const memory = options.memory ?? 0;
  const allocator = new HeapAllocator(device, {
    allocConf: [settings?.allocConf ?? "", options.allocConf ?? ""].filter((s) => s).join(","),
    highWatermark: options.highWatermark ?? settings?.highWatermark ?? 0,
    lowWatermark: options.lowWatermark ?? settings?.lowWatermark ?? 0,
    debug: false,
    // Departures from plans are counted in the result's plans: no lines.
    log: () => {},
    budget: memory > 0 ? new DeviceMemory(memory) : undefined,
  });
  if (options.record) allocator.startRecording();
  const live = new Map<number, Block>();
  const failed = new Set<number>();
  let allocations = 0;
  let frees = 0;
  let submits = 0;
  let skippedFrees = 0;
  // Bytes held by the program, counted here: the stats keep no peak of live + pending.
  let inUse = 0;
  let pending = 0;
  let peakInUse = 0;
  const events = t.events as TraceEvent[];
  // Events recorded after each replayed event: where the recording's events came from.
  const recordedAfter = options.record ? new Int32Array(events.length) : null;
  // Steady peaks: from the end of the last first run of a key on.
  const keys = new Set<string>();
  let key: string | null = null;
  let steady = false;
  let steadyAllocated = 0;
  let steadyReserved = 0;
  try {
    for (let i = 0; i < events.length; i++) {
      const e = events[i];
      if (steady) {
        steadyAllocated = Math.max(steadyAllocated, allocator.currentAllocatedMemory());
        steadyReserved = Math.max(steadyReserved, allocator.driverAllocatedMemory());
      }
      switch (e[0]) {
        case "a":
        case "s": {
          const id = e[1];
          if (live.has(id)) {
            throw new TraceError(`allocates block id ${id}, which is live (freed at no event)`, i);
          }
          failed.delete(id);
          const usage = e[0] === "s" ? "scalar" : (e[3] ?? "storage");
          const options = e[0] === "a"
            ? { label: typeof e[9] === "string" ? e[9] : undefined, longLived: e[10] === true }
            : {};
          const block = allocate(allocator, usage, e[0] === "s" ? 4 : e[2], i, options);
          allocations++;
          if (block) {
            live.set(id, block);
            inUse += block.size;
            if (inUse > peakInUse) peakInUse = inUse;
          } else {
            failed.add(id);
          }
          break;
        }
        case "f": {
          const id = e[1];
          const block = live.get(id);
          if (!block) {
            if (failed.delete(id)) {
              skippedFrees++;
              break;
            }
            throw new TraceError(`frees block id ${id}, which is not live`, i);
          }
          // Touching the buffer marks the block as used by GPU work: its free waits for a submit.
          if (e[2] === true || e[2] === 1) {
            void block.buffer;
            pending += block.size;
          } else {
            inUse -= block.size;
          }
          allocator.free(block);
          live.delete(id);
          frees++;
          break;
        }
        case "submit":
          allocator.submit();
          inUse -= pending;
          pending = 0;
          submits++;
          break;
        case "emptyCache":
          allocator.emptyCache();
          break;
        case "oom": {
          const usage = POOL_USAGE[e[2]];
          if (!usage) throw new TraceError(`unknown pool ${JSON.stringify(e[2])}`, i);
          const block = allocate(allocator, usage, e[1], i);
          if (block) {
            if (inUse + block.size > peakInUse) peakInUse = inUse + block.size;
            allocator.free(block);
          }
          break;
        }
        case "iter":
          if (e[1] !== null && !keys.has(e[1])) {
            keys.add(e[1]);
            key = e[1];
          } else if (e[1] === null && key !== null) {
            // A key's first run ended: the steady peaks start over after it.
            key = null;
            steady = true;
            steadyAllocated = steadyReserved = 0;
          }
          if (!options.plan) break;
          try {
            if (e[1] === null) allocator.endIteration();
            else allocator.beginIteration(e[1]);
          } catch (error) {
            // Marks out of order (a begin inside an iteration, an end outside one), an empty key.
            if (!(error instanceof AllocatorError || error instanceof TypeError)) throw error;
            throw new TraceError(`cannot replay iteration mark: ${error.message}`, i);
          }
          break;
        case "heap":
        case "release":
        case "split":
        case "resetPeak":
          break;
        default:
          throw new TraceError(`unknown event ${JSON.stringify((e as unknown[])[0])}`, i);
      }
      if (recordedAfter) recordedAfter[i] = allocator.recordedEvents;
    }
    const stats = allocator.memoryStats();
    const created = (names: readonly PoolName[]) =>
      names.reduce((n, p) => n + stats.pools[p].createBufferCalls, 0);
    const peakAllocated = stats.allocatedBytes.peak;
    const peakRequested = stats.requestedBytes.peak;
    const peakReserved = stats.reservedBytes.peak;
    const result: ReplayResult = {
      allocConf: allocator.settings().allocConf,
      events: events.length,
      allocations,
      frees,
      submits,
      peakAllocated,
      peakRequested,
      peakInUse,
      peakReserved,
      ratio: peakAllocated > 0 ? peakReserved / peakAllocated : 0,
      requestedRatio: peakRequested > 0 ? peakReserved / peakRequested : 0,
      inUseRatio: peakInUse > 0 ? peakReserved / peakInUse : 0,
      heapsCreated: created(POOL_NAMES.filter((p) => !isStaging(p))),
      stagingBuffersCreated: created(POOL_NAMES.filter(isStaging)),
      createBufferCalls: device.createBufferCalls,
      cacheHits: stats.cacheHits,
      retries: stats.numAllocRetries,
      ooms: stats.numOoms,
      skippedFrees,
      plans: allocator.plans(),
      steadyPeakAllocated: steady
        ? Math.max(steadyAllocated, allocator.currentAllocatedMemory())
        : 0,
      steadyPeakReserved: steady ? Math.max(steadyReserved, allocator.driverAllocatedMemory()) : 0,
    };
    if (recordedAfter) {
      result.trace = allocator.stopRecording();
      result.source = sources(recordedAfter, result.trace.events.length);
    }
    return result;
  } finally {
    allocator.destroy();
  }
}

/**
 * For each of `recorded` events, the replayed event it came from, given the
 * count of events recorded after each replayed one (events recorded after the
 * last, if any, come from the last).
 */
function sources(recordedAfter: Int32Array, recorded: number): Int32Array {
  const source = new Int32Array(recorded);
  let j = 0;
  for (let i = 0; i < recordedAfter.length; i++) {
    for (; j < recordedAfter[i]; j++) source[j] = i;
  }
  source.fill(Math.max(0, recordedAfter.length - 1), j);
  return source;
}

/** One allocation of a replay; null when it ran out of memory (counted by the allocator). */
function allocate(
  allocator: HeapAllocator,
  usage: string,
  size: number,
  i: number,
  options: { label?: string; longLived?: boolean } = {},
): Block | null {
  if (usage !== "scalar" && !USAGE_NAMES.has(usage)) {
    throw new TraceError(
      `unknown usage ${describe(usage)} (expected storage, uniform, readback or upload)`,
      i,
    );
  }
  try {
    return usage === "scalar"
      ? allocator.scalar(0)
      : allocator.alloc(size, { ...options, usage: usage as Usage });
  } catch (error) {
    if (error instanceof OutOfMemoryError) return null;
    throw new TraceError((error as Error).message, i);
  }
}

/** Limits of a replay device where neither the trace nor the options set them: the fake device's. */
const DEFAULT_LIMITS: AllocatorLimits = { ...new FakeDevice().limits };

/**
 * The device a replay runs on: it counts buffers and keeps nothing else
 * (a fake device that keeps the bytes of small buffers makes a replay of
 * many staging blocks hold gigabytes).
 */
class ReplayDevice implements AllocatorDevice {
  readonly limits: AllocatorLimits;
  readonly adapterInfo: Pick<GPUAdapterInfo, "isFallbackAdapter">;
  readonly queue: Pick<GPUQueue, "submit" | "writeBuffer"> = {
    submit: () => {},
    writeBuffer: () => {},
  };
  createBufferCalls = 0;

  constructor(limits: Partial<AllocatorLimits>, fallback: boolean) {
    this.limits = { ...DEFAULT_LIMITS, ...limits };
    this.adapterInfo = { isFallbackAdapter: fallback };
  }

  createBuffer(descriptor: GPUBufferDescriptor): GPUBuffer {
    this.createBufferCalls++;
    return new ReplayBuffer(descriptor) as unknown as GPUBuffer;
  }

  pushErrorScope(): void {}

  popErrorScope(): Promise<GPUError | null> {
    return Promise.resolve(null);
  }
}

/** A buffer of the replay device: its size and map state, no bytes. */
class ReplayBuffer {
  readonly size: number;
  readonly usage: number;
  readonly label: string;
  mapState: GPUBufferMapState = "unmapped";

  constructor(descriptor: GPUBufferDescriptor) {
    this.size = descriptor.size;
    this.usage = descriptor.usage;
    this.label = descriptor.label ?? "";
  }

  destroy(): void {
    this.mapState = "unmapped";
  }

  mapAsync(): Promise<void> {
    this.mapState = "mapped";
    return Promise.resolve();
  }

  unmap(): void {
    this.mapState = "unmapped";
  }
}

/**
 * The replayed device's memory, as a budget the allocator reserves heap bytes
 * from: a heap past it is refused when it is made. A real device's refusal
 * arrives later, through an error scope, when a replay has moved on.
 */
class DeviceMemory implements MemoryBudget {
  readonly limit: number;
  #used = 0;

  constructor(limit: number) {
    this.limit = limit;
  }

  get reserved(): number {
    return this.#used;
  }

  reserve(bytes: number): boolean {
    if (this.#used + bytes > this.limit) return false;
    this.#used += bytes;
    return true;
  }

  release(bytes: number): void {
    this.#used -= bytes;
  }

  pressured(): boolean {
    return false;
  }

  relieve(): boolean {
    return false;
  }

  publish(): void {}

  describe(): string {
    return `replayed device memory: ${formatBytes(this.#used)} of ${formatBytes(this.limit)} held`;
  }
}
