/**
 * Human-readable byte counts.
 *
 * @module
 */

/** Binary units, each 1024 times the one before. */
export const BYTE_UNITS: readonly string[] = [
  "B",
  "KiB",
  "MiB",
  "GiB",
  "TiB",
  "PiB",
  "EiB",
  "ZiB",
  "YiB",
];
/** Units {@linkcode formatBytes} goes up to: a table's columns fit `"1023.99 TiB"`. */
const TABLE_UNITS = 5;

/** Formats bytes with a binary unit: `formatBytes(1536)` is `"1.50 KiB"`. */
export function formatBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < TABLE_UNITS - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(2)} ${BYTE_UNITS[unit]}`;
}

/**
 * A byte count as an axis labels it, short: `512 MiB`, `1.5 GiB`, `0`; up to YiB.
 *
 * @example
 * ```ts
 * import { byteLabel } from "./format.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(byteLabel(1.5 * 2 ** 30), "1.5 GiB");
 * ```
 */
export function byteLabel(bytes: number): string {
  if (bytes === 0) return "0";
  let u = 0;
  let v = bytes;
  while (v >= 1024 && u < BYTE_UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  return `${Number.isInteger(v) ? v : v.toFixed(1)} ${BYTE_UNITS[u]}`;
}
