// Crafted files that cost a naive reader far more than their bytes: gzip that inflates 1,000
// times, pickles whose memo references or shared frame lists multiply work, long ints, dense
// containers. Each stays within 1 MB on disk. Built here, in a few milliseconds each, rather
// than kept in testdata.
import { writePickle } from "./_pickle.ts";

/** A stretch of a gzip stream: bytes as they are, or one byte repeated `count` times. */
export type Piece = Uint8Array | { byte: number; count: number };

/** Writes bits least significant first, as deflate packs them. */
class Bits {
  readonly bytes: number[] = [];
  #acc = 0;
  #n = 0;

  /** `n` bits of `value`, least significant first (header fields, extra bits). */
  put(value: number, n: number): void {
    for (let i = 0; i < n; i++) this.#bit((value >>> i) & 1);
  }

  /** A Huffman code of `n` bits, most significant first. */
  code(value: number, n: number): void {
    for (let i = n - 1; i >= 0; i--) this.#bit((value >>> i) & 1);
  }

  /** `n` zero bits, whole bytes at once where aligned. */
  zeros(n: number): void {
    while (n > 0 && this.#n !== 0) this.#bit(0), n--;
    for (; n >= 8; n -= 8) this.bytes.push(0);
    this.put(0, n);
  }

  #bit(b: number): void {
    this.#acc |= b << this.#n;
    if (++this.#n === 8) {
      this.bytes.push(this.#acc);
      this.#acc = 0;
      this.#n = 0;
    }
  }

  flush(): Uint8Array {
    if (this.#n > 0) this.bytes.push(this.#acc);
    return new Uint8Array(this.bytes);
  }
}

/** A literal in deflate's fixed Huffman code. */
function fixedLiteral(bits: Bits, lit: number): void {
  if (lit < 144) bits.code(0x30 + lit, 8);
  else if (lit < 256) bits.code(0x190 + lit - 144, 9);
  else bits.code(lit - 256, 7); // 256..279: end of block
}

/**
 * A run of one byte as a dynamic block whose codes are the byte (2 bits), end of block
 * (2 bits) and a match of 258 bytes at distance 1 (1 bit, plus 1 for the distance): about
 * 1,032 bytes out per byte in. The run is rounded down to 1 + a multiple of 258.
 */
function run(bits: Bits, byte: number, count: number, last: boolean): number {
  bits.put(last ? 1 : 0, 1);
  bits.put(2, 2); // dynamic Huffman
  bits.put(286 - 257, 5); // HLIT: codes 0..285
  bits.put(2 - 1, 5); // HDIST: distance codes 0 and 1
  // Code length codes, in deflate's order; only 1, 2 and 18 are used.
  const order = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15];
  const clen: Record<number, number> = { 18: 1, 1: 2, 2: 2 };
  bits.put(18 - 4, 4); // HCLEN: up to symbol 1 in that order
  for (const s of order.slice(0, 18)) bits.put(clen[s] ?? 0, 3);
  // Canonical codes of the code length alphabet: 18 → 0, 1 → 10, 2 → 11.
  const emit = (len: 1 | 2) => bits.code(len === 1 ? 0b10 : 0b11, 2);
  const zeros = (n: number) => {
    while (n > 0) {
      const k = Math.min(n, 138);
      bits.code(0, 1); // 18: 11 to 138 zeros
      bits.put(k - 11, 7);
      n -= k;
    }
  };
  // Literal/length lengths: the byte 2, 256 2, 285 1, every other 0.
  zeros(byte);
  emit(2);
  zeros(255 - byte);
  emit(2); // 256
  zeros(28); // 257..284
  emit(1); // 285
  emit(1); // distance 0
  emit(1); // distance 1
  // Canonical codes: 285 → 0, the byte → 10, 256 → 11; distance 0 → 0.
  bits.code(0b10, 2);
  const matches = Math.floor((count - 1) / 258);
  bits.zeros(2 * matches); // each: length 258 (code 0), distance 1 (code 0)
  bits.code(0b11, 2);
  return 1 + matches * 258;
}

const CRC_TABLE = Int32Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c;
});

/** CRC-32 of what `pieces` inflate to. */
function crc32(pieces: Piece[]): number {
  let c = -1;
  for (const piece of pieces) {
    const bytes = piece instanceof Uint8Array ? piece : [piece.byte];
    const times = piece instanceof Uint8Array ? 1 : 1 + Math.floor((piece.count - 1) / 258) * 258;
    for (let t = 0; t < times; t++) {
      for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
    }
  }
  return (c ^ -1) >>> 0;
}

/**
 * A gzip file of `pieces` (bytes in fixed Huffman blocks, runs in dynamic ones). Its CRC is
 * right only when `crc` is set (it costs a pass over the output): a reader that inflates
 * the whole of a bomb learns only at the end that it was corrupt.
 */
export function craftGzip(pieces: Piece[], crc = false): Uint8Array {
  const bits = new Bits();
  let size = 0;
  pieces.forEach((piece, i) => {
    const last = i === pieces.length - 1;
    if (piece instanceof Uint8Array) {
      bits.put(last ? 1 : 0, 1);
      bits.put(1, 2); // fixed Huffman
      for (const b of piece) fixedLiteral(bits, b);
      fixedLiteral(bits, 256);
      size += piece.length;
    } else size += run(bits, piece.byte, piece.count, last);
  });
  const body = bits.flush();
  const out = new Uint8Array(10 + body.length + 8);
  out.set([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
  out.set(body, 10);
  const view = new DataView(out.buffer);
  if (crc) view.setUint32(out.length - 8, crc32(pieces), true);
  view.setUint32(out.length - 4, size >>> 0, true);
  return out;
}

/** Gzips small bytes the ordinary way. */
export async function gzip(bytes: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream()
    .pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** Each crafted file, by name: what it is, and its bytes (at most 1 MB). */
export async function hostileFiles(): Promise<Record<string, Uint8Array>> {
  const MiB = 2 ** 20;
  // A PyTorch snapshot whose segments are one segment, by memo reference, 20,000 times, and
  // its blocks one block 20,000 times: 4·10^8 blocks for a reader that copies references.
  const block = { address: 0, size: 512, requested_size: 512, state: "active_allocated" };
  const segment = {
    device: 0,
    address: 0,
    total_size: 512,
    stream: 0,
    blocks: Array(20_000).fill(block),
  };
  const memoBomb = writePickle({ segments: Array(20_000).fill(segment), device_traces: [[]] });
  // 20,000 allocations sharing one list of 20,000 frames, all inside PyTorch (so a label
  // search walks the whole list): 4·10^8 frames for a reader that walks it per allocation.
  const frame = { filename: "/site-packages/torch/nn/module.py", line: 1, name: "forward" };
  const frames = Array(20_000).fill(frame);
  const sharedFrames = writePickle({
    segments: [],
    device_traces: [
      Array.from({ length: 20_000 }, (_, i) => ({
        action: "alloc",
        addr: 4096 * (i + 1),
        size: 512,
        frames,
      })),
    ],
  });
  // An int of 1,000,000 bytes (LONG4): quadratic to read byte by byte.
  const longInt = new Uint8Array(3 + 5 + 1e6 + 1);
  longInt.set([0x80, 4, 0x8b]);
  new DataView(longInt.buffer).setUint32(3, 1e6, true);
  longInt.fill(0x5a, 7);
  longInt[longInt.length - 1] = 0x2e;
  return {
    "gzip bomb (950 MiB of zeros)": craftGzip([{ byte: 0, count: 950 * MiB }]),
    "memo bomb": await gzip(memoBomb),
    "shared frames": await gzip(sharedFrames),
    "long int": await gzip(longInt),
    // 24 MiB of empty lists in one pickle: 25 million containers.
    "dense pickle": craftGzip([
      new Uint8Array([0x80, 4, 0x5d, 0x28]), // PROTO 4, EMPTY_LIST, MARK
      { byte: 0x5d, count: 24 * MiB },
      new Uint8Array([0x65, 0x2e]), // APPENDS, STOP
    ], true),
    // JSON nested 12 million deep: as many arrays.
    "dense JSON": craftGzip(
      [{ byte: 0x5b, count: 12 * MiB }, { byte: 0x5d, count: 12 * MiB }],
      true,
    ),
    // Settings no device has: a uniform binding of 2 GiB (a valid WebGPU figure that cost a
    // replay 2 GB), and of 4 GiB (past WebGPU's 32-bit limit).
    "uniform limit 2^31": uniformTrace(2 ** 31),
    "uniform limit 2^32": uniformTrace(2 ** 32),
  };
}

function uniformTrace(maxUniformBufferBindingSize: number): Uint8Array {
  const trace = {
    format: "gpuheap-trace",
    version: 1,
    settings: { limits: { maxUniformBufferBindingSize } },
    durationMs: 0,
    events: [["a", 1, 256, "uniform"], ["f", 1]],
  };
  return new TextEncoder().encode(JSON.stringify(trace));
}
