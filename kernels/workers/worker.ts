/**
 * The Worker side of {@linkcode WorkerPool}, a Web Worker module: its own
 * device and allocator (a GPUDevice cannot cross threads), the shared
 * budget rebuilt from the SharedArrayBuffer it is sent, and the pool's job
 * module, whose default export it calls for each `run()`. On "close" it
 * destroys its allocator and device and closes itself, so no device is
 * left for process exit to tear down.
 *
 * Not for import: the pool starts it. A Worker script of your own
 * (`WorkerPoolOptions.script`) imports it first.
 *
 * However this Worker ends, it says how in its state word
 * (kernels/workers/_control.ts), since a Web Worker's end fires no event
 * in the pool: `self.close()` and `Deno.exit()` are wrapped to say so, an
 * uncaught error or rejection is caught here (the Worker then ends), and a
 * lost device ends it too. Its heartbeat shows its event loop still turns.
 *
 * @module
 */

import { HeapAllocator } from "../../allocator/allocator.ts";
import { SharedBudget } from "./shared_budget.ts";
import { requestDevice } from "../../allocator/request_device.ts";
import { WorkerControl, WorkerState } from "./_control.ts";
import { errorInfo, type FromWorker, type ToWorker } from "./_messages.ts";
import type { Job, JobContext, JobProgress } from "./job.ts";

/** How often the heartbeat is bumped. */
const HEARTBEAT_MS = 50;
/** How often an idle Worker looks for another sharer's request to release caches. */
const PRESSURE_POLL_MS = 1000;

interface State {
  index: number;
  workers: number;
  device: GPUDevice;
  heap: HeapAllocator;
  budget: SharedBudget;
  job: Job;
  gpuErrors: string[];
  /** True while a job runs: then the allocator answers pressure itself. */
  running: boolean;
}

// Only inside a Worker: imported elsewhere (by a doc test, say), this module does nothing.
const self = globalThis as unknown as {
  postMessage?: (message: FromWorker) => void;
  close: () => void;
  onmessage: ((event: MessageEvent<ToWorker>) => void) | null;
  addEventListener(type: string, listener: (event: Event) => void): void;
};
let state: State | null = null;
let control: WorkerControl | null = null;
/** The running jobs' abort controllers, by run id. */
const aborts = new Map<number, AbortController>();

// A Worker's global scope has postMessage; the main thread's has none.
if (typeof self.postMessage === "function") install();

function install(): void {
  const close = self.close.bind(self);
  self.close = () => {
    control?.end(WorkerState.closedItself);
    close();
  };
  const exit = Deno.exit;
  (Deno as { exit: (code?: number) => never }).exit = (code?: number) => {
    control?.end(WorkerState.exited, Number.isInteger(code) ? code : 0);
    return exit(code);
  };
  // Handled here: an error that reached the pool's thread would end the process.
  self.addEventListener("error", (event) => {
    event.preventDefault();
    die(WorkerState.crashed, `crashed: ${(event as ErrorEvent).message}`);
  });
  self.addEventListener("unhandledrejection", (event) => {
    event.preventDefault();
    const reason = (event as PromiseRejectionEvent).reason;
    die(WorkerState.crashed, `crashed: unhandled rejection: ${errorInfo(reason).message}`);
  });
  // Messages are handled one at a time, in order: a "close" waits for a running job.
  // An "abort" is for the job running now: it cannot wait.
  let queue = Promise.resolve();
  self.onmessage = (event) => {
    const message = event.data;
    if (message.type === "init") {
      // At once, not in turn: whatever ends this Worker from now on can say so.
      control = new WorkerControl(message.control, message.index);
      const c = control;
      // A first beat now: the pool watches for a stall only once it has seen one, and a job
      // that blocks before the first interval would otherwise never be seen to stop.
      c.pulse();
      setInterval(() => c.pulse(), HEARTBEAT_MS);
    }
    if (message.type === "abort") {
      aborts.get(message.id)?.abort(new DOMException("The pool stopped the job", "AbortError"));
      return;
    }
    queue = queue.then(() => handle(message)).catch((error) => {
      post({ type: "failed", id: message.id, error: errorInfo(error) });
    });
  };
}

function post(message: FromWorker): void {
  self.postMessage!(message);
}

/** Ends this Worker on its own: says why, frees what it holds, closes. */
function die(how: number, reason: string): void {
  if (control !== null && control.state > WorkerState.running) return;
  try {
    post({ type: "ending", reason });
  } catch {
    // Nothing more to say.
  }
  control?.end(how);
  const s = state;
  state = null;
  if (s !== null) {
    try {
      s.heap.destroy();
      s.device.destroy();
    } catch {
      // A lost device took its buffers; the pool gives the budget slot back.
    }
  }
  self.close();
}

async function handle(message: ToWorker): Promise<void> {
  if (message.type === "init") {
    state = await init(message);
    control!.started();
    watchPressure(state).catch(() => {}); // it stops once the Worker closes
    const info = state.device.adapterInfo;
    post({
      type: "ready",
      id: message.id,
      adapter: info.description || info.device || info.vendor || "unknown",
      fallback: info.isFallbackAdapter,
    });
  } else if (message.type === "run") {
    if (state === null) throw new Error("Cannot run a job: the Worker has no device");
    await run(state, message.id, message.input);
  } else if (message.type === "close") {
    const s = state;
    state = null;
    if (s !== null) {
      s.heap.destroy();
      s.device.destroy();
      s.budget.detach();
    }
    control?.end(WorkerState.closed);
    post({ type: "closed", id: message.id });
    self.close();
  }
}

async function run(s: State, id: number, input: unknown): Promise<void> {
  const abort = new AbortController();
  aborts.set(id, abort);
  const c = control!;
  c.resetSteps();
  const progress: JobProgress = {
    step: (count = 1, failed = 0) => c.step(count, failed),
    get steps() {
      return c.steps;
    },
    get failed() {
      return c.failed;
    },
  };
  const context: JobContext = {
    input,
    device: s.device,
    allocator: s.heap,
    index: s.index,
    workers: s.workers,
    signal: abort.signal,
    progress,
  };
  s.running = true;
  let result: unknown;
  let error = null;
  try {
    result = await s.job(context);
    // A validation error would mean a kernel or allocator bug: it fails the job.
    if (state === s) await s.device.queue.onSubmittedWorkDone();
    if (s.gpuErrors.length > 0) {
      error = { name: "GPUValidationError", message: s.gpuErrors.join("; ") };
    }
  } catch (thrown) {
    if (state === s) post({ type: "failed", id, error: errorInfo(thrown) });
    return;
  } finally {
    aborts.delete(id);
    s.running = false;
    s.gpuErrors.length = 0;
    // Asked during the job's last stretch, with no allocation left to notice.
    if (state === s && s.budget.pressured()) s.heap.emptyCache();
  }
  if (state !== s) return; // the device was lost: the Worker ends, and says so
  try {
    post({ type: "result", id, result, error });
  } catch (thrown) {
    const why = errorInfo(thrown);
    post({
      type: "failed",
      id,
      error: { name: why.name, message: `the job's result cannot be sent: ${why.message}` },
    });
  }
}

/**
 * Between jobs this Worker allocates nothing, so the allocator's own check
 * before each allocation never sees another Worker's request to release
 * caches: wait for it here instead, and empty the cache when it comes.
 */
async function watchPressure(s: State): Promise<void> {
  while (state === s) {
    if (!s.running && s.budget.pressured()) s.heap.emptyCache();
    // A finite wait, so the loop notices when the Worker closes.
    await s.budget.waitForPressure(PRESSURE_POLL_MS);
  }
}

async function init(message: Extract<ToWorker, { type: "init" }>): Promise<State> {
  const budget = SharedBudget.from(message.budget, message.slot);
  let device: GPUDevice | null = null;
  try {
    const module = await import(message.job);
    const job = module.default;
    if (typeof job !== "function") {
      throw new TypeError(
        `Cannot load the job: ${message.job} has no default export function (got ${typeof job})`,
      );
    }
    device = await requestDevice();
    const gpuErrors: string[] = [];
    device.addEventListener("uncapturederror", (e) => {
      gpuErrors.push((e as GPUUncapturedErrorEvent).error.message);
    });
    const s: State = {
      index: message.index,
      workers: message.workers,
      device,
      // A Worker records only through the kernels' command batch (a beforeSubmit hook), so its
      // allocator may submit to reuse freed blocks rather than grow into the shared budget.
      heap: new HeapAllocator(device, { submitWhenShort: true, ...message.heapOptions, budget }),
      budget,
      job: job as Job,
      gpuErrors,
      running: false,
    };
    device.lost.then((info) => {
      // Destroyed by "close" (state is then null): nothing to say.
      if (state === s) {
        die(WorkerState.lost, `lost its device (${info.reason}): ${info.message || "no message"}`);
      }
    });
    return s;
  } catch (error) {
    device?.destroy();
    budget.detach();
    throw error;
  }
}
