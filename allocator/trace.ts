/**
 * The trace format: what `HeapAllocator.startRecording()` records and the
 * tools read (the reader is `tools/read_trace.ts`, the recorder `trace_recorder.ts`).
 *
 * The format, version 1, is one JSON object:
 *
 * ```jsonc
 * {
 *   "format": "gpuheap-trace",
 *   "version": 1,
 *   "settings": { "allocConf": "…", "highWatermark": 0, "lowWatermark": 0,
 *                 "alignment": 32, "limits": { … }, "fallbackAdapter": false },
 *   "durationMs": 52.1,
 *   "events": [["heap", 1, 8388608, "small", true, 0.01],
 *              ["a", 1, 4000, "storage", 0.012, "small", 1, 0, 4000],
 *              ["f", 1, true, 0.3], ["submit", 0.31]]
 * }
 * ```
 *
 * Each event is an array whose first item names its kind; `t` is milliseconds
 * since recording started. Items after the ones a replay needs are optional,
 * so a plain list of `["a", id, size]` and `["f", id]` events (a trace of any
 * allocator) is a trace too, and may stand alone in place of the object.
 *
 * | event                                                               | meaning |
 * | ------------------------------------------------------------------- | ------- |
 * | `["a", id, requested, usage?, t?, pool?, heap?, offset?, size?, label?, longLived?]` | `alloc(requested, { usage, longLived })` (usage default `"storage"`, longLived default false) returned block `id` of `size` bytes at `offset` in `heap` |
 * | `["f", id, pending?, t?]`                                           | `free` of block `id`; `pending` (default false): the block was given to GPU work, so its memory waited for the next submit |
 * | `["s", id, t?, heap?, offset?, size?]`                              | `scalar()` returned block `id` |
 * | `["submit", t?]`                                                    | `submit()`: blocks freed before it are reusable |
 * | `["emptyCache", t?]`                                                | `emptyCache()` |
 * | `["heap", heap, size, pool, isSplit, t?]`                           | a heap (GPUBuffer) was made |
 * | `["release", heap, t?]`                                             | a heap was released |
 * | `["split", heap, t?]`                                               | a cached unsplit heap became a split heap (its cached block is gone) |
 * | `["oom", requested, pool, t?]`                                      | an allocation failed with `OutOfMemoryError` |
 * | `["resetPeak", t?]`                                                 | `resetPeakStats()` |
| `["iter", key, t?]`                                                 | `beginIteration(key)`; with `key` null, `endIteration()` |
 *
 * An optional item may be `null` (absent) when a later one is given.
 * Block ids may be reused once freed. A recording started on a busy
 * allocator begins with the state then: a `heap` event per heap held, an
 * `a` (or `s`) event per block placed, and an `f` event for each of those
 * already freed (cached or waiting for a submit).
 *
 * @module
 */

import type { AllocatorSettings } from "./config.ts";
import type { AllocatorLimits } from "./device.ts";

/** `alloc(requested, { usage })` returned block `id` of `size` bytes at `offset` in `heap`. */
export type AllocEvent = [
  kind: "a",
  id: number,
  requested: number,
  usage?: string,
  t?: number,
  pool?: string,
  heap?: number,
  offset?: number,
  size?: number,
  label?: string | null,
  longLived?: boolean,
];
/** `free` of block `id`; `pending`: its memory waited for the next submit. */
export type FreeEvent = [kind: "f", id: number, pending?: boolean | 0 | 1, t?: number];
/** `scalar()` returned block `id`. */
export type ScalarEvent = [
  kind: "s",
  id: number,
  t?: number,
  heap?: number,
  offset?: number,
  size?: number,
];
/** `submit()`. */
export type SubmitEvent = [kind: "submit", t?: number];
/** `emptyCache()`. */
export type EmptyCacheEvent = [kind: "emptyCache", t?: number];
/** A heap (GPUBuffer) was made. */
export type HeapEvent = [
  kind: "heap",
  heap: number,
  size: number,
  pool: string,
  isSplit: boolean,
  t?: number,
];
/** A heap was released. */
export type ReleaseEvent = [kind: "release", heap: number, t?: number];
/** A cached unsplit heap became a split heap (its cached block is gone). */
export type SplitEvent = [kind: "split", heap: number, t?: number];
/** An allocation failed with `OutOfMemoryError`. */
export type OomEvent = [kind: "oom", requested: number, pool: string, t?: number];
/** `resetPeakStats()`. */
export type ResetPeakEvent = [kind: "resetPeak", t?: number];

/** `beginIteration(key)`, or `endIteration()` with `key` null. */
export type IterEvent = [kind: "iter", key: string | null, t?: number];

/** One event of a {@linkcode Trace}. */
export type TraceEvent =
  | AllocEvent
  | FreeEvent
  | ScalarEvent
  | SubmitEvent
  | EmptyCacheEvent
  | HeapEvent
  | ReleaseEvent
  | SplitEvent
  | OomEvent
  | ResetPeakEvent
  | IterEvent;

/** Where each kind of event keeps its optional time `t`: the index of that item. */
export const TIME_ITEM: Readonly<Record<TraceEvent[0], number>> = {
  a: 4,
  f: 3,
  s: 2,
  submit: 1,
  emptyCache: 1,
  heap: 5,
  release: 2,
  split: 2,
  oom: 3,
  resetPeak: 1,
  iter: 2,
};

/** What `HeapAllocator.stopRecording()` returns: a versioned, JSON-ready list of events. */
export interface Trace {
  /** Always `"gpuheap-trace"`. */
  format: "gpuheap-trace";
  /** Version of the format: 1. */
  version: 1;
  /** The settings the allocator ran with (a replay uses them unless told otherwise). */
  settings: AllocatorSettings | null;
  /** Milliseconds from the start of the recording to its end. */
  durationMs: number;
  /** The events, in order. */
  events: TraceEvent[];
}

/**
 * A trace of `events` with the header every trace carries (format, version,
 * settings, duration), for whatever writes one outside the recorder.
 *
 * @example
 * ```ts
 * import { makeTrace } from "@gpuheap/gpuheap/tools";
 * import assert from "node:assert/strict";
 *
 * const trace = makeTrace([["a", 1, 4096], ["f", 1]]);
 * assert.equal(trace.format, "gpuheap-trace");
 * assert.equal(trace.settings, null); // a replay takes its own defaults
 * ```
 *
 * @param events the events, in order
 * @param header the settings the events ran under (default none) and their duration (default 0)
 */
export function makeTrace(
  events: TraceEvent[],
  header: { settings?: AllocatorSettings | null; durationMs?: number } = {},
): Trace {
  return {
    format: "gpuheap-trace",
    version: 1,
    settings: header.settings ?? null,
    durationMs: header.durationMs ?? 0,
    events,
  };
}

/**
 * The settings of an allocator without alloc conf or watermarks on a device
 * with `limits` (a copy is kept): what a trace made without the allocator
 * replays under. Blocks align to the larger of the two offset alignments, as
 * the allocator's do.
 *
 * @example
 * ```ts
 * import { defaultSettings } from "@gpuheap/gpuheap/tools";
 * import assert from "node:assert/strict";
 *
 * const settings = defaultSettings({
 *   maxBufferSize: 2 ** 31,
 *   maxStorageBufferBindingSize: 2 ** 27,
 *   maxUniformBufferBindingSize: 2 ** 16,
 *   minStorageBufferOffsetAlignment: 32,
 *   minUniformBufferOffsetAlignment: 256,
 * });
 * assert.equal(settings.alignment, 256);
 * assert.equal(settings.allocConf, "");
 * ```
 */
export function defaultSettings(limits: AllocatorLimits): AllocatorSettings {
  return {
    allocConf: "",
    highWatermark: 0,
    lowWatermark: 0,
    alignment: Math.max(
      limits.minStorageBufferOffsetAlignment,
      limits.minUniformBufferOffsetAlignment,
      4,
    ),
    limits: { ...limits },
    fallbackAdapter: false,
  };
}
