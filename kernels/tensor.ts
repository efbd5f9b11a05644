/**
 * Tensors: an NCHW shape, an element type and a block of an allocator;
 * uploads by `queue.writeBuffer`, readbacks through staging blocks of the
 * allocator's readback pool, many at once.
 *
 * @module
 */

import { checkShape, formatShape } from "./_geometry.ts";
import type { DType } from "./_prelude.ts";
import {
  commandBatchOf,
  gpuDeviceOf,
  type TensorAllocator,
  type TensorBlock,
} from "./command_batch.ts";

export type { DType } from "./_prelude.ts";

/** The typed array a tensor reads back as: `Float32Array` for f32, `Float16Array` for f16. */
export type TensorData = Float32Array | Float16Array;

/** Options of {@linkcode tensor} and {@linkcode empty}. */
export interface TensorOptions {
  /** Element type (default `"f32"`; `"f16"` needs the device feature `shader-f16`). */
  dtype?: DType;
}

const BYTES: Record<DType, number> = { f32: 4, f16: 2 };

/**
 * A tensor on the GPU: a shape (NCHW for images), an element type and a
 * block of its allocator. Ops take tensors and return new ones; nothing
 * writes into an existing tensor. Free its memory with `dispose()`.
 *
 * | operation | cost                                               |
 * | --------- | -------------------------------------------------- |
 * | read      | one submit and one `mapAsync` (about 11 ms in Deno) |
 * | dispose   | O(1)                                               |
 *
 * @example
 * ```ts
 * import { tensor } from "./tensor.ts";
 * import { HeapAllocator } from "../allocator/allocator.ts";
 * import { requestDevice } from "../allocator/request_device.ts";
 * import assert from "node:assert/strict";
 *
 * const device = await requestDevice();
 * const heap = new HeapAllocator(device);
 * const t = tensor(heap, [1, 2, 3, 4, 5, 6], [1, 1, 2, 3]);
 * assert.deepEqual(t.shape, [1, 1, 2, 3]);
 * assert.deepEqual([...await t.read()], [1, 2, 3, 4, 5, 6]);
 * t.dispose();
 * heap.destroy();
 * device.destroy();
 * ```
 */
export class Tensor {
  /** The allocator the block came from. */
  readonly heap: TensorAllocator;
  /** Sizes of each dimension. */
  readonly shape: readonly number[];
  /** Element type. */
  readonly dtype: DType;
  /** Number of elements. */
  readonly numel: number;
  #block: TensorBlock | null;

  /**
   * Wraps a block holding `shape` elements of `dtype`. Use {@linkcode tensor}
   * or {@linkcode empty} rather than this.
   */
  constructor(heap: TensorAllocator, block: TensorBlock, shape: readonly number[], dtype: DType) {
    this.heap = heap;
    this.#block = block;
    this.shape = Object.freeze([...shape]);
    this.dtype = dtype;
    this.numel = shape.reduce((a, b) => a * b, 1);
  }

  /**
   * The block holding the elements.
   *
   * @throws {Error} the tensor was disposed
   */
  get block(): TensorBlock {
    if (this.#block === null) {
      throw new Error(`Cannot use tensor ${formatShape(this.shape)}: it was disposed`);
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
   * does nothing.
   */
  dispose(): void {
    const block = this.#block;
    if (block === null) return;
    this.#block = null;
    this.heap.free(block);
  }
}

function checkDtype(op: string, heap: TensorAllocator, dtype: DType): void {
  if (dtype !== "f32" && dtype !== "f16") {
    throw new TypeError(`Cannot ${op}: dtype must be "f32" or "f16", got ${JSON.stringify(dtype)}`);
  }
  if (dtype === "f16" && !gpuDeviceOf(heap).features.has("shader-f16")) {
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
 * import { empty } from "./tensor.ts";
 * import { HeapAllocator } from "../allocator/allocator.ts";
 * import { requestDevice } from "../allocator/request_device.ts";
 * import assert from "node:assert/strict";
 *
 * const device = await requestDevice();
 * const heap = new HeapAllocator(device);
 * const t = empty(heap, [2, 3, 4, 4]);
 * assert.equal(t.byteLength, 2 * 3 * 4 * 4 * 4);
 * t.dispose();
 * heap.destroy();
 * device.destroy();
 * ```
 *
 * @param heap the allocator to take the block from
 * @param shape sizes of each dimension, positive integers
 * @param options element type
 * @returns the tensor
 */
export function empty(
  heap: TensorAllocator,
  shape: readonly number[],
  options: TensorOptions = {},
): Tensor {
  const dtype = options.dtype ?? "f32";
  checkDtype("create tensor", heap, dtype);
  const numel = checkShape("create tensor", shape);
  const bytes = Math.ceil((numel * BYTES[dtype]) / 4) * 4;
  return new Tensor(heap, heap.alloc(bytes, { label: "tensor" }), shape, dtype);
}

/**
 * Uploads `data` as a tensor of `shape` (by `queue.writeBuffer`, so work
 * submitted afterwards sees it).
 *
 * @example
 * ```ts
 * import { tensor } from "./tensor.ts";
 * import { HeapAllocator } from "../allocator/allocator.ts";
 * import { requestDevice } from "../allocator/request_device.ts";
 * import assert from "node:assert/strict";
 *
 * const device = await requestDevice();
 * const heap = new HeapAllocator(device);
 * const x = tensor(heap, new Float32Array(16).fill(1), [1, 1, 4, 4]);
 * assert.equal(x.numel, 16);
 * x.dispose();
 * heap.destroy();
 * device.destroy();
 * ```
 *
 * @param heap the allocator to take the block from
 * @param data the elements in row-major (NCHW) order
 * @param shape sizes of each dimension, positive integers
 * @param options element type (default f32)
 * @returns the tensor
 * @throws {RangeError} the data's length does not match the shape
 */
export function tensor(
  heap: TensorAllocator,
  data: ArrayLike<number>,
  shape: readonly number[],
  options: TensorOptions = {},
): Tensor {
  const dtype = options.dtype ?? "f32";
  checkDtype("create tensor", heap, dtype);
  const numel = checkShape("create tensor", shape);
  if (!data || typeof data.length !== "number" || data.length !== numel) {
    throw new RangeError(
      `Cannot create tensor: data has ${data?.length} elements but shape ${
        formatShape(shape)
      } needs ${numel}`,
    );
  }
  const t = empty(heap, shape, { dtype });
  // writeBuffer sizes must be multiples of 4 bytes: an odd f16 count gets a pad element.
  const values = dtype === "f32"
    ? (data instanceof Float32Array && data.buffer instanceof ArrayBuffer
      ? data as Float32Array<ArrayBuffer>
      : Float32Array.from(data))
    : Float16Array.from({ length: numel + (numel % 2) }, (_, i) => (i < numel ? data[i] : 0));
  gpuDeviceOf(heap).queue.writeBuffer(t.block.buffer, t.block.offset, values);
  return t;
}

/**
 * Reads several tensors back with one submit per allocator and one round of
 * `mapAsync`: in Deno each wait costs about 11 ms, but maps in flight
 * together finish together.
 *
 * @example
 * ```ts
 * import { readAll, tensor } from "./tensor.ts";
 * import { relu } from "./relu.ts";
 * import { HeapAllocator } from "../allocator/allocator.ts";
 * import { requestDevice } from "../allocator/request_device.ts";
 * import assert from "node:assert/strict";
 *
 * const device = await requestDevice();
 * const heap = new HeapAllocator(device);
 * const x = tensor(heap, [-1, 1], [2]);
 * const [a, b] = await readAll([x, relu(x)]);
 * assert.deepEqual([...a], [-1, 1]);
 * assert.deepEqual([...b], [0, 1]);
 * heap.destroy();
 * device.destroy();
 * ```
 *
 * @param tensors the tensors to read (from any allocators)
 * @returns their elements, in order
 * @throws {Error} a tensor was disposed
 */
export async function readAll(tensors: readonly Tensor[]): Promise<TensorData[]> {
  if (!Array.isArray(tensors)) {
    throw new TypeError(`Cannot read tensors: expected an array of tensors, got ${tensors}`);
  }
  for (const t of tensors) {
    if (!(t instanceof Tensor)) throw new TypeError(`Cannot read tensors: ${t} is not a Tensor`);
    if (t.disposed) {
      throw new Error(`Cannot read tensor ${formatShape(t.shape)}: it was disposed`);
    }
  }
  const staging: { heap: TensorAllocator; block: TensorBlock; bytes: number }[] = [];
  const heaps = new Set<TensorAllocator>();
  try {
    for (const t of tensors) {
      const bytes = t.byteLength;
      const block = t.heap.alloc(bytes, { usage: "readback", label: "readback" });
      staging.push({ heap: t.heap, block, bytes });
      commandBatchOf(t.heap).encoder().copyBufferToBuffer(
        t.block.buffer,
        t.block.offset,
        block.buffer,
        block.offset,
        bytes,
      );
      heaps.add(t.heap);
    }
  } catch (error) {
    for (const s of staging) s.heap.free(s.block);
    throw error;
  }
  for (const heap of heaps) commandBatchOf(heap).submit();
  try {
    await Promise.all(
      staging.map((s) => s.block.buffer.mapAsync(GPUMapMode.READ, s.block.offset, s.bytes)),
    );
    return tensors.map((t, i) => {
      const { block, bytes } = staging[i];
      const copy = block.buffer.getMappedRange(block.offset, bytes).slice(0);
      return t.dtype === "f32"
        ? new Float32Array(copy, 0, t.numel)
        : new Float16Array(copy, 0, t.numel);
    });
  } finally {
    for (const s of staging) {
      if (s.block.buffer.mapState === "mapped") s.block.buffer.unmap();
      s.heap.free(s.block);
    }
  }
}
