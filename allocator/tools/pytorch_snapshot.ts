/**
 * Reads a PyTorch CUDA memory snapshot (what `torch.cuda.memory._snapshot()`
 * returns and `_dump_snapshot()` pickles, the file PyTorch's memory_viz
 * reads) as a gpuheap {@linkcode Trace}, so that replay and memviz take it
 * like any trace. See Note [PyTorch snapshots] for what is kept and how.
 *
 * @module
 */

// Note [PyTorch snapshots]
// A snapshot holds `segments` (PyTorch's cudaMalloc'd memory and the blocks in it when the
// snapshot was taken) and `device_traces` (one list of events per device, recorded since
// `_record_memory_history()`, possibly only the last `max_entries`).
//
// Blocks alive before recording began are in no `alloc` event. As memory_viz does, they are
// found by walking the trace against the segments: a block freed without an `alloc` in the
// trace, and a block the segments list as allocated that no `alloc` in the trace made, were
// live when recording began. They open the trace (in address order, labelled
// "before recording") so that a replay holds them from the start and its peak of live bytes
// is PyTorch's peak allocated.
//
// Decisions:
// - Sizes are the `size` of events (the bytes asked for). PyTorch's allocated bytes count its
//   rounded blocks, so the replay's peak of requested bytes sits slightly under PyTorch's
//   peak allocated (0.4% under at most on the test data).
// - A block is freed at `free_requested`: PyTorch's allocated bytes drop there. When
//   `free_completed` follows at once (the usual case) nothing else happens. When it comes
//   later (the block was used on another stream, `record_stream`), the free is marked
//   pending and a `submit` is placed at `free_completed`: the memory waits as it did in
//   PyTorch (a submit frees every pending block, so overlapping waits end at the first).
//   A `free_completed` whose request came before the recording is dropped (that memory was
//   not allocated any more); old snapshots' single `free` is a free that completes at once.
// - Streams are merged: a WebGPU device has one queue, so one allocator serves all streams.
// - `segment_alloc`/`segment_free` (and `segment_map`/`segment_unmap` of expandable segments)
//   are PyTorch's own reservations: not replayed (the replay makes its own heaps) but walked
//   back from the segments to give PyTorch's reserved bytes at start, end and peak.
// - `oom` becomes an `oom` event; other actions (`snapshot`, newer ones) are skipped and
//   counted.
// - One device per trace: the lowest one with segments or events unless told otherwise.
// - Each allocation's label is its innermost Python frame outside PyTorch's and the
//   standard library's files ("file.py:line function": the model's own line), or the
//   innermost frame; none when no frame was recorded.
//   PyTorch pickles a stack once and refers to it from every block and event it made, so a
//   label is found once per frame list (by identity) and shared.
// - A pickle's memo lets a list appear in many places for the bytes of a reference. Each
//   segment's list of blocks is walked once: one list in two segments (or one segment twice)
//   would place the same blocks twice, and is refused, so reading costs time linear in the
//   pickle's bytes (Note [what a file may cost] in load_trace.ts).
// - The trace carries the WebGPU limits of an H100 (as Deno reports them): the memory came
//   from a CUDA GPU, so requests of hundreds of MiB are usual. A replay may override them.

import { MAX_SMALL_ALLOC } from "../constants.ts";
import type { AllocatorLimits } from "../device.ts";
import { formatBytes } from "../format.ts";
import {
  type AllocEvent,
  defaultSettings,
  makeTrace,
  type Trace,
  type TraceEvent,
} from "../trace.ts";
import { describeBigInt, TraceError } from "./read_trace.ts";

/**
 * Limits a PyTorch snapshot replays under unless told otherwise: an H100's
 * as Deno reports them (4 GiB buffers, 2 GiB bindings).
 */
export const SNAPSHOT_LIMITS: Readonly<AllocatorLimits> = {
  maxBufferSize: 4 * 2 ** 30,
  maxStorageBufferBindingSize: 2 * 2 ** 30 - 4,
  maxUniformBufferBindingSize: 2 ** 16,
  minStorageBufferOffsetAlignment: 32,
  minUniformBufferOffsetAlignment: 256,
};

/** The label of blocks that were live when the recording began. */
export const BEFORE_RECORDING = "(before recording)";

/** What a PyTorch snapshot says beyond its events: PyTorch's own reservations. */
export interface PytorchFacts {
  /** The device whose trace this is. */
  device: number;
  /** Every device with segments or events in the snapshot. */
  devices: number[];
  /** PyTorch events read for the device. */
  events: number;
  /** Events skipped: actions that are neither block, segment nor OOM events. */
  skippedEvents: number;
  /** Distinct CUDA streams in the device's events and segments (merged in the trace). */
  streams: number;
  /** Blocks live when the recording began. */
  blocksBeforeRecording: number;
  /** Bytes those blocks asked for. */
  bytesBeforeRecording: number;
  /** Frees that waited for another stream (`free_completed` came later). */
  deferredFrees: number;
  /** Segments (cudaMalloc'd ranges) of the device when the snapshot was taken. */
  segments: number;
  /** Bytes PyTorch had reserved when the recording began. */
  reservedAtStart: number;
  /** Bytes PyTorch had reserved when the snapshot was taken. */
  reservedAtEnd: number;
  /** Peak of bytes PyTorch reserved during the recording. */
  peakReserved: number;
}

/** A trace read from a PyTorch snapshot: a {@linkcode Trace} with PyTorch's own figures. */
export interface PytorchTrace extends Trace {
  /** What the snapshot says of PyTorch's own reservations. */
  pytorch: PytorchFacts;
}

/** Options of {@linkcode readPytorchSnapshot}. */
export interface PytorchSnapshotOptions {
  /** The device to read (default: the lowest one with segments or events). */
  device?: number;
}

/**
 * True when `value` looks like a PyTorch memory snapshot: an object with
 * `segments` and `device_traces` lists.
 *
 * @example
 * ```ts
 * import { isPytorchSnapshot } from "@gpuheap/gpuheap/tools";
 * import assert from "node:assert/strict";
 *
 * assert.equal(isPytorchSnapshot({ segments: [], device_traces: [] }), true);
 * assert.equal(isPytorchSnapshot([["a", 1, 64]]), false);
 * ```
 */
export function isPytorchSnapshot(value: unknown): boolean {
  return isObject(value) && Array.isArray(value.segments) && Array.isArray(value.device_traces);
}

/**
 * Reads a PyTorch CUDA memory snapshot (parsed from its pickle or JSON) as a
 * trace of one device: blocks live before recording first, then the
 * recorded allocations and frees. See Note [PyTorch snapshots] in the source.
 *
 * @throws {TraceError} not a snapshot, a malformed segment or event (the
 *   message says where), or events that contradict the segments
 * @throws {RangeError} `options.device` is not a non-negative integer
 *
 * @example
 * ```ts
 * import { readPytorchSnapshot, replay } from "@gpuheap/gpuheap/tools";
 * import assert from "node:assert/strict";
 *
 * const MiB = 1 << 20;
 * const snapshot = {
 *   segments: [{
 *     device: 0, address: 0x7000, total_size: 20 * MiB, stream: 0,
 *     blocks: [
 *       { address: 0x7000, size: 8 * MiB, requested_size: 8 * MiB, state: "active_allocated" },
 *       { address: 0x7000 + 8 * MiB, size: 12 * MiB, requested_size: 0, state: "inactive" },
 *     ],
 *   }],
 *   device_traces: [[
 *     { action: "alloc", addr: 0x7000 + 8 * MiB, size: 4 * MiB, stream: 0 },
 *     { action: "free_requested", addr: 0x7000 + 8 * MiB, size: 4 * MiB, stream: 0 },
 *     { action: "free_completed", addr: 0x7000 + 8 * MiB, size: 4 * MiB, stream: 0 },
 *   ]],
 * };
 * const trace = readPytorchSnapshot(snapshot);
 * assert.deepEqual(trace.events.map((e) => e.slice(0, 3)), [
 *   ["a", 2, 8 * MiB], // live before recording: found in the segments
 *   ["a", 1, 4 * MiB],
 *   ["f", 1, false],
 * ]);
 * assert.equal(trace.pytorch.peakReserved, 20 * MiB);
 * assert.equal(replay(trace).peakRequested, 12 * MiB);
 * ```
 */
export function readPytorchSnapshot(
  snapshot: unknown,
  options: PytorchSnapshotOptions = {},
): PytorchTrace {
  if (!isPytorchSnapshot(snapshot)) {
    throw new TraceError(
      "not a PyTorch memory snapshot (expected a dict with segments and device_traces lists)",
    );
  }
  const root = snapshot as { segments: unknown[]; device_traces: unknown[] };
  const seen = new Map<unknown[], number>();
  const labels = new Map<unknown[], string | undefined>();
  const segments = root.segments.map((s, i) => readSegment(s, i, seen, labels));
  const traces = root.device_traces;
  const devices = [
    ...new Set([
      ...segments.map((s) => s.device),
      ...traces.flatMap((t, i) => Array.isArray(t) && t.length > 0 ? [i] : []),
    ]),
  ].sort((a, b) => a - b);
  const device = options.device ?? devices[0] ?? 0;
  if (!Number.isSafeInteger(device) || device < 0) {
    throw new RangeError(
      `Cannot read the snapshot: device must be a non-negative integer, got ${device}`,
    );
  }
  if (options.device !== undefined && !devices.includes(device)) {
    throw new TraceError(
      `the PyTorch snapshot holds no device ${device} (devices: ${devices.join(", ") || "none"})`,
    );
  }
  const where = `device_traces[${device}]`;
  const raw = device < traces.length ? traces[device] : [];
  if (!Array.isArray(raw)) throw new TraceError(`${where} must be a list, got ${describe(raw)}`);
  return new Walk(segments.filter((s) => s.device === device), raw, where, labels)
    .trace(device, devices);
}

/**
 * The PyTorch figures of a trace read from a PyTorch snapshot, or undefined
 * for any other value.
 *
 * @example
 * ```ts
 * import { pytorchFacts, readPytorchSnapshot } from "@gpuheap/gpuheap/tools";
 * import assert from "node:assert/strict";
 *
 * const trace = readPytorchSnapshot({ segments: [], device_traces: [] });
 * assert.equal(pytorchFacts(trace)?.peakReserved, 0);
 * assert.equal(pytorchFacts([["a", 1, 64]]), undefined);
 * ```
 */
export function pytorchFacts(value: unknown): PytorchFacts | undefined {
  return isObject(value) && isObject(value.pytorch)
    ? value.pytorch as unknown as PytorchFacts
    : undefined;
}

/**
 * PyTorch's figures in words, beside a replay's peak of requested bytes (the
 * bytes PyTorch's program held, within its block rounding).
 *
 * @example
 * ```ts
 * import { formatPytorchFacts, readPytorchSnapshot } from "@gpuheap/gpuheap/tools";
 * import assert from "node:assert/strict";
 *
 * const trace = readPytorchSnapshot({
 *   segments: [{ device: 0, address: 0, total_size: 2 << 20, blocks: [] }],
 *   device_traces: [[]],
 * });
 * assert.match(formatPytorchFacts(trace.pytorch, 1 << 20), /PyTorch reserved 2\.00 MiB at peak \(2\.000 × peak requested\)/);
 * ```
 */
export function formatPytorchFacts(facts: PytorchFacts, peakRequested: number): string {
  const others = facts.devices.filter((d) => d !== facts.device);
  const ratio = peakRequested > 0
    ? ` (${(facts.peakReserved / peakRequested).toFixed(3)} × peak requested)`
    : "";
  return [
    `PyTorch snapshot, device ${facts.device}${
      others.length > 0 ? ` (also holds ${others.join(", ")})` : ""
    }: ` +
    `${facts.events} events, ${facts.streams} stream(s) merged, ${facts.deferredFrees} deferred frees, ` +
    `${facts.blocksBeforeRecording} blocks (${
      formatBytes(facts.bytesBeforeRecording)
    }) live before recording`,
    `PyTorch reserved ${formatBytes(facts.peakReserved)} at peak${ratio}, ` +
    `${formatBytes(facts.reservedAtStart)} at start, ${
      formatBytes(facts.reservedAtEnd)
    } at the snapshot (${facts.segments} segments)`,
  ].join("\n");
}

interface Segment {
  device: number;
  totalSize: number;
  stream: unknown;
  blocks: {
    address: number;
    size: number;
    requestedSize: number;
    state: string;
    label: string | undefined;
  }[];
}

/**
 * Reads segment `index`; `seen` holds the block lists read so far (by
 * identity, with their segment's index), `labels` each frame list's label.
 */
function readSegment(
  value: unknown,
  index: number,
  seen: Map<unknown[], number>,
  labels: Map<unknown[], string | undefined>,
): Segment {
  const where = `segments[${index}]`;
  const s = object(value, where);
  const address = integer(s.address, `${where}.address`);
  const blocks = list(s.blocks ?? [], `${where}.blocks`);
  const first = seen.get(blocks);
  if (first !== undefined) {
    throw new TraceError(
      `${where}.blocks is the list of segments[${first}] again (a pickle memo reference): ` +
        "a snapshot lists each block once",
    );
  }
  if (blocks.length > 0) seen.set(blocks, index);
  let next = address;
  return {
    device: integer(s.device, `${where}.device`),
    totalSize: integer(s.total_size, `${where}.total_size`),
    stream: s.stream,
    blocks: blocks.map((value, i) => {
      const at = `${where}.blocks[${i}]`;
      const b = object(value, at);
      // Old snapshots give no block address: blocks tile their segment in order.
      const blockAddress = b.address === undefined ? next : integer(b.address, `${at}.address`);
      const size = integer(b.size, `${at}.size`);
      const requested = b.requested_size === undefined
        ? size
        : integer(b.requested_size, `${at}.requested_size`);
      next = blockAddress + size;
      if (typeof b.state !== "string") {
        throw new TraceError(`${at}.state must be a string, got ${describe(b.state)}`);
      }
      return {
        address: blockAddress,
        size,
        requestedSize: requested > 0 ? requested : size,
        state: b.state,
        label: frameLabel(b.frames, labels),
      };
    }),
  };
}

/** One pass over a device's events, then its segments. */
class Walk {
  readonly #segments: Segment[];
  readonly #raw: unknown[];
  readonly #where: string;
  readonly #events: TraceEvent[] = [];
  /** Blocks live before recording, with their addresses (they open the trace). */
  readonly #before: { address: number; event: AllocEvent }[] = [];
  /** Block id by address, for blocks live now. */
  readonly #live = new Map<number, number>();
  /** Block id by address, for blocks freed whose memory waits for another stream. */
  readonly #waiting = new Map<number, number>();
  /** Addresses whose last event freed a block. */
  readonly #freed = new Set<number>();
  readonly #streams = new Set<unknown>();
  #nextId = 1;
  #skipped = 0;
  #deferred = 0;
  /** Change of PyTorch's reserved bytes since the start, and its peak. */
  #reserved = 0;
  #peakReserved = 0;
  #t0: number | undefined;
  #t: number | undefined;

  /** Each frame list's label, by identity (see frameLabel). */
  readonly #labels: Map<unknown[], string | undefined>;

  constructor(
    segments: Segment[],
    raw: unknown[],
    where: string,
    labels: Map<unknown[], string | undefined>,
  ) {
    this.#segments = segments;
    this.#raw = raw;
    this.#where = where;
    this.#labels = labels;
  }

  trace(device: number, devices: number[]): PytorchTrace {
    const raw = this.#raw;
    for (let i = 0; i < raw.length; i++) i = this.#event(i);
    for (const segment of this.#segments) this.#segment(segment);
    this.#before.sort((a, b) => a.address - b.address);
    const reservedAtEnd = this.#segments.reduce((n, s) => n + s.totalSize, 0);
    const reservedAtStart = reservedAtEnd - this.#reserved;
    if (reservedAtStart < 0) {
      throw new TraceError(
        `the PyTorch snapshot's segments hold ${reservedAtEnd} bytes, fewer than its segment ` +
          `events add (${this.#reserved})`,
      );
    }
    return {
      ...makeTrace([...this.#before.map((b) => b.event), ...this.#events], {
        settings: defaultSettings(SNAPSHOT_LIMITS),
        durationMs: this.#t ?? 0,
      }),
      pytorch: {
        device,
        devices,
        events: raw.length,
        skippedEvents: this.#skipped,
        streams: this.#streams.size,
        blocksBeforeRecording: this.#before.length,
        bytesBeforeRecording: this.#before.reduce((n, b) => n + b.event[2], 0),
        deferredFrees: this.#deferred,
        segments: this.#segments.length,
        reservedAtStart,
        reservedAtEnd,
        peakReserved: reservedAtStart + this.#peakReserved,
      },
    };
  }

  /** Reads event `i`; returns the index of the last event it consumed. */
  #event(i: number): number {
    const where = `${this.#where}[${i}]`;
    const e = object(this.#raw[i], where);
    const action = e.action;
    if (typeof action !== "string") {
      throw new TraceError(`${where}.action must be a string, got ${describe(action)}`);
    }
    const blockEvent = action === "alloc" || action.startsWith("free") ||
      action.startsWith("segment_") || action === "oom";
    if (!blockEvent) {
      this.#skipped++;
      return i;
    }
    const addr = action === "oom" ? 0 : integer(e.addr, `${where}.addr`);
    const size = integer(e.size, `${where}.size`);
    this.#streams.add(e.stream ?? 0);
    const t = this.#time(e.time_us, where);
    switch (action) {
      case "alloc": {
        if (size === 0) throw new TraceError(`${where}: alloc of 0 bytes`);
        if (this.#live.has(addr)) {
          throw new TraceError(`${where}: alloc at ${hex(addr)}, where a block is live`);
        }
        const id = this.#nextId++;
        this.#live.set(addr, id);
        this.#freed.delete(addr);
        this.#events.push(allocEvent(id, size, t, frameLabel(e.frames, this.#labels)));
        return i;
      }
      case "free_requested":
      case "free": {
        let id = this.#live.get(addr);
        if (id === undefined) {
          if (size === 0) throw new TraceError(`${where}: free of 0 bytes`);
          id = this.#nextId++;
          this.#before.push({ address: addr, event: allocEvent(id, size, 0, BEFORE_RECORDING) });
        }
        this.#live.delete(addr);
        this.#freed.add(addr);
        const next = this.#raw[i + 1];
        const completes = action === "free" ||
          isObject(next) && next.action === "free_completed" && next.addr === addr;
        if (completes) {
          this.#events.push(trimmed(["f", id, false, t]));
          return action === "free" ? i : i + 1;
        }
        this.#events.push(trimmed(["f", id, true, t]));
        this.#waiting.set(addr, id);
        this.#deferred++;
        return i;
      }
      case "free_completed": {
        const id = this.#live.get(addr);
        if (this.#waiting.delete(addr)) this.#events.push(trimmed(["submit", t]));
        else if (id !== undefined) {
          // Completed with no request recorded: a free that completes at once.
          this.#live.delete(addr);
          this.#freed.add(addr);
          this.#events.push(trimmed(["f", id, false, t]));
        }
        return i;
      }
      case "segment_alloc":
      case "segment_map":
        this.#reserved += size;
        if (this.#reserved > this.#peakReserved) this.#peakReserved = this.#reserved;
        return i;
      case "segment_free":
      case "segment_unmap":
        this.#reserved -= size;
        return i;
      case "oom":
        if (size > 0) {
          this.#events.push(trimmed(["oom", size, size <= MAX_SMALL_ALLOC ? "small" : "large", t]));
        }
        return i;
      default:
        this.#skipped++;
        return i;
    }
  }

  /** Blocks the segments list as allocated that no event of the trace made. */
  #segment(segment: Segment): void {
    this.#streams.add(segment.stream ?? 0);
    for (const b of segment.blocks) {
      if (b.state !== "active_allocated" || this.#live.has(b.address)) continue;
      if (this.#freed.has(b.address)) {
        throw new TraceError(
          `the PyTorch snapshot's segments list the block at ${hex(b.address)} as allocated, ` +
            "but its trace freed it last",
        );
      }
      if (b.size === 0) throw new TraceError(`block at ${hex(b.address)} of 0 bytes`);
      const id = this.#nextId++;
      const label = b.label ?? BEFORE_RECORDING;
      this.#before.push({ address: b.address, event: allocEvent(id, b.requestedSize, 0, label) });
    }
  }

  /** Milliseconds since the first timed event, or undefined for an event without a time. */
  #time(value: unknown, where: string): number | undefined {
    if (value === undefined) return undefined;
    if (typeof value !== "number" || !Number.isFinite(value)) {
      throw new TraceError(`${where}.time_us must be a number, got ${describe(value)}`);
    }
    this.#t0 ??= value;
    // Times never run backwards in a trace: an earlier stamp (another stream's) reads as now.
    this.#t = Math.max(this.#t ?? 0, (value - this.#t0) / 1000);
    return this.#t;
  }
}

function allocEvent(id: number, size: number, t: number | undefined, label?: string): AllocEvent {
  return label === undefined
    ? trimmed(["a", id, size, "storage", t])
    : ["a", id, size, "storage", t ?? 0, undefined, undefined, undefined, undefined, label];
}

/** The event without trailing unset items. */
function trimmed<T extends unknown[]>(event: T): T {
  while (event.length > 0 && event[event.length - 1] === undefined) event.pop();
  return event;
}

/**
 * "file.py:line function" of the innermost frame outside PyTorch's and the
 * Python standard library's files (the model's own code), else of the
 * innermost Python frame, else of the innermost frame;
 * found once per frame list (`cache`, by identity): blocks and events share them.
 */
function frameLabel(
  frames: unknown,
  cache: Map<unknown[], string | undefined>,
): string | undefined {
  if (!Array.isArray(frames)) return undefined;
  if (cache.has(frames)) return cache.get(frames);
  const label = findLabel(frames);
  cache.set(frames, label);
  return label;
}

function findLabel(frames: unknown[]): string | undefined {
  let python: string | undefined;
  let any: string | undefined;
  for (const f of frames) {
    if (!isObject(f)) continue;
    const { filename, line, name } = f;
    if (typeof filename !== "string" || typeof name !== "string" || typeof line !== "number") {
      continue;
    }
    const label = `${filename.slice(filename.lastIndexOf("/") + 1)}:${line} ${name}`;
    any ??= label;
    if (!filename.endsWith(".py")) continue;
    python ??= label;
    if (!isLibraryFile(filename)) return label;
  }
  return python ?? any;
}

/**
 * Files of PyTorch that allocate on a model's behalf, by name alone: some
 * snapshots keep only the file's name. A path is judged by its folders.
 */
const TORCH_FILES = new Set([
  "__init__.py",
  "_compile.py",
  "_contextlib.py",
  "_jit_internal.py",
  "_tensor.py",
  "_utils.py",
  "activation.py",
  "adam.py",
  "adamw.py",
  "batchnorm.py",
  "container.py",
  "conv.py",
  "dropout.py",
  "eval_frame.py",
  "flatten.py",
  "functional.py",
  "grad_mode.py",
  "instancenorm.py",
  "linear.py",
  "loss.py",
  "module.py",
  "normalization.py",
  "optimizer.py",
  "padding.py",
  "pooling.py",
  "rnn.py",
  "sgd.py",
  "sparse.py",
  "transformer.py",
  "upsampling.py",
]);
/** Modules of Python's standard library that call back into a model, by name alone. */
const STDLIB_FILES = new Set(["contextlib.py", "functools.py", "runpy.py", "threading.py"]);

/** True for a file of PyTorch or of the Python standard library. */
function isLibraryFile(filename: string): boolean {
  const path = filename.replaceAll("\\", "/");
  const slash = path.lastIndexOf("/");
  if (slash < 0) return TORCH_FILES.has(path) || STDLIB_FILES.has(path);
  if (path.includes("/torch/") || path.startsWith("torch/") || path.startsWith("<frozen ")) {
    return true;
  }
  // The standard library: lib/pythonX.Y/, outside the installed packages.
  return /\/lib\/python3(\.\d+)?\//.test(path) && !/\/(site|dist)-packages\//.test(path);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value) &&
    !(value instanceof Uint8Array);
}

function object(value: unknown, where: string): Record<string, unknown> {
  if (!isObject(value)) throw new TraceError(`${where} must be a dict, got ${describe(value)}`);
  return value;
}

function list(value: unknown, where: string): unknown[] {
  if (!Array.isArray(value)) {
    throw new TraceError(`${where} must be a list, got ${describe(value)}`);
  }
  return value;
}

function integer(value: unknown, where: string): number {
  if (!Number.isSafeInteger(value) || (value as number) < 0) {
    throw new TraceError(`${where} must be a non-negative integer, got ${describe(value)}`);
  }
  return value as number;
}

function hex(address: number): string {
  return `0x${address.toString(16)}`;
}

/** A short description of any value read from outside (which may be cyclic). */
function describe(value: unknown): string {
  if (Array.isArray(value)) return `a list of ${value.length}`;
  if (value instanceof Uint8Array) return `${value.length} bytes`;
  if (isObject(value)) return "a dict";
  if (typeof value === "bigint") return describeBigInt(value);
  if (typeof value === "string") {
    return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  }
  return String(value);
}
