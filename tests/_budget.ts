// A budget for tests: counts what allocators reserve and release, refuses
// past its limit, and records every call, so a test can check the allocator
// against it without the thread machinery of the shared budget.
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
