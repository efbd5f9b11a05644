/**
 * The pool's control words, one group per Worker in one SharedArrayBuffer:
 * the layout both sides read and write, in one place. The Worker counts its
 * job's steps, says its state and beats a heartbeat here; the pool reads
 * them without a message (progress) and watches them for a Worker's end
 * (a Web Worker has no `exit` event).
 *
 * Every word is written by the Worker's code, which may be a user's: the
 * pool reads them as untrusted (an unknown state means ended).
 *
 * @module
 */

/** Int32 words per Worker: steps, failed steps, state, heartbeat, exit code. */
const WORDS = 5;
const STEPS = 0;
const FAILED = 1;
const STATE = 2;
const BEAT = 3;
const CODE = 4;

/** A Worker's state word. The values from `ended` on say how it ended. */
export const WorkerState = {
  /** Loading its modules, or requesting its device. */
  starting: 0,
  /** Has its device; idle or running a job. */
  running: 1,
  /** Closed at the pool's request, its device destroyed. */
  closed: 2,
  /** Called `self.close()` itself. */
  closedItself: 3,
  /** Called `Deno.exit()` (the exit code is beside it). */
  exited: 4,
  /** An uncaught error or rejection ended it. */
  crashed: 5,
  /** Its device was lost. */
  lost: 6,
} as const;

/**
 * One Worker's words of the control buffer.
 *
 * @example
 * ```ts
 * import { WorkerControl, WorkerState } from "./_control.ts";
 * import assert from "node:assert/strict";
 *
 * const buffer = WorkerControl.buffer(2);
 * const worker = new WorkerControl(buffer, 1); // the Worker's view
 * const pool = new WorkerControl(buffer, 1); // the pool's
 * worker.step(3, 1);
 * worker.end(WorkerState.exited, 7);
 * assert.deepEqual([pool.steps, pool.failed, pool.state, pool.exitCode], [3, 1, WorkerState.exited, 7]);
 * assert.equal(new WorkerControl(buffer, 0).steps, 0);
 * ```
 */
export class WorkerControl {
  readonly #words: Int32Array<SharedArrayBuffer>;
  readonly #at: number;

  /**
   * The words of Worker `index` in `buffer`.
   *
   * @throws {RangeError} the buffer has no words for that index
   */
  constructor(buffer: SharedArrayBuffer, index: number) {
    if (
      !(buffer instanceof SharedArrayBuffer) || !Number.isSafeInteger(index) || index < 0 ||
      (index + 1) * WORDS * 4 > buffer.byteLength
    ) {
      throw new RangeError(`No control words for Worker ${index}`);
    }
    this.#words = new Int32Array(buffer);
    this.#at = index * WORDS;
  }

  /** A buffer with words for `count` Workers, all zero. */
  static buffer(count: number): SharedArrayBuffer {
    return new SharedArrayBuffer(count * WORDS * 4);
  }

  /** Steps of the current job counted so far (for the stress job: iterations checked). */
  get steps(): number {
    return Atomics.load(this.#words, this.#at + STEPS);
  }

  /** Steps counted as failed. */
  get failed(): number {
    return Atomics.load(this.#words, this.#at + FAILED);
  }

  /** The state word (a {@linkcode WorkerState}, if the Worker wrote honestly). */
  get state(): number {
    return Atomics.load(this.#words, this.#at + STATE);
  }

  /** The heartbeat: bumped by the Worker while its event loop turns. */
  get beat(): number {
    return Atomics.load(this.#words, this.#at + BEAT);
  }

  /** The code given to `Deno.exit()`, once the state is `exited`. */
  get exitCode(): number {
    return Atomics.load(this.#words, this.#at + CODE);
  }

  /** Zeroes the step counts, for a new job. */
  resetSteps(): void {
    Atomics.store(this.#words, this.#at + STEPS, 0);
    Atomics.store(this.#words, this.#at + FAILED, 0);
  }

  /** Counts steps, and those of them that failed. */
  step(count: number, failed: number): void {
    if (count !== 0) Atomics.add(this.#words, this.#at + STEPS, count);
    if (failed !== 0) Atomics.add(this.#words, this.#at + FAILED, failed);
  }

  /** Bumps the heartbeat. */
  pulse(): void {
    Atomics.add(this.#words, this.#at + BEAT, 1);
  }

  /** Sets the state (and an exit code), and wakes a pool blocked on it (`closeSync`). */
  end(state: number, code = 0): void {
    if (this.state > WorkerState.running) return; // the first end is the one to say
    Atomics.store(this.#words, this.#at + CODE, code);
    Atomics.store(this.#words, this.#at + STATE, state);
    Atomics.notify(this.#words, this.#at + STATE);
  }

  /** Marks the Worker running (it has its device). */
  started(): void {
    Atomics.compareExchange(
      this.#words,
      this.#at + STATE,
      WorkerState.starting,
      WorkerState.running,
    );
  }

  /** Blocks this thread until the state leaves `running`/`starting` or `ms` pass; returns the state. */
  waitEnd(ms: number): number {
    const until = performance.now() + ms;
    for (;;) {
      const state = this.state;
      const left = until - performance.now();
      if (state > WorkerState.running || left <= 0) return state;
      Atomics.wait(this.#words, this.#at + STATE, state, left);
    }
  }
}
