/**
 * The allocator's typed errors.
 *
 * @module
 */

import { formatBytes } from "./format.ts";

/** Misuse of the allocator: a double free, a block of another allocator, use after destroy. */
export class AllocatorError extends Error {
  /**
   * Creates the error.
   *
   * @param message what could not be done and why
   * @param options the error that caused it, if any
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "AllocatorError";
  }
}

/**
 * The GPU device was lost (destroyed, or lost by the driver): every later
 * call that would use it throws this. Freeing, statistics and `destroy()`
 * keep working, so cleanup code runs.
 */
export class DeviceLostError extends AllocatorError {
  /** Why, as the device said: `"destroyed"` or `"unknown"`. */
  readonly reason: string;
  /** The device's message. */
  readonly deviceMessage: string;

  /**
   * Creates the error.
   *
   * @param what what could not be done, e.g. `"allocate"`
   * @param reason the lost device's reason
   * @param message the lost device's message
   */
  constructor(what: string, reason: string, message: string) {
    super(`Cannot ${what}: the GPU device was lost (${reason}: ${message})`);
    this.name = "DeviceLostError";
    this.reason = reason;
    this.deviceMessage = message;
  }
}

/** The facts an {@linkcode OutOfMemoryError} carries. */
export interface OutOfMemoryDetails {
  /** Bytes in live blocks when the request failed. */
  allocated: number;
  /** Bytes reserved but not in live blocks (cached or waiting for a submit). */
  cached: number;
  /** The high watermark in bytes (0: none). */
  limit: number;
  /** Bytes the request asked for. */
  requested: number;
  /** The pool the request was for. */
  pool: string;
  /** True when the device, not the watermark, refused the memory. */
  device?: boolean;
  /** More to say: the device's message, each Worker's share of a shared budget. */
  detail?: string;
}

/**
 * A request that could not be met within the high watermark (or that the
 * device refused), after releasing cached memory and retrying. The message
 * gives, in order, bytes allocated, bytes cached, the limit, the request and
 * the pool.
 */
export class OutOfMemoryError extends Error implements OutOfMemoryDetails {
  /** Bytes in live blocks when the request failed. */
  readonly allocated: number;
  /** Bytes reserved but not in live blocks. */
  readonly cached: number;
  /** The high watermark in bytes (0: none). */
  readonly limit: number;
  /** Bytes the request asked for. */
  readonly requested: number;
  /** The pool the request was for. */
  readonly pool: string;
  /** True when the device, not the watermark, refused the memory. */
  readonly device: boolean;

  /**
   * Creates the error and its message from the figures.
   *
   * @param details the figures the message is made from
   */
  constructor(details: OutOfMemoryDetails) {
    const limit = details.limit > 0 ? formatBytes(details.limit) : "none";
    const source = details.device ? "the device refused a heap" : "out of memory";
    super(
      `gpuheap ${source} (allocated: ${formatBytes(details.allocated)}, cached: ${
        formatBytes(details.cached)
      }, max allowed: ${limit}). Tried to allocate ${
        formatBytes(details.requested)
      } on ${details.pool} pool.` + (details.detail ? ` ${details.detail}` : ""),
    );
    this.name = "OutOfMemoryError";
    this.allocated = details.allocated;
    this.cached = details.cached;
    this.limit = details.limit;
    this.requested = details.requested;
    this.pool = details.pool;
    this.device = details.device ?? false;
  }
}
