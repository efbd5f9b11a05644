// A Worker of tests/budget_test.ts, sharing a budget with the test:
//   "random": reserve and release random sizes, `steps` times, holding a few
//             reservations at once; give everything back, detach, report.
//   "hold":   reserve `bytes`, report, then release them once another sharer
//             raises the pressure flag; detach, report again.
import { SharedBudget } from "../../kernels/workers/shared_budget.ts";

export type BudgetWorkerTask =
  | { mode: "random"; budget: SharedArrayBuffer; slot: number; steps: number; seed: number }
  | { mode: "hold"; budget: SharedArrayBuffer; slot: number; bytes: number };

const scope = globalThis as unknown as {
  onmessage: ((event: MessageEvent<BudgetWorkerTask>) => void) | null;
  postMessage(message: unknown): void;
  close(): void;
};

scope.onmessage = async (event) => {
  const task = event.data;
  const budget = SharedBudget.from(task.budget, task.slot);
  if (task.mode === "random") {
    let s = task.seed >>> 0;
    const random = () => {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      return s / 2 ** 32;
    };
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
