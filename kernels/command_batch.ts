/**
 * The command batch: every op records its dispatches into one command
 * encoder per allocator, and one submit (through the allocator's `submit`)
 * sends them all, so blocks freed mid-batch are reused only once the work
 * that reads them is on the queue.
 *
 * @module
 */

import type { ParamsSpace } from "./_prelude.ts";
import { DeviceLostError } from "../allocator/errors.ts";
import { deviceLoss, watchLoss } from "../allocator/device_loss.ts";

/** The parts of an allocator block the kernels use. */
export interface TensorBlock {
  /** The GPUBuffer the block lies in. */
  readonly buffer: GPUBuffer;
  /** Byte offset inside the buffer. */
  readonly offset: number;
  /** Usable bytes. */
  readonly size: number;
  /** Bytes asked for. */
  readonly requestedSize: number;
  /** The pool it came from, if the allocator has pools. */
  readonly pool?: string;
}

/** One dispatch of an op, ready to record (see {@linkcode CommandBatch.record}). */
export interface KernelDispatch {
  /** The compiled shader. */
  readonly shader: GPUComputePipeline;
  /** Its parameters, packed in the order its `Params` struct declares them. */
  readonly params: ArrayBuffer;
  /** The blocks bound at 1, 2, … in order. */
  readonly storage: readonly TensorBlock[];
  /** Workgroups along x, y and z. */
  readonly grid: readonly [number, number, number];
}

/** Options of {@linkcode TensorAllocator.alloc}. */
export interface TensorAllocOptions {
  /** What the block is for (default `"storage"`). */
  usage?: "storage" | "uniform" | "readback" | "upload";
  /** A name for debug output. */
  label?: string;
  /** Kept by the kernels as a cache of their own: counted as cached bytes, not allocated. */
  cached?: boolean;
  /** Outlives many other blocks (weights): a `HeapAllocator` gives it a GPUBuffer of its own. */
  longLived?: boolean;
}

/**
 * What the kernels need of an allocator. A `HeapAllocator` is one; the
 * benchmarks pass a stand-in that calls `createBuffer` for every block.
 */
export interface TensorAllocator {
  /** The device (a `GPUDevice`) the blocks come from. */
  readonly device: object;
  /** Allocates a block. */
  alloc(size: number, options?: TensorAllocOptions): TensorBlock;
  /** Frees a block; its memory must not be reused before the next `submit`. */
  free(block: TensorBlock): void;
  /** Submits command buffers and makes blocks freed before it reusable. */
  submit(commandBuffers?: GPUCommandBuffer[]): void;
  /** Registers work to put on the queue ahead of every `submit`. */
  beforeSubmit(hook: () => GPUCommandBuffer[]): () => void;
  /** True once the allocator released all its memory (then tensors' `dispose` does nothing). */
  readonly destroyed?: boolean;
}

/** Returns the allocator's device, checked to be a real `GPUDevice`. */
export function gpuDeviceOf(allocator: TensorAllocator): GPUDevice {
  const device = allocator?.device as GPUDevice | undefined;
  if (!device || typeof device.createComputePipeline !== "function") {
    throw new TypeError(
      "Cannot run kernels: the allocator's device is not a GPUDevice (a fake device cannot run shaders)",
    );
  }
  return device;
}

const batches = new WeakMap<TensorAllocator, CommandBatch>();

/**
 * Throws a `DeviceLostError` if `allocator`'s device is known to be lost,
 * from the very call that destroyed it on (Note [lost devices] in `allocator/device_loss.ts`).
 *
 * @example
 * ```ts
 * import { checkDevice } from "./command_batch.ts";
 * import { DeviceLostError, FakeDevice, HeapAllocator } from "@gpuheap/gpuheap";
 * import assert from "node:assert/strict";
 *
 * const device = new FakeDevice();
 * const allocator = new HeapAllocator(device);
 * checkDevice(allocator, "create tensor");
 * device.destroy();
 * assert.throws(() => checkDevice(allocator, "create tensor"), DeviceLostError);
 * allocator.destroy();
 * ```
 *
 * @param allocator the allocator whose device to check
 * @param what what could not be done, for the message ("create tensor")
 * @throws {DeviceLostError} the device was lost
 */
export function checkDevice(allocator: TensorAllocator, what: string): void {
  const device = allocator?.device;
  if (typeof device !== "object" || device === null) return;
  watchLoss(device);
  // A FakeDevice says it is lost at once, by its driver too (a GPUDevice says so a turn later).
  const fake = device as { isLost?: unknown };
  const lost = deviceLoss(device) ??
    (fake.isLost === true ? { reason: "unknown", message: "the device was lost" } : undefined);
  if (lost !== undefined) throw new DeviceLostError(what, lost.reason, lost.message);
}

/**
 * Dispatches after which a batch submits itself (at the next op): memory an
 * op disposes is reused only after a submit, so an unbounded batch would
 * hold every intermediate.
 */
export const AUTO_SUBMIT_DISPATCHES = 256;

/** Bind groups a batch keeps for reuse; past this it starts over. */
const BIND_GROUP_CACHE = 4096;

/** Distinct parameter blocks a batch keeps written on the GPU; past this it starts over. */
const PARAMS_CACHE = 4096;

// Identities of GPU objects for bind group keys; a destroyed buffer's id is
// never reused, so a stale cached group is never hit.
const ids = new WeakMap<object, number>();
let nextId = 1;
function idOf(o: object): number {
  let id = ids.get(o);
  if (id === undefined) {
    id = nextId++;
    ids.set(o, id);
  }
  return id;
}

// Bind group layouts by shader: getBindGroupLayout makes a new JS object each call.
const layouts = new WeakMap<GPUComputePipeline, GPUBindGroupLayout>();
function layoutOf(pipeline: GPUComputePipeline): GPUBindGroupLayout {
  let layout = layouts.get(pipeline);
  if (layout === undefined) {
    layout = pipeline.getBindGroupLayout(0);
    layouts.set(pipeline, layout);
  }
  return layout;
}

/** Bytes of one block of parameter slots. */
const PARAMS_CHUNK = 16384;

/**
 * Frees a tensor's block, or holds the free back while
 * {@linkcode CommandBatch.atomic} holds dispatches: an allocator that submits
 * to reuse memory (`submitWhenShort`) would otherwise hand the block to a new
 * owner before the held dispatches that read it are even recorded.
 *
 * @param allocator the tensor's allocator
 * @param block the block to free
 */
export function freeTensorBlock(allocator: TensorAllocator, block: TensorBlock): void {
  const batch = batches.get(allocator);
  if (batch === undefined || !batch.holdFree(block)) allocator.free(block);
}

/**
 * The batch ops on tensors of `allocator` record into: one per allocator, made on
 * first use.
 *
 * @example
 * ```ts
 * import { HeapAllocator, requestDevice } from "@gpuheap/gpuheap";
 * import { commandBatchOf } from "@gpuheap/gpuheap/kernels";
 * import assert from "node:assert/strict";
 *
 * const device = await requestDevice();
 * const allocator = new HeapAllocator(device);
 * assert.equal(commandBatchOf(allocator), commandBatchOf(allocator));
 * allocator.destroy();
 * device.destroy();
 * ```
 *
 * @param allocator the allocator
 * @returns its batch
 * @throws {DeviceLostError} the allocator's device was lost
 */
export function commandBatchOf(allocator: TensorAllocator): CommandBatch {
  checkDevice(allocator, "record GPU work");
  let batch = batches.get(allocator);
  if (!batch) {
    batch = new CommandBatch(allocator);
    batches.set(allocator, batch);
  }
  return batch;
}

/**
 * Submits the work recorded on `allocator`'s tensors (see {@linkcode CommandBatch.submit}).
 *
 * @example
 * ```ts
 * import { HeapAllocator, requestDevice, submit } from "@gpuheap/gpuheap";
 *
 * const device = await requestDevice();
 * const allocator = new HeapAllocator(device);
 * submit(allocator); // nothing recorded: only makes freed blocks reusable
 * allocator.destroy();
 * device.destroy();
 * ```
 *
 * @param allocator the allocator whose batch to submit
 */
export function submit(allocator: TensorAllocator): void {
  commandBatchOf(allocator).submit();
}

/**
 * Dispatches recorded for one allocator and not yet submitted. Ops add to
 * it; {@linkcode CommandBatch.submit} (or a readback) sends it, and it sends itself
 * after {@linkcode AUTO_SUBMIT_DISPATCHES} dispatches. The batch is a
 * `beforeSubmit` hook of its allocator, so the allocator's own `submit` sends
 * it too, ahead of the caller's command buffers: no submit can make blocks
 * disposed mid-batch reusable before the work reading them is on the queue.
 * Parameters live in slots of blocks of the allocator's uniform pool, one
 * slot per distinct content, written once when first seen and kept (counted
 * as the allocator's cached bytes, not allocated ones): a loop
 * that repeats its ops on the same shapes writes no parameters and binds the
 * same slots, so its bind groups (cached by shader, buffers and offsets) are
 * made once too.
 *
 * | method   | cost                                                       |
 * | -------- | ---------------------------------------------------------- |
 * | params   | O(1): a lookup; the first time, one `writeBuffer`          |
 * | dispatch | O(1): a bind group lookup (made on a miss), three calls    |
 * | submit   | one `queue.submit` (about 65 µs in Deno)                   |
 *
 * @example
 * ```ts
 * import { HeapAllocator, relu, requestDevice, tensor } from "@gpuheap/gpuheap";
 * import { commandBatchOf } from "@gpuheap/gpuheap/kernels";
 * import assert from "node:assert/strict";
 *
 * const device = await requestDevice();
 * const allocator = new HeapAllocator(device);
 * const y = relu(tensor(allocator, [-1, 2, -3, 4], [4]));
 * assert.equal(commandBatchOf(allocator).dispatches, 1);
 * commandBatchOf(allocator).submit();
 * assert.deepEqual([...await y.read()], [0, 2, 0, 4]);
 * allocator.destroy();
 * device.destroy();
 * ```
 */
export class CommandBatch {
  /** The allocator whose blocks the batch's dispatches use. */
  readonly allocator: TensorAllocator;
  /** The allocator's device. */
  readonly device: GPUDevice;
  /** Where kernels of this batch read their parameters (see {@linkcode ParamsSpace}). */
  readonly paramsSpace: ParamsSpace;
  #encoder: GPUCommandEncoder | null = null;
  #pass: GPUComputePassEncoder | null = null;
  /** Blocks holding parameter slots, kept until the slot cache starts over. */
  #paramBlocks: TensorBlock[] = [];
  /** Parameter slots by content. */
  #paramSlots = new Map<string, GPUBufferBinding>();
  /** Bytes used of the last parameter block. */
  #chunkUsed = PARAMS_CHUNK;
  #paramsAlign: number;
  #dispatches = 0;
  #submits = 0;
  #bindGroups = new Map<string, GPUBindGroup>();
  /** Dispatches held back by {@linkcode CommandBatch.atomic}, or null. */
  #held: KernelDispatch[] | null = null;
  /** Blocks disposed while dispatches are held: freed once those are recorded. */
  #heldFrees: TensorBlock[] = [];

  /**
   * Makes a batch for `allocator`. Ops use the one {@linkcode commandBatchOf} returns;
   * make your own only to record separately from them.
   *
   * @param allocator the allocator whose blocks the dispatches use
   */
  constructor(allocator: TensorAllocator) {
    this.allocator = allocator;
    this.device = gpuDeviceOf(allocator);
    // A uniform block placed in the heaps tensors live in cannot be bound as
    // a uniform next to a writable tensor of the same GPUBuffer: read such
    // parameters as storage instead.
    const probe = allocator.alloc(16, { usage: "uniform" });
    this.paramsSpace = probe.pool === "small" || probe.pool === "large" ? "storage" : "uniform";
    allocator.free(probe);
    // Any submit of the allocator, ours or the caller's, sends this batch first.
    allocator.beforeSubmit(() => this.#take());
    const limits = this.device.limits;
    this.#paramsAlign = Math.max(
      limits.minUniformBufferOffsetAlignment,
      limits.minStorageBufferOffsetAlignment,
    );
  }

  /** Dispatches recorded since the last submit. */
  get dispatches(): number {
    return this.#dispatches;
  }

  /** Submits made by this batch. */
  get submits(): number {
    return this.#submits;
  }

  /**
   * The command encoder, with any open compute pass ended, to record other
   * commands (copies, timestamp passes) in order with the ops.
   */
  encoder(): GPUCommandEncoder {
    this.#pass?.end();
    this.#pass = null;
    this.#encoder ??= this.device.createCommandEncoder({ label: "gpuheap batch" });
    return this.#encoder;
  }

  /**
   * Returns the binding of a slot holding `data`, a kernel's parameters: the
   * slot already holding these bytes, or a new one (from the allocator's
   * uniform pool), written now. Slots are never rewritten: work recorded
   * before may still read them.
   */
  params(data: ArrayBuffer): GPUBufferBinding {
    this.#submitIfLong();
    return this.#place(data);
  }

  /**
   * Sends a long batch on its way, so the blocks its ops disposed become
   * reusable. Called only before an op's first dispatch: then every binding
   * of the dispatches so far is in use by recorded work, and none of the
   * next has been freed.
   */
  #submitIfLong(): void {
    if (this.#dispatches >= AUTO_SUBMIT_DISPATCHES) this.submit();
  }

  /** Places parameters in the current parameter block. */
  #place(data: ArrayBuffer): GPUBufferBinding {
    const size = Math.max(16, Math.ceil(data.byteLength / 16) * 16);
    if (size > PARAMS_CHUNK) {
      throw new RangeError(
        `Cannot record kernel: ${size} bytes of parameters exceed ${PARAMS_CHUNK}`,
      );
    }
    // The bytes as a string (two per character): an exact key, cheap to make.
    const key = String.fromCharCode.apply(null, new Uint16Array(data) as unknown as number[]);
    const known = this.#paramSlots.get(key);
    if (known !== undefined) return known;
    if (this.#paramSlots.size >= PARAMS_CACHE) this.releaseParams();
    if (this.#chunkUsed + size > PARAMS_CHUNK) {
      this.#paramBlocks.push(
        // Cached, not allocated: the slots outlive every tensor, and a caller's
        // leak check (allocated bytes before == after) must not see them.
        this.allocator.alloc(PARAMS_CHUNK, {
          usage: "uniform",
          label: "kernel params",
          cached: true,
        }),
      );
      this.#chunkUsed = 0;
    }
    const block = this.#paramBlocks[this.#paramBlocks.length - 1];
    const offset = block.offset + this.#chunkUsed;
    this.#chunkUsed = Math.ceil((this.#chunkUsed + size) / this.#paramsAlign) * this.#paramsAlign;
    // The slot is new, so no recorded work reads it: writing now is safe, and
    // lands ahead of the submit that sends the work reading it.
    const bytes = new Uint8Array(size);
    bytes.set(new Uint8Array(data));
    this.device.queue.writeBuffer(block.buffer, offset, bytes);
    const slot = { buffer: block.buffer, offset, size };
    this.#paramSlots.set(key, slot);
    return slot;
  }

  /**
   * Records the dispatches of one op, all together: a long batch submits
   * itself before them, never between two of them.
   */
  record(dispatches: readonly KernelDispatch[]): void {
    if (this.#held !== null) {
      // Read each block's buffer now: the allocator reuses a freed block at
      // once if nothing read its buffer, and fn may free these before they
      // are recorded.
      for (const d of dispatches) {
        const storage: TensorBlock[] = [];
        for (const b of d.storage) {
          storage.push({
            buffer: b.buffer,
            offset: b.offset,
            size: b.size,
            requestedSize: b.requestedSize,
          });
        }
        this.#held.push({ shader: d.shader, params: d.params, storage, grid: d.grid });
      }
      return;
    }
    this.#submitIfLong();
    this.#recordAll(dispatches);
  }

  /** Records dispatches, their parameters first, without submitting. */
  #recordAll(dispatches: readonly KernelDispatch[]): void {
    const params: GPUBufferBinding[] = [];
    for (const d of dispatches) params.push(this.#place(d.params));
    for (let i = 0; i < dispatches.length; i++) {
      const d = dispatches[i];
      this.dispatch(d.shader, params[i], d.storage, d.grid);
    }
  }

  /**
   * Runs `fn`, holding back what its ops record until it returns: then all
   * of it is recorded at once, and if `fn` throws, none of it. A chain of
   * ops whose later step fails records nothing, and submits nothing. Until
   * its dispatches are recorded, nothing of this batch is submitted, so the
   * blocks `fn` disposes are not reused before.
   *
   * @example
   * ```ts
   * import { HeapAllocator, maxPool2d, relu, requestDevice, tensor } from "@gpuheap/gpuheap";
   * import { commandBatchOf } from "@gpuheap/gpuheap/kernels";
   * import assert from "node:assert/strict";
   *
   * const device = await requestDevice();
   * const allocator = new HeapAllocator(device);
   * const x = tensor(allocator, [1, -2, 3, -4], [1, 1, 2, 2]);
   * const batch = commandBatchOf(allocator);
   * assert.throws(() => batch.atomic(() => maxPool2d(relu(x), { kernelSize: 3 })), RangeError);
   * assert.equal(batch.dispatches, 0); // the relu was not recorded either
   * allocator.destroy();
   * device.destroy();
   * ```
   *
   * @param fn the ops to record together
   * @returns what `fn` returns
   */
  atomic<T>(fn: () => T): T {
    // Nested: the outermost records.
    if (this.#held !== null) return fn();
    const held: KernelDispatch[] = [];
    this.#held = held;
    let result: T;
    try {
      result = fn();
      // No self-submit before these: blocks fn disposed would become reusable
      // while the dispatches reading them were still held back. The next op
      // submits a batch this made long.
      this.#held = null;
      this.#recordAll(held);
    } finally {
      // Blocks fn disposed are freed only now, after the dispatches that read
      // them are recorded (or dropped, when fn threw).
      this.#held = null;
      const frees = this.#heldFrees;
      this.#heldFrees = [];
      for (const block of frees) this.allocator.free(block);
    }
    return result;
  }

  /** @internal holds a block's free back while dispatches are held; false when none are. */
  holdFree(block: TensorBlock): boolean {
    if (this.#held === null) return false;
    this.#heldFrees.push(block);
    return true;
  }

  /**
   * Frees every parameter slot: the allocator reuses their blocks after the
   * next submit, and later ops write their parameters anew. Slots otherwise
   * stay held (16 KiB per 64 distinct parameter sets, counted as cached) so that a loop
   * writes nothing; call this when a piece of work is done, before
   * `emptyCache` if the uniform heap should go too.
   */
  releaseParams(): void {
    for (const block of this.#paramBlocks) this.allocator.free(block);
    this.#paramBlocks = [];
    this.#paramSlots.clear();
    this.#chunkUsed = PARAMS_CHUNK;
  }

  /**
   * Records one dispatch: binding 0 is `params`, bindings 1.. are the
   * storage blocks in order.
   */
  dispatch(
    shader: GPUComputePipeline,
    params: GPUBufferBinding,
    storage: readonly TensorBlock[],
    workgroups: readonly [number, number, number],
  ): void {
    const bindings: GPUBufferBinding[] = [params];
    for (const block of storage) {
      bindings.push({
        buffer: block.buffer,
        offset: block.offset,
        size: Math.ceil(block.requestedSize / 4) * 4,
      });
    }
    // A loop hands out the same blocks each iteration, so the same bind
    // groups recur; making one costs more than the rest of a dispatch.
    let key = String(idOf(shader));
    for (const b of bindings) key += `|${idOf(b.buffer)}:${b.offset}:${b.size}`;
    let bindGroup = this.#bindGroups.get(key);
    if (bindGroup === undefined) {
      if (this.#bindGroups.size >= BIND_GROUP_CACHE) this.#bindGroups.clear();
      bindGroup = this.device.createBindGroup({
        layout: layoutOf(shader),
        entries: bindings.map((resource, binding) => ({ binding, resource })),
      });
      this.#bindGroups.set(key, bindGroup);
    }
    if (!this.#pass) {
      this.#pass = this.encoder().beginComputePass({ label: "gpuheap kernels" });
    }
    this.#pass.setPipeline(shader);
    this.#pass.setBindGroup(0, bindGroup);
    this.#pass.dispatchWorkgroups(workgroups[0], workgroups[1], workgroups[2]);
    this.#dispatches++;
  }

  /**
   * Finishes the encoder and submits it through the allocator's `submit`,
   * which also makes blocks freed since the last submit (intermediates
   * disposed mid-batch) reusable. With nothing recorded it still calls
   * `submit` for the latter.
   */
  submit(): void {
    this.allocator.submit();
  }

  /** Ends the recording and returns it for the allocator's submit (the hook). */
  #take(): GPUCommandBuffer[] {
    this.#pass?.end();
    this.#pass = null;
    const commands = this.#encoder ? [this.#encoder.finish()] : [];
    this.#encoder = null;
    this.#dispatches = 0;
    this.#submits++;
    return commands;
  }
}
