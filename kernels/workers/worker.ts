/**
 * The Worker side of {@linkcode WorkerPool}: its own device and allocator
 * (a GPUDevice cannot cross threads), the shared budget rebuilt from the
 * SharedArrayBuffer it is sent, and the stress job run on request. On
 * "close" it destroys its allocator and device and closes itself, so no
 * device is left for process exit to tear down.
 *
 * Not for import: the pool starts it as a `node:worker_threads` Worker. A
 * Worker script of your own (`WorkerPoolOptions.script`) imports it first.
 * When its device is lost it says so ("ending") and closes itself: a Worker
 * without a device can do nothing.
 *
 * @module
 */

import { HeapAllocator, type HeapAllocatorOptions } from "../../allocator/allocator.ts";
import { SharedBudget } from "./shared_budget.ts";
import { requestDevice } from "../../allocator/request_device.ts";
import {
  type PipelineData,
  type PipelineJob,
  type PipelineJobReport,
  runPipelineJob,
  UncachedAllocator,
} from "./pipeline_job.ts";

/** Allocator options a Worker can be sent (no functions, no budget: it has its own). */
export type WorkerHeapOptions = Omit<HeapAllocatorOptions, "log" | "budget">;

/** Messages a pipeline Worker takes. */
export type ToPipelineWorker =
  | {
    type: "init";
    /** The Worker's index in its pool. */
    index: number;
    /** The shared budget's buffer, and the slot claimed for this Worker. */
    budget: SharedArrayBuffer;
    slot: number;
    /** Int32 triples per Worker: iterations checked, iterations failed, closed. */
    progress: SharedArrayBuffer;
    heapOptions: WorkerHeapOptions;
  }
  | { type: "run"; job: PipelineJob; data: PipelineData }
  | { type: "close" };

/** Messages a pipeline Worker sends. */
export type FromPipelineWorker =
  | { type: "ready"; adapter: string; fallback: boolean }
  | { type: "result"; report: PipelineJobReport }
  | { type: "failed"; error: { name: string; message: string } }
  | { type: "closed" }
  /** Sent just before the Worker ends on its own, saying why ("lost its device …"). */
  | { type: "ending"; reason: string };

interface State {
  index: number;
  device: GPUDevice;
  heap: HeapAllocator;
  budget: SharedBudget;
  progress: Int32Array<SharedArrayBuffer>;
  gpuErrors: string[];
  /** True while a job runs: then the allocator answers pressure itself. */
  running: boolean;
}

const PRESSURE_POLL_MS = 1000;
/**
 * How long a job that ended in an error waits for `device.lost` before it
 * reports: a destroyed device fails the job's readbacks before `lost`
 * resolves, and the loss, not the failed readback, is what to report.
 */
const LOST_WAIT_MS = 100;

// Only inside a Worker: imported elsewhere (by a doc test, say), this module does nothing.
const scope = globalThis as unknown as {
  postMessage?: (message: FromPipelineWorker) => void;
  close?: () => void;
  onmessage?: ((event: MessageEvent<ToPipelineWorker>) => void) | null;
};
let state: State | null = null;
/** Where this Worker says it closed, for a pool that waits without its event loop. */
let closedFlag: { progress: Int32Array<SharedArrayBuffer>; at: number } | null = null;
// A Worker's global scope has postMessage; the main thread's has none.
if (typeof scope.postMessage === "function") {
  // Messages are handled one at a time, in order: a "close" waits for a running job.
  let queue = Promise.resolve();
  scope.onmessage = (event) => {
    queue = queue.then(() => handle(event.data)).catch((error) => {
      post({ type: "failed", error: describe(error) });
    });
  };
}

function post(message: FromPipelineWorker): void {
  scope.postMessage!(message);
}

async function handle(message: ToPipelineWorker): Promise<void> {
  if (message.type === "init") {
    closedFlag = { progress: new Int32Array(message.progress), at: message.index * 3 + 2 };
    state = await init(message);
    watchPressure(state).catch(() => {}); // it stops once the Worker closes
    const info = state.device.adapterInfo;
    post({
      type: "ready",
      adapter: info.description || info.device || info.vendor || "unknown",
      fallback: info.isFallbackAdapter,
    });
  } else if (message.type === "run") {
    if (state === null) throw new Error("Cannot run a pipeline job: the Worker has no device");
    const s = state;
    const report = await run(s, message.job, message.data);
    if (report.error !== null) {
      await Promise.race([s.device.lost, new Promise((r) => setTimeout(r, LOST_WAIT_MS))]);
    }
    if (state === s) post({ type: "result", report }); // else the device was lost: it ends
  } else if (message.type === "close") {
    if (state !== null) {
      state.heap.destroy();
      state.device.destroy();
      state.budget.detach();
      state = null;
    }
    if (closedFlag) {
      Atomics.store(closedFlag.progress, closedFlag.at, 1);
      Atomics.notify(closedFlag.progress, closedFlag.at);
    }
    post({ type: "closed" });
    scope.close?.();
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

async function run(s: State, job: PipelineJob, data: PipelineData): Promise<PipelineJobReport> {
  s.running = true;
  try {
    return await runJob(s, job, data);
  } finally {
    s.running = false;
    // Asked during the job's last stretch, with no allocation left to notice.
    if (s.budget.pressured()) s.heap.emptyCache();
  }
}

async function runJob(s: State, job: PipelineJob, data: PipelineData): Promise<PipelineJobReport> {
  const at = s.index * 3;
  Atomics.store(s.progress, at, 0);
  Atomics.store(s.progress, at + 1, 0);
  const onIteration = (ok: boolean) => {
    Atomics.add(s.progress, at, 1);
    if (!ok) Atomics.add(s.progress, at + 1, 1);
  };
  const heap = job.mode === "naive" ? new UncachedAllocator(s.device) : s.heap;
  const report = await runPipelineJob(heap, job, data, { onIteration });
  // A validation error would mean a kernel or allocator bug: it fails the job.
  await s.device.queue.onSubmittedWorkDone();
  if (s.gpuErrors.length > 0 && report.error === null) {
    report.error = { name: "GPUValidationError", message: s.gpuErrors.join("; ") };
  }
  s.gpuErrors.length = 0;
  return report;
}

async function init(message: Extract<ToPipelineWorker, { type: "init" }>): Promise<State> {
  const budget = SharedBudget.from(message.budget, message.slot);
  let device: GPUDevice | null = null;
  try {
    device = await requestDevice();
    const gpuErrors: string[] = [];
    device.addEventListener("uncapturederror", (e) => {
      gpuErrors.push((e as GPUUncapturedErrorEvent).error.message);
    });
    const s: State = {
      index: message.index,
      device,
      // A Worker records only through the kernels' command batch (a beforeSubmit hook), so its
      // allocator may submit to reuse freed blocks rather than grow into the shared budget.
      heap: new HeapAllocator(device, { submitWhenShort: true, ...message.heapOptions, budget }),
      budget,
      progress: new Int32Array(message.progress),
      gpuErrors,
      running: false,
    };
    device.lost.then((info) => lost(s, info));
    return s;
  } catch (error) {
    device?.destroy();
    budget.detach();
    throw error;
  }
}

/**
 * The device was lost (not destroyed by "close"): a Worker without a device
 * can do nothing, so it says why and ends, and the pool reports the loss as
 * the Worker's end and gives its budget slot back.
 */
function lost(s: State, info: GPUDeviceLostInfo): void {
  if (state !== s) return; // destroyed by "close"
  state = null;
  post({
    type: "ending",
    reason: `lost its device (${info.reason}): ${info.message || "no message"}`,
  });
  try {
    s.heap.destroy();
  } catch {
    // The heaps' GPUBuffers went with the device; the pool gives the slot back.
  }
  scope.close?.();
}

function describe(error: unknown): { name: string; message: string } {
  return error instanceof Error
    ? { name: error.name, message: error.message }
    : { name: "Error", message: String(error) };
}
