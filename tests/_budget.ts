// A budget for tests: counts what allocators reserve and release, refuses
// past its limit, and records every call, so a test can check the allocator
// against it without the thread machinery of the shared budget. Also a fake
// device whose error scopes fail, for the paths that give a budget back.
import type { FakeDevice } from "../mod.ts";
import type { MemoryBudget } from "../allocator/budget.ts";
import type { PoolCounters } from "../allocator/stats.ts";

/** A single-threaded MemoryBudget that keeps count. */
export class CountingBudget implements MemoryBudget {
  readonly limit: number;
  reserved = 0;
  /** Every call, in order: ["reserve", bytes, granted], ["release", bytes], ["relieve", bytes]. */
  readonly calls: [string, number, boolean?][] = [];
  /** What relieve() answers (default: waiting cannot help). */
  relieveAnswers: boolean[] = [];

  constructor(limit = 0) {
    this.limit = limit;
  }

  reserve(bytes: number): boolean {
    const granted = this.limit === 0 || this.reserved + bytes <= this.limit;
    if (granted) this.reserved += bytes;
    this.calls.push(["reserve", bytes, granted]);
    return granted;
  }

  release(bytes: number): void {
    this.reserved -= bytes;
    this.calls.push(["release", bytes]);
  }

  pressured(): boolean {
    return false;
  }

  relieve(bytes = 0): boolean {
    this.calls.push(["relieve", bytes]);
    return this.relieveAnswers.shift() ?? false;
  }

  publish(_counters: Readonly<PoolCounters>): void {}

  describe(): string {
    return `(test budget: ${this.reserved} of ${this.limit} bytes reserved)`;
  }

  /** How many times `kind` was called. */
  count(kind: string): number {
    return this.calls.filter((c) => c[0] === kind).length;
  }
}

/**
 * A fake device whose error scopes cannot be popped: `popErrorScope` throws
 * a TypeError with `message`, as a device failing right after `createBuffer` would.
 */
export function deviceWithBrokenScopes(device: FakeDevice, message: string) {
  return {
    limits: device.limits,
    queue: device.queue,
    createBuffer: (d: GPUBufferDescriptor) => device.createBuffer(d),
    pushErrorScope: (f: GPUErrorFilter) => device.pushErrorScope(f),
    popErrorScope: (): Promise<GPUError | null> => {
      throw new TypeError(message);
    },
  };
}
