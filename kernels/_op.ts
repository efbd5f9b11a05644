/**
 * What every op does around recording: check its tensors first, pack its
 * parameters, then record all its dispatches at once, so an op that fails
 * its checks records nothing.
 *
 * @module
 */

import { describe, formatShape } from "./_geometry.ts";
import type { CommandBatch, KernelDispatch } from "./command_batch.ts";
import { Tensor } from "./tensor.ts";
import { AllocatorError } from "../allocator/errors.ts";

const BIAS = ["bias"] as const;

/**
 * Checks that each named tensor is a live Tensor, and that all share the
 * first one's allocator and dtype. Those named in `optional` may be null or
 * undefined.
 *
 * @throws {TypeError} not a Tensor, or another dtype
 * @throws {AllocatorError} disposed, or of another allocator
 */
export function checkTensors(
  op: string,
  named: Record<string, Tensor | null | undefined>,
  optional: readonly string[] = BIAS,
): void {
  let first: [string, Tensor] | null = null;
  for (const [name, t] of Object.entries(named)) {
    if ((t === null || t === undefined) && optional.includes(name)) continue;
    if (!(t instanceof Tensor)) {
      throw new TypeError(`Cannot ${op}: ${name} must be a Tensor, got ${describe(t)}`);
    }
    if (t.disposed) {
      throw new AllocatorError(`Cannot ${op}: ${name} ${formatShape(t.shape)} was disposed`);
    }
    if (first === null) {
      first = [name, t];
      continue;
    }
    if (t.allocator !== first[1].allocator) {
      throw new AllocatorError(
        `Cannot ${op}: ${name} comes from a different allocator than ${
          first[0]
        } (tensors of one op must share an allocator)`,
      );
    }
    if (t.dtype !== first[1].dtype) {
      throw new TypeError(
        `Cannot ${op}: ${name} has dtype ${t.dtype} but ${first[0]} has ${first[1].dtype}`,
      );
    }
  }
}

/**
 * Packs i32 fields in the order a kernel's `Params` struct declares them,
 * then `extraF32`.
 *
 * @throws {RangeError} a value is not an integer that fits an i32
 */
export function i32Params(
  op: string,
  fields: readonly string[],
  values: Record<string, number>,
  extraF32: readonly number[] = [],
): ArrayBuffer {
  const buffer = new ArrayBuffer((fields.length + extraF32.length) * 4);
  const ints = new Int32Array(buffer);
  fields.forEach((f, i) => {
    const v = values[f];
    if (!Number.isInteger(v) || v < -(2 ** 31) || v >= 2 ** 31) {
      throw new RangeError(`Cannot ${op}: parameter ${f} = ${v} does not fit an i32`);
    }
    ints[i] = v;
  });
  new Float32Array(buffer, fields.length * 4).set(extraF32);
  return buffer;
}

/**
 * Records `dispatches` into `batch`, disposing `out` if that fails, so a
 * failed op leaks nothing.
 */
export function recordInto(
  batch: CommandBatch,
  out: Tensor,
  dispatches: readonly KernelDispatch[],
): Tensor {
  try {
    batch.record(dispatches);
  } catch (error) {
    out.dispose();
    throw error;
  }
  return out;
}
