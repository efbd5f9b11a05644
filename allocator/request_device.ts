/**
 * Getting a device with the limits the allocator needs.
 *
 * @module
 */

/** Options of {@linkcode requestDevice}. */
export interface RequestDeviceOptions {
  /** Passed to `navigator.gpu.requestAdapter`. */
  powerPreference?: GPUPowerPreference;
  /** Features to require when the adapter has them (default: shader-f16, timestamp-query). */
  optionalFeatures?: GPUFeatureName[];
}

const WANTED_FEATURES: GPUFeatureName[] = ["shader-f16", "timestamp-query"];

/**
 * Requests an adapter and a device whose limits are raised to the adapter's
 * (WebGPU's defaults cap buffers at 256 MiB and bindings at 128 MiB), with
 * `shader-f16` and `timestamp-query` when the adapter has them.
 *
 * @throws {Error} when there is no WebGPU or no adapter, saying how to get one
 *
 * @example
 * ```ts
 * import { requestDevice } from "@gpuheap/gpuheap";
 *
 * const device = await requestDevice();
 * console.log(device.limits.maxBufferSize);
 * device.destroy();
 * ```
 */
export async function requestDevice(options: RequestDeviceOptions = {}): Promise<GPUDevice> {
  if (typeof navigator === "undefined" || !navigator.gpu) {
    throw new Error(
      "Cannot request a GPU device: this runtime has no WebGPU (navigator.gpu). Use Deno 2 or later.",
    );
  }
  const adapter = await navigator.gpu.requestAdapter({ powerPreference: options.powerPreference });
  if (!adapter) {
    throw new Error(
      "Cannot request a GPU device: no WebGPU adapter was found. Install a GPU driver with " +
        "Vulkan support, or Mesa's software rasterizer (Debian/Ubuntu: apt-get install " +
        "mesa-vulkan-drivers libegl-mesa0) to run on the CPU.",
    );
  }
  const requiredLimits: Record<string, number> = {};
  for (const key in adapter.limits) {
    const value = adapter.limits[key as keyof GPUSupportedLimits];
    if (typeof value === "number") requiredLimits[key] = value;
  }
  const wanted = options.optionalFeatures ?? WANTED_FEATURES;
  const requiredFeatures = wanted.filter((f) => adapter.features.has(f));
  return await adapter.requestDevice({ requiredLimits, requiredFeatures });
}
