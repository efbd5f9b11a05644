/**
 * Compiled compute pipelines, cached per device by kernel name and program
 * description, so one shader serves every shape and a loop compiles nothing
 * after its first iteration.
 *
 * @module
 */

interface DeviceCache {
  pipelines: Map<string, GPUComputePipeline>;
  compilations: number;
  hits: number;
}

const caches = new WeakMap<GPUDevice, DeviceCache>();
let totalCompilations = 0;

function cacheOf(device: GPUDevice): DeviceCache {
  let cache = caches.get(device);
  if (!cache) {
    cache = { pipelines: new Map(), compilations: 0, hits: 0 };
    caches.set(device, cache);
  }
  return cache;
}

/** Counters of a device's pipeline cache. */
export interface ShaderCacheStats {
  /** Pipelines compiled (shader module + compute pipeline created). */
  compilations: number;
  /** Lookups answered from the cache. */
  hits: number;
  /** Pipelines held. */
  size: number;
}

/**
 * The key a kernel's pipeline is cached under: its name and its program
 * description (property order matters, so build descriptions in one place).
 *
 * @example
 * ```ts
 * import { shaderKey } from "./shader_cache.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(shaderKey("relu", { width: 4 }), 'relu:{"width":4}');
 * ```
 *
 * @param name the kernel's name
 * @param program the description its WGSL is built from
 * @returns the cache key
 */
export function shaderKey(name: string, program: object): string {
  return `${name}:${JSON.stringify(program)}`;
}

/**
 * Returns the compute pipeline of `name` built from `program`, compiling it
 * (with entry point `main` and an automatic layout) only the first time the
 * device sees this key.
 *
 * @example
 * ```ts
 * import { getShader, shaderCacheStats } from "./shader_cache.ts";
 * import { reluWgsl } from "./relu.wgsl.ts";
 * import { requestDevice } from "../allocator/request_device.ts";
 * import assert from "node:assert/strict";
 *
 * const device = await requestDevice();
 * const program = { dtype: "f32", width: 4, workgroupSize: 64 } as const;
 * const a = getShader(device, "relu", program, reluWgsl);
 * const b = getShader(device, "relu", program, reluWgsl);
 * assert.equal(a, b);
 * assert.equal(shaderCacheStats(device).compilations, 1);
 * device.destroy();
 * ```
 *
 * @param device the device to compile for
 * @param name the kernel's name
 * @param program the description the WGSL is built from
 * @param build builds the WGSL from the description
 * @returns the cached or new pipeline
 */
export function getShader<P extends object>(
  device: GPUDevice,
  name: string,
  program: P,
  build: (program: P) => string,
): GPUComputePipeline {
  const cache = cacheOf(device);
  const key = shaderKey(name, program);
  let pipeline = cache.pipelines.get(key);
  if (pipeline) {
    cache.hits++;
    return pipeline;
  }
  const module = device.createShaderModule({ code: build(program), label: key });
  pipeline = device.createComputePipeline({
    layout: "auto",
    compute: { module, entryPoint: "main" },
    label: key,
  });
  cache.compilations++;
  totalCompilations++;
  cache.pipelines.set(key, pipeline);
  return pipeline;
}

/**
 * Counters of `device`'s pipeline cache; without a device, the compilations
 * of every device in this process.
 *
 * @example
 * ```ts
 * import { shaderCacheStats } from "./shader_cache.ts";
 *
 * console.log(shaderCacheStats().compilations);
 * ```
 *
 * @param device the device whose cache to report
 * @returns compilations, hits and size
 */
export function shaderCacheStats(device?: GPUDevice): ShaderCacheStats {
  if (!device) return { compilations: totalCompilations, hits: 0, size: 0 };
  const cache = caches.get(device);
  return cache
    ? { compilations: cache.compilations, hits: cache.hits, size: cache.pipelines.size }
    : { compilations: 0, hits: 0, size: 0 };
}

/**
 * Number of pipelines compiled for `device` (for every device without one).
 * A loop running the same ops on the same shapes leaves it unchanged after
 * its first iteration.
 *
 * @example
 * ```ts
 * import { shaderCompilations } from "./shader_cache.ts";
 *
 * const before = shaderCompilations();
 * console.log(shaderCompilations() - before); // 0: nothing ran
 * ```
 *
 * @param device the device whose compilations to count
 * @returns the number of compilations
 */
export function shaderCompilations(device?: GPUDevice): number {
  return shaderCacheStats(device).compilations;
}
