/**
 * Compiled shaders (compute pipelines), cached per device under each
 * program's own key, so one shader serves every shape and a loop compiles
 * nothing after its first iteration.
 *
 * @module
 */

import type { ShaderProgram } from "./_prelude.ts";

interface DeviceCache {
  shaders: Map<string, GPUComputePipeline>;
  compilations: number;
  hits: number;
}

const caches = new WeakMap<GPUDevice, DeviceCache>();
let totalCompilations = 0;

function cacheOf(device: GPUDevice): DeviceCache {
  let cache = caches.get(device);
  if (!cache) {
    cache = { shaders: new Map(), compilations: 0, hits: 0 };
    caches.set(device, cache);
  }
  return cache;
}

/** Counters of a device's shader cache. */
export interface ShaderCacheStats {
  /** Shaders compiled (shader module + compute pipeline created). */
  compilations: number;
  /** Lookups answered from the cache. */
  hits: number;
  /** Shaders held. */
  size: number;
}

/**
 * Returns the compute pipeline of `program`, compiling its WGSL (entry point
 * `main`, automatic layout) only the first time the device sees its
 * `shaderKey`.
 *
 * @example
 * ```ts
 * import { requestDevice } from "@gpuheap/gpuheap";
 * import { getShader, reluShader, shaderCacheStats } from "@gpuheap/gpuheap/kernels";
 * import assert from "node:assert/strict";
 *
 * const device = await requestDevice();
 * const a = getShader(device, reluShader({ dtype: "f32", width: 4, workgroupSize: 64 }));
 * const b = getShader(device, reluShader({ workgroupSize: 64, width: 4, dtype: "f32" }));
 * assert.equal(a, b);
 * assert.equal(shaderCacheStats(device).compilations, 1);
 * device.destroy();
 * ```
 *
 * @param device the device to compile for
 * @param program the shader's key and WGSL
 * @returns the cached or new shader (a compute pipeline)
 */
export function getShader(device: GPUDevice, program: ShaderProgram): GPUComputePipeline {
  const cache = cacheOf(device);
  const key = program.shaderKey;
  let shader = cache.shaders.get(key);
  if (shader) {
    cache.hits++;
    return shader;
  }
  const module = device.createShaderModule({ code: program.wgsl(), label: key });
  shader = device.createComputePipeline({
    layout: "auto",
    compute: { module, entryPoint: "main" },
    label: key,
  });
  cache.compilations++;
  totalCompilations++;
  cache.shaders.set(key, shader);
  return shader;
}

/**
 * Counters of `device`'s shader cache; without a device, the compilations
 * of every device in this process.
 *
 * @example
 * ```ts
 * import { shaderCacheStats } from "@gpuheap/gpuheap/kernels";
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
    ? { compilations: cache.compilations, hits: cache.hits, size: cache.shaders.size }
    : { compilations: 0, hits: 0, size: 0 };
}

/**
 * Number of shaders compiled for `device` (for every device without one).
 * A loop running the same ops on the same shapes leaves it unchanged after
 * its first iteration.
 *
 * @example
 * ```ts
 * import { shaderCompilations } from "@gpuheap/gpuheap/kernels";
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
