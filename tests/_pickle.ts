// A small pickle writer for tests (protocol 4 opcodes, as CPython writes them): the
// reader must read back what it wrote, and snapshot tests pickle their own snapshots.
// Arrays become lists, objects dicts, bigints and numbers ints or floats; a repeated
// string or the same array or object again is written once and fetched from the memo.

const enc = new TextEncoder();

/** `value` as a pickle of protocol 4 in one frame. */
export function writePickle(value: unknown): Uint8Array {
  const body: number[] = [];
  const memo = new Map<unknown, number>();
  const u32 = (n: number) => body.push(n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24);
  const memoize = (key: unknown) => {
    memo.set(key, memo.size);
    body.push(0x94); // MEMOIZE
  };
  const write = (v: unknown): void => {
    const seen = memo.get(v);
    if (seen !== undefined) {
      if (seen < 256) body.push(0x68, seen); // BINGET
      else body.push(0x6a), u32(seen); // LONG_BINGET
      return;
    }
    if (v === null || v === undefined) body.push(0x4e); // NONE
    else if (v === true) body.push(0x88);
    else if (v === false) body.push(0x89);
    else if (typeof v === "bigint" || (typeof v === "number" && Number.isInteger(v))) {
      writeInt(body, BigInt(v));
    } else if (typeof v === "number") {
      const b = new Uint8Array(8);
      new DataView(b.buffer).setFloat64(0, v, false);
      body.push(0x47, ...b); // BINFLOAT
    } else if (typeof v === "string") {
      const b = enc.encode(v);
      if (b.length < 256) body.push(0x8c, b.length); // SHORT_BINUNICODE
      else body.push(0x58), u32(b.length); // BINUNICODE
      body.push(...b);
      memoize(v);
    } else if (v instanceof Uint8Array) {
      if (v.length < 256) body.push(0x43, v.length); // SHORT_BINBYTES
      else body.push(0x42), u32(v.length); // BINBYTES
      body.push(...v);
    } else if (Array.isArray(v)) {
      body.push(0x5d); // EMPTY_LIST
      memoize(v);
      for (let i = 0; i < v.length; i += 1000) {
        body.push(0x28); // MARK
        for (const item of v.slice(i, i + 1000)) write(item);
        body.push(0x65); // APPENDS
      }
    } else if (typeof v === "object") {
      body.push(0x7d); // EMPTY_DICT
      memoize(v);
      const entries = Object.entries(v as Record<string, unknown>);
      for (let i = 0; i < entries.length; i += 1000) {
        body.push(0x28); // MARK
        for (const [k, item] of entries.slice(i, i + 1000)) write(k), write(item);
        body.push(0x75); // SETITEMS
      }
    } else throw new TypeError(`writePickle: cannot write ${typeof v}`);
  };
  write(value);
  body.push(0x2e); // STOP
  const out = new Uint8Array(11 + body.length);
  out.set([0x80, 4, 0x95]); // PROTO 4, FRAME
  new DataView(out.buffer).setBigUint64(3, BigInt(body.length), true);
  out.set(body, 11);
  return out;
}

/** An int: BININT1, BININT2 or BININT where they fit, else LONG1 or LONG4 (two's complement). */
function writeInt(body: number[], n: bigint): void {
  if (n >= 0n && n < 256n) body.push(0x4b, Number(n));
  else if (n >= 0n && n < 65536n) body.push(0x4d, Number(n & 0xffn), Number(n >> 8n));
  else if (n >= -(2n ** 31n) && n < 2n ** 31n) {
    const x = Number(BigInt.asUintN(32, n));
    body.push(0x4a, x & 0xff, (x >>> 8) & 0xff, (x >>> 16) & 0xff, x >>> 24);
  } else {
    const bytes: number[] = [];
    let x = n;
    // Enough bytes that the top bit is the sign.
    while (bytes.length === 0 || x !== (bytes[bytes.length - 1] & 0x80 ? -1n : 0n)) {
      bytes.push(Number(x & 0xffn));
      x >>= 8n;
    }
    if (bytes.length < 256) body.push(0x8a, bytes.length, ...bytes); // LONG1
    else {
      const n = bytes.length;
      body.push(0x8b, n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24, ...bytes); // LONG4
    }
  }
}
