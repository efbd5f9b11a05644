/**
 * The three-stage pipeline: conv2d + bias + ReLU, then a 2x2 stride-2 pool,
 * three times (max, max, average).
 *
 * @module
 */

import { convGeometry, formatShape, poolGeometry, show } from "./_geometry.ts";
import { checkTensors } from "./_op.ts";
import { commandBatchOf } from "./command_batch.ts";
import { scope } from "./scope.ts";
import { type Conv2dAlgorithm, conv2dRelu } from "./conv2d.ts";
import type { Conv2dTiles } from "./conv2d_tiles.ts";
import { PIPELINE_STAGES } from "./reference.ts";
import type { Tensor } from "./tensor.ts";

/** Weight and optional bias of one convolution. */
export interface ConvWeights {
  /** `[Cout, Cin/groups, kH, kW]`. */
  weight: Tensor;
  /** `[Cout]`, or absent for no bias. */
  bias?: Tensor | null;
}

/** Options of {@linkcode pipeline}. */
export interface PipelineOptions {
  /** The conv2d kernel (default `"auto"`). */
  algorithm?: Conv2dAlgorithm;
  /** Tile sizes of the tiled conv2d kernel, for tuning. */
  tiles?: Conv2dTiles;
}

/**
 * Runs the three stages of {@linkcode PIPELINE_STAGES} on `x`: each a
 * convolution (stride 1, padding 1) with bias and ReLU fused, then a 2x2
 * stride-2 pool (max, max, average). Every shape is checked before anything
 * is recorded; intermediates are disposed as soon as the next stage is
 * recorded, and the allocator reuses them after the batch's submit.
 * {@linkcode pipelineRef} is its float64 reference.
 *
 * @example
 * ```ts
 * import { HeapAllocator, pipeline, requestDevice, tensor } from "@gpuheap/gpuheap";
 * import assert from "node:assert/strict";
 *
 * const device = await requestDevice();
 * const allocator = new HeapAllocator(device);
 * const conv = (cin: number, cout: number) => ({
 *   weight: tensor(allocator, new Float32Array(cout * cin * 9).fill(0.1), [cout, cin, 3, 3]),
 *   bias: tensor(allocator, new Float32Array(cout).fill(0.5), [cout]),
 * });
 * const x = tensor(allocator, new Float32Array(2 * 8 * 8).fill(1), [1, 2, 8, 8]);
 * const y = pipeline(x, [conv(2, 4), conv(4, 4), conv(4, 4)]);
 * assert.deepEqual(y.shape, [1, 4, 1, 1]);
 * console.log(await y.read());
 * allocator.destroy();
 * device.destroy();
 * ```
 *
 * @param x input `[N, C, H, W]`
 * @param weights the three convolutions' weights and biases
 * @param options conv2d algorithm and tiles
 * @returns a new tensor, the last stage's output
 */
export function pipeline(
  x: Tensor,
  weights: readonly ConvWeights[],
  options: PipelineOptions = {},
): Tensor {
  const op = "run pipeline";
  if (!Array.isArray(weights) || weights.length !== PIPELINE_STAGES.length) {
    throw new RangeError(
      `Cannot ${op}: expected ${PIPELINE_STAGES.length} convolutions' weights, got ${
        Array.isArray(weights) ? weights.length : show(weights)
      }`,
    );
  }
  options ??= {};
  // Check every stage's shapes first, for messages that name the stage.
  let shape: readonly number[] = x?.shape;
  weights.forEach((w, i) => {
    const stage = PIPELINE_STAGES[i];
    const bias = `weights[${i}].bias`;
    checkTensors(op, {
      input: x,
      [`weights[${i}].weight`]: w?.weight,
      [bias]: w?.bias,
    }, [bias]);
    try {
      const g = convGeometry(
        "conv2d",
        shape,
        w.weight.shape,
        w.bias ? w.bias.shape : null,
        stage.conv,
      );
      const pool = poolGeometry(`${stage.pool}Pool2d`, [g.n, g.cOut, g.hOut, g.wOut], stage);
      shape = [pool.n, pool.c, pool.hOut, pool.wOut];
    } catch (error) {
      throw new RangeError(
        `Cannot ${op}: stage ${i + 1} of input ${formatShape(x.shape)} fails: ${
          (error as Error).message
        }`,
      );
    }
  });
  // What the shapes do not show (a bad algorithm or tiles) fails inside a
  // stage: the stages record together or not at all, and a failure
  // disposes what they made.
  return scope(() =>
    commandBatchOf(x.allocator).atomic(() => {
      let t = x;
      PIPELINE_STAGES.forEach((stage, i) => {
        // Every stage pools 2x2 with stride 2: conv2d's own pool option, which
        // the Winograd kernel fuses into its epilogue.
        const y = conv2dRelu(t, weights[i].weight, weights[i].bias ?? null, {
          ...stage.conv,
          algorithm: options.algorithm,
          tiles: options.tiles,
          pool: stage.pool,
        });
        if (t !== x) t.dispose();
        t = y;
      });
      return t;
    })
  );
}
