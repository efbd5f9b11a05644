/**
 * Planned memory: iterations named by a key are recorded once, planned once
 * ({@linkcode planArena}), and every later run with that key takes each
 * storage block at its planned offset in an arena: no search, no
 * `createBuffer`. A run that departs from the recording goes on with the
 * online allocator. See Note [planned memory] in `plan.ts` for the
 * placement; what this file adds is the bookkeeping of runs (Note [planned
 * runs]).
 *
 * Note [planned runs]
 *
 * A run replays the recording operation by operation: the n-th storage
 * allocation must ask for the recorded size, the n-th free must free the
 * recorded block, and every submit the plan relies on must come at the same
 * point (an extra submit does no harm: it only makes freed memory safe
 * sooner). The plan relies on the recording's last submit and on each one
 * after which a written block is made; a submit with no write after it
 * (one an online allocator made to reuse memory, say) changes no conflict
 * of Note [planned memory] — every write comes before it, and so before any
 * later submit — and a run may leave it out. Allocations of blocks the recording kept past its end (weights
 * packed once, say) are optional: they are made online when they come. A block allocated right after
 * such a one of its own size is made online too: a run that makes only one of the two (weights
 * packed already, or packed again for a new job) cannot tell which it is. At
 * the first difference the run departs: it is counted, reported once per
 * plan, and its later allocations go to the online allocator; blocks already
 * placed stay where they are until freed. A departed run never hands out
 * bytes the plan did not prove free, so it cannot give a wrong result, and
 * it loses no memory.
 *
 * Arenas are shared: a run takes its plan's last arena, or any arena with no
 * live block that is large enough, or makes one (releasing the idle arenas
 * it outgrows). Plans for several keys that run one after another so hold
 * one arena, of the largest plan's size. A recording releases the idle
 * arenas first: it runs on the online allocator, which cannot use them, and
 * the plan it makes takes an arena at its first run anyway (the allocator
 * also submits rather than grows a heap while it records). A recording so
 * peaks at its own online footprint, not that plus the arenas of other keys.
 *
 * Trap 1 across runs. Each arena keeps the ranges freed in it since the last
 * submit. A run whose plan writes (by `writeBuffer`) a block before its first
 * submit over such a range — left by another plan, a departed run, or a
 * block of its own written before the first submit and freed after the last
 * (`submitFirst`) — begins with a submit. In a loop of one key that follows
 * its plan this never happens otherwise: the plan keeps those blocks apart
 * (Note [planned memory]). So a run that follows its plan frees without
 * tracking anything, and what it freed since its last submit is known from
 * the plan when it is needed: as the plan's late frees (one span) when the
 * same plan runs next, operation by operation when another plan takes the
 * arena, or when the run strays (from then on its frees are tracked one by
 * one, as every free outside a run that follows its plan is).
 *
 * Writes are seen at the queue: while plans exist, the device queue's
 * `writeBuffer` tells the allocator which block it fills (recorded in the
 * first run). A later write into a block the recording did not see written
 * breaks the plan's proof, so if it meets a range freed since the last
 * submit, the allocator submits first (the pending work goes on the queue
 * ahead of the write).
 *
 * Only storage blocks are planned; uniform, scalar and staging blocks stay
 * online.
 *
 * @module
 */

import { type Block, type BlockRecord, blockRecord, type Heap } from "./block.ts";
import { AllocatorError, OutOfMemoryError } from "./errors.ts";
import { formatBytes } from "./format.ts";
import { planArena, type PlanBlock } from "./plan.ts";
import { freeRange, type Snapshot, type SnapshotBlock } from "./snapshot.ts";

/** What a plan reports ({@linkcode HeapAllocator.plans}). */
export interface PlanInfo {
  /** The key the iteration was named by. */
  key: string;
  /** Blocks placed by the plan (storage blocks freed within the recorded run). */
  blocks: number;
  /**
   * Blocks later runs allocate online: those the recording kept past its end,
   * and any allocated right after one of those of its own size.
   */
  unplanned: number;
  /** Bytes the plan needs in an arena. */
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
  /** Submits made to keep trap 1 (at a run's start, or before an unplanned write). */
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
  /** Makes an arena: a heap of `size` bytes of its own, reserved and never idle. */
  obtainArena(size: number, key: string): Heap;
  /** Releases an arena with no live block. */
  releaseArena(arena: Heap): void;
  /** Hands out a block of `size` bytes (`requested` asked) at `offset` in `arena`. */
  place(arena: Heap, offset: number, size: number, requested: number, label?: string): Block;
  /** Submits (an empty submit: pending work of submit hooks goes on the queue). */
  submit(): void;
  /** Writes a debug line. */
  say(line: string): void;
}

/** One arena: a heap that plans take turns in. */
interface Arena {
  heap: Heap;
  /** The plan whose blocks it holds (the last to run in it). */
  plan: Plan | null;
  /** Planned blocks live in it. */
  live: number;
  /** What was freed in it since the last submit, but for the frees of `lazy`. */
  freed: FreedRanges;
  /** A run that followed its plan, whose frees in it since operation `lazyFrom` are not in `freed` yet. */
  lazy: Run | null;
  lazyFrom: number;
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
  /** Some block is allocated online: runs skip its operations (#skipKept). */
  online: boolean;
  /** The recorded operations: block index, ~index for a free. */
  ops: Int32Array;
  /** Operation counts at the recorded submits a run must repeat, ascending. */
  submits: number[];
  /** Offset and size of each written block made before the first submit, flat. */
  early: number[];
  /** A written block made before the first submit is freed after the last: it meets its next copy. */
  submitFirst: boolean;
  /** Where the blocks freed after the last recorded submit lie: [lowest offset, highest end), or null. */
  late: [number, number] | null;
  /** The arena of its current or last run. */
  arena: Arena | null;
  /** The live record of each planned block, or null. */
  records: (BlockRecord | null)[];
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
  #arenas = new Map<GPUBuffer, Arena>();
  #recording: Recording | null = null;
  /** The plan of the last run. */
  #last: Plan | null = null;
  #run: Run | null = null;
  #original: GPUQueue["writeBuffer"];
  #watch: GPUQueue["writeBuffer"];

  constructor(host: PlanHost) {
    this.#host = host;
    const queue = host.queue;
    const original = this.#original = queue.writeBuffer;
    this.#watch = ((buffer: GPUBuffer, offset: number, ...rest: unknown[]) => {
      this.#wrote(buffer, offset);
      return (original as (...a: unknown[]) => undefined).call(queue, buffer, offset, ...rest);
    }) as GPUQueue["writeBuffer"];
    queue.writeBuffer = this.#watch;
  }

  /** True while an iteration is being recorded or replayed: storage allocations come here. */
  get active(): boolean {
    return this.#recording !== null || this.#run !== null;
  }

  /** True while an iteration is being recorded. */
  get recording(): boolean {
    return this.#recording !== null;
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
    // A loop names the same key run after run: the last plan, without a lookup.
    const prev = this.#last;
    const plan = prev !== null && prev.key === key ? prev : this.#plans.get(key);
    if (plan === undefined) {
      // A recording runs online: an idle arena beside it is memory none of its blocks can use.
      this.releaseIdle();
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
    this.#last = plan;
    plan.info.runs++;
    const run: Run = { plan, op: 0, submit: 0, departed: false };
    this.#run = run;
    if (plan.info.blocks === 0) return;
    const arena = plan.info.unplannable === null ? this.#arenaFor(plan) : null;
    if (arena === null) return void this.#depart(run, plan.info.unplannable!);
    plan.arena = arena;
    arena.plan = plan;
    let conflict: boolean;
    const last = arena.lazy;
    if (last !== null && last.plan === plan && arena.lazyFrom < last.op) {
      // The last run followed this plan: its frees since its last submit are the plan's
      // late ones, kept apart from its early writes but for submitFirst's (Note [planned runs]).
      conflict = plan.submitFirst || arena.freed.meets(plan.early);
      if (plan.late !== null) arena.freed.add(plan.late[0], plan.late[1] - plan.late[0]);
    } else {
      this.#track(arena);
      conflict = arena.freed.meets(plan.early);
    }
    arena.lazy = run;
    arena.lazyFrom = 0;
    if (conflict) this.#safetySubmit(plan);
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
    // The next run may take its frees as the plan's late ones only if it made every submit.
    if (plan.arena?.lazy === run && run!.submit < plan.submits.length) this.#track(plan.arena);
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
    // Blocks the recording kept past its end (packed weights, say) may not come again: the
    // allocation recorded after them is this one if it asks for as much, else one of them is.
    const next = this.#skipKept(plan, run.op);
    const planned = next < ops.length && ops[next] >= 0 ? ops[next] : -1;
    let k = next;
    if (planned < 0 || plan.requested[planned] !== requested) {
      k = run.op;
      while (k < next && (ops[k] < 0 || plan.requested[ops[k]] !== requested)) k++;
      if (k === next) {
        return this.#depart(
          run,
          planned < 0
            ? `an allocation of ${requested} bytes came unrecorded`
            : `allocation ${planned} asked for ${requested} bytes, recorded ${
              plan.requested[planned]
            }`,
        );
      }
    }
    if (run.submit < plan.submits.length && plan.submits[run.submit] <= k) {
      return this.#depart(run, `a submit recorded before operation ${k} did not come`);
    }
    const i = ops[k];
    run.op = k + 1;
    const offset = plan.offsets[i];
    if (offset < 0) return null;
    const arena = plan.arena!;
    const block = this.#host.place(arena.heap, offset, plan.sizes[i], requested, label);
    plan.records[i] = blockRecord(block);
    arena.live++;
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

  /**
   * A block is being freed (its stats already taken off): true if it was a
   * planned block, whose bytes are the plan's again; false for the online
   * allocator to recycle.
   */
  free(r: BlockRecord): boolean {
    // The common case first, kept short: the running plan's next operation frees this
    // block. Its bytes are not tracked now: the run's frees are, when needed (#track).
    const run = this.#run;
    if (run !== null && !run.departed) {
      const plan = run.plan;
      const arena = plan.arena;
      if (arena !== null && arena.lazy === run && arena.heap === r.heap) {
        const k = this.#skipKept(plan, run.op);
        const i = k < plan.ops.length ? ~plan.ops[k] : -1;
        if (i >= 0 && plan.records[i] === r) {
          run.op = k + 1;
          r.state = "free";
          plan.records[i] = null;
          arena.live--;
          return true;
        }
      }
    }
    return this.#freeOther(r);
  }

  /** {@linkcode PlannedMemory.free} of a block that is not the running plan's next free. */
  #freeOther(r: BlockRecord): boolean {
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
    // A planned block has no range and is not its heap's own block.
    if (r.range !== null || r.heap.block === r) return false;
    const run = this.#run;
    // The running plan's arena first: a map lookup costs as much as the rest of a free.
    const own = run === null ? null : run.plan.arena;
    const arena = own !== null && own.heap === r.heap ? own : this.#arenas.get(r.heap.buffer);
    if (arena === undefined) return false;
    const plan = arena.plan!;
    let i = -1;
    if (run !== null && run.plan === plan && !run.departed) {
      const k = this.#skipKept(plan, run.op);
      if (k < plan.ops.length && plan.records[~plan.ops[k]] === r) {
        i = ~plan.ops[k];
        run.op = k + 1;
      } else {
        this.#depart(run, "a block was freed out of the recorded order");
      }
    }
    if (i < 0) i = plan.records.indexOf(r);
    r.state = "free";
    plan.records[i] = null;
    arena.live--;
    arena.freed.add(r.offset, r.size);
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
    for (const arena of this.#arenas.values()) {
      arena.freed.clear();
      if (arena.lazy !== null) arena.lazyFrom = arena.lazy.op;
    }
  }

  /**
   * Shows each arena of `snapshot` as the heap its plans share: the planned
   * blocks live in it, by offset, and the free ranges between them.
   */
  fillSnapshot(snapshot: Snapshot, ops: number): void {
    for (const arena of this.#arenas.values()) {
      const heap = snapshot.heaps.find((h) => h.id === arena.heap.id);
      if (heap === undefined) continue;
      const live = (arena.plan?.records ?? []).filter((r) => r !== null)
        .sort((a, b) => a.offset - b.offset);
      const blocks: SnapshotBlock[] = [];
      let end = 0;
      for (const r of live) {
        if (r.offset > end) blocks.push(freeRange(end, r.offset - end));
        blocks.push({
          id: r.id,
          offset: r.offset,
          size: r.size,
          requestedSize: r.requestedSize,
          state: "live",
          usage: r.usage,
          label: r.label ?? null,
          ageOps: ops - r.bornAtOp,
        });
        end = r.offset + r.size;
      }
      if (end < heap.size) blocks.push(freeRange(end, heap.size - end));
      heap.blocks = blocks;
      heap.isSplit = true;
    }
  }

  /**
   * Releases every arena with no live block and nothing freed unsubmitted,
   * but the running plan's; a later run makes its arena again.
   *
   * @returns the bytes released
   */
  releaseIdle(): number {
    let released = 0;
    for (const a of [...this.#arenas.values()]) {
      const lazy = a.lazy !== null && a.lazyFrom < a.lazy.op;
      if (a.live > 0 || !a.freed.empty || lazy || this.#run?.plan.arena === a) continue;
      this.#arenas.delete(a.heap.buffer);
      for (const p of this.#plans.values()) if (p.arena === a) p.arena = null;
      released += a.heap.size;
      this.#host.releaseArena(a.heap);
    }
    return released;
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
    // Only our own watch comes off: a wrapper put on since stays (and calls ours).
    if (queue.writeBuffer === this.#watch) queue.writeBuffer = this.#original;
    this.#plans.clear();
    this.#last = null;
    this.#arenas.clear();
    this.#recording = null;
    this.#run = null;
  }

  #planRecording(rec: Recording): void {
    const blocks: PlanBlock[] = [];
    const which: number[] = [];
    const online = rec.requested.map((_, i) => rec.ends[i] < 0);
    for (const [start, i] of rec.ops.entries()) {
      if (i < 0 || online[i] || this.#kin(rec, online, start)) {
        if (i >= 0) online[i] = true;
        continue;
      }
      which.push(i);
      blocks.push({
        size: rec.sizes[i],
        start: rec.starts[i],
        end: rec.ends[i],
        written: rec.written[i],
      });
    }
    const placed = planArena(blocks, rec.submits);
    // The submits a run must repeat: the last, and each with a write after it (Note [planned runs]).
    let lastWrite = -1;
    rec.written.forEach((w, i) => {
      if (w) lastWrite = Math.max(lastWrite, rec.starts[i]);
    });
    const needed = rec.submits.filter((s, n) => n === rec.submits.length - 1 || s <= lastWrite);
    const offsets = rec.requested.map(() => -1);
    const early: number[] = [];
    const first = rec.submits.length > 0 ? rec.submits[0] : Infinity;
    const lastSubmit = rec.submits.length > 0 ? rec.submits[rec.submits.length - 1] : 0;
    let late: [number, number] | null = null;
    which.forEach((i, n) => {
      const offset = offsets[i] = placed.offsets[n];
      if (rec.written[i] && rec.starts[i] < first) early.push(offset, rec.sizes[i]);
      if (rec.ends[i] >= lastSubmit) {
        late = late ?? [offset, offset + rec.sizes[i]];
        late[0] = Math.min(late[0], offset);
        late[1] = Math.max(late[1], offset + rec.sizes[i]);
      }
    });
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
    this.#plans.set(rec.key, {
      key: rec.key,
      requested: rec.requested,
      sizes: rec.sizes,
      written: rec.written,
      offsets,
      online: offsets.some((o) => o < 0),
      ops: Int32Array.from(rec.ops),
      submits: needed,
      early,
      submitFirst: placed.submitFirst,
      late,
      arena: null,
      records: rec.requested.map(() => null),
      info,
      reported: false,
    });
  }

  /**
   * An arena with no live block for `plan`: its last one, the smallest idle
   * one large enough, or a new one — made at the plan's first planned run
   * rather than at the end of its recording, when the heaps the recording
   * left idle can go first. Null if it cannot be made.
   */
  #arenaFor(plan: Plan): Arena | null {
    const size = plan.info.size;
    if (plan.arena !== null && plan.arena.live === 0) return plan.arena;
    let best: Arena | null = null;
    for (const a of this.#arenas.values()) {
      if (a.live === 0 && a.heap.size >= size && (best === null || a.heap.size < best.heap.size)) {
        best = a;
      }
    }
    if (best !== null) return best;
    // Idle arenas too small for this plan are outgrown: the new one serves their plans too.
    this.releaseIdle();
    let heap: Heap;
    try {
      heap = this.#host.obtainArena(size, plan.key);
    } catch (error) {
      if (!(error instanceof OutOfMemoryError)) throw error;
      plan.info.unplannable = `its arena could not be made: ${error.message}`;
      return null;
    }
    const arena: Arena = { heap, plan, live: 0, freed: new FreedRanges(), lazy: null, lazyFrom: 0 };
    this.#arenas.set(heap.buffer, arena);
    return arena;
  }

  /** The first operation from `k` on that is not one of a block the plan leaves online. */
  #skipKept(plan: Plan, k: number): number {
    if (!plan.online) return k;
    const ops = plan.ops;
    while (k < ops.length && plan.offsets[ops[k] < 0 ? ~ops[k] : ops[k]] < 0) k++;
    return k;
  }

  /**
   * Whether the allocation at operation `start` of the recording comes right
   * after one of its size left online (a block kept past the recording, say):
   * a run that makes only one of the two cannot tell which it is, so this
   * one stays online too.
   */
  #kin(rec: Recording, online: readonly boolean[], start: number): boolean {
    const size = rec.requested[rec.ops[start]];
    for (let k = start - 1; k >= 0; k--) {
      const j = rec.ops[k] < 0 ? ~rec.ops[k] : rec.ops[k];
      if (!online[j]) return false;
      if (rec.ops[k] >= 0 && rec.requested[j] === size) return true;
    }
    return false;
  }

  /** The run leaves the plan: counted, reported once per plan; null for the caller to go online. */
  #depart(run: Run, why: string): null {
    run.departed = true;
    const arena = run.plan.arena;
    if (arena !== null && arena.lazy === run) this.#track(arena);
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
    const arena = this.#arenas.get(buffer);
    if (arena === undefined || arena.plan === null) return;
    const plan = arena.plan;
    const i = plan.records.findIndex((r) =>
      r !== null && offset >= r.offset && offset < r.offset + r.size
    );
    if (i < 0 || plan.written[i]) return;
    plan.info.unplannedWrites++;
    const run = this.#run;
    if (run !== null && run.plan === plan && !run.departed) {
      this.#depart(run, `block ${i} was written by writeBuffer, unlike in the recording`);
    }
    if (arena.freed.meets([plan.offsets[i], plan.sizes[i]])) this.#safetySubmit(plan);
  }

  /** Adds the frees of the arena's lazy run since `lazyFrom` to what it keeps freed. */
  #track(arena: Arena): void {
    const run = arena.lazy;
    if (run === null) return;
    arena.lazy = null;
    const { ops, offsets, sizes } = run.plan;
    for (let k = arena.lazyFrom; k < run.op; k++) {
      const i = ~ops[k];
      if (i >= 0 && offsets[i] >= 0) arena.freed.add(offsets[i], sizes[i]);
    }
  }

  #safetySubmit(plan: Plan): void {
    plan.info.safetySubmits++;
    this.#host.submit();
  }
}

/** Ranges an arena keeps of what was freed since the last submit, before they merge into one. */
const FREED_RANGES = 32;

/**
 * The ranges freed in an arena since the last submit. Past
 * {@linkcode FREED_RANGES} ranges they become the one range that spans them
 * all: a loop that never submits frees the same blocks again and again, and
 * the list stays small (checks only err toward a submit). A fixed array: a
 * free costs two stores.
 */
class FreedRanges {
  #bounds = new Float64Array(2 * FREED_RANGES);
  #n = 0;

  get empty(): boolean {
    return this.#n === 0;
  }

  add(offset: number, size: number): void {
    const b = this.#bounds;
    if (this.#n === b.length) {
      let lo = offset;
      let hi = offset + size;
      for (let i = 0; i < b.length; i += 2) {
        lo = Math.min(lo, b[i]);
        hi = Math.max(hi, b[i + 1]);
      }
      b[0] = lo;
      b[1] = hi;
      this.#n = 2;
      return;
    }
    b[this.#n++] = offset;
    b[this.#n++] = offset + size;
  }

  clear(): void {
    this.#n = 0;
  }

  /** Whether any range meets one of `ranges` (a flat list of offset, size). */
  meets(ranges: readonly number[]): boolean {
    const b = this.#bounds;
    // Over `ranges` first: a plan with no early write (most) checks nothing.
    for (let j = 0; j < ranges.length; j += 2) {
      for (let i = 0; i < this.#n; i += 2) {
        if (b[i] < ranges[j] + ranges[j + 1] && ranges[j] < b[i + 1]) return true;
      }
    }
    return false;
  }
}
