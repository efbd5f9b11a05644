/**
 * The conv2d tile policy: which tile sizes the tiled and Winograd kernels use
 * for a convolution when the caller names none. Each choice was the fastest
 * of a sweep on the GPU it names; software adapters get small tiles, since
 * their shader compiler slows down with workgroup memory.
 *
 * @module
 */

import type { Conv2dTiledProgram } from "./conv2d_tiled.wgsl.ts";
import {
  type Conv2dWinogradProgram,
  conv2dWinogradWorkgroupBytes,
} from "./conv2d_winograd.wgsl.ts";

/** Tile sizes of the Winograd kernel (see {@linkcode Conv2dWinogradProgram}). */
export type Conv2dWinogradTiles = Pick<
  Conv2dWinogradProgram,
  "tiles" | "tileN" | "tileK" | "threadM" | "threadN" | "half" | "passChannels"
>;

/** Tile sizes of the tiled kernel (see {@linkcode Conv2dTiledProgram}). */
export type Conv2dTiles = Pick<
  Conv2dTiledProgram,
  "tileM" | "tileN" | "tileK" | "threadM" | "threadN" | "half"
>;

/**
 * The tile sizes the tiled kernel uses for a convolution, given input
 * channels per group and output channels per group. Steps of 16 input
 * channels where there are as many (on an H200 the pipeline ran 1.27 ms
 * with them against 1.54 ms with 8), except on a software adapter, whose
 * compiler slows down with the size of workgroup memory.
 *
 * @example
 * ```ts
 * import { conv2dDefaultTiles } from "@gpuheap/gpuheap/kernels";
 * import assert from "node:assert/strict";
 *
 * assert.equal(conv2dDefaultTiles(32, 64).tileN, 64);
 * assert.equal(conv2dDefaultTiles(32, 64).tileK, 16);
 * assert.equal(conv2dDefaultTiles(32, 64, true).tileK, 8);
 * ```
 *
 * @param cInG input channels per group
 * @param cOutG output channels per group
 * @param software whether the adapter is a software (fallback) one
 * @returns tile sizes
 */
export function conv2dDefaultTiles(cInG: number, cOutG: number, software = false): Conv2dTiles {
  const tileK = cInG >= 16 && !software ? 16 : cInG >= 8 ? 8 : 4;
  if (cOutG > 32) return { tileM: 128, tileN: 64, tileK, threadM: 8, threadN: 8 };
  if (cOutG > 16) return { tileM: 128, tileN: 32, tileK, threadM: 8, threadN: 4 };
  return { tileM: 64, tileN: 16, tileK, threadM: 4, threadN: 4 };
}

/** 2x2 tiles from which the Winograd kernel takes blocks of 64 tiles instead of 32. */
const WINOGRAD_LARGE = 16384;

/** Epilogue channels of the hardware defaults where they fit (on an H100, 5% faster than 4). */
const WINOGRAD_WIDE_PASS = 8;

/**
 * Most input channels per group whose Winograd sums the f16 default keeps in
 * f16: the rounding error of a sum grows with its terms (1.1e-3 relative for
 * the 32- and 64-channel target pipeline on an H100, against f16's 1e-2
 * bound).
 */
export const WINOGRAD_HALF_MAX_CHANNELS = 256;

/**
 * The tile sizes the Winograd kernel uses for a convolution with `cOutG`
 * output channels per group and `tileCount` 2x2 output tiles: the fastest of
 * a sweep on an H200 (64 tiles by 32 channels for large problems, 32 by 32
 * for small ones, which then spread over more workgroups), with a reduction
 * step whose workgroup memory fits `maxWorkgroupBytes`. On a software
 * adapter, small tiles: its compiler takes minutes over shaders with tens of
 * KiB of workgroup memory. For f16 tensors with more than 32 output and at
 * most {@linkcode WINOGRAD_HALF_MAX_CHANNELS} input channels per group, f16
 * products and sums over 32 tiles by 64 channels (on an H100: 0.63 ms for
 * the f16 pipeline, against 0.87 with f32 sums).
 *
 * @example
 * ```ts
 * import { conv2dWinogradDefaultTiles } from "@gpuheap/gpuheap/kernels";
 * import assert from "node:assert/strict";
 *
 * assert.equal(conv2dWinogradDefaultTiles(64, 131072, 49152).tiles, 64);
 * assert.equal(conv2dWinogradDefaultTiles(32, 256, 49152).tiles, 32);
 * assert.equal(conv2dWinogradDefaultTiles(16, 256, 49152).tileK, 8);
 * assert.equal(conv2dWinogradDefaultTiles(16, 256, 49152).passChannels, 8);
 * assert.equal(conv2dWinogradDefaultTiles(16, 256, 32768).tileK, 4);
 * assert.equal(conv2dWinogradDefaultTiles(64, 131072, 32768).passChannels, undefined);
 * assert.equal(conv2dWinogradDefaultTiles(64, 131072, 32768, true).tiles, 16);
 * assert.equal(conv2dWinogradDefaultTiles(64, 131072, 49152, false, { cInG: 64 }).half, true);
 * assert.equal(conv2dWinogradDefaultTiles(64, 131072, 49152, false, { cInG: 512 }).half, undefined);
 * ```
 *
 * @param cOutG output channels per group
 * @param tileCount 2x2 output tiles of the convolution (all images and groups)
 * @param maxWorkgroupBytes the device's `maxComputeWorkgroupStorageSize`
 * @param software whether the adapter is a software (fallback) one
 * @param f16 for f16 tensors: their input channels per group
 * @returns tile sizes
 */
export function conv2dWinogradDefaultTiles(
  cOutG: number,
  tileCount: number,
  maxWorkgroupBytes: number,
  software = false,
  f16?: { cInG: number },
): Conv2dWinogradTiles {
  const sizes: Conv2dWinogradTiles = software
    ? { tiles: 16, tileN: 16, tileK: 4, threadM: 4, threadN: 4 }
    : f16 && f16.cInG <= WINOGRAD_HALF_MAX_CHANNELS && cOutG > 32
    ? { tiles: 32, tileN: 64, tileK: 8, threadM: 8, threadN: 16, half: true }
    : cOutG <= 16
    ? { tiles: 64, tileN: 16, tileK: 8, threadM: 8, threadN: 8 }
    : tileCount >= WINOGRAD_LARGE
    // Steps of 4 channels (on an H200: 1.13 ms for the pipeline, 1.14 with 8).
    ? { tiles: 64, tileN: 32, tileK: 4, threadM: 16, threadN: 8 }
    : { tiles: 32, tileN: 32, tileK: 8, threadM: 8, threadN: 8 };
  let tiles = software ? sizes : { ...sizes, passChannels: WINOGRAD_WIDE_PASS };
  // Too many bytes: the default epilogue passes first, then shorter steps.
  while (conv2dWinogradWorkgroupBytes({ ...WINOGRAD_FIT, ...tiles }) > maxWorkgroupBytes) {
    if (tiles.passChannels !== undefined) tiles = sizes;
    else if (tiles.tileK > 1) tiles = { ...tiles, tileK: tiles.tileK / 2 };
    else break;
  }
  return tiles;
}

/** The program fields that do not change the workgroup memory. */
const WINOGRAD_FIT = { dtype: "f32", bias: false, relu: false, pool: "none" } as const;
