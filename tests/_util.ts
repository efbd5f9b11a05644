// Helpers shared by the tests: a seeded PRNG and the real device.
import { requestDevice } from "../mod.ts";

/** The shared seeded PRNG (mulberry32): floats in [0, 1). */
export { mulberry32 as rng } from "../kernels/_random.ts";

let device: Promise<GPUDevice> | undefined;

/**
 * The real adapter's device, shared by a test file. No adapter is a failure
 * (requestDevice says how to get one), never a skip.
 */
export function gpu(): Promise<GPUDevice> {
  device ??= requestDevice().then((d) => {
    // Released with the test file's module: devices left for process exit to
    // tear down have crashed the software adapter's driver.
    globalThis.addEventListener("unload", () => d.destroy());
    return d;
  });
  return device;
}
