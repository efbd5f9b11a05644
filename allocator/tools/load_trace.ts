/**
 * Reads a trace or snapshot file as the commands take it, gzipped or not,
 * whatever the file's name: JSON text (a gpuheap trace or snapshot, a plain
 * list of events, or a PyTorch memory snapshot converted to JSON), or a
 * pickled PyTorch memory snapshot.
 *
 * @module
 */

import { isPickle, readPickle } from "./pickle.ts";
import { isPytorchSnapshot, readPytorchSnapshot } from "./pytorch_snapshot.ts";
import { TraceError } from "./read_trace.ts";

const GZIP_MAGIC = [0x1f, 0x8b];

/**
 * The parsed value of a trace or snapshot file's bytes (gunzipped first when
 * they start with gzip's magic number). A PyTorch memory snapshot, pickled
 * or in JSON, comes back as the `PytorchTrace` of its first device
 * (see `readPytorchSnapshot`); anything else as parsed.
 *
 * @throws {TraceError} undecodable bytes, malformed JSON, a pickle that is
 *   malformed or not a PyTorch snapshot, or a malformed snapshot
 *
 * @example
 * ```ts
 * import { parseTraceBytes } from "@gpuheap/gpuheap/tools";
 * import assert from "node:assert/strict";
 *
 * const bytes = new TextEncoder().encode('[["a", 1, 64]]');
 * assert.deepEqual(await parseTraceBytes(bytes), [["a", 1, 64]]);
 * ```
 */
export async function parseTraceBytes(bytes: Uint8Array): Promise<unknown> {
  if (bytes[0] === GZIP_MAGIC[0] && bytes[1] === GZIP_MAGIC[1]) bytes = await gunzip(bytes);
  if (isPickle(bytes)) {
    const value = readPickle(bytes);
    if (!isPytorchSnapshot(value)) {
      throw new TraceError(
        "a pickle, but not a PyTorch memory snapshot (expected a dict with segments and " +
          "device_traces lists)",
      );
    }
    return readPytorchSnapshot(value);
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new TraceError("neither a pickle nor UTF-8 text: expected a trace or snapshot");
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new TraceError(`malformed JSON (${(error as Error).message})`);
  }
  return isPytorchSnapshot(value) ? readPytorchSnapshot(value) : value;
}

/**
 * Reads and parses a trace or snapshot file (a path or a file URL); `"-"`
 * reads standard input.
 *
 * @throws {Deno.errors.NotFound} the file does not exist
 * @throws {TraceError} see {@linkcode parseTraceBytes}
 */
export async function loadTraceFile(path: string | URL): Promise<unknown> {
  const bytes = path === "-"
    ? new Uint8Array(await new Response(Deno.stdin.readable).arrayBuffer())
    : await Deno.readFile(path);
  return parseTraceBytes(bytes);
}

async function gunzip(bytes: Uint8Array): Promise<Uint8Array> {
  try {
    const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream()
      .pipeThrough(new DecompressionStream("gzip"));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  } catch (error) {
    throw new TraceError(`corrupt gzip data (${(error as Error).message})`);
  }
}
