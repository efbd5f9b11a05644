// A Worker of tests/budget_test.ts, sharing a budget with the test:
//   "random": reserve and release random sizes, `steps` times, holding a few
//             reservations at once; give everything back, detach, report.
//   "hold":   reserve `bytes`, report, then release them once another sharer
//             raises the pressure flag; detach, report again.
//   "scribble": report, then write random values of 1, 4 or 8 bytes anywhere in
//             the budget's buffer, a few every millisecond, counting them in
//             `control[1]`, until `control[0]` is set; report how many.
import { SharedBudget } from "../../kernels/workers/shared_budget.ts";

export type BudgetWorkerTask =
  | { mode: "random"; budget: SharedArrayBuffer; slot: number; steps: number; seed: number }
  | { mode: "hold"; budget: SharedArrayBuffer; slot: number; bytes: number }
  | { mode: "scribble"; budget: SharedArrayBuffer; seed: number; control: SharedArrayBuffer };

const scope = globalThis as unknown as {
  onmessage: ((event: MessageEvent<BudgetWorkerTask>) => void) | null;
  postMessage(message: unknown): void;
  close(): void;
};

scope.onmessage = async (event) => {
  const task = event.data;
  let s = "seed" in task ? task.seed >>> 0 : 0;
  const random = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
  if (task.mode === "scribble") {
    scope.postMessage({ scribbling: true });
    scope.postMessage({ scribbles: scribble(task.budget, new Int32Array(task.control), random) });
    scope.close();
    return;
  }
  const budget = SharedBudget.from(task.budget, task.slot);
  if (task.mode === "random") {
    const held: number[] = [];
    let refused = 0;
    for (let i = 0; i < task.steps; i++) {
      if (held.length > 0 && (held.length >= 8 || random() < 0.5)) {
        budget.release(held.splice(Math.floor(random() * held.length), 1)[0]);
      } else {
        const bytes = (1 + Math.floor(random() * 64)) * 4096;
        if (budget.reserve(bytes)) held.push(bytes);
        else refused++;
      }
    }
    for (const bytes of held) budget.release(bytes);
    budget.detach();
    scope.postMessage({ refused });
  } else {
    budget.reserve(task.bytes);
    scope.postMessage({ holding: task.bytes });
    while (!(await budget.waitForPressure(5000))) { /* until asked */ }
    budget.pressured();
    budget.release(task.bytes);
    budget.detach();
    scope.postMessage({ released: task.bytes });
  }
  scope.close();
};

/** Writes garbage into `buffer` until `control[0]` is set; returns how many writes. */
function scribble(buffer: SharedArrayBuffer, control: Int32Array, random: () => number): number {
  const big = new BigInt64Array(buffer);
  const f64 = new Float64Array(buffer);
  const i32 = new Int32Array(buffer);
  const u8 = new Uint8Array(buffer);
  const pick = <T>(values: T[]) => values[Math.floor(random() * values.length)];
  let n = 0;
  while (Atomics.load(control, 0) === 0) {
    const kind = Math.floor(random() * 4);
    if (kind === 0) {
      big[Math.floor(random() * big.length)] = pick([0n, -1n, -(2n ** 62n), 2n ** 62n, 12345n]);
    } else if (kind === 1) {
      f64[Math.floor(random() * f64.length)] = pick([1.5, NaN, -Infinity, -3, 2 ** 53, 0]);
    } else if (kind === 2) {
      i32[Math.floor(random() * i32.length)] = pick([0, -1, -2, -5, 2 ** 31 - 1, 7]);
    } else {
      u8[Math.floor(random() * u8.length)] = Math.floor(random() * 256);
    }
    n++;
    Atomics.store(control, 1, n);
    // A few writes a millisecond: the sharers make many calls between two of them.
    const until = performance.now() + random() * 0.4;
    while (performance.now() < until) { /* wait */ }
  }
  return n;
}
