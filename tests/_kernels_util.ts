// Helpers of the kernel tests: the shared seeded PRNG, the real device,
// poisoned outputs, and the comparison against float64 references.
import assert from "node:assert/strict";
import { HeapAllocator, type HeapAllocatorOptions } from "../allocator/allocator.ts";
import { requestDevice } from "../allocator/request_device.ts";
import { type RefConvWeights, type RefTensor, relativeError } from "../kernels/reference.ts";
import type { ConvWeights } from "../kernels/pipeline.ts";
import { commandBatchOf, type TensorAllocator } from "../kernels/command_batch.ts";
import { type Tensor, tensor } from "../kernels/tensor.ts";
import { randomValues } from "../kernels/_random.ts";
import { type GpuTestOptions, withGpu } from "../kernels/testing.ts";

/** The shared seeded PRNG (mulberry32) and its non-zero values in [-1, 1). */
export { mulberry32 as rng, randomValues } from "../kernels/_random.ts";

/** A random CPU tensor of `shape`. */
export function randomRef(random: () => number, shape: number[]): RefTensor & {
  data: Float32Array<ArrayBuffer>;
} {
  return { data: randomValues(random, shape.reduce((a, b) => a * b, 1)), shape };
}

/** Random 3x3 weights and biases for convolutions cin -> channels[0] -> channels[1] -> …. */
export function randomWeights(
  random: () => number,
  cin: number,
  channels: number[],
): RefConvWeights[] {
  return channels.map((cout, i) => {
    const prev = i === 0 ? cin : channels[i - 1];
    // Scaled like PyTorch's default init so activations stay O(1) across stages.
    const scale = 1 / Math.sqrt(prev * 9);
    const w = randomRef(random, [cout, prev, 3, 3]);
    w.data.forEach((v, j) => (w.data[j] = v * scale));
    return { weight: w, bias: randomRef(random, [cout]) };
  });
}

/** Uploads CPU weights as tensors. */
export function uploadWeights(
  allocator: TensorAllocator,
  weights: RefConvWeights[],
): ConvWeights[] {
  return weights.map((w) => ({
    weight: tensor(allocator, w.weight.data, w.weight.shape),
    bias: w.bias ? tensor(allocator, w.bias.data, w.bias.shape) : null,
  }));
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
export const hasF16: boolean =
  (await navigator.gpu?.requestAdapter())?.features.has("shader-f16") ?? false;

/**
 * Registers a test of f16 tensors (storage in f16, accumulation in f32); on
 * an adapter without shader-f16 it is registered as ignored, with the reason
 * in its name.
 */
export function f16Test(name: string, fn: () => Promise<void>): void {
  Deno.test({ name: `${name} (f16, needs shader-f16)`, ignore: !hasF16, fn });
}

/** The tensor's values rounded to f16, as the GPU sees them. */
export function half(t: RefTensor & { data: Float32Array }): RefTensor & { data: Float32Array } {
  return { data: Float32Array.from(Float16Array.from(t.data)), shape: t.shape };
}

/** A tensor of `shape` filled with 0.5. */
export function filled(allocator: TensorAllocator, shape: number[]): Tensor {
  return tensor(allocator, new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(0.5), shape);
}

/**
 * Asserts `fn` throws an error of class `type` whose message is `pattern`
 * (or matches it), and that it left the batch and the allocator as they
 * were: no dispatch recorded, no block kept.
 */
export function assertRejected(
  allocator: HeapAllocator,
  type: new (...args: never[]) => Error,
  fn: () => unknown,
  pattern: RegExp | string,
): void {
  const batch = commandBatchOf(allocator);
  const dispatches = batch.dispatches;
  const blocks = allocator.memoryStats().blocks;
  assert.throws(fn, (e: Error) => {
    assert.ok(e instanceof type, `expected a ${type.name}, got ${e?.name}: ${e?.message}`);
    if (typeof pattern === "string") assert.equal(e.message, pattern);
    else assert.match(e.message, pattern);
    return true;
  });
  assert.equal(batch.dispatches, dispatches, "a rejected call recorded a dispatch");
  assert.equal(allocator.memoryStats().blocks, blocks, "a rejected call kept a block");
}

// NaN in both halves, so the poison is NaN read as f32 or as two f16s.
const POISON = 0x7fc07fc0;

/**
 * Makes every storage block `allocator` hands out start as NaN (written with
 * `writeBuffer`, so it lands before any later submit), so an element an op
 * fails to write shows up as NaN in the comparison.
 */
export function poisonAllocations(allocator: HeapAllocator): void {
  const alloc = allocator.alloc.bind(allocator);
  const dev = allocator.device as GPUDevice;
  allocator.alloc = (size, options) => {
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
export async function withAllocator(
  fn: (allocator: HeapAllocator, device: GPUDevice) => Promise<void> | void,
  options: HeapAllocatorOptions & { poison?: boolean } = {},
): Promise<void> {
  const dev = await gpu();
  const { poison = true, ...allocatorOptions } = options;
  dev.pushErrorScope("validation");
  const allocator = new HeapAllocator(dev, allocatorOptions);
  if (poison) poisonAllocations(allocator);
  try {
    await fn(allocator, dev);
  } finally {
    const error = await dev.popErrorScope();
    // Work the test left on the queue finishes before its buffers go.
    await dev.queue.onSubmittedWorkDone();
    allocator.destroy();
    assert.equal(error?.message ?? null, null, "WebGPU validation error");
    assert.deepEqual(errors.splice(0), [], "uncaptured WebGPU errors");
  }
}

/**
 * Runs `fn` as {@linkcode withAllocator} does (the shared device, outputs
 * poisoned, validation errors failing) under the testing entry's checks: a
 * block or tensor still live at the end fails the test, named with the line
 * that made it, as do `options`' peak bounds.
 */
export async function withCheckedAllocator(
  fn: (allocator: HeapAllocator, device: GPUDevice) => Promise<void> | void,
  options: GpuTestOptions = {},
): Promise<void> {
  const dev = await gpu();
  await withGpu(async ({ allocator }) => {
    dev.pushErrorScope("validation");
    poisonAllocations(allocator);
    try {
      await fn(allocator, dev);
    } finally {
      const error = await dev.popErrorScope();
      assert.equal(error?.message ?? null, null, "WebGPU validation error");
      assert.deepEqual(errors.splice(0), [], "uncaptured WebGPU errors");
    }
  }, { device: dev, ...options });
}

/** Asserts ||out - ref|| / ||ref|| <= tol, and that nothing is NaN. */
export function assertClose(
  out: ArrayLike<number>,
  ref: ArrayLike<number>,
  tol: number,
  what: string,
): void {
  assert.equal(out.length, ref.length, `${what}: output length`);
  const bad = Array.prototype.findIndex.call(out, (v: number) => Number.isNaN(v));
  assert.equal(bad, -1, `${what}: element ${bad} is NaN (not written?)`);
  const err = relativeError(out, ref);
  assert.ok(err <= tol, `${what}: relative error ${err} > ${tol}`);
}

/**
 * Runs `fn` with `target[name]` wrapped to count its calls (the method stays
 * the same function underneath); returns what `fn` returned and the count,
 * and restores the method even if `fn` throws.
 */
export async function countCalls<T>(
  target: object,
  name: string,
  fn: () => Promise<T> | T,
): Promise<[T, number]> {
  const o = target as Record<string, unknown>;
  const own = Object.hasOwn(o, name);
  const original = o[name] as (...args: unknown[]) => unknown;
  let calls = 0;
  o[name] = function (this: unknown, ...args: unknown[]) {
    calls++;
    return original.apply(this, args);
  };
  try {
    return [await fn(), calls];
  } finally {
    if (own) o[name] = original;
    else delete o[name];
  }
}

/**
 * Runs `fn` and returns what it returned and the kernels it recorded, in
 * order: the name of each dispatch's shader (its label up to the first
 * comma, as the shader cache labels them; with `whole`, the whole label with
 * the program's fields), so a test sees which kernel ran and not only that
 * the numbers came out right.
 */
export function kernelsOf<T>(fn: () => T, whole = false): [T, string[]] {
  const names: string[] = [];
  const proto = GPUComputePassEncoder.prototype;
  const setPipeline = proto.setPipeline;
  proto.setPipeline = function (this: GPUComputePassEncoder, shader: GPUComputePipeline) {
    names.push(whole ? shader.label : shader.label.split(",")[0]);
    return setPipeline.call(this, shader);
  };
  try {
    return [fn(), names];
  } finally {
    proto.setPipeline = setPipeline;
  }
}

/**
 * Bytes of live tensors: the allocator's current allocated memory less the
 * uniform pool's, where the command batch keeps the ops' parameter slots
 * allocated between ops by design.
 */
export function tensorBytes(allocator: HeapAllocator): number {
  return allocator.currentAllocatedMemory() -
    allocator.memoryStats().pools.uniform.allocatedBytes.current;
}
