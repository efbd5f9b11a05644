// The pool's Worker (kernels/workers/worker.ts) with one fault injected, for
// the Worker-fault scenarios of workers_scenarios.ts. The fault is named in
// this module's URL, so the Worker code itself knows nothing of it:
//   faulty_worker.ts?fault=KIND&worker=I&after=N
// Worker I (0-based) suffers KIND once it has checked N iterations of a job:
//   throw       an uncaught exception           reject  an unhandled rejection
//   close       self.close()                    exit    Deno.exit(3)
//   lose        device.destroy(): its device is lost
//   idle-close  self.close() N ms after start, between jobs
// or while it starts:
//   no-adapter  requestAdapter finds no adapter (a failed start)
//   start-exit  Deno.exit(1) before it answers
import "../../kernels/workers/worker.ts";
import { WorkerControl } from "../../kernels/workers/_control.ts";

const params = new URL(import.meta.url).searchParams;
const fault = params.get("fault") ?? "";
const target = Number(params.get("worker") ?? "0");
const after = Number(params.get("after") ?? "2");

const scope = globalThis as unknown as {
  addEventListener(type: "message", listener: (event: MessageEvent) => void): void;
  close(): void;
};

let index = -1;
let control: WorkerControl | null = null;
let device: GPUDevice | null = null;

// The device the Worker requests, so that "lose" can destroy it from outside the Worker's code.
const requestDevice = GPUAdapter.prototype.requestDevice;
GPUAdapter.prototype.requestDevice = async function (this: GPUAdapter, descriptor) {
  device = await requestDevice.call(this, descriptor);
  return device;
};
const requestAdapter = navigator.gpu.requestAdapter.bind(navigator.gpu);
navigator.gpu.requestAdapter = (options) =>
  fault === "no-adapter" && index === target ? Promise.resolve(null) : requestAdapter(options);

function strike(): void {
  if (fault === "throw") throw new Error("injected fault");
  if (fault === "reject") Promise.reject(new Error("injected rejection"));
  if (fault === "close" || fault === "idle-close") scope.close();
  if (fault === "exit") Deno.exit(3);
  if (fault === "lose") device?.destroy();
}

// Registered after worker.ts's handler, which starts its work in a later microtask.
scope.addEventListener("message", (event) => {
  const message = event.data as { type: string; index?: number; control?: SharedArrayBuffer };
  if (message.type === "init") {
    index = message.index!;
    control = new WorkerControl(message.control!, index);
    if (index !== target) return;
    if (fault === "start-exit") Deno.exit(1);
    if (fault === "idle-close") setTimeout(strike, after);
  } else if (message.type === "run" && index === target) {
    const timer = setInterval(() => {
      if (control!.steps < after) return;
      clearInterval(timer);
      strike();
    }, 2);
  }
});
