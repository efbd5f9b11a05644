// Makes tensors, disposes some, drops the rest and collects garbage, so the
// test can read which leaks were reported. Run with --v8-flags=--expose-gc.
// Argument: "env" (reports as GPUHEAP_DEBUG sets them), "function" (reports
// through reportTensorLeaks to stdout), "off" (reports turned off).
import { FakeDevice, HeapAllocator } from "../../mod.ts";
import { empty, reportTensorLeaks } from "../../kernels/mod.ts";

const mode = Deno.args[0];
if (mode === "function") reportTensorLeaks((line) => console.log(`report: ${line}`));
if (mode === "off") reportTensorLeaks(false);

const allocator = new HeapAllocator(new FakeDevice(), { debug: false });
(() => {
  empty(allocator, [1, 3, 8, 8], { label: "activations" });
  empty(allocator, [2, 2], { label: "disposed" }).dispose();
  using _ = empty(allocator, [4], { label: "used" });
})();
const collect = (globalThis as { gc?: () => void }).gc;
if (!collect) throw new Error("run with --v8-flags=--expose-gc");
for (let i = 0; i < 5; i++) {
  collect();
  await new Promise((resolve) => setTimeout(resolve, 10));
}
console.log(`allocated after: ${allocator.currentAllocatedMemory()}`);
