/**
 * The trace:gen command: seeded synthetic traces for fragmentation
 * measurements, in the trace format (events `["a", id, size]`,
 * `["f", id, pending]`, `["submit"]`) with the limits of a large GPU (4 GiB
 * buffers, 2 GiB bindings) so requests up to 256 MiB fit.
 *
 * - `transformer`: batch and sequence length change every step; activations
 *   are batch×seq×hidden floats, saved per layer for the backward pass
 * - `training`: a few long-lived buffers (weights, gradients, optimizer state)
 *   and many short-lived activations of a fixed network
 * - `random`: sizes log-uniform in 256 B–256 MiB, random lifetimes
 *
 * ```sh
 * deno run -A jsr:@gpuheap/gpuheap/trace-gen KIND [--seed N] [--steps N] [--out FILE]
 * deno task trace:gen transformer --out transformer.json
 * ```
 *
 * Without `--out`, the trace goes to stdout.
 *
 * @example
 * ```ts
 * import { generate } from "@gpuheap/gpuheap/trace-gen";
 * import { replay } from "@gpuheap/gpuheap/tools";
 * import assert from "node:assert/strict";
 *
 * const trace = generate("training", { seed: 1, steps: 2 });
 * assert.deepEqual(generate("training", { seed: 1, steps: 2 }), trace);
 * assert.ok(replay(trace).peakAllocated > 0);
 * ```
 *
 * @module
 */
import { defaultSettings, makeTrace, type Trace, type TraceEvent } from "../../allocator/trace.ts";
import {
  choice,
  type Command,
  integer,
  runCommand,
  text,
  type ValueFlag,
} from "../../allocator/tools/flags.ts";
import { mulberry32 } from "../../kernels/_random.ts";

export type * from "../../allocator/trace.ts";
export type { Command, Flag, Positional, ValueFlag } from "../../allocator/tools/flags.ts";
export type { AllocatorSettings } from "../../allocator/config.ts";
export type { AllocatorLimits } from "../../allocator/device.ts";

/** Limits of the device generated traces are replayed on: an H100's, as Deno reports them. */
export const BIG_GPU_LIMITS = {
  maxBufferSize: 4 * 2 ** 30,
  maxStorageBufferBindingSize: 2 * 2 ** 30 - 4,
  maxUniformBufferBindingSize: 2 ** 16,
  minStorageBufferOffsetAlignment: 32,
  minUniformBufferOffsetAlignment: 256,
};

/** Options of a generator. */
export interface GenOptions {
  /** Seed of the PRNG: the same seed gives the same trace. */
  seed?: number;
  /** Training steps (or, for `random`, thousands of operations). */
  steps?: number;
}

/** The workloads {@linkcode generate} knows. */
export const KINDS = ["transformer", "training", "random"] as const;
/** One of {@linkcode KINDS}. */
export type Kind = typeof KINDS[number];

/** Collects events: blocks get fresh ids; frees of blocks used by GPU work wait for a submit. */
class Recorder {
  events: TraceEvent[] = [];
  #next = 1;
  alloc(size: number): number {
    const id = this.#next++;
    this.events.push(["a", id, Math.max(1, Math.round(size))]);
    return id;
  }
  free(id: number): void {
    this.events.push(["f", id, true]);
  }
  submit(): void {
    this.events.push(["submit"]);
  }
}

/**
 * A decoder-only transformer trained with batch size and sequence length
 * drawn anew every step (bucketed by 64 tokens, as padding does):
 * per layer the forward pass saves its input, the attention and MLP
 * activations; the backward pass frees them in reverse while gradients of the
 * same shapes come and go. Weights, gradients and Adam state live throughout.
 */
export function transformer(options: GenOptions = {}): TraceEvent[] {
  const random = mulberry32(options.seed ?? 1);
  const steps = options.steps ?? 40;
  const hidden = 1024;
  const layers = 12;
  const heads = 16;
  const r = new Recorder();
  const f32 = 4;
  // Long-lived: per layer the qkv, output and two MLP matrices; grads; Adam's m and v.
  const weightSizes = [
    3 * hidden * hidden,
    hidden * hidden,
    4 * hidden * hidden,
    4 * hidden * hidden,
  ];
  for (let copy = 0; copy < 4; copy++) {
    for (let l = 0; l < layers; l++) for (const w of weightSizes) r.alloc(w * f32);
  }
  r.submit();
  for (let step = 0; step < steps; step++) {
    const batch = 1 + Math.floor(random() * 16);
    const seq = 64 * (1 + Math.floor(random() * 16)); // 64 … 1024
    const bsh = batch * seq * hidden * f32;
    const saved: number[][] = [];
    let x = r.alloc(bsh); // embeddings
    for (let l = 0; l < layers; l++) {
      const ln = r.alloc(bsh);
      const qkv = r.alloc(3 * bsh);
      const scores = r.alloc(Math.min(batch * heads * seq * seq * f32, 256 * 2 ** 20));
      const attn = r.alloc(bsh);
      const proj = r.alloc(bsh);
      const mlp = r.alloc(4 * bsh);
      const out = r.alloc(bsh);
      r.submit();
      saved.push([x, ln, qkv, scores, attn, proj, mlp]);
      x = out;
    }
    const loss = r.alloc(batch * seq * f32);
    r.submit();
    r.free(loss);
    let grad = r.alloc(bsh);
    for (let l = layers - 1; l >= 0; l--) {
      // Gradients of the layer's activations, short-lived.
      const g1 = r.alloc(4 * bsh);
      const g2 = r.alloc(3 * bsh);
      const next = r.alloc(bsh);
      r.submit();
      r.free(g1);
      r.free(g2);
      r.free(grad);
      for (const id of saved[l]) r.free(id);
      grad = next;
    }
    r.free(grad);
    r.free(x);
    r.submit();
  }
  return r.events;
}

/**
 * A fixed convolutional network trained for many steps: weights, gradients
 * and optimizer state allocated once; per step each layer's activations
 * (from 64 MiB down to 1 MiB) are saved, then freed in the backward pass
 * with short-lived gradient buffers. One submit per layer, as in the
 * transformer.
 */
export function training(options: GenOptions = {}): TraceEvent[] {
  const random = mulberry32(options.seed ?? 2);
  const steps = options.steps ?? 60;
  const r = new Recorder();
  const layers = 16;
  const weights: number[] = [];
  for (let l = 0; l < layers; l++) {
    const size = (64 << 10) * (1 + Math.floor(random() * 64)); // 64 KiB … 4 MiB
    for (let copy = 0; copy < 4; copy++) weights.push(r.alloc(size)); // w, grad, m, v
  }
  const activation = Array.from(
    { length: layers },
    (_, l) => (64 << 20) / 2 ** Math.floor(l / 3) + (l % 3) * (96 << 10),
  );
  r.submit();
  for (let step = 0; step < steps; step++) {
    const saved: number[] = [];
    for (let l = 0; l < layers; l++) {
      saved.push(r.alloc(activation[l]));
      const tmp = r.alloc(activation[l] / 4 + 4096); // workspace of the layer's kernel
      r.free(tmp);
      r.submit();
    }
    for (let l = layers - 1; l >= 0; l--) {
      const g = r.alloc(activation[l]);
      const scratch = r.alloc(64 + Math.floor(random() * (256 << 10)));
      r.free(scratch);
      r.free(g);
      r.free(saved[l]);
      r.submit();
    }
    for (let s = 0; s < 8; s++) r.free(r.alloc(256 + Math.floor(random() * 4096))); // optimizer scalars
    r.submit();
  }
  return r.events;
}

/**
 * Sizes log-uniform in 256 B–256 MiB with random lifetimes: up to 48 blocks
 * live (a few GiB), a submit every 16 operations.
 */
export function random(options: GenOptions = {}): TraceEvent[] {
  const rand = mulberry32(options.seed ?? 3);
  const ops = (options.steps ?? 20) * 1000;
  const r = new Recorder();
  const live: number[] = [];
  for (let op = 0; op < ops; op++) {
    if (live.length < 48 && (live.length === 0 || rand() < 0.5)) {
      live.push(r.alloc(256 * 2 ** (rand() * 20))); // 2^8 … 2^28 bytes
    } else {
      const i = Math.floor(rand() * live.length);
      r.free(live[i]);
      live[i] = live[live.length - 1];
      live.pop();
    }
    if (op % 16 === 15) r.submit();
  }
  return r.events;
}

/** A trace of one workload, with the big GPU's limits in its settings. */
export function generate(kind: Kind, options: GenOptions = {}): Trace {
  const events = kind === "transformer"
    ? transformer(options)
    : kind === "training"
    ? training(options)
    : random(options);
  return makeTrace(events, { settings: defaultSettings(BIG_GPU_LIMITS) });
}

/** The trace:gen command's flags, by name. */
export type TraceGenFlags = {
  seed: ValueFlag<number>;
  steps: ValueFlag<number>;
  out: ValueFlag<string>;
};

/** The trace:gen command's arguments and flags. */
export const TRACE_GEN_COMMAND: Command<TraceGenFlags> = {
  name: "trace:gen",
  synopsis: "deno task trace:gen KIND [flags]",
  about: "Writes a seeded synthetic trace, with the limits of a large GPU in its settings.",
  positionals: [{ name: "KIND", ...choice(`the workload: ${KINDS.join(", ")}`, KINDS) }],
  flags: {
    seed: integer("seed of the PRNG: the same seed gives the same trace (default per kind)", {
      max: 2 ** 32 - 1,
    }),
    steps: integer("training steps, or for random thousands of operations (default 40/60/20)", {
      min: 1,
      max: 10_000,
    }),
    out: text("write the trace there (default: stdout)", { arg: "FILE", nonEmpty: true }),
  },
  notes: "From JSR: deno run -A jsr:@gpuheap/gpuheap/trace-gen KIND [flags]\n" +
    "Exit status: 0 on success, 1 if the file cannot be written, 2 for bad flags.",
};

if (import.meta.main) {
  Deno.exitCode = await runCommand(TRACE_GEN_COMMAND, Deno.args, ({ flags, positionals }) => {
    const trace = generate(positionals[0] as Kind, { seed: flags.seed, steps: flags.steps });
    const json = JSON.stringify(trace);
    if (flags.out !== undefined) Deno.writeTextFileSync(flags.out, json);
    else console.log(json);
  });
}
