// Helpers of the kernel tests: a seeded PRNG, the real device, poisoned
// outputs, and the relative-error comparison against float64 references.
import assert from "node:assert/strict";
import { HeapAllocator, type HeapAllocatorOptions } from "../allocator/allocator.ts";
import { requestDevice } from "../allocator/request_device.ts";
import type { RefTensor } from "../kernels/mod.ts";

/** A seeded PRNG (mulberry32): floats in [0, 1). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/** `count` values in [-1, 1), none of them zero, from the PRNG. */
export function randomValues(random: () => number, count: number): Float32Array<ArrayBuffer> {
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    let v = 0;
    while (v === 0) v = random() * 2 - 1;
    out[i] = v;
  }
  return out;
}

/** A random CPU tensor of `shape`. */
export function randomRef(random: () => number, shape: number[]): RefTensor & {
  data: Float32Array<ArrayBuffer>;
} {
  return { data: randomValues(random, shape.reduce((a, b) => a * b, 1)), shape };
}

let device: Promise<GPUDevice> | undefined;
const errors: string[] = [];

/**
 * The real adapter's device, shared by a test file. No adapter fails the
 * test with requestDevice's message, never skips it.
 */
export function gpu(): Promise<GPUDevice> {
  device ??= requestDevice().then((d) => {
    d.addEventListener("uncapturederror", (e) => {
      errors.push((e as GPUUncapturedErrorEvent).error.message);
    });
    // Released with the test file's module: devices left for process exit
    // to tear down have crashed the software adapter's driver.
    globalThis.addEventListener("unload", () => d.destroy());
    return d;
  });
  return device;
}

/** Whether the adapter has shader-f16, asked before tests are registered. */
export async function adapterHasF16(): Promise<boolean> {
  const adapter = await navigator.gpu?.requestAdapter();
  return adapter?.features.has("shader-f16") ?? false;
}

// NaN in both halves, so the poison is NaN read as f32 or as two f16s.
const POISON = 0x7fc07fc0;

/**
 * Makes every storage block `heap` hands out start as NaN (written with
 * `writeBuffer`, so it lands before any later submit), so an element an op
 * fails to write shows up as NaN in the comparison.
 */
export function poisonAllocations(heap: HeapAllocator): void {
  const alloc = heap.alloc.bind(heap);
  const dev = heap.device as GPUDevice;
  heap.alloc = (size, options) => {
    const block = alloc(size, options);
    if ((options?.usage ?? "storage") === "storage") {
      const words = Math.ceil(block.requestedSize / 4);
      dev.queue.writeBuffer(block.buffer, block.offset, new Uint32Array(words).fill(POISON));
    }
    return block;
  };
}

/**
 * Runs `fn` with a fresh allocator on the shared device (outputs poisoned
 * unless `poison` is false), and fails on any WebGPU validation error.
 */
export async function withHeap(
  fn: (heap: HeapAllocator, device: GPUDevice) => Promise<void> | void,
  options: HeapAllocatorOptions & { poison?: boolean } = {},
): Promise<void> {
  const dev = await gpu();
  const { poison = true, ...heapOptions } = options;
  dev.pushErrorScope("validation");
  const heap = new HeapAllocator(dev, heapOptions);
  if (poison) poisonAllocations(heap);
  try {
    await fn(heap, dev);
  } finally {
    const error = await dev.popErrorScope();
    heap.destroy();
    assert.equal(error?.message ?? null, null, "WebGPU validation error");
    assert.deepEqual(errors.splice(0), [], "uncaptured WebGPU errors");
  }
}

/** ||out - ref|| / ||ref||; NaN if any output is NaN. */
export function relativeError(out: ArrayLike<number>, ref: ArrayLike<number>): number {
  assert.equal(out.length, ref.length, "output length");
  let num = 0;
  let den = 0;
  for (let i = 0; i < ref.length; i++) {
    num += (out[i] - ref[i]) ** 2;
    den += ref[i] ** 2;
  }
  return den === 0 ? Math.sqrt(num) : Math.sqrt(num / den);
}

/** Asserts ||out - ref|| / ||ref|| <= tol, and that nothing is NaN. */
export function assertClose(
  out: ArrayLike<number>,
  ref: ArrayLike<number>,
  tol: number,
  what: string,
): void {
  const bad = Array.prototype.findIndex.call(out, (v: number) => Number.isNaN(v));
  assert.equal(bad, -1, `${what}: element ${bad} is NaN (not written?)`);
  const err = relativeError(out, ref);
  assert.ok(err <= tol, `${what}: relative error ${err} > ${tol}`);
}
