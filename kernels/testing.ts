/**
 * GPU memory checks for `deno test`: {@linkcode gpuTest} (or
 * {@linkcode withGpu} inside any test) gives a test a device and an
 * allocator, tears them down in a safe order whatever the test did, and
 * fails the test when blocks or tensors are still live at its end, naming
 * each with its label, size and the line that made it, the way Deno's
 * resource sanitizer names a leaked resource. Bounds on peak allocated and
 * reserved bytes fail it too. On a failure the snapshot, the trace and the
 * memory picture are written to a directory for CI to keep (see
 * {@linkcode GpuTestOptions.artifactsDir}). {@linkcode assertMemory} checks
 * current and peak bytes anywhere in a test.
 *
 * This entry lives beside the kernels rather than the allocator: it flushes
 * the kernels' command batch before it counts what is live (the allocator
 * knows nothing of tensors and must not import them), and it uses the
 * memory picture of the tools.
 *
 * See Note [exit crashes] for the one setting the process needs on Linux.
 *
 * @example
 * ```ts ignore
 * import { gpuTest } from "@gpuheap/gpuheap/testing";
 * import { relu, tensor } from "@gpuheap/gpuheap/kernels";
 *
 * gpuTest("relu() keeps positives", async ({ allocator }) => {
 *   using x = tensor(allocator, [1, -2, 3], [3]);
 *   using y = relu(x);
 *   console.log(await y.read()); // Float32Array [1, 0, 3]
 * }, { peakAllocated: "1MiB" });
 * ```
 *
 * @module
 */

// Note [exit crashes]
// ~~~~~~~~~~~~~~~~~~~
// Rationale. A `deno test` process that used WebGPU through wgpu's GL
// backend (Mesa's llvmpipe over EGL, the software adapter of a machine
// without Vulkan) aborts at exit now and then, after the tests passed:
// "double free or corruption (fasttop)" (SIGABRT) or SIGSEGV. A core dump
// shows the race: Deno stops its thread pool without waiting for it
// (`shutdown_background`) and calls `exit()`; the pool thread that ran the
// test file, which touched EGL, frees its thread-specific data on its way
// out while the main thread runs libEGL's (libglvnd's) library destructor,
// freeing dispatch state in the same heap arena; one free finds the other's
// chunk. The state belongs to the thread, not to a device, so no teardown a
// test can do reaches it: a test file that only makes and destroys a device,
// with nothing of gpuheap, aborted at exit too (1 run in 150).
//
// Approach. Keep EGL out of the process: `DENO_WEBGPU_BACKEND=vulkan` before
// the first adapter is requested. A machine without a GPU gets the same
// software rasterizer through Vulkan (Mesa's lavapipe, Debian's
// mesa-vulkan-drivers), so the tests still run on the CPU. This entry does
// not set it: the variable is read once per process, and a library that
// changed the user's backend behind their back would surprise more than it
// helps. CI sets it (see .ci/run).
//
// Teardown order. What this entry does control it does in the safe order:
// the batch is submitted, the queue is drained (`onSubmittedWorkDone`),
// then the allocator's buffers are destroyed, then the device it made, and
// the event loop turns once so wgpu frees what was destroyed before the
// module unloads.

import { HeapAllocator, type HeapAllocatorOptions } from "../allocator/allocator.ts";
import { parseBytes } from "../allocator/config.ts";
import { formatBytes } from "../allocator/format.ts";
import { requestDevice } from "../allocator/request_device.ts";
import type { Snapshot } from "../allocator/snapshot.ts";
import type { Trace } from "../allocator/trace.ts";
import { memvizHtml } from "../allocator/tools/memviz.ts";
import { commandBatchOf } from "./command_batch.ts";

// The context names the allocator and its types: the root entry's types, for the docs.
export type * from "../mod.ts";

/** Where artifacts go when neither the option nor the environment says. */
export const DEFAULT_ARTIFACTS_DIR = "gpuheap-test-artifacts";
/** The environment variable naming the artifacts directory. */
export const ARTIFACTS_ENV = "GPUHEAP_TEST_ARTIFACTS";
/** Frames read from a stack to find the user's call site past ours (ops nest about 8 deep). */
const SITE_DEPTH = 40;
/** User frames named per leaked block: the line that made it and its caller. */
const SITE_FRAMES = 2;
/** Files of the package itself: a call site is the first frame outside them. */
const PACKAGE_DIRS = [
  new URL("../allocator/", import.meta.url).href,
  new URL("./", import.meta.url).href,
];

/** Byte bounds of {@linkcode assertMemory}: a number of bytes or a string such as `"64MiB"`. */
export interface MemoryBounds {
  /** Most bytes in live blocks now. */
  allocated?: number | string;
  /** Most bytes in live blocks at the peak. */
  peakAllocated?: number | string;
  /** Most bytes in heaps (GPUBuffers) held now. */
  reserved?: number | string;
  /** Most bytes in heaps held at the peak. */
  peakReserved?: number | string;
}

/** Options of {@linkcode gpuTest} and {@linkcode withGpu}. */
export interface GpuTestOptions {
  /** Most bytes in live blocks at any moment of the test (default: no bound). */
  peakAllocated?: number | string;
  /** Most bytes in heaps held at any moment of the test (default: no bound). */
  peakReserved?: number | string;
  /**
   * Blocks the test may leave live, by label: a string is an exact label, a
   * RegExp is tested against it (default: none; every live block fails).
   */
  allowLive?: readonly (string | RegExp)[];
  /**
   * Directory for a failed test's snapshot, trace and picture (default: the
   * environment variable `GPUHEAP_TEST_ARTIFACTS`, else
   * `gpuheap-test-artifacts` under the working directory). Writing needs
   * `--allow-write`; without it the failure says so.
   */
  artifactsDir?: string;
  /** Options of the test's allocator. */
  allocator?: HeapAllocatorOptions;
  /**
   * A device to use instead of one of the test's own; it is drained but not
   * destroyed at the end (default: a device made for the test and destroyed
   * after it).
   */
  device?: GPUDevice;
  /** Name of the test, for the artifacts' file names (gpuTest passes its own). */
  name?: string;
}

/** What the test's function gets. */
export interface GpuTestContext {
  /** The test's device. */
  device: GPUDevice;
  /** The test's allocator, recording a trace with call sites. */
  allocator: HeapAllocator;
}

/** A test left blocks live, or its memory went past a bound. */
export class GpuMemoryError extends Error {
  /** Where the snapshot, trace and picture were written, or null if they could not be. */
  readonly artifacts: string | null;

  /**
   * Creates the error.
   *
   * @param message what failed
   * @param artifacts the artifacts' directory, or null
   */
  constructor(message: string, artifacts: string | null) {
    super(message);
    this.name = "GpuMemoryError";
    this.artifacts = artifacts;
  }
}

/**
 * Registers a `Deno.test` whose function gets a fresh device and allocator
 * (see {@linkcode withGpu} for what is checked at its end).
 *
 * @example
 * ```ts ignore
 * import { gpuTest } from "@gpuheap/gpuheap/testing";
 * import { empty } from "@gpuheap/gpuheap";
 *
 * gpuTest("a tensor disposed is not a leak", ({ allocator }) => {
 *   empty(allocator, [1024]).dispose();
 * });
 * ```
 *
 * @param name the test's name
 * @param fn the test
 * @param options bounds, blocks allowed to stay live, artifacts, allocator options
 */
export function gpuTest(
  name: string,
  fn: (context: GpuTestContext) => unknown,
  options: GpuTestOptions & Pick<Deno.TestDefinition, "ignore" | "only"> = {},
): void {
  const { ignore, only, ...rest } = options;
  Deno.test({ name, ignore, only, fn: () => withGpu(fn, { name, ...rest }) });
}

/**
 * Runs `fn` with a device and an allocator recording a trace with call
 * sites, then, whatever `fn` did: submits the tensors' command batch, frees
 * its parameter slots, drains the queue, and checks that no block is live
 * (but those `allowLive` names) and that the peaks kept within their bounds;
 * then destroys the allocator and the device it made. A failure throws a
 * {@linkcode GpuMemoryError} naming each live block (label, size, pool and
 * the user's lines that made it) or the bound passed with the memory
 * summary, after writing the snapshot, trace and picture to the artifacts
 * directory. An error of `fn` is rethrown as it was, after the same
 * teardown and artifacts.
 *
 * @example
 * ```ts
 * import { withGpu } from "@gpuheap/gpuheap/testing";
 * import { tensor } from "@gpuheap/gpuheap";
 * import assert from "node:assert/strict";
 *
 * await withGpu(({ allocator }) => {
 *   using t = tensor(allocator, [1, 2, 3, 4], [4]);
 *   assert.equal(t.label, "tensor");
 * }, { peakAllocated: "1MiB" });
 * ```
 *
 * @param fn the test's body
 * @param options bounds, blocks allowed to stay live, artifacts, allocator options
 * @throws {GpuMemoryError} blocks left live, or a bound passed
 * @throws {TypeError} a bad option
 */
export async function withGpu(
  fn: (context: GpuTestContext) => unknown,
  options: GpuTestOptions = {},
): Promise<void> {
  const bounds = readBounds(options);
  const device = options.device ?? await requestDevice();
  const allocator = new HeapAllocator(device, options.allocator);
  const sites = watchSites(allocator);
  allocator.startRecording({ stacks: true });
  let failure: unknown = null;
  let failed = false;
  try {
    await fn({ device, allocator });
  } catch (error) {
    [failure, failed] = [error, true];
  }
  let problems: string[] = [];
  let snapshot: Snapshot | null = null;
  let trace: Trace | null = null;
  try {
    if (!allocator.destroyed) {
      flushBatch(allocator);
      problems = [
        ...leaks(allocator.snapshot(), sites, bounds.allowLive),
        ...boundsPassed(allocator, bounds),
      ];
      if (failed || problems.length > 0) snapshot = allocator.snapshot();
      if (allocator.recording) trace = allocator.stopRecording();
    }
  } catch (error) {
    // A check that cannot run (a lost device) fails the test, unless it already failed.
    if (!failed) [failure, failed] = [error, true];
  } finally {
    await teardown(device, allocator, options.device === undefined);
  }
  if (!failed && problems.length === 0) return;
  const dir = await writeArtifacts(options, snapshot, trace);
  const where = dir.path ? `artifacts written to ${dir.path}` : dir.why;
  if (failed) {
    console.error(`gpuheap: test failed; ${where}`);
    throw failure;
  }
  throw new GpuMemoryError(`${problems.join("\n")}\n(${where})`, dir.path);
}

/**
 * Asserts the allocator's current and peak allocated and reserved bytes are
 * within `bounds`; the error names each bound passed and shows
 * `memorySummary()`.
 *
 * @example
 * ```ts
 * import { assertMemory } from "@gpuheap/gpuheap/testing";
 * import { FakeDevice, HeapAllocator } from "@gpuheap/gpuheap";
 * import assert from "node:assert/strict";
 *
 * const heap = new HeapAllocator(new FakeDevice());
 * heap.free(heap.alloc(3 << 20));
 * assertMemory(heap, { allocated: 0, peakAllocated: "3MiB" });
 * assert.throws(() => assertMemory(heap, { peakReserved: "1MiB" }), /peak reserved 32\.00 MiB > 1\.00 MiB/);
 * heap.destroy();
 * ```
 *
 * @param allocator the allocator to check
 * @param bounds the bounds (each unset one is not checked)
 * @throws {GpuMemoryError} a bound passed
 * @throws {TypeError} a bound that is not bytes
 */
export function assertMemory(allocator: HeapAllocator, bounds: MemoryBounds): void {
  const passed = boundsPassed(allocator, readMemoryBounds(bounds));
  if (passed.length > 0) throw new GpuMemoryError(passed.join("\n"), null);
}

// ---- internals ----

interface ReadBounds {
  allocated: number | null;
  peakAllocated: number | null;
  reserved: number | null;
  peakReserved: number | null;
  allowLive: readonly (string | RegExp)[];
}

function readMemoryBounds(b: MemoryBounds): ReadBounds {
  if (!b || typeof b !== "object") {
    throw new TypeError(`Cannot check memory: bounds must be an object, got ${b}`);
  }
  const read = (v: number | string | undefined, what: string) =>
    v === undefined ? null : parseBytes(v, what);
  return {
    allocated: read(b.allocated, "allocated bound"),
    peakAllocated: read(b.peakAllocated, "peakAllocated bound"),
    reserved: read(b.reserved, "reserved bound"),
    peakReserved: read(b.peakReserved, "peakReserved bound"),
    allowLive: [],
  };
}

function readBounds(o: GpuTestOptions): ReadBounds {
  if (!o || typeof o !== "object") {
    throw new TypeError(`Cannot run the GPU test: options must be an object, got ${o}`);
  }
  const allowLive = o.allowLive ?? [];
  if (
    !Array.isArray(allowLive) ||
    !allowLive.every((p) => typeof p === "string" || p instanceof RegExp)
  ) {
    throw new TypeError(
      `Cannot run the GPU test: allowLive must be a list of labels or RegExps, got ${allowLive}`,
    );
  }
  if (o.artifactsDir !== undefined && typeof o.artifactsDir !== "string") {
    throw new TypeError(
      `Cannot run the GPU test: artifactsDir must be a string, got ${o.artifactsDir}`,
    );
  }
  return {
    ...readMemoryBounds({ peakAllocated: o.peakAllocated, peakReserved: o.peakReserved }),
    allowLive,
  };
}

/** The bounds `allocator` passed, one line each, with the summary after them. */
function boundsPassed(allocator: HeapAllocator, b: ReadBounds): string[] {
  const s = allocator.memoryStats();
  const checks: [string, number, number | null][] = [
    ["allocated", s.allocatedBytes.current, b.allocated],
    ["peak allocated", s.allocatedBytes.peak, b.peakAllocated],
    ["reserved", s.reservedBytes.current, b.reserved],
    ["peak reserved", s.reservedBytes.peak, b.peakReserved],
  ];
  const lines = checks.filter(([, v, max]) => max !== null && v > max).map(([what, v, max]) =>
    `GPU memory past its bound: ${what} ${formatBytes(v)} > ${formatBytes(max!)}`
  );
  return lines.length === 0 ? [] : [...lines, allocator.memorySummary()];
}

/**
 * Call sites of live blocks, by block id: the stack is taken at each
 * allocation and formatted only for a block still live at the end.
 */
function watchSites(allocator: HeapAllocator): Map<number, Error> {
  const sites = new Map<number, Error>();
  const stack = () => {
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = SITE_DEPTH;
    const e = new Error();
    Error.stackTraceLimit = limit;
    return e;
  };
  const { alloc, scalar, free } = allocator;
  allocator.alloc = function (size, options) {
    const block = alloc.call(this, size, options);
    sites.set(block.id, stack());
    return block;
  };
  allocator.scalar = function (value, type) {
    const block = scalar.call(this, value, type);
    sites.set(block.id, stack());
    return block;
  };
  allocator.free = function (block) {
    free.call(this, block);
    sites.delete(block.id);
  };
  return sites;
}

/** The user's frames of a stack: the innermost ones outside this package and the runtime. */
export function userSite(stack: string): string {
  const frames: string[] = [];
  for (const line of stack.split("\n").slice(1)) {
    const m = /^\s*at (?:async )?(?:.*? \()?((?:file|https?):\/\/\S+?:\d+:\d+)\)?$/.exec(line);
    if (!m || PACKAGE_DIRS.some((dir) => m[1].startsWith(dir))) continue;
    frames.push(shortPath(m[1]));
    if (frames.length === SITE_FRAMES) break;
  }
  return frames.join(" ← ");
}

/** A file URL relative to the working directory where it lies below it. */
function shortPath(url: string): string {
  if (!url.startsWith("file://")) return url;
  let cwd = "";
  try {
    cwd = Deno.cwd();
  } catch {
    // no read permission: keep the whole path
  }
  const path = decodeURIComponent(url.slice("file://".length));
  return cwd && path.startsWith(cwd + "/") ? path.slice(cwd.length + 1) : path;
}

/** One line per live block not allowed, naming it. */
function leaks(
  snapshot: Snapshot,
  sites: Map<number, Error>,
  allowLive: readonly (string | RegExp)[],
): string[] {
  const lines: string[] = [];
  for (const heap of snapshot.heaps) {
    for (const b of heap.blocks) {
      if (b.state !== "live" || b.id === null) continue;
      const label = b.label ?? "";
      if (allowLive.some((p) => typeof p === "string" ? p === label : p.test(label))) continue;
      const site = sites.get(b.id)?.stack;
      const made = site ? userSite(site) : "";
      lines.push(
        `  block #${b.id} ${b.label === null ? "(no label)" : JSON.stringify(b.label)}: ` +
          `${formatBytes(b.requestedSize)} (${b.usage}, ${heap.pool} pool)` +
          (made ? `, made at ${made}` : ""),
      );
    }
  }
  if (lines.length === 0) return [];
  return [
    `Test left ${lines.length} GPU block${lines.length === 1 ? "" : "s"} live ` +
    `(dispose tensors, free blocks, or name them in allowLive):`,
    ...lines,
  ];
}

/** Submits what ops recorded and frees the batch's parameter slots, which are not the test's. */
function flushBatch(allocator: HeapAllocator): void {
  // A batch is made on first use: an allocator that never placed a block has none to flush.
  if (allocator.memoryStats().allocations === 0) return;
  const batch = commandBatchOf(allocator);
  batch.submit();
  batch.releaseParams();
}

/** Drains the queue, destroys the allocator, then the device if it is ours (Note [exit crashes]). */
async function teardown(device: GPUDevice, allocator: HeapAllocator, own: boolean): Promise<void> {
  try {
    await device.queue.onSubmittedWorkDone();
  } catch {
    // a lost device has no work left to wait for
  }
  allocator.destroy();
  if (own) device.destroy();
  await new Promise((resolve) => setTimeout(resolve, 0));
}

/** Writes the artifacts; returns the directory, or why it could not. */
async function writeArtifacts(
  options: GpuTestOptions,
  snapshot: Snapshot | null,
  trace: Trace | null,
): Promise<{ path: string | null; why: string }> {
  let root: string;
  try {
    root = options.artifactsDir ?? Deno.env.get(ARTIFACTS_ENV) ?? DEFAULT_ARTIFACTS_DIR;
  } catch {
    root = options.artifactsDir ?? DEFAULT_ARTIFACTS_DIR; // no env permission
  }
  const name = (options.name ?? "gpu-test").replace(/[^A-Za-z0-9._-]+/g, "_").slice(0, 80);
  const dir = `${root}/${name}`;
  try {
    await Deno.mkdir(dir, { recursive: true });
    if (snapshot) await Deno.writeTextFile(`${dir}/snapshot.json`, JSON.stringify(snapshot));
    if (trace) {
      await Deno.writeTextFile(`${dir}/trace.json`, JSON.stringify(trace));
      await Deno.writeTextFile(`${dir}/memory.html`, memvizHtml(trace, { title: name }));
    }
    return { path: dir, why: "" };
  } catch (error) {
    return { path: null, why: `artifacts not written to ${dir}: ${(error as Error).message}` };
  }
}
