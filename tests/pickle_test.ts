// Pickles: what CPython writes (protocols 2 to 5), what our test writer writes, the opcodes
// refused (named with their offset), lengths checked before anything is allocated, and a
// seeded fuzzer: whatever the bytes, a value or a TraceError.
//
// tests/testdata/pickle/protocolN.pickle were written by CPython 3.11:
//   pickle.dumps(value(N), protocol=N), with value() the Python twin of expected() below:
//   shared = ["shared"]; names = [str(i) for i in range(300)]
//   v = {"none": None, "true": True, "false": False,
//        "ints": [0, 1, 255, 256, 65535, 65536, -1, -2**31, 2**31 - 1, 2**31, 2**53 - 1,
//                 -(2**53 - 1), 2**53, 2**63, -2**63, 2**100, -(2**100)],
//        "floats": [1.5, -0.25, 1e300], "strs": ["", "é中😀", "x" * 300],
//        "tuples": [(), (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4)],
//        "nested": {"a": [[], {}], 7: "int key"}, "shared": [shared, shared],
//        "many": [None] * 1001, "huge": 2**2100, "one": {"k": 1}, "memo": names + names}
//   protocol >= 3: v["bytes"] = [b"", b"\x00\xff", b"y" * 300]
//   protocol >= 4: v["sets"] = [{1}, frozenset({2})]
//   protocol >= 5: v["bytearray"] = bytearray(b"ab")
import assert from "node:assert/strict";
import {
  CONTAINER_COST,
  isPickle,
  MAX_INT_BYTES,
  type PickleValue,
  readPickle,
} from "../allocator/tools/pickle.ts";
import { TraceError } from "../allocator/tools/read_trace.ts";
import { writePickle } from "./_pickle.ts";
import { rng } from "./_util.ts";

const TESTDATA = new URL("./testdata/pickle/", import.meta.url);

function expected(protocol: number): Record<string, unknown> {
  const shared = ["shared"];
  const names = Array.from({ length: 300 }, (_, i) => String(i));
  const v: Record<string, unknown> = {
    none: null,
    true: true,
    false: false,
    ints: [
      0,
      1,
      255,
      256,
      65535,
      65536,
      -1,
      -(2 ** 31),
      2 ** 31 - 1,
      2 ** 31,
      2 ** 53 - 1,
      -(2 ** 53 - 1),
      2n ** 53n,
      2n ** 63n,
      -(2n ** 63n),
      2n ** 100n,
      -(2n ** 100n),
    ],
    floats: [1.5, -0.25, 1e300],
    strs: ["", "é中😀", "x".repeat(300)],
    tuples: [[], [1], [1, 2], [1, 2, 3], [1, 2, 3, 4]],
    nested: { a: [[], {}], "7": "int key" },
    shared: [shared, shared],
    many: Array(1001).fill(null),
    huge: 2n ** 2100n,
    one: { k: 1 },
    memo: [...names, ...names],
  };
  if (protocol >= 3) {
    v.bytes = [new Uint8Array(), new Uint8Array([0, 255]), new Uint8Array(300).fill(0x79)];
  }
  if (protocol >= 4) v.sets = [[1], [2]];
  if (protocol >= 5) v.bytearray = new Uint8Array([0x61, 0x62]);
  return v;
}

/** The value with dicts as ordinary objects, for deepEqual (which compares prototypes). */
function plain(value: PickleValue): unknown {
  if (Array.isArray(value)) return value.map(plain);
  if (value instanceof Uint8Array || value === null || typeof value !== "object") return value;
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]));
}

/** Bytes of a pickle: PROTO `protocol`, then `ops` (numbers and latin-1 strings). */
function bytesOf(protocol: number, ...ops: (number | string)[]): Uint8Array {
  const out = [0x80, protocol];
  for (const op of ops) {
    if (typeof op === "number") out.push(op);
    else for (const c of op) out.push(c.charCodeAt(0));
  }
  return new Uint8Array(out);
}

/** Little-endian bytes of `n` in `width` bytes. */
function le(n: bigint, width: number): number[] {
  return Array.from({ length: width }, (_, i) => Number((n >> BigInt(8 * i)) & 0xffn));
}

Deno.test("readPickle() reads what CPython writes, protocols 2 to 5", async () => {
  for (const protocol of [2, 3, 4, 5]) {
    const bytes = await Deno.readFile(new URL(`protocol${protocol}.pickle`, TESTDATA));
    assert.equal(isPickle(bytes), true);
    const value = readPickle(bytes) as Record<string, PickleValue[]>;
    assert.deepEqual(plain(value), expected(protocol), `protocol ${protocol}`);
    assert.equal(Object.getPrototypeOf(value), null, "dicts have no prototype");
    assert.equal(value.shared[0], value.shared[1], "the memo gives the same list twice");
  }
});

Deno.test("readPickle() reads back what the test writer writes", () => {
  const random = rng(7);
  const value = (depth: number): unknown => {
    const r = random();
    if (depth > 3 || r < 0.4) {
      const k = Math.floor(random() * 7);
      if (k === 0) return null;
      if (k === 1) return random() < 0.5;
      if (k === 2) return Math.floor((random() - 0.5) * 2 ** (random() * 53));
      if (k === 3) {
        return BigInt(Math.floor(random() * 2 ** 50)) ** 3n * (random() < 0.5 ? -1n : 1n);
      }
      if (k === 4) return (random() - 0.5) * 1e10;
      if (k === 5) return "é".repeat(Math.floor(random() * 200));
      return new Uint8Array(Math.floor(random() * 300)).fill(7);
    }
    const n = Math.floor(random() * (r < 0.45 && depth === 0 ? 1500 : 6));
    if (r < 0.7) return Array.from({ length: n }, () => value(depth + 1));
    return Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, value(depth + 1)]));
  };
  for (let i = 0; i < 50; i++) {
    const v = value(0);
    const back = plain(readPickle(writePickle(v)));
    // Ints the safe range holds come back as numbers.
    const norm = (x: unknown): unknown =>
      typeof x === "bigint" && Number.isSafeInteger(Number(x))
        ? Number(x)
        : Array.isArray(x)
        ? x.map(norm)
        : x && typeof x === "object" && !(x instanceof Uint8Array)
        ? Object.fromEntries(Object.entries(x).map(([k, y]) => [k, norm(y)]))
        : x;
    assert.deepEqual(back, norm(v), `value ${i}`);
  }
});

Deno.test("readPickle() reads the rarer opcodes: DICT, LIST, SETITEM, POP, POP_MARK, DUP, 8-byte lengths", () => {
  // {"a": 1} by DICT; [1, 2, 3] by LIST then APPEND; POP drops an item, or the mark.
  assert.deepEqual(plain(readPickle(bytesOf(2, "(", "X", ...le(1n, 4), "a", "K", 1, "d."))), {
    a: 1,
  });
  assert.deepEqual(readPickle(bytesOf(2, "(K", 1, "K", 2, "lK", 3, "a.")), [1, 2, 3]);
  assert.deepEqual(readPickle(bytesOf(2, "K", 1, "K", 2, "0.")), 1);
  assert.deepEqual(readPickle(bytesOf(2, "K", 1, "(0.")), 1);
  assert.deepEqual(readPickle(bytesOf(2, "K", 1, "(K", 2, "1.")), 1);
  const dup = readPickle(bytesOf(2, "]2\x86.")) as PickleValue[][];
  assert.equal(dup[0], dup[1]);
  assert.deepEqual(plain(readPickle(bytesOf(2, "}X", ...le(1n, 4), "kK", 5, "s."))), { k: 5 });
  assert.equal(readPickle(bytesOf(4, 0x8d, ...le(2n, 8), "hi.")), "hi");
  assert.deepEqual(readPickle(bytesOf(4, 0x8e, ...le(1n, 8), 9, ".")), new Uint8Array([9]));
  assert.equal(readPickle(bytesOf(2, 0x8b, ...le(2n, 4), 0xff, 0x7f, ".")), 32767);
  assert.equal(readPickle(bytesOf(2, 0x8a, 0, ".")), 0);
  assert.equal(readPickle(bytesOf(2, 0x8a, 1, 0xff, ".")), -1);
  assert.equal(readPickle(bytesOf(2, 0x8a, 7, ...le(2n ** 53n - 1n, 7), ".")), 2 ** 53 - 1);
});

/** Asserts that reading `bytes` throws a TraceError whose message matches `pattern`. */
function refuses(bytes: Uint8Array, pattern: RegExp): void {
  assert.throws(() => readPickle(bytes), (e: unknown) => {
    assert.ok(e instanceof TraceError, `${e}`);
    assert.match(e.message, pattern);
    return true;
  });
}

Deno.test("readPickle() refuses opcodes that build objects or run code, naming them and their offset", () => {
  // pickle.dumps(datetime.date(2020, 1, 1), protocol=2) starts with a GLOBAL.
  refuses(bytesOf(2, "cdatetime\ndate\n"), /pickle: GLOBAL at offset 2: opcode GLOBAL is not read/);
  refuses(
    bytesOf(4, 0x8c, 1, "a", 0x8c, 1, "b", 0x93, "."),
    /STACK_GLOBAL at offset 8: opcode STACK_GLOBAL is not read/,
  );
  const refused: [string, string][] = [
    ["R", "REDUCE"],
    ["b", "BUILD"],
    ["\x81", "NEWOBJ"],
    ["\x92", "NEWOBJ_EX"],
    ["P", "PERSID"],
    ["Q", "BINPERSID"],
    ["i", "INST"],
    ["o", "OBJ"],
    ["\x82", "EXT1"],
    ["\x97", "NEXT_BUFFER"],
    ["S", "STRING"],
    ["I", "INT"],
    ["g", "GET"],
    ["p", "PUT"],
  ];
  for (const [op, name] of refused) {
    refuses(
      bytesOf(2, "N", op),
      new RegExp(`pickle: ${name} at offset 3: opcode ${name} is not read`),
    );
  }
  refuses(bytesOf(2, 0xff), /pickle: 0xff at offset 2: unknown opcode/);
  refuses(new TextEncoder().encode("(lp0\n."), /not a pickle of protocol 2 to 5/);
  refuses(bytesOf(1, "N."), /not a pickle of protocol 2 to 5/);
  refuses(bytesOf(2, 0x80, 9, "N."), /PROTO at offset 2: protocol 9/);
  assert.equal(isPickle(bytesOf(6, "N.")), false);
});

Deno.test("readPickle() checks declared lengths against the bytes left before allocating", () => {
  const huge = [
    bytesOf(4, 0x8d, ...le(2n ** 62n, 8)), // BINUNICODE8
    bytesOf(4, 0x8e, ...le(2n ** 64n - 1n, 8)), // BINBYTES8
    bytesOf(5, 0x96, ...le(2n ** 40n, 8)), // BYTEARRAY8
    bytesOf(2, "X", ...le(2n ** 32n - 1n, 4)), // BINUNICODE
    bytesOf(3, "B", ...le(2n ** 31n, 4)), // BINBYTES
    bytesOf(2, 0x8b, ...le(2n ** 31n - 1n, 4)), // LONG4
    bytesOf(4, 0x95, ...le(2n ** 63n, 8), "N."), // FRAME
    bytesOf(4, 0x8c, 200, "abc"), // SHORT_BINUNICODE
  ];
  for (const bytes of huge) refuses(bytes, /at offset 2: truncated: needs \d+ bytes, \d+ left/);
  refuses(bytesOf(2, 0x8b, ...le(2n ** 32n - 1n, 4)), /LONG4 at offset 2: negative length -1/);
});

Deno.test("readPickle() refuses malformed structure", () => {
  const cases: [Uint8Array, RegExp][] = [
    [bytesOf(2, ")K", 1, "a."), /APPEND at offset 5: APPEND needs a list/],
    [bytesOf(2, "]K", 1, "K", 2, "s."), /SETITEM at offset 7: SETITEM needs a dict/],
    [bytesOf(2, "K", 1, "(K", 2, 0x90, "."), /ADDITEMS at offset 7: ADDITEMS needs a set/],
    [bytesOf(2, "h", 5, "."), /BINGET at offset 2: memo has no item 5/],
    [bytesOf(2, "a."), /APPEND at offset 2: stack underflow/],
    [bytesOf(2, "]K", 1, "(a."), /APPEND at offset 6: stack underflow/],
    [bytesOf(2, "K", 1, "\x86."), /TUPLE2 at offset 4: stack underflow/],
    [bytesOf(2, "1."), /POP_MARK at offset 2: no MARK to pop/],
    [bytesOf(2, "}(K", 1, "u."), /SETITEMS at offset 6: odd number of items/],
    [bytesOf(2, "}(N", "K", 1, "u."), /dict key of type None is not read/],
    [bytesOf(2, "}(", ")K", 1, "u."), /dict key of type tuple or list is not read/],
    [bytesOf(2, "}(G", ...[0x3f, 0xf8, 0, 0, 0, 0, 0, 0], "K", 1, "u."), /key of type float/],
    [bytesOf(2, "N.N"), /STOP at offset 3: 1 bytes follow STOP/],
    [bytesOf(2, "N"), /truncated pickle: ended at offset 3 before STOP/],
    [bytesOf(2, "."), /STOP at offset 2: stack underflow/],
    [bytesOf(2, 0x8c, 2, 0xc3, 0x28, "."), /SHORT_BINUNICODE at offset 2: string is not UTF-8/],
  ];
  for (const [bytes, pattern] of cases) refuses(bytes, pattern);
});

Deno.test("readPickle() fuzzed: 12,000 seeded malformed and truncated inputs give a value or a TraceError", async () => {
  const corpus: Uint8Array[] = [];
  for (const p of [2, 3, 4, 5]) {
    corpus.push(await Deno.readFile(new URL(`protocol${p}.pickle`, TESTDATA)));
  }
  corpus.push(writePickle({
    segments: [{ device: 0, address: 2 ** 40, blocks: [{ size: 512, state: "active_allocated" }] }],
    device_traces: [[{ action: "alloc", addr: 2 ** 40, size: 512, frames: [] }]],
  }));
  const opcodes = [..."().012FIJKLMNPQRSTUXabcde}ghijl]opqrstuGBC"].map((c) => c.charCodeAt(0))
    .concat(Array.from({ length: 0x99 - 0x80 }, (_, i) => 0x80 + i));
  const random = rng(2024);
  const int = (n: number) => Math.floor(random() * n);
  let values = 0;
  let errors = 0;
  const check = (bytes: Uint8Array) => {
    try {
      readPickle(bytes);
      values++;
    } catch (e) {
      assert.ok(
        e instanceof TraceError,
        `not a TraceError: ${e} (input ${[...bytes.slice(0, 64)]})`,
      );
      assert.match(
        e.message,
        /^Invalid trace: (pickle: \S+ at offset \d+: |truncated pickle|not a pickle)/,
      );
      errors++;
    }
  };
  // Every truncation of a real pickle is caught.
  const whole = corpus[2];
  for (let n = 0; n < whole.length; n++) {
    const before = errors;
    check(whole.subarray(0, n));
    assert.equal(errors, before + 1, `prefix of ${n} bytes read as a value`);
  }
  let inputs = whole.length;
  for (; inputs < 12_000; inputs++) {
    let bytes: number[];
    if (inputs % 10 === 0) {
      // Opcode soup: valid opcodes with random argument bytes.
      bytes = [0x80, 2 + int(4)];
      for (let k = int(40); k > 0; k--) {
        bytes.push(opcodes[int(opcodes.length)]);
        for (let a = int(4); a > 0; a--) bytes.push(int(4) === 0 ? 0xff : int(8));
      }
      bytes.push(0x2e);
    } else {
      bytes = [...corpus[int(corpus.length)]];
      for (let m = 1 + int(4); m > 0; m--) {
        const at = int(bytes.length);
        const kind = int(6);
        if (kind === 0) bytes.length = at; // truncate
        else if (kind === 1) bytes[at] = int(256); // overwrite
        else if (kind === 2) bytes[at] = opcodes[int(opcodes.length)];
        else if (kind === 3) bytes.splice(at, 0, int(256)); // insert
        else if (kind === 4) bytes.splice(at, 1 + int(8)); // delete
        else bytes.splice(at, 0, ...bytes.slice(int(bytes.length), int(bytes.length))); // copy
      }
    }
    check(new Uint8Array(bytes));
  }
  assert.ok(inputs >= 10_000);
  assert.ok(values > 0 && errors > 10 * values, `values ${values}, errors ${errors}`);
});

Deno.test("readPickle() reads an int of MAX_INT_BYTES bytes exactly, and refuses a longer one", () => {
  const random = rng(77);
  for (const negative of [false, true]) {
    const body = Array.from({ length: MAX_INT_BYTES }, () => Math.floor(random() * 256));
    body[MAX_INT_BYTES - 1] = negative ? 0x80 | body[MAX_INT_BYTES - 1] : 0x7f & body[0];
    // The value by its decimal digits, the long way: each byte times its power of 256.
    let expected = 0n;
    body.forEach((b, i) => expected += BigInt(b) * 256n ** BigInt(i));
    if (negative) expected -= 256n ** BigInt(MAX_INT_BYTES);
    const value = readPickle(bytesOf(2, 0x8b, ...le(BigInt(MAX_INT_BYTES), 4), ...body, "."));
    assert.equal(value, expected);
  }
  const long = bytesOf(
    2,
    0x8b,
    ...le(BigInt(MAX_INT_BYTES + 1), 4),
    ...Array(MAX_INT_BYTES + 1).fill(1),
    ".",
  );
  refuses(long, /LONG4 at offset 2: int of 1025 bytes \(at most 1024/);
});

Deno.test("readPickle() shares a memo item wherever it is referenced, and caps the values built", () => {
  // One list of 100 ints referenced 100 times: shared, 100 + 100 values, not 100 × 100.
  const inner = Array.from({ length: 100 }, (_, i) => 1000 + i);
  const bytes = writePickle(Array(100).fill(inner));
  const outer = readPickle(bytes, { maxValues: 1_000 }) as PickleValue[][];
  assert.equal(outer.length, 100);
  assert.ok(outer.every((item) => item === outer[0]), "every reference is the one list");
  assert.deepEqual(outer[0], inner);
  assert.throws(() => readPickle(bytes, { maxValues: 150 }), (e: unknown) => {
    assert.ok(e instanceof TraceError);
    assert.match(
      e.message,
      /builds more than 150 values, the cap on what a file may cost \(raise it with the maxValues option\)/,
    );
    return true;
  });
  // Containers count CONTAINER_COST besides their place: 50 empty lists cost 50 × 9 values.
  const lists = writePickle(Array.from({ length: 50 }, () => []));
  assert.doesNotThrow(() => readPickle(lists, { maxValues: 51 * (1 + CONTAINER_COST) }));
  assert.throws(() => readPickle(lists, { maxValues: 50 * (1 + CONTAINER_COST) }), TraceError);
  assert.throws(() => readPickle(lists, { maxValues: 0 }), RangeError);
});
