/**
 * Tensors: an NCHW shape, an element type and a block of an allocator;
 * uploads by `queue.writeBuffer`, readbacks through staging blocks of the
 * allocator's readback pool, many at once.
 *
 * @module
 */

import { checkShape, checkValues, describe, formatShape, show } from "./_geometry.ts";
import type { DType } from "./_prelude.ts";
import {
  checkDevice,
  commandBatchOf,
  freeTensorBlock,
  gpuDeviceOf,
  type TensorAllocator,
  type TensorBlock,
} from "./command_batch.ts";
import { track } from "./scope.ts";
import { parseDebug, readEnv } from "../allocator/config.ts";
import { AllocatorError } from "../allocator/errors.ts";
import { formatBytes } from "../allocator/format.ts";

export type { DType } from "./_prelude.ts";

/** The typed array a tensor reads back as: `Float32Array` for f32, `Float16Array` for f16. */
export type TensorData = Float32Array | Float16Array;

/** Options of {@linkcode tensor} and {@linkcode empty}. */
export interface TensorOptions {
  /** Element type (default `"f32"`; `"f16"` needs the device feature `shader-f16`). */
  dtype?: DType;
  /** A name for snapshots, debug output and leak reports (default `"tensor"`). */
  label?: string;
  /**
   * The tensor outlives many others, as a model's weights do: a
   * `HeapAllocator` gives it a GPUBuffer of its own rather than a range
   * among short-lived tensors (`AllocOptions.longLived`). Default false.
   */
  longLived?: boolean;
}

const BYTES: Record<DType, number> = { f32: 4, f16: 2 };

/** What a leak report says of a tensor (nothing that keeps it alive). */
interface LeakInfo {
  label: string;
  shape: readonly number[];
  dtype: DType;
  bytes: number;
}

// Set by empty() around a constructor call whose arguments it checked.
let checked = false;

let derivedOf: (t: Tensor) => Map<string, Tensor>;

/**
 * @internal what ops computed from `t` and keep while it lives, by key: a
 * tensor's contents never change (no op writes into one), so a weight packed
 * for a kernel once serves every later call. Disposed with `t`.
 */
export function derivedTensors(t: Tensor): Map<string, Tensor> {
  return derivedOf(t);
}

// Tensors are watched only while leak reports are on: registering costs
// about as much as the rest of making a tensor.
let leakReport: ((line: string) => void) | null = debugFromEnv() ? (l) => console.error(l) : null;
const leaks = new FinalizationRegistry<LeakInfo>((info) => {
  leakReport?.(
    `gpuheap: tensor "${info.label}" ${formatShape(info.shape)} ${info.dtype} (${
      formatBytes(info.bytes)
    }) was garbage-collected without dispose(): its block stays allocated until the allocator is destroyed`,
  );
});

/** The allocator's `leak` debug flag (`GPUHEAP_DEBUG=leak`, `1` or `all`) covers tensors too. */
function debugFromEnv(): boolean {
  try {
    return parseDebug(readEnv("GPUHEAP_DEBUG")).leaks;
  } catch {
    return false; // malformed flags: the allocator that reads them says so
  }
}

/**
 * Turns the report of leaked tensors on or off: with it on, each tensor made
 * afterwards that is garbage-collected without `dispose()` is reported once,
 * with its label, shape, dtype and size. It starts on when the environment
 * variable `GPUHEAP_DEBUG` holds the flag `leak` (or `1`, `all`), and
 * reports to `console.error`.
 *
 * @example
 * ```ts
 * import { empty, FakeDevice, HeapAllocator, reportTensorLeaks } from "@gpuheap/gpuheap";
 * import assert from "node:assert/strict";
 *
 * const lines: string[] = [];
 * reportTensorLeaks((line) => lines.push(line));
 * const allocator = new HeapAllocator(new FakeDevice());
 * empty(allocator, [4], { label: "scratch" }).dispose(); // disposed: never reported
 * reportTensorLeaks(false);
 * assert.deepEqual(lines, []);
 * ```
 *
 * @param report `true` for `console.error`, a function to receive each line, or `false`
 */
export function reportTensorLeaks(report: boolean | ((line: string) => void)): void {
  leakReport = typeof report === "function"
    ? report
    : report
    ? (line) => console.error(line)
    : null;
}

/**
 * A tensor on the GPU: a shape (NCHW for images), an element type and a
 * block of its allocator. Ops take tensors and return new ones; nothing
 * writes into an existing tensor. Free its memory with `dispose()`, with
 * `using`, or by making it inside a {@linkcode scope}.
 *
 * | operation | cost                                               |
 * | --------- | -------------------------------------------------- |
 * | read      | one submit and one `mapAsync` (about 11 ms in Deno) |
 * | dispose   | O(1)                                               |
 *
 * @example
 * ```ts
 * import { HeapAllocator, relu, requestDevice, tensor } from "@gpuheap/gpuheap";
 * import assert from "node:assert/strict";
 *
 * const device = await requestDevice();
 * const allocator = new HeapAllocator(device);
 * {
 *   using t = tensor(allocator, [1, -2, 3, -4, 5, -6], [1, 1, 2, 3]);
 *   using y = relu(t);
 *   assert.deepEqual(y.shape, [1, 1, 2, 3]);
 *   assert.deepEqual([...await y.read()], [1, 0, 3, 0, 5, 0]);
 * } // both disposed here: no storage block is left (the op's parameter slot, a uniform, stays)
 * assert.equal(allocator.memoryStats().pools.small.allocatedBytes.current, 0);
 * allocator.destroy();
 * device.destroy();
 * ```
 */
export class Tensor implements Disposable {
  /** The allocator the block came from. */
  readonly allocator: TensorAllocator;
  /** Sizes of each dimension. */
  readonly shape: readonly number[];
  /** Element type. */
  readonly dtype: DType;
  /** Number of elements. */
  readonly numel: number;
  /** The name snapshots, debug output and leak reports show. */
  readonly label: string;
  #block: TensorBlock | null;
  #watched = false;
  /** Tensors ops computed from this one and keep (packed weights), by what they are. */
  #derived: Map<string, Tensor> | null = null;

  static {
    derivedOf = (t) => (t.#derived ??= new Map());
  }

  /**
   * Wraps a block holding `shape` elements of `dtype`. Use {@linkcode tensor}
   * or {@linkcode empty} rather than this.
   *
   * @param allocator the allocator the block came from, which frees it
   * @param block the block
   * @param shape sizes of each dimension
   * @param dtype element type
   * @param label a name for leak reports (default `"tensor"`)
   * @throws {TypeError} not an allocator or a block, a bad dtype or label
   * @throws {RangeError} a bad shape, or a block too small for it
   */
  constructor(
    allocator: TensorAllocator,
    block: TensorBlock,
    shape: readonly number[],
    dtype: DType,
    label = "tensor",
  ) {
    const op = "create tensor";
    if (checked) {
      checked = false;
      this.numel = numelOf(shape);
    } else {
      checkDtype(op, allocator, dtype);
      this.numel = checkShape(op, shape);
      checkLabel(op, label);
      checkBlock(op, block);
    }
    this.allocator = allocator;
    this.#block = block;
    this.shape = Object.freeze([...shape]);
    this.dtype = dtype;
    this.label = label;
    if (block.requestedSize < this.byteLength) {
      throw new RangeError(
        `Cannot ${op}: a block of ${block.requestedSize} bytes cannot hold shape ${
          formatShape(shape)
        } of ${dtype} (${this.byteLength} bytes)`,
      );
    }
    track(this);
    if (leakReport !== null) {
      const info = { label, shape: this.shape, dtype, bytes: this.byteLength };
      leaks.register(this, info, this);
      this.#watched = true;
    }
  }

  /**
   * The block holding the elements.
   *
   * @throws {AllocatorError} the tensor was disposed
   */
  get block(): TensorBlock {
    if (this.#block === null) {
      throw new AllocatorError(`Cannot use tensor ${formatShape(this.shape)}: it was disposed`);
    }
    return this.#block;
  }

  /** True once {@linkcode Tensor.dispose} was called. */
  get disposed(): boolean {
    return this.#block === null;
  }

  /** Bytes of the elements, rounded up to 4 (WebGPU copies and bindings need it). */
  get byteLength(): number {
    return Math.ceil((this.numel * BYTES[this.dtype]) / 4) * 4;
  }

  /**
   * Submits pending work and reads the elements back. To read several
   * tensors, {@linkcode readAll} shares one submit and one wait.
   */
  async read(): Promise<TensorData> {
    return (await readAll([this]))[0];
  }

  /**
   * Frees the block. Work already recorded on it still sees its data: the
   * allocator reuses the memory only after the next submit. Disposing twice
   * does nothing, and so does disposing a tensor of a destroyed allocator
   * (its memory went with it).
   */
  dispose(): void {
    const block = this.#block;
    if (block === null) return;
    this.#block = null;
    if (this.#watched) leaks.unregister(this);
    const derived = this.#derived;
    this.#derived = null;
    for (const t of derived?.values() ?? []) t.dispose();
    if (this.allocator.destroyed !== true) freeTensorBlock(this.allocator, block);
  }

  /** Disposes the tensor at the end of a `using` declaration's scope. */
  [Symbol.dispose](): void {
    this.dispose();
  }
}

function checkAllocator(op: string, allocator: TensorAllocator): void {
  const a = allocator as Partial<TensorAllocator> | null;
  if (
    typeof a !== "object" || a === null || typeof a.alloc !== "function" ||
    typeof a.free !== "function" || typeof a.submit !== "function" ||
    typeof a.beforeSubmit !== "function"
  ) {
    throw new TypeError(
      `Cannot ${op}: allocator must have alloc, free, submit and beforeSubmit, got ${
        describe(allocator)
      }`,
    );
  }
}

function numelOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

function checkBlock(op: string, block: TensorBlock): void {
  const b = block as Partial<TensorBlock> | null;
  if (
    typeof b !== "object" || b === null || !("buffer" in b) ||
    !Number.isSafeInteger(b.offset) || !Number.isSafeInteger(b.requestedSize)
  ) {
    throw new TypeError(
      `Cannot ${op}: block must be an allocator block (buffer, offset, requestedSize), got ${
        describe(block)
      }`,
    );
  }
}

function checkLabel(op: string, label: string): void {
  if (typeof label !== "string") {
    throw new TypeError(`Cannot ${op}: label must be a string, got ${show(label)}`);
  }
}

function checkDtypeName(op: string, dtype: DType): void {
  if (dtype !== "f32" && dtype !== "f16") {
    throw new TypeError(`Cannot ${op}: dtype must be "f32" or "f16", got ${show(dtype)}`);
  }
}

function checkDtype(op: string, allocator: TensorAllocator, dtype: DType): void {
  checkAllocator(op, allocator);
  checkDtypeName(op, dtype);
  // An f16 shader fails to compile on a device without the feature.
  const features = (allocator.device as { features?: GPUSupportedFeatures }).features;
  if (dtype === "f16" && features?.has("shader-f16") !== true) {
    throw new TypeError(
      `Cannot ${op}: dtype f16 needs the device feature shader-f16, which this device lacks`,
    );
  }
}

/**
 * A tensor of `shape` with uninitialised contents (ops use it for outputs).
 *
 * @example
 * ```ts
 * import { empty, HeapAllocator, requestDevice } from "@gpuheap/gpuheap";
 * import assert from "node:assert/strict";
 *
 * const device = await requestDevice();
 * const allocator = new HeapAllocator(device);
 * const t = empty(allocator, [2, 3, 4, 4]);
 * assert.equal(t.byteLength, 2 * 3 * 4 * 4 * 4);
 * t.dispose();
 * allocator.destroy();
 * device.destroy();
 * ```
 *
 * @param allocator the allocator to take the block from
 * @param shape sizes of each dimension, positive integers
 * @param options element type, label
 * @returns the tensor
 */
export function empty(
  allocator: TensorAllocator,
  shape: readonly number[],
  options: TensorOptions = {},
): Tensor {
  const { dtype = "f32", label = "tensor", longLived = false } = options ?? {};
  checkDtype("create tensor", allocator, dtype);
  checkDevice(allocator, "create tensor");
  checkLabel("create tensor", label);
  if (typeof longLived !== "boolean") {
    throw new TypeError(
      `Cannot create tensor: longLived must be a boolean, got ${typeof longLived}`,
    );
  }
  const numel = checkShape("create tensor", shape);
  const bytes = Math.ceil((numel * BYTES[dtype]) / 4) * 4;
  const block = allocator.alloc(bytes, { label, longLived });
  try {
    checked = true;
    return new Tensor(allocator, block, shape, dtype, label);
  } catch (error) {
    checked = false;
    allocator.free(block);
    throw error;
  }
}

/**
 * Uploads `data` as a tensor of `shape` (by `queue.writeBuffer`, so work
 * submitted afterwards sees it).
 *
 * @example
 * ```ts
 * import { HeapAllocator, requestDevice, tensor } from "@gpuheap/gpuheap";
 * import assert from "node:assert/strict";
 *
 * const device = await requestDevice();
 * const allocator = new HeapAllocator(device);
 * const x = tensor(allocator, new Float32Array(16).fill(1), [1, 1, 4, 4]);
 * assert.equal(x.numel, 16);
 * x.dispose();
 * allocator.destroy();
 * device.destroy();
 * ```
 *
 * @param allocator the allocator to take the block from
 * @param data the elements in row-major (NCHW) order: an array or a typed array of numbers
 * @param shape sizes of each dimension, positive integers
 * @param options element type (default f32), label
 * @returns the tensor
 * @throws {RangeError} the data's length does not match the shape, or a bad shape
 * @throws {TypeError} data that is not numbers, a bad dtype or allocator
 */
export function tensor(
  allocator: TensorAllocator,
  data: ArrayLike<number>,
  shape: readonly number[],
  options: TensorOptions = {},
): Tensor {
  const dtype = options?.dtype ?? "f32";
  checkDtype("create tensor", allocator, dtype);
  const numel = checkShape("create tensor", shape);
  checkValues("create tensor", "data", data, shape, numel);
  const t = empty(allocator, shape, options);
  // writeBuffer sizes must be multiples of 4 bytes: an odd f16 count gets a pad element.
  const values = dtype === "f32"
    ? (data instanceof Float32Array && data.buffer instanceof ArrayBuffer
      ? data as Float32Array<ArrayBuffer>
      : Float32Array.from(data))
    : Float16Array.from({ length: numel + (numel % 2) }, (_, i) => (i < numel ? data[i] : 0));
  gpuDeviceOf(allocator).queue.writeBuffer(t.block.buffer, t.block.offset, values);
  return t;
}

/**
 * Reads several tensors back with one submit per allocator and one round of
 * `mapAsync`: in Deno each wait costs about 11 ms, but maps in flight
 * together finish together.
 *
 * @example
 * ```ts
 * import { HeapAllocator, readAll, relu, requestDevice, tensor } from "@gpuheap/gpuheap";
 * import assert from "node:assert/strict";
 *
 * const device = await requestDevice();
 * const allocator = new HeapAllocator(device);
 * const x = tensor(allocator, [-1, 1], [2]);
 * const [a, b] = await readAll([x, relu(x)]);
 * assert.deepEqual([...a], [-1, 1]);
 * assert.deepEqual([...b], [0, 1]);
 * allocator.destroy();
 * device.destroy();
 * ```
 *
 * @param tensors the tensors to read (from any allocators)
 * @returns their elements, in order
 * @throws {AllocatorError} a tensor was disposed
 * @throws {DeviceLostError} a tensor's device was lost
 */
export async function readAll(tensors: readonly Tensor[]): Promise<TensorData[]> {
  if (!Array.isArray(tensors)) {
    throw new TypeError(`Cannot read tensors: expected an array of tensors, got ${show(tensors)}`);
  }
  for (const t of tensors) {
    if (!(t instanceof Tensor)) {
      throw new TypeError(`Cannot read tensors: expected Tensors, got ${describe(t)}`);
    }
    if (t.disposed) {
      throw new AllocatorError(`Cannot read tensor ${formatShape(t.shape)}: it was disposed`);
    }
  }
  for (const t of tensors) checkDevice(t.allocator, "read tensors");
  const staging: { allocator: TensorAllocator; block: TensorBlock; bytes: number }[] = [];
  const allocators = new Set<TensorAllocator>();
  try {
    for (const t of tensors) {
      const bytes = t.byteLength;
      const block = t.allocator.alloc(bytes, { usage: "readback", label: "readback" });
      staging.push({ allocator: t.allocator, block, bytes });
      commandBatchOf(t.allocator).encoder().copyBufferToBuffer(
        t.block.buffer,
        t.block.offset,
        block.buffer,
        block.offset,
        bytes,
      );
      allocators.add(t.allocator);
    }
  } catch (error) {
    for (const s of staging) s.allocator.free(s.block);
    throw error;
  }
  for (const allocator of allocators) commandBatchOf(allocator).submit();
  try {
    try {
      await Promise.all(
        staging.map((s) => s.block.buffer.mapAsync(GPUMapMode.READ, s.block.offset, s.bytes)),
      );
    } catch (error) {
      // A device lost while the maps were pending fails them with an untyped error.
      for (const t of tensors) checkDevice(t.allocator, "read tensors");
      throw error;
    }
    // Lost while mapping: what the maps hold may predate the work read back.
    for (const t of tensors) checkDevice(t.allocator, "read tensors");
    return tensors.map((t, i) => {
      const { block, bytes } = staging[i];
      const copy = block.buffer.getMappedRange(block.offset, bytes).slice(0);
      return t.dtype === "f32"
        ? new Float32Array(copy, 0, t.numel)
        : new Float16Array(copy, 0, t.numel);
    });
  } finally {
    for (const s of staging) {
      try {
        if (s.block.buffer.mapState === "mapped") s.block.buffer.unmap();
      } catch {
        // A lost device's buffers refuse to unmap; destroying them frees them all the same.
      }
      s.allocator.free(s.block);
    }
  }
}
