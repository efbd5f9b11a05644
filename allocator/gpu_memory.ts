/**
 * GPU memory: the one place that creates and destroys the allocator's
 * GPUBuffers, and that hears what the device says later. A heap's bytes are
 * taken from the shared budget (if any) before its GPUBuffer is made, inside
 * an out-of-memory error scope, and given back when it is destroyed — or at
 * once, if anything fails after the GPUBuffer was made. The device's verdict
 * on a heap, and the loss of the device, reach the allocator through
 * {@linkcode GpuMemoryEvents}.
 *
 * Note [late verdicts]: WebGPU reports a refused GPUBuffer only when its error
 * scope resolves, after the allocator may already have placed blocks in the
 * heap, freed them, released the heap or reused it. A handler of a verdict
 * must cope with the heap being gone; and no verdict may end in an unhandled
 * rejection, whatever its handler does.
 *
 * @module
 */

import type { MemoryBudget } from "./budget.ts";
import { type Heap, newHeap } from "./block.ts";
import type { AllocatorDevice } from "./device.ts";
import { type DeviceLoss, type LossListener, watchLoss } from "./device_loss.ts";
import { AllocatorError } from "./errors.ts";
import { formatBytes } from "./format.ts";
import type { PoolName } from "./size_classes.ts";

// A buffer bound as read-write storage in a dispatch may not be bound there in
// any other way (WebGPU usage scopes are per GPUBuffer), so uniforms and
// scalars live in heaps of their own, apart from storage heaps.
/** The GPUBufferUsage flags of each pool's GPUBuffers. */
export const BUFFER_USAGE: Record<PoolName, number> = {
  small: 0x80 | 0x08 | 0x04, // STORAGE | COPY_DST | COPY_SRC
  large: 0x80 | 0x08 | 0x04,
  uniform: 0x40 | 0x08 | 0x04, // UNIFORM | COPY_DST | COPY_SRC
  scalar: 0x40 | 0x08, // UNIFORM | COPY_DST
  readback: 0x01 | 0x08, // MAP_READ | COPY_DST
  upload: 0x02 | 0x04, // MAP_WRITE | COPY_SRC
};

/** @internal what GPU memory tells the allocator, later than the call that caused it. */
export interface GpuMemoryEvents {
  /** The device refused a heap: `message` is its error's. The heap may be released already. */
  refused(heap: Heap, message: string): void;
  /** Handling the verdict on a heap failed (a bug): reported instead of rejecting. */
  failed(heap: Heap, error: unknown): void;
  /** The device was lost: `reason` and `message` are what it said. */
  lost(reason: string, message: string): void;
}

/** @internal makes and destroys heaps' GPUBuffers, and keeps the budget in step. */
export class GpuMemory implements LossListener {
  #device: AllocatorDevice;
  #budget: MemoryBudget | undefined;
  #events: GpuMemoryEvents;
  /** Error scopes not yet resolved: one per heap made recently. */
  #verdicts = new Set<Promise<void>>();

  /**
   * @param device the device to make GPUBuffers on
   * @param budget a budget shared with other allocators, if any
   * @param events where late verdicts go
   */
  constructor(
    device: AllocatorDevice,
    budget: MemoryBudget | undefined,
    events: GpuMemoryEvents,
  ) {
    this.#device = device;
    this.#budget = budget;
    this.#events = events;
    watchLoss(device, this);
  }

  /**
   * Makes the GPUBuffer of a heap of `size` bytes for `pool`, after taking
   * its bytes from the budget.
   *
   * @returns the heap, or null when the budget has no room for it
   */
  createHeap(pool: PoolName, size: number, id: number, isSplit: boolean): Heap | null {
    if (this.#budget && !this.#budget.reserve(size)) return null;
    const device = this.#device;
    const what = `Cannot create a heap of ${formatBytes(size)} on ${pool} pool`;
    let buffer: GPUBuffer;
    try {
      device.pushErrorScope("out-of-memory");
    } catch (error) {
      this.#budget?.release(size);
      throw new AllocatorError(`${what}: ${messageOf(error)}`, { cause: error });
    }
    try {
      buffer = device.createBuffer({
        size,
        usage: BUFFER_USAGE[pool],
        label: `gpuheap ${pool} heap #${id}`,
      });
    } catch (error) {
      try {
        device.popErrorScope().catch(() => {});
      } catch { /* the scope is gone with the device */ }
      this.#budget?.release(size);
      throw new AllocatorError(`${what}: ${messageOf(error)}`, { cause: error });
    }
    const heap = newHeap(id, pool, buffer, size, isSplit);
    let answer: Promise<GPUError | null>;
    try {
      answer = device.popErrorScope();
    } catch (error) {
      // Whatever fails after createBuffer gives the memory back.
      this.destroyHeap(heap);
      throw new AllocatorError(`${what}: ${messageOf(error)}`, { cause: error });
    }
    const events = this.#events;
    const verdict = Promise.resolve(answer).then(
      (error) => {
        if (error) events.refused(heap, error.message);
      },
      () => {}, // no answer (the device was lost): nothing to report about this heap
    ).catch((error) => events.failed(heap, error))
      .finally(() => this.#verdicts.delete(verdict));
    this.#verdicts.add(verdict);
    return heap;
  }

  /** Destroys a heap's GPUBuffer and gives its bytes back to the budget, once. */
  destroyHeap(heap: Heap): void {
    if (heap.released) return;
    heap.released = true;
    this.#budget?.release(heap.size);
    heap.buffer.destroy();
  }

  /** @internal the device was lost (Note [lost devices] in device_loss.ts). */
  deviceLost(loss: DeviceLoss): void {
    this.#events.lost(loss.reason, loss.message);
  }

  /** Resolves once the device gave its verdict on every heap made so far. */
  async settle(): Promise<void> {
    while (this.#verdicts.size > 0) await Promise.all([...this.#verdicts]);
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
