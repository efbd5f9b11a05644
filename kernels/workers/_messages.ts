/**
 * The messages between a pool and its Workers. What a Worker sends is
 * untrusted (a Worker runs the user's code, which can post anything):
 * {@linkcode readReply} checks each message against its type before the
 * pool believes it.
 *
 * @module
 */

import type { ErrorInfo, WorkerHeapOptions } from "./job.ts";

/** Longest error text kept from a Worker; longer is cut. */
export const MAX_TEXT = 4096;

/** Messages a pool Worker takes. */
export type ToWorker =
  | {
    type: "init";
    id: number;
    /** The Worker's index in its pool, and the pool's size. */
    index: number;
    workers: number;
    /** The shared budget's buffer, and the slot claimed for this Worker. */
    budget: SharedArrayBuffer;
    slot: number;
    /** The pool's control words (_control.ts). */
    control: SharedArrayBuffer;
    heapOptions: WorkerHeapOptions;
    /** The job module's URL. */
    job: string;
  }
  | { type: "run"; id: number; input: unknown }
  | { type: "abort"; id: number }
  | { type: "close"; id: number };

/** Messages a pool Worker sends, once checked. */
export type FromWorker =
  | { type: "ready"; id: number; adapter: string; fallback: boolean }
  | { type: "result"; id: number; result: unknown; error: ErrorInfo | null }
  | { type: "failed"; id: number; error: ErrorInfo }
  | { type: "closed"; id: number }
  /** Sent just before the Worker ends on its own, saying why ("lost its device …"). */
  | { type: "ending"; reason: string };

/**
 * Checks a message from a Worker: its fields and their types. Returns the
 * message, or why it is malformed.
 *
 * @example
 * ```ts
 * import { readReply } from "./_messages.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(readReply({ type: "closed", id: 3 }), { type: "closed", id: 3 });
 * assert.equal(readReply(null), "not an object: null");
 * ```
 */
export function readReply(data: unknown): FromWorker | string {
  if (data === null || typeof data !== "object" || Array.isArray(data)) {
    return `not an object: ${describe(data)}`;
  }
  const m = data as Record<string, unknown>;
  const type = m.type;
  if (type === "ending") {
    return typeof m.reason === "string"
      ? { type, reason: cut(m.reason) }
      : `"ending" without a reason string`;
  }
  if (type !== "ready" && type !== "result" && type !== "failed" && type !== "closed") {
    return `unknown type ${describe(type)}`;
  }
  if (!Number.isSafeInteger(m.id) || (m.id as number) < 0) {
    return `${JSON.stringify(type)} with a bad id ${describe(m.id)}`;
  }
  const id = m.id as number;
  if (type === "ready") {
    if (typeof m.adapter !== "string" || typeof m.fallback !== "boolean") {
      return `"ready" without an adapter string and a fallback boolean`;
    }
    return { type, id, adapter: cut(m.adapter), fallback: m.fallback };
  }
  if (type === "closed") return { type, id };
  if (type === "failed") {
    const error = readError(m.error);
    return error ? { type, id, error } : `"failed" without an error of a name and a message`;
  }
  if (!("result" in m)) return `"result" without a result`;
  const error = m.error === null ? null : readError(m.error);
  if (error === undefined) return `"result" whose error is neither null nor a name and a message`;
  return { type, id, result: m.result, error };

  function readError(e: unknown): ErrorInfo | undefined {
    if (e === null || typeof e !== "object") return undefined;
    const { name, message } = e as Record<string, unknown>;
    if (typeof name !== "string" || typeof message !== "string") return undefined;
    return { name: cut(name), message: cut(message) };
  }
}

/** An error as plain data, for a message. */
export function errorInfo(error: unknown): ErrorInfo {
  return error instanceof Error
    ? { name: String(error.name), message: String(error.message) }
    : { name: "Error", message: String(error) };
}

function cut(text: string): string {
  return text.length > MAX_TEXT ? `${text.slice(0, MAX_TEXT)}…` : text;
}

function describe(value: unknown): string {
  if (value === null || typeof value !== "object") {
    const text = typeof value === "string" ? JSON.stringify(value) : String(value);
    return cut(text).slice(0, 80);
  }
  return Array.isArray(value) ? "an array" : "an object";
}
