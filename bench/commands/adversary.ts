// The adversary: a search for the workload on which the allocator's policy is worst, as peak
// reserved ÷ peak live replayed under an H100's limits. It starts from the real traces of the
// corpus (tests/testdata/pytorch) and from generated workloads, and mutates them:
//
//   scale      every size of one step (a stretch between two cuts) times one factor, as a
//              batch or an image size would change
//   reshape    each distinct size above 1 MiB times its own factor, the same at every use, as a
//              changed sequence length changes every tensor that depends on it
//   reorder    two steps swapped (a cut is a moment when every live block lives to the end, so a
//              step's frees name only its own blocks)
//   repeat     a step played again (with new block ids)
//
// A mutant replaces its parent when it is worse (hill climbing from every start, restarted at
// random). Workloads whose peak live is under --min-peak are not counted: a heap's smallest size
// dominates them, which says nothing about placement. The worst mutant found is reported with
// what its waste is made of at the moment of its peak reserved bytes (the heaps' free bytes by
// kind), which says what a fix has to remove.
//
// Run: deno task adversary [--tries N] [--seed N] [--conf S] [--min-peak BYTES] [--json]
import {
  allocConf,
  bytes,
  type Command,
  type Flag,
  integer,
  runCommand,
  toggle,
} from "../../allocator/tools/flags.ts";
import { replay } from "../../allocator/tools/replay.ts";
import { loadTraceFile } from "../../allocator/tools/load_trace.ts";
import { readTrace } from "../../allocator/tools/read_trace.ts";
import type { TraceEvent } from "../../allocator/trace.ts";
import { FakeDevice, HeapAllocator } from "../../mod.ts";
import { mulberry32 } from "../../kernels/_random.ts";
import { BIG_GPU_LIMITS, generate, KINDS } from "./trace_gen.ts";
import { REAL_TRACES_DIR } from "./fragmentation.ts";

/** The events the adversary works on: allocations, frees and submits of storage blocks. */
export type Op = ["a", number, number] | ["f", number, boolean] | ["submit"];

/** A workload and how it was made. */
export interface Workload {
  /** Where it started and the mutations applied, in order. */
  name: string;
  /** Its events. */
  ops: Op[];
}

/** A replayed workload. */
export interface Scored extends Workload {
  /** Peak reserved ÷ peak live. */
  ratio: number;
  /** Peak of live bytes (rounded blocks). */
  peakAllocated: number;
  /** GPUBuffers made. */
  createBufferCalls: number;
}

const MiB = 2 ** 20;
/** The largest block a mutation makes: an H100's binding limit. */
const MAX_BLOCK = BIG_GPU_LIMITS.maxStorageBufferBindingSize;

/** `size` times `f`, a whole number of bytes within 1 … {@linkcode MAX_BLOCK}. */
function scaled(size: number, f: number): number {
  return Math.min(MAX_BLOCK, Math.max(1, Math.round(size * f)));
}

/** The allocations, frees and submits of a trace's events, ids kept. */
export function toOps(events: readonly TraceEvent[]): Op[] {
  const ops: Op[] = [];
  for (const e of events) {
    if (e[0] === "a") ops.push(["a", e[1], e[2]]);
    else if (e[0] === "f") ops.push(["f", e[1], e[2] === true || e[2] === 1]);
    else if (e[0] === "submit") ops.push(["submit"]);
  }
  return ops;
}

/**
 * Indices at which every live block lives to the end: the stretches between
 * two of them can be moved, scaled or repeated without breaking the trace.
 *
 * @example
 * ```ts
 * import { cuts, type Op } from "./adversary.ts";
 * import assert from "node:assert/strict";
 *
 * const ops: Op[] = [["a", 1, 64], ["a", 2, 8], ["f", 2, false], ["a", 3, 8], ["f", 3, false]];
 * assert.deepEqual(cuts(ops), [0, 3]); // block 1 is never freed: a step starts after each free
 * ```
 */
export function cuts(ops: readonly Op[]): number[] {
  const freed = new Set<number>();
  for (const op of ops) if (op[0] === "f") freed.add(op[1]);
  const out: number[] = [];
  let mortal = 0; // live blocks that are freed later
  for (let i = 0; i < ops.length; i++) {
    if (mortal === 0 && (out.length === 0 || out[out.length - 1] < i - 1)) out.push(i);
    const op = ops[i];
    if (op[0] === "a" && freed.has(op[1])) mortal++;
    else if (op[0] === "f") mortal--;
  }
  return out;
}

/** The steps of a trace: `[start, end)` between consecutive cuts. */
function steps(ops: readonly Op[]): [number, number][] {
  const c = cuts(ops);
  const out: [number, number][] = [];
  for (let i = 0; i + 1 < c.length; i++) out.push([c[i], c[i + 1]]);
  if (c.length > 0 && c[c.length - 1] < ops.length) out.push([c[c.length - 1], ops.length]);
  return out;
}

/** A copy of `ops` whose ids are fresh from `next` on, frees following their allocations. */
function renumber(ops: readonly Op[], next: { id: number }): Op[] {
  const map = new Map<number, number>();
  return ops.map((op): Op => {
    if (op[0] === "a") {
      map.set(op[1], next.id);
      return ["a", next.id++, op[2]];
    }
    if (op[0] === "f") return ["f", map.get(op[1]) ?? op[1], op[2]];
    return op;
  });
}

function maxId(ops: readonly Op[]): number {
  let m = 0;
  for (const op of ops) if (op[0] === "a" && op[1] > m) m = op[1];
  return m;
}

/** The mutations, each a function of a workload and a random source; null when it does not apply. */
export const MUTATIONS: Record<string, (ops: Op[], random: () => number) => Op[] | null> = {
  scale(ops, random) {
    const s = steps(ops);
    if (s.length === 0) return null;
    const [a, b] = s[Math.floor(random() * s.length)];
    const f = 0.5 + random() * 1.5;
    return ops.map((op, i) =>
      i >= a && i < b && op[0] === "a" ? ["a", op[1], scaled(op[2], f)] : op
    );
  },
  reshape(ops, random) {
    const factors = new Map<number, number>();
    return ops.map((op): Op => {
      if (op[0] !== "a" || op[2] <= MiB) return op;
      let f = factors.get(op[2]);
      if (f === undefined) factors.set(op[2], f = 0.7 + random() * 0.7);
      return ["a", op[1], scaled(op[2], f)];
    });
  },
  reorder(ops, random) {
    const s = steps(ops);
    if (s.length < 2) return null;
    const i = Math.floor(random() * s.length);
    let j = Math.floor(random() * (s.length - 1));
    if (j >= i) j++;
    const [x, y] = i < j ? [s[i], s[j]] : [s[j], s[i]];
    return [
      ...ops.slice(0, x[0]),
      ...ops.slice(y[0], y[1]),
      ...ops.slice(x[1], y[0]),
      ...ops.slice(x[0], x[1]),
      ...ops.slice(y[1]),
    ];
  },
  repeat(ops, random) {
    const s = steps(ops);
    if (s.length === 0) return null;
    const [a, b] = s[Math.floor(random() * s.length)];
    const again = renumber(ops.slice(a, b), { id: maxId(ops) + 1 });
    return [...ops.slice(0, b), ...again, ...ops.slice(b)];
  },
};

/**
 * Transformer inference with the sequence length drawn anew every step:
 * per layer the attention scores (batch × heads × seq² floats, twice: the
 * scores and their softmax) come and go beside the residual stream, whose
 * blocks outlive a layer.
 */
export function varyingSequence(seed: number, steps = 30): Op[] {
  const random = mulberry32(seed);
  const batch = 2 + Math.floor(random() * 14);
  const hidden = 256 * (1 + Math.floor(random() * 4));
  const heads = hidden / 64;
  const layers = 2 + Math.floor(random() * 6);
  const ops: Op[] = [];
  let next = 1;
  const a = (size: number) => {
    ops.push(["a", next, Math.max(1, Math.round(size))]);
    return next++;
  };
  const f = (id: number) => ops.push(["f", id, false]);
  for (let l = 0; l < layers; l++) {
    for (const w of [3 * hidden * hidden, hidden * hidden, 4 * hidden * hidden]) a(w * 4);
    for (const w of [3 * hidden, hidden, 4 * hidden, hidden]) a(w * 4);
  }
  const [lo, hi] = [64 + Math.floor(random() * 256), 320 + Math.floor(random() * 256)];
  for (let step = 0; step < steps; step++) {
    const seq = lo + Math.floor(random() * (hi - lo));
    const bsh = batch * seq * hidden * 4;
    let x = a(bsh);
    for (let l = 0; l < layers; l++) {
      const qkv = a(3 * bsh);
      const scores = a(batch * heads * seq * seq * 4);
      const probs = a(batch * heads * seq * seq * 4);
      f(scores);
      const attn = a(bsh);
      f(probs);
      f(qkv);
      const h = a(bsh);
      f(attn);
      const mlp = a(4 * bsh);
      const act = a(4 * bsh);
      f(mlp);
      const out = a(bsh);
      f(act);
      f(h);
      f(x);
      x = out;
    }
    f(x);
  }
  return ops;
}

/**
 * Replays `ops` under `conf` with an H100's limits.
 *
 * @example
 * ```ts
 * import { score, varyingSequence } from "./adversary.ts";
 * import assert from "node:assert/strict";
 *
 * const s = score({ name: "v", ops: varyingSequence(1, 4) }, "");
 * assert.ok(s.ratio >= 1 && s.createBufferCalls > 0);
 * ```
 */
export function score(w: Workload, conf: string): Scored {
  const r = replay(w.ops, { allocConf: conf, limits: BIG_GPU_LIMITS });
  return {
    ...w,
    ratio: r.ratio,
    peakAllocated: r.peakAllocated,
    createBufferCalls: r.createBufferCalls,
  };
}

/** Where the free bytes lie at the moment of peak reserved bytes. */
export interface Waste {
  /** Peak reserved bytes. */
  peakReserved: number;
  /** Live bytes at that moment. */
  live: number;
  /** Bytes of blocks freed but waiting for a submit (no policy can hand them out yet). */
  pending: number;
  /** Bytes of heaps with nothing live in them (the cache). */
  idle: number;
  /** Free bytes of split heaps that hold live blocks. */
  splitFree: number;
  /** Bytes of heaps of one block beyond that block. */
  dedicatedSlack: number;
  /** Free bytes of the heap made last (its tail, if a split heap). */
  newestFree: number;
  /**
   * Free bytes of split heaps that were one block's heap first (Note [a cached heap becomes a
   * split heap] in allocator.ts): sized for a larger block, they keep room the blocks placed
   * in them since do not fill.
   */
  convertedFree: number;
  /** Heaps at that moment. */
  heaps: number;
}

/** Replays `ops` and takes apart the reserved bytes at their peak. */
export function waste(ops: readonly Op[], conf: string): Waste {
  const device = new FakeDevice({ limits: BIG_GPU_LIMITS });
  const heap = new HeapAllocator(device, { allocConf: conf });
  // The recording names the heaps that became split heaps: a split heap at the peak that the
  // recording ever names was converted before the peak (a split heap is never unsplit again).
  heap.startRecording();
  const live = new Map<number, ReturnType<typeof heap.alloc>>();
  let best: Waste | null = null;
  let peakSplitFree = new Map<number, number>();
  for (const op of ops) {
    if (op[0] === "a") live.set(op[1], heap.alloc(op[2]));
    else if (op[0] === "f") {
      const b = live.get(op[1])!;
      if (op[2]) void b.buffer;
      heap.free(b);
      live.delete(op[1]);
    } else heap.submit();
    const stats = heap.memoryStats();
    if (best && stats.reservedBytes.current <= best.peakReserved) continue;
    const w: Waste = {
      peakReserved: stats.reservedBytes.current,
      live: stats.allocatedBytes.current,
      pending: stats.pendingFreeBytes,
      idle: 0,
      splitFree: 0,
      dedicatedSlack: 0,
      newestFree: 0,
      convertedFree: 0,
      heaps: 0,
    };
    const snap = heap.snapshot();
    let newest = 0;
    peakSplitFree = new Map();
    for (const h of snap.heaps) {
      const used = h.blocks.reduce((n, b) => n + (b.state === "free" ? 0 : b.size), 0);
      w.heaps++;
      if (used === 0) w.idle += h.size;
      else if (h.isSplit) {
        w.splitFree += h.size - used;
        peakSplitFree.set(h.id, h.size - used);
      } else w.dedicatedSlack += h.size - used;
      if (h.id > newest) [newest, w.newestFree] = [h.id, h.size - used];
    }
    best = w;
  }
  for (const e of heap.stopRecording().events) {
    if (e[0] === "split") best!.convertedFree += peakSplitFree.get(e[1]) ?? 0;
  }
  heap.destroy();
  return best!;
}

/** The search's result: the worst workload found, and the starts it grew from. */
export interface SearchResult {
  /** The worst workload found. */
  worst: Scored;
  /** The starting workloads, scored. */
  starts: Scored[];
  /** Workloads replayed. */
  tries: number;
}

/** Hill-climbs from every start for `tries` replays in all; returns the worst found. */
export function search(
  starts: readonly Workload[],
  options: { tries: number; seed: number; conf: string; minPeak: number },
): SearchResult {
  const random = mulberry32(options.seed);
  const counts = (s: Scored) => s.peakAllocated >= options.minPeak;
  const scored = starts.map((w) => score(w, options.conf));
  const pool = scored.filter(counts);
  if (pool.length === 0) throw new Error("No starting workload has a peak live of --min-peak");
  let worst = pool.reduce((a, b) => (b.ratio > a.ratio ? b : a));
  const names = Object.keys(MUTATIONS);
  for (let t = 0; t < options.tries; t++) {
    // Mostly climb from the worst; sometimes from another start, to escape its hill.
    const parent = random() < 0.7 ? worst : pool[Math.floor(random() * pool.length)];
    const name = names[Math.floor(random() * names.length)];
    const ops = MUTATIONS[name](parent.ops, random);
    if (ops === null) continue;
    const child = score({ name: `${parent.name} → ${name}`, ops }, options.conf);
    if (!counts(child)) continue;
    pool.push(child);
    if (child.ratio > worst.ratio) worst = child;
  }
  return { worst, starts: scored, tries: options.tries };
}

/** The starting workloads: the corpus's real traces and generated ones. */
export async function startingWorkloads(dir: URL = REAL_TRACES_DIR): Promise<Workload[]> {
  const facts = JSON.parse(await Deno.readTextFile(new URL("facts.json", dir))).workloads;
  const out: Workload[] = [];
  for (const name of Object.keys(facts)) {
    const trace = readTrace(await loadTraceFile(new URL(`${name}.pickle.gz`, dir)));
    out.push({ name, ops: toOps(trace.events) });
  }
  for (const kind of KINDS) {
    out.push({ name: kind, ops: toOps(generate(kind, { seed: 1 }).events) });
  }
  for (let seed = 1; seed <= 4; seed++) {
    out.push({ name: `varying sequence ${seed}`, ops: varyingSequence(seed) });
  }
  return out;
}

/** The adversary command's flags. */
export const ADVERSARY_COMMAND = {
  name: "adversary",
  synopsis: "deno task adversary [flags]",
  about: "Searches for the workload on which the allocator is worst (peak reserved ÷ peak\n" +
    "live): mutates the real traces of tests/testdata/pytorch and generated workloads,\n" +
    "and reports the worst found with what its waste is made of.",
  flags: {
    tries: integer("mutants to replay (default 300)", { min: 1, max: 1_000_000 }),
    seed: integer("seed of the search (default 1)", { min: 0, max: 2 ** 31 }),
    conf: allocConf("the policy to attack (default: the default)"),
    "min-peak": bytes("least peak live a workload needs to count (default 64MiB)"),
    json: toggle("the result as JSON"),
  },
  notes: "Exit status: 0 on success, 1 on an error, 2 for bad flags.",
} satisfies Command<Record<string, Flag<unknown>>>;

if (import.meta.main) {
  Deno.exitCode = await runCommand(ADVERSARY_COMMAND, Deno.args, async ({ flags }) => {
    const conf = flags.conf.join(",");
    const result = search(await startingWorkloads(), {
      tries: flags.tries ?? 300,
      seed: flags.seed ?? 1,
      conf,
      minPeak: flags["min-peak"] ?? 64 * MiB,
    });
    const w = result.worst;
    const parts = waste(w.ops, conf);
    if (flags.json) {
      const { ops: _, ...worst } = w;
      console.log(JSON.stringify({ worst, waste: parts, tries: result.tries }, null, 2));
      return;
    }
    const mib = (n: number) => `${(n / MiB).toFixed(1)} MiB`;
    console.log(`policy: ${conf || "default"}; ${result.tries} mutants\n`);
    console.log("| start | reserved/live | createBuffer |\n|---|---:|---:|");
    for (const s of result.starts) {
      console.log(`| ${s.name} | ${s.ratio.toFixed(3)} | ${s.createBufferCalls} |`);
    }
    console.log(
      `\nworst: ${w.ratio.toFixed(3)} (peak live ${mib(w.peakAllocated)}, ${w.createBufferCalls}` +
        ` createBuffer calls)\n  from ${w.name}\n` +
        `at its peak reserved ${mib(parts.peakReserved)} in ${parts.heaps} heaps: live ${
          mib(parts.live)
        }, waiting for a submit ${mib(parts.pending)}, idle heaps ${
          mib(parts.idle)
        }, free in split heaps ${mib(parts.splitFree)} (of which the newest heap's ${
          mib(parts.newestFree)
        }, heaps that were one block's ${mib(parts.convertedFree)}), one-block heaps' slack ${
          mib(parts.dedicatedSlack)
        }`,
    );
  });
}
