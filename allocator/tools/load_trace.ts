/**
 * Reads a trace or snapshot file as the commands take it, gzipped or not,
 * whatever the file's name: JSON text (a gpuheap trace or snapshot, a plain
 * list of events, or a PyTorch memory snapshot converted to JSON), or a
 * pickled PyTorch memory snapshot.
 *
 * A file is outside data: what it may cost is capped (Note [what a file may
 * cost]), and a file past a cap is refused with a {@linkcode TraceError}
 * that names the cap and how to raise it.
 *
 * @module
 */

// Note [what a file may cost]
// A snapshot is a file users get from colleagues and bug reports, and a few hundred bytes of
// gzip or pickle can describe gigabytes. Reading one costs time and memory linear in its
// bytes, and its bytes are capped:
// - maxBytes caps the bytes read and the bytes gunzip gives (streamed in small steps, so no
//   more than the cap is ever held); the default, 64 MiB, holds a PyTorch snapshot of 50 MB.
// - the values a pickle builds are capped at maxBytes / 2 (see readPickle's maxValues, where
//   a container counts as CONTAINER_COST values): memo references share what they fetch, and
//   a pickle of references to references still builds no more than that. JSON has no
//   references, and V8 holds a value of it in a few times its bytes, except lists and
//   objects: those are counted before the text is parsed, one per JSON_CONTAINER_BYTES.
// - ints in a pickle are read in linear time and refused past MAX_INT_BYTES.
// - the snapshot reader walks each shared list once (readPytorchSnapshot).
// With these, a crafted file of 1 MB takes well under 5 s and 1 GB to read or refuse.

import { formatBytes } from "../format.ts";
import { isPickle, readPickle } from "./pickle.ts";
import { isPytorchSnapshot, readPytorchSnapshot } from "./pytorch_snapshot.ts";
import { TraceError } from "./read_trace.ts";

const GZIP_MAGIC = [0x1f, 0x8b];

/** Bytes a trace or snapshot file may hold, gunzipped, by default: 64 MiB. */
export const DEFAULT_MAX_BYTES = 64 * 2 ** 20;

/**
 * Bytes of JSON per list or object allowed: 8, what the densest event of a
 * trace takes (`["f",1],`). V8 holds an empty list in 16 bytes or more, so a
 * file of `[]` after `[]` would cost ten times its bytes.
 */
const JSON_CONTAINER_BYTES = 8;

/** Compressed bytes gunzip is fed at a time: a step gives at most ~1,000 times as many. */
const GUNZIP_STEP = 16 * 1024;

/** How users raise the caps, for messages. */
const RAISE_WITH = "--max-file-size on the commands, maxBytes in code";

/** Options of {@linkcode parseTraceBytes} and {@linkcode loadTraceFile}. */
export interface LoadOptions {
  /**
   * Most bytes the file may hold once gunzipped (default
   * {@linkcode DEFAULT_MAX_BYTES}); the values it may build follow it (see
   * Note [what a file may cost] in the source).
   */
  maxBytes?: number;
}

/**
 * The parsed value of a trace or snapshot file's bytes (gunzipped first when
 * they start with gzip's magic number). A PyTorch memory snapshot, pickled
 * or in JSON, comes back as the `PytorchTrace` of its first device
 * (see `readPytorchSnapshot`); anything else as parsed.
 *
 * @param bytes the file's bytes
 * @param options the cap on what the file may cost
 * @throws {TraceError} undecodable bytes, malformed JSON, a pickle that is
 *   malformed or not a PyTorch snapshot, a malformed snapshot, or a file
 *   past a cap (the message names it)
 * @throws {RangeError} `options.maxBytes` is not a positive integer
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
export async function parseTraceBytes(
  bytes: Uint8Array,
  options: LoadOptions = {},
): Promise<unknown> {
  const maxBytes = readMaxBytes(options);
  checkSize(bytes.length, maxBytes, "holds");
  if (bytes[0] === GZIP_MAGIC[0] && bytes[1] === GZIP_MAGIC[1]) {
    bytes = await gunzip(bytes, maxBytes);
  }
  const maxValues = Math.max(1, Math.floor(maxBytes / 2));
  if (isPickle(bytes)) {
    const value = readPickle(bytes, { maxValues, raiseWith: RAISE_WITH });
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
  const containers = jsonContainers(bytes);
  // Plus one: the list or object around the rest.
  const maxContainers = Math.floor(maxBytes / JSON_CONTAINER_BYTES) + 1;
  if (containers > maxContainers) {
    throw new TraceError(
      `the JSON holds ${containers} lists and objects, more than ${maxContainers} (one per ` +
        `${JSON_CONTAINER_BYTES} bytes of the cap on what a file may cost: raise it with ` +
        `${RAISE_WITH})`,
    );
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
 * @param path the file, or `"-"`
 * @param options the cap on what the file may cost
 * @throws {Deno.errors.NotFound} the file does not exist
 * @throws {TraceError} see {@linkcode parseTraceBytes}; a file larger than
 *   `maxBytes` is refused before more than that is read
 */
export async function loadTraceFile(
  path: string | URL,
  options: LoadOptions = {},
): Promise<unknown> {
  const maxBytes = readMaxBytes(options);
  const readable = path === "-" ? Deno.stdin.readable : (await Deno.open(path)).readable;
  const bytes = await collect(readable, maxBytes, "holds");
  return parseTraceBytes(bytes, { maxBytes });
}

function readMaxBytes(options: LoadOptions): number {
  const max = options?.maxBytes ?? DEFAULT_MAX_BYTES;
  if (!Number.isSafeInteger(max) || max < 1) {
    throw new RangeError(`Cannot read the file: maxBytes must be a positive integer, got ${max}`);
  }
  return max;
}

function checkSize(bytes: number, max: number, verb: "holds" | "gunzips to"): void {
  if (bytes > max) {
    throw new TraceError(
      `the file ${verb} more than ${formatBytes(max)}, the cap on what a file may cost ` +
        `(raise it with ${RAISE_WITH})`,
    );
  }
}

/** The chunks of a stream in one array, refused once they pass `max` bytes. */
async function collect(
  stream: ReadableStream<Uint8Array>,
  max: number,
  verb: "holds" | "gunzips to",
): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = stream.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.length;
      checkSize(total, max, verb);
      chunks.push(value);
    }
  } catch (error) {
    await reader.cancel().catch(() => {});
    throw error;
  }
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(total);
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}

/** Gunzips in small steps, stopping as soon as the output passes `max` bytes. */
async function gunzip(bytes: Uint8Array, max: number): Promise<Uint8Array> {
  let at = 0;
  const source = new ReadableStream<BufferSource>({
    pull(controller) {
      if (at >= bytes.length) return controller.close();
      controller.enqueue(bytes.slice(at, at + GUNZIP_STEP));
      at += GUNZIP_STEP;
    },
  }, { highWaterMark: 0 });
  try {
    return await collect(source.pipeThrough(new DecompressionStream("gzip")), max, "gunzips to");
  } catch (error) {
    if (error instanceof TraceError) throw error;
    throw new TraceError(`corrupt gzip data (${(error as Error).message})`);
  }
}

/**
 * The lists and objects JSON text builds, counted on its bytes before it is
 * parsed: each `[` and `{` (those inside strings too, an overestimate real
 * files stay far from).
 */
function jsonContainers(bytes: Uint8Array): number {
  let n = 0;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i];
    if (b === 0x5b || b === 0x7b) n++;
  }
  return n;
}
