// A Worker of bench/pipeline_bench.ts that hammers a shared budget: each time
// the main thread bumps `go`, Workers with an index below `active` make
// `pairs` reserve + release pairs on their own slots, then count themselves
// in `done`. `go` set to -1 ends them. Each counts itself in `ready` first.
import { SharedBudget } from "../kernels/workers/shared_budget.ts";

interface Start {
  index: number;
  budget: SharedArrayBuffer;
  slot: number;
  /** Int32: [0] go (a generation, or -1 to stop), [1] done, [2] active, [3] ready. */
  control: SharedArrayBuffer;
  pairs: number;
  bytes: number;
}

const scope = globalThis as unknown as {
  onmessage: ((event: MessageEvent<Start>) => void) | null;
  close(): void;
};
scope.onmessage = (event) => {
  const { index, budget: buffer, slot, control, pairs, bytes } = event.data;
  const budget = SharedBudget.from(buffer, slot);
  const c = new Int32Array(control);
  Atomics.add(c, 3, 1);
  Atomics.notify(c, 3);
  let seen = 0;
  for (;;) {
    Atomics.wait(c, 0, seen);
    seen = Atomics.load(c, 0);
    if (seen < 0) break;
    if (index >= Atomics.load(c, 2)) continue;
    for (let i = 0; i < pairs; i++) {
      if (!budget.reserve(bytes)) throw new Error(`bench: reserve of ${bytes} bytes refused`);
      budget.release(bytes);
    }
    Atomics.add(c, 1, 1);
    Atomics.notify(c, 1);
  }
  budget.detach();
  scope.close();
};
