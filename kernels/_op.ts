/**
 * What every op does before recording: check its tensors, and pack kernel
 * parameters.
 *
 * @module
 */

import { formatShape } from "./_geometry.ts";
import { Tensor } from "./tensor.ts";

/**
 * Checks that each named tensor is a live Tensor, and that all share the
 * first one's allocator and dtype.
 */
export function checkTensors(op: string, named: Record<string, Tensor | null | undefined>): void {
  let first: [string, Tensor] | null = null;
  for (const [name, t] of Object.entries(named)) {
    if (t === null || t === undefined) continue;
    if (!(t instanceof Tensor)) {
      throw new TypeError(`Cannot ${op}: ${name} must be a Tensor, got ${describe(t)}`);
    }
    if (t.disposed) {
      throw new Error(`Cannot ${op}: ${name} ${formatShape(t.shape)} was disposed`);
    }
    if (first === null) {
      first = [name, t];
      continue;
    }
    if (t.allocator !== first[1].allocator) {
      throw new Error(
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

function describe(v: unknown): string {
  if (Array.isArray(v)) return `an array of ${v.length}`;
  if (ArrayBuffer.isView(v)) return `a ${v.constructor.name}`;
  return typeof v === "object" ? String(v?.constructor?.name ?? v) : String(v);
}

/** Packs i32 fields in the order a kernel's `Params` struct declares them. */
export function i32Params(
  fields: readonly string[],
  values: Record<string, number>,
  extraF32: readonly number[] = [],
): ArrayBuffer {
  const buffer = new ArrayBuffer((fields.length + extraF32.length) * 4);
  const ints = new Int32Array(buffer);
  fields.forEach((f, i) => {
    const v = values[f];
    if (!Number.isInteger(v) || v < -(2 ** 31) || v >= 2 ** 31) {
      throw new RangeError(`Cannot record kernel: parameter ${f} = ${v} does not fit an i32`);
    }
    ints[i] = v;
  });
  new Float32Array(buffer, fields.length * 4).set(extraF32);
  return buffer;
}

/** Disposes `out` if `record` throws, so a failed op leaks nothing. */
export function recordInto(out: Tensor, record: () => void): Tensor {
  try {
    record();
  } catch (error) {
    out.dispose();
    throw error;
  }
  return out;
}
