/**
 * GPU memory: the one place that creates and destroys the allocator's
 * GPUBuffers. A heap's bytes are taken from the shared budget (if any) before
 * its GPUBuffer is made, inside an out-of-memory error scope, and given back
 * when it is destroyed. The device's verdict on a heap comes later (see the
 * note on late verdicts below); the allocator hears of a refusal through
 * {@linkcode GpuMemoryEvents.refused}.
 *
 * Note [late verdicts]: WebGPU reports a refused GPUBuffer only when its error
 * scope resolves, after the allocator may already have placed blocks in the
 * heap, freed them, released the heap or reused it. A handler of a verdict
 * must cope with the heap being gone.
 *
 * @module
 */

import type { MemoryBudget } from "./budget.ts";
import { type Heap, newHeap } from "./block.ts";
import type { AllocatorDevice } from "./device.ts";
import type { PoolName } from "./size_classes.ts";

// A buffer bound as read-write storage in a dispatch may not be bound there in
// any other way (WebGPU usage scopes are per GPUBuffer), so uniforms and
// scalars live in heaps of their own, apart from storage heaps.
const BUFFER_USAGE: Record<PoolName, number> = {
  small: 0x80 | 0x08 | 0x04, // STORAGE | COPY_DST | COPY_SRC
  large: 0x80 | 0x08 | 0x04,
  uniform: 0x40 | 0x08 | 0x04, // UNIFORM | COPY_DST | COPY_SRC
  scalar: 0x40 | 0x08, // UNIFORM | COPY_DST
  readback: 0x01 | 0x08, // MAP_READ | COPY_DST
  upload: 0x02 | 0x04, // MAP_WRITE | COPY_SRC
};

/** @internal what GPU memory tells the allocator, later than the call that caused it. */
export interface GpuMemoryEvents {
  /** The device refused a heap: `message` is its error's. */
  refused(heap: Heap, message: string): void;
}

/** @internal makes and destroys heaps' GPUBuffers, and keeps the budget in step. */
export class GpuMemory {
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
    device.pushErrorScope("out-of-memory");
    let buffer: GPUBuffer;
    try {
      buffer = device.createBuffer({
        size,
        usage: BUFFER_USAGE[pool],
        label: `gpuheap ${pool} heap #${id}`,
      });
    } catch (error) {
      device.popErrorScope().catch(() => {});
      this.#budget?.release(size);
      throw error;
    }
    const heap = newHeap(id, pool, buffer, size, isSplit);
    const verdict = device.popErrorScope().then(
      (error) => {
        if (error) this.#events.refused(heap, error.message);
      },
      () => {},
    ).finally(() => this.#verdicts.delete(verdict));
    this.#verdicts.add(verdict);
    return heap;
  }

  /** Destroys a heap's GPUBuffer and gives its bytes back to the budget. */
  destroyHeap(heap: Heap): void {
    heap.buffer.destroy();
    this.#budget?.release(heap.size);
  }

  /** Resolves once the device gave its verdict on every heap made so far. */
  async settle(): Promise<void> {
    while (this.#verdicts.size > 0) await Promise.all([...this.#verdicts]);
  }
}
