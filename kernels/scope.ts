/**
 * Scopes for chains of ops: every tensor made inside {@linkcode scope} and
 * not returned from it is disposed when it ends, as TF.js's `tidy` does.
 *
 * Scopes are synchronous on purpose. The scope that owns a new tensor is the
 * innermost one running; across an `await`, other tasks run and would make
 * tensors inside it, which it would then dispose under them. In async code,
 * use `using` (tensors are `Disposable`) or a scope around each synchronous
 * chain between awaits.
 *
 * @module
 */

/** What a scope can own: tensors, or anything else disposable. */
export interface Owned {
  /** Releases it; called at most once by a scope. */
  dispose(): void;
}

// The scopes running, innermost last; each owns what was made in it.
const frames: Set<Owned>[] = [];

/**
 * Makes `made` owned by the innermost running scope, if any. Tensors call
 * it when they are made.
 */
export function track(made: Owned): void {
  if (frames.length > 0) frames[frames.length - 1].add(made);
}

/**
 * Runs `fn` and disposes every tensor made while it ran, except those in its
 * result (a tensor, or arrays and plain objects holding tensors, at any
 * depth) and those passed to {@linkcode keep}. What it returns belongs to the
 * enclosing scope, if any. If `fn` throws, everything it made is disposed.
 * `fn` must be synchronous (see the module notes): a returned promise is a
 * `TypeError`, after disposing what was made.
 *
 * @example
 * ```ts
 * import { HeapAllocator, maxPool2d, relu, requestDevice, scope, tensor } from "@gpuheap/gpuheap";
 * import assert from "node:assert/strict";
 *
 * const device = await requestDevice();
 * const allocator = new HeapAllocator(device);
 * // Tensor memory: the storage pools (the ops' parameter slots are uniform blocks that stay).
 * const tensors = () => allocator.memoryStats().pools.small.allocatedBytes.current;
 * const before = tensors();
 * const y = scope(() => {
 *   const x = tensor(allocator, [-1, 2, -3, 4], [1, 1, 2, 2]);
 *   return maxPool2d(relu(x), { kernelSize: 2 }); // x and relu(x) are disposed
 * });
 * assert.deepEqual([...await y.read()], [4]);
 * y.dispose();
 * assert.equal(tensors(), before);
 * allocator.destroy();
 * device.destroy();
 * ```
 *
 * @param fn the chain of ops
 * @returns what `fn` returns
 * @throws {TypeError} `fn` is not a function, or returned a promise
 */
export function scope<T>(fn: () => T): T {
  if (typeof fn !== "function") {
    throw new TypeError(`Cannot run scope: expected a function, got ${typeof fn}`);
  }
  const made = new Set<Owned>();
  frames.push(made);
  let result: T;
  try {
    result = fn();
  } catch (error) {
    try {
      disposeAll(made);
    } catch {
      // fn's own error says more.
    }
    throw error;
  } finally {
    frames.pop();
  }
  if (isThenable(result)) {
    disposeAll(made);
    // The caller never sees this promise: its own failure would go unhandled.
    Promise.resolve(result).catch(() => {});
    throw new TypeError(
      "Cannot run scope: the function returned a promise; scopes are synchronous (use `using` in async code)",
    );
  }
  const kept = new Set<Owned>();
  collect(result, made, kept, new Set());
  for (const t of kept) made.delete(t);
  disposeAll(made);
  for (const t of kept) track(t);
  return result;
}

/**
 * Keeps `t` past the end of every running scope: the caller disposes it.
 * Outside any scope it does nothing.
 *
 * @example
 * ```ts
 * import {
 *   HeapAllocator,
 *   keep,
 *   requestDevice,
 *   scope,
 *   tensor,
 *   type Tensor,
 * } from "@gpuheap/gpuheap";
 * import assert from "node:assert/strict";
 *
 * const device = await requestDevice();
 * const allocator = new HeapAllocator(device);
 * let weight: Tensor | undefined;
 * scope(() => {
 *   weight = keep(tensor(allocator, [1, 2], [2]));
 *   tensor(allocator, [3, 4], [2]); // disposed at the end of the scope
 * });
 * assert.equal(weight!.disposed, false);
 * weight!.dispose();
 * allocator.destroy();
 * device.destroy();
 * ```
 *
 * @param t the tensor to keep
 * @returns `t`
 */
export function keep<T extends Owned>(t: T): T {
  for (const frame of frames) frame.delete(t);
  return t;
}

/** Disposes each of `made`, all of them even if one throws (the first error is rethrown). */
function disposeAll(made: Set<Owned>): void {
  let failure: { error: unknown } | null = null;
  for (const t of made) {
    try {
      t.dispose();
    } catch (error) {
      failure ??= { error };
    }
  }
  made.clear();
  if (failure) throw failure.error;
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return (typeof v === "object" || typeof v === "function") && v !== null &&
    typeof (v as { then?: unknown }).then === "function";
}

/** Finds what `value` holds of `made`, through arrays and plain objects. */
function collect(value: unknown, made: Set<Owned>, kept: Set<Owned>, seen: Set<object>): void {
  if (typeof value !== "object" || value === null || seen.has(value)) return;
  seen.add(value);
  if (made.has(value as Owned)) {
    kept.add(value as Owned);
    return;
  }
  if (Array.isArray(value)) {
    for (const v of value) collect(v, made, kept, seen);
    return;
  }
  const proto = Object.getPrototypeOf(value);
  if (proto === Object.prototype || proto === null) {
    for (const v of Object.values(value)) collect(v, made, kept, seen);
  }
}
