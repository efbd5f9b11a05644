/**
 * Tools that read what an allocator recorded: traces (gpuheap's format,
 * plain `["a", id, size]` lists and PyTorch memory snapshots, pickled or
 * not), their replay on a fake device under other settings, and a
 * self-contained HTML picture of memory over time, and the diff of two runs'
 * peaks. The runtime never imports them. Commands: `@gpuheap/gpuheap/replay`,
 * `@gpuheap/gpuheap/memviz` and `@gpuheap/gpuheap/memdiff`.
 *
 * @example
 * ```ts
 * import { readTrace, replay } from "@gpuheap/gpuheap/tools";
 * import assert from "node:assert/strict";
 *
 * const trace = readTrace('[["a", 1, 4096], ["a", 2, 4096], ["f", 1], ["f", 2]]');
 * const result = replay(trace);
 * assert.equal(result.peakAllocated, 8192);
 * ```
 *
 * @module
 */

export { readTrace, TraceError } from "./read_trace.ts";
export {
  DEFAULT_MAX_BYTES,
  type LoadOptions,
  loadTraceFile,
  parseTraceBytes,
} from "./load_trace.ts";
export {
  isPickle,
  MAX_INT_BYTES,
  type PickleDict,
  type PickleOptions,
  type PickleValue,
  readPickle,
} from "./pickle.ts";
export {
  BEFORE_RECORDING,
  formatPytorchFacts,
  isPytorchSnapshot,
  type PytorchFacts,
  pytorchFacts,
  type PytorchSnapshotOptions,
  type PytorchTrace,
  readPytorchSnapshot,
  SNAPSHOT_LIMITS,
} from "./pytorch_snapshot.ts";
export { readSnapshot, SnapshotError } from "./read_snapshot.ts";
export { replay, type ReplayOptions, type ReplayResult } from "./replay.ts";
export { memvizHtml, type MemvizOptions, POOL_COLORS } from "./memviz.ts";
export type { AllocatorLimits } from "../device.ts";
export type { AllocatorSettings } from "../config.ts";
export type { MemoryStats, PoolStats, Stat } from "../stats.ts";
export type { BlockStateName, Snapshot, SnapshotBlock, SnapshotHeap } from "../snapshot.ts";
// The trace format's types: every event the readers and replay take.
export type * from "../trace.ts";
export type { PlanInfo } from "../planned_arena.ts";
export { defaultSettings, makeTrace } from "../trace.ts";
export {
  formatMemoryDiff,
  type MemoryDiff,
  memoryDiff,
  type MemoryProfile,
  memoryProfile,
  NO_LABEL,
  type ProfileSource,
  type SiteChange,
} from "./memdiff.ts";
