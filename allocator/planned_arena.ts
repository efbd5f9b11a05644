/**
 * Planned memory: iterations named by a key are recorded once, planned once
 * ({@linkcode planArena}), and every later run with that key takes each
 * storage block at its planned offset in one arena: no search, no
 * `createBuffer`. A run that departs from the recording goes on with the
 * online allocator. See Note [planned memory] in `plan.ts` for the
 * placement; what this file adds is the bookkeeping of runs (Note [planned
 * runs]).
 *
 * Note [planned runs]
 *
 * A run replays the recording operation by operation: the n-th storage
 * allocation must ask for the recorded size, the n-th free must free the
 * recorded block, and every submit the recording saw must come at the same
 * point (an extra submit does no harm: it only makes freed memory safe
 * sooner). At the first difference the run departs: it is counted, reported
 * once per plan, and its later allocations go to the online allocator;
 * blocks already placed stay where they are until freed. A departed run
 * never hands out bytes the plan did not prove free, so it cannot give a
 * wrong result, and it loses no memory (the arena stays the plan's).
 *
 * Writes are seen at the queue: while plans exist, the device queue's
 * `writeBuffer` tells the allocator which block it fills (recorded in the
 * first run). A later write into a block the recording did not see written
 * breaks the plan's trap-1 proof, so if it overlaps an arena block freed
 * since the last submit, the allocator submits first (the pending work goes
 * on the queue ahead of the write). A run that starts after a departed one
 * with frees still unsubmitted submits first for the same reason.
 *
 * Blocks still live at the end of the recording are not planned: later runs
 * allocate them online. Only storage blocks are planned; uniform, scalar and
 * staging blocks stay online.
 *
 * @module
 */

import { type Block, type BlockRecord, blockRecord, type Heap } from "./block.ts";
import { AllocatorError, OutOfMemoryError } from "./errors.ts";
import { formatBytes } from "./format.ts";
import { planArena, type PlanBlock } from "./plan.ts";

/** What a plan reports ({@linkcode HeapAllocator.plans}). */
export interface PlanInfo {
  /** The key the iteration was named by. */
  key: string;
  /** Blocks placed by the plan (storage blocks freed within the recorded run). */
  blocks: number;
  /** Blocks of the recording still live at its end: allocated online by later runs. */
  unplanned: number;
  /** Bytes of the plan's arena. */
  size: number;
  /** The peak of bytes live at once in the recorded run (planned blocks). */
  peakLive: number;
  /** `size / peakLive`. */
  ratio: number;
  /** Runs with this key, the recording included. */
  runs: number;
  /** Runs that departed from the recording and went on online. */
  departures: number;
  /** Writes into blocks the recording did not see written. */
  unplannedWrites: number;
  /** Submits made to keep such a write (or a run after a departed one) from trap 1. */
  safetySubmits: number;
  /** No plan: why (e.g. the arena would pass `maxBufferSize`); null when planned. */
  unplannable: string | null;
}

/** @internal what planned memory needs of its allocator. */
export interface PlanHost {
  /** Alignment of offsets and sizes. */
  readonly alignment: number;
  /** The largest arena (the device's `maxBufferSize`). */
  readonly maxArena: number;
  /** The device queue whose `writeBuffer` is watched. */
  readonly queue: { writeBuffer: GPUQueue["writeBuffer"] };
  /** Makes the arena: a heap of `size` bytes of its own, reserved and never idle. */
  obtainArena(size: number, key: string): Heap;
  /** Hands out a block of `size` bytes (`requested` asked) at `offset` in `arena`. */
  place(arena: Heap, offset: number, size: number, requested: number, label?: string): Block;
  /** Submits (an empty submit: pending work of submit hooks goes on the queue). */
  submit(): void;
  /** Writes a debug line. */
  say(line: string): void;
}

/** One recorded iteration and what its plan placed. */
interface Plan {
  key: string;
  /** Requested bytes of each block, in order of allocation. */
  requested: number[];
  /** Aligned bytes of each block. */
  sizes: number[];
  /** Written by `writeBuffer` in the recording. */
  written: boolean[];
  /** Offset in the arena, or -1 for a block allocated online. */
  offsets: number[];
  /** The recorded operations: block index, ~index for a free. */
  ops: Int32Array;
  /** Operation counts at the recorded submits, ascending. */
  submits: number[];
  arena: Heap | null;
  /** The live record of each planned block, or null. */
  records: (BlockRecord | null)[];
  live: number;
  /** Planned blocks freed since the last submit. */
  freedSinceSubmit: number[];
  /** The last run followed the plan to its end (its unsubmitted frees are the recorded ones). */
  cleanEnd: boolean;
  /** A run begins with a submit if anything freed is unsubmitted (see `ArenaPlan.submitFirst`). */
  submitFirst: boolean;
  info: PlanInfo;
  reported: boolean;
}

/** The recording of a first run. */
interface Recording {
  key: string;
  requested: number[];
  sizes: number[];
  written: boolean[];
  starts: number[];
  ends: number[];
  ops: number[];
  submits: number[];
  live: Map<BlockRecord, number>;
}

/** The run in progress. */
interface Run {
  plan: Plan;
  /** Operations replayed so far. */
  op: number;
  /** Recorded submits seen so far. */
  submit: number;
  departed: boolean;
}

/** @internal the planned memory of one allocator (Note [planned runs]). */
export class PlannedMemory {
  #host: PlanHost;
  #plans = new Map<string, Plan>();
  #byArena = new Map<GPUBuffer, Plan>();
  #recording: Recording | null = null;
  #run: Run | null = null;
  #writeBuffer: GPUQueue["writeBuffer"];

  constructor(host: PlanHost) {
    this.#host = host;
    const queue = host.queue;
    const original = queue.writeBuffer;
    this.#writeBuffer = original;
    queue.writeBuffer = ((buffer: GPUBuffer, offset: number, ...rest: unknown[]) => {
      this.#wrote(buffer, offset);
      return (original as (...a: unknown[]) => undefined).call(queue, buffer, offset, ...rest);
    }) as GPUQueue["writeBuffer"];
  }

  /** True while an iteration is being recorded or replayed: storage allocations come here. */
  get active(): boolean {
    return this.#recording !== null || this.#run !== null;
  }

  /** Starts an iteration named `key`: the first records, later ones replay the plan. */
  begin(key: string): void {
    if (typeof key !== "string" || key === "") {
      throw new TypeError(`Cannot begin iteration: key must be a non-empty string, got ${key}`);
    }
    if (this.active) {
      const now = this.#recording?.key ?? this.#run!.plan.key;
      throw new AllocatorError(
        `Cannot begin iteration ${JSON.stringify(key)}: iteration ${
          JSON.stringify(now)
        } has not ended`,
      );
    }
    const plan = this.#plans.get(key);
    if (plan === undefined) {
      this.#recording = {
        key,
        requested: [],
        sizes: [],
        written: [],
        starts: [],
        ends: [],
        ops: [],
        submits: [],
        live: new Map(),
      };
      return;
    }
    plan.info.runs++;
    const run: Run = { plan, op: 0, submit: 0, departed: false };
    this.#run = run;
    if (plan.arena === null && plan.info.unplannable === null && plan.info.blocks > 0) {
      this.#makeArena(plan);
    }
    if (plan.info.unplannable !== null) {
      this.#depart(run, plan.info.unplannable);
    } else if (plan.live > 0) {
      this.#depart(run, `${plan.live} blocks of its last run are still live`);
    } else if (plan.freedSinceSubmit.length > 0 && (!plan.cleanEnd || plan.submitFirst)) {
      this.#safetySubmit(plan);
    }
  }

  /** Ends the iteration: a recording is planned now. */
  end(): void {
    const recording = this.#recording;
    const run = this.#run;
    if (recording === null && run === null) {
      throw new AllocatorError("Cannot end iteration: no iteration was begun");
    }
    this.#recording = null;
    this.#run = null;
    if (recording !== null) return this.#planRecording(recording);
    const plan = run!.plan;
    if (!run!.departed && this.#skipKept(plan, run!.op) < plan.ops.length) {
      this.#depart(run!, `it ended after ${run!.op} of ${plan.ops.length} operations`);
    }
    plan.cleanEnd = !run!.departed && plan.live === 0;
  }

  /**
   * A storage allocation while active: the planned block, or null for the
   * online allocator (then {@linkcode PlannedMemory.placedOnline} follows).
   */
  alloc(requested: number, label: string | undefined): Block | null {
    const run = this.#run;
    if (run === null || run.departed) return null;
    const plan = run.plan;
    const ops = plan.ops;
    let k = run.op;
    let i = k < ops.length ? ops[k] : -1;
    // Blocks the recording kept past its end (packed weights, say) may not come again.
    while (i >= 0 && plan.offsets[i] < 0 && plan.requested[i] !== requested) {
      i = ++k < ops.length ? ops[k] : -1;
    }
    if (i < 0) return this.#depart(run, `an allocation of ${requested} bytes came unrecorded`);
    if (run.submit < plan.submits.length && plan.submits[run.submit] <= k) {
      return this.#depart(run, `a submit recorded before operation ${k} did not come`);
    }
    if (plan.requested[i] !== requested) {
      return this.#depart(
        run,
        `allocation ${i} asked for ${requested} bytes, recorded ${plan.requested[i]}`,
      );
    }
    run.op = k + 1;
    const offset = plan.offsets[i];
    if (offset < 0) return null;
    const block = this.#host.place(plan.arena!, offset, plan.sizes[i], requested, label);
    plan.records[i] = blockRecord(block);
    plan.live++;
    return block;
  }

  /** A block the online allocator placed while recording: watched for its free. */
  placedOnline(r: BlockRecord): void {
    const rec = this.#recording;
    if (rec === null) return;
    const i = rec.requested.length;
    rec.requested.push(r.requestedSize);
    rec.sizes.push(Math.ceil(r.requestedSize / this.#host.alignment) * this.#host.alignment);
    rec.written.push(false);
    rec.starts.push(rec.ops.length);
    rec.ends.push(-1);
    rec.ops.push(i);
    rec.live.set(r, i);
  }

  /** True if `r` lies in an arena of {@linkcode PlannedMemory.arenas} (a planned block). */
  isPlanned(r: BlockRecord): boolean {
    return r.range === null && r.heap.block !== r && this.#byArena.has(r.heap.buffer);
  }

  /**
   * A block is being freed (its stats already taken off): true if it was a
   * planned block, whose memory is the plan's again; false for the online
   * allocator to recycle.
   */
  free(r: BlockRecord): boolean {
    const rec = this.#recording;
    if (rec !== null) {
      const i = rec.live.get(r);
      if (i !== undefined) {
        rec.live.delete(r);
        rec.ends[i] = rec.ops.length;
        rec.ops.push(~i);
        return false;
      }
    }
    if (r.range !== null || r.heap.block === r) return false;
    const plan = this.#byArena.get(r.heap.buffer);
    if (plan === undefined) return false;
    let i: number;
    const run = this.#run;
    const k = run === null ? 0 : this.#skipKept(plan, run.op);
    if (run !== null && run.plan === plan && !run.departed && k < plan.ops.length) {
      i = ~plan.ops[k];
      if (i >= 0 && plan.records[i] === r) run.op = k + 1;
      else i = this.#departOnFree(run, r);
    } else {
      i = plan.records.indexOf(r);
      if (run !== null && run.plan === plan && !run.departed) {
        this.#depart(run, `block ${i} was freed after the recorded operations`);
      }
    }
    r.state = "free";
    plan.records[i] = null;
    plan.live--;
    plan.freedSinceSubmit.push(i);
    return true;
  }

  /** A submit went on the queue: frees before it are safe from later writes. */
  submitted(): void {
    const rec = this.#recording;
    if (rec !== null) rec.submits.push(rec.ops.length);
    const run = this.#run;
    if (run !== null) {
      const s = run.plan.submits;
      const k = this.#skipKept(run.plan, run.op);
      while (run.submit < s.length && s[run.submit] >= run.op && s[run.submit] <= k) run.submit++;
    }
    for (const plan of this.#byArena.values()) plan.freedSinceSubmit.length = 0;
  }

  /** What each plan reports. */
  infos(): PlanInfo[] {
    return [...this.#plans.values()].map((p) => ({ ...p.info }));
  }

  /** The allocator is being destroyed: live planned blocks die with it; the queue is let go. */
  destroy(): void {
    for (const plan of this.#plans.values()) {
      for (const r of plan.records) if (r !== null) r.state = "free";
    }
    const queue = this.#host.queue;
    // Only our own wrapper comes off: another one made since stays in place.
    if (Object.hasOwn(queue, "writeBuffer")) {
      delete (queue as { writeBuffer?: unknown }).writeBuffer;
      if (queue.writeBuffer !== this.#writeBuffer) queue.writeBuffer = this.#writeBuffer;
    }
    this.#plans.clear();
    this.#byArena.clear();
    this.#recording = null;
    this.#run = null;
  }

  #planRecording(rec: Recording): void {
    const blocks: PlanBlock[] = [];
    const which: number[] = [];
    for (let i = 0; i < rec.requested.length; i++) {
      if (rec.ends[i] < 0) continue;
      which.push(i);
      blocks.push({
        size: rec.sizes[i],
        start: rec.starts[i],
        end: rec.ends[i],
        written: rec.written[i],
      });
    }
    const placed = planArena(blocks, rec.submits);
    const offsets = rec.requested.map(() => -1);
    which.forEach((i, n) => offsets[i] = placed.offsets[n]);
    const info: PlanInfo = {
      key: rec.key,
      blocks: blocks.length,
      unplanned: rec.requested.length - blocks.length,
      size: placed.size,
      peakLive: placed.peakLive,
      ratio: placed.ratio,
      runs: 1,
      departures: 0,
      unplannedWrites: 0,
      safetySubmits: 0,
      unplannable: null,
    };
    if (placed.size > this.#host.maxArena) {
      info.unplannable = `its arena of ${formatBytes(placed.size)} passes maxBufferSize (${
        formatBytes(this.#host.maxArena)
      })`;
    }
    const plan: Plan = {
      key: rec.key,
      requested: rec.requested,
      sizes: rec.sizes,
      written: rec.written,
      offsets,
      ops: Int32Array.from(rec.ops),
      submits: rec.submits,
      arena: null,
      records: rec.requested.map(() => null),
      live: 0,
      freedSinceSubmit: [],
      cleanEnd: true,
      submitFirst: placed.submitFirst,
      info,
      reported: false,
    };
    this.#plans.set(rec.key, plan);
  }

  /**
   * Makes a plan's arena, at its first planned run rather than at the end of
   * the recording: by then the recording's blocks are free, and the host can
   * release the heaps they left idle before the arena takes their place.
   */
  #makeArena(plan: Plan): void {
    try {
      plan.arena = this.#host.obtainArena(plan.info.size, plan.key);
    } catch (error) {
      if (!(error instanceof OutOfMemoryError)) throw error;
      plan.info.unplannable = `its arena could not be made: ${error.message}`;
      return;
    }
    this.#byArena.set(plan.arena.buffer, plan);
  }

  /** The first operation from `k` on that is not the allocation of a block kept past the recording. */
  #skipKept(plan: Plan, k: number): number {
    const ops = plan.ops;
    while (k < ops.length && ops[k] >= 0 && plan.offsets[ops[k]] < 0) k++;
    return k;
  }

  #departOnFree(run: Run, r: BlockRecord): number {
    const i = run.plan.records.indexOf(r);
    this.#depart(run, `block ${i} was freed out of the recorded order`);
    return i;
  }

  /** The run leaves the plan: counted, reported once per plan; null for the caller to go online. */
  #depart(run: Run, why: string): null {
    run.departed = true;
    const plan = run.plan;
    plan.info.departures++;
    if (!plan.reported) {
      plan.reported = true;
      this.#host.say(
        `iteration ${
          JSON.stringify(plan.key)
        } departed from its plan (${why}): the rest of the run uses the online allocator` +
          " (reported once per plan)",
      );
    }
    return null;
  }

  /** `writeBuffer` is about to fill `buffer` from `offset`. */
  #wrote(buffer: GPUBuffer, offset: number): void {
    const rec = this.#recording;
    if (rec !== null) {
      for (const [r, i] of rec.live) {
        if (r.heap.buffer === buffer && offset >= r.offset && offset < r.offset + r.size) {
          rec.written[i] = true;
        }
      }
      return;
    }
    const plan = this.#byArena.get(buffer);
    if (plan === undefined) return;
    const i = plan.records.findIndex((r) =>
      r !== null && offset >= r.offset && offset < r.offset + r.size
    );
    if (i < 0 || plan.written[i]) return;
    plan.info.unplannedWrites++;
    const run = this.#run;
    if (run !== null && run.plan === plan && !run.departed) {
      this.#depart(run, `block ${i} was written by writeBuffer, unlike in the recording`);
    }
    const lo = plan.offsets[i];
    const hi = lo + plan.sizes[i];
    const hit = plan.freedSinceSubmit.some((j) =>
      plan.offsets[j] < hi && lo < plan.offsets[j] + plan.sizes[j]
    );
    if (hit) this.#safetySubmit(plan);
  }

  #safetySubmit(plan: Plan): void {
    plan.info.safetySubmits++;
    this.#host.submit();
  }
}
