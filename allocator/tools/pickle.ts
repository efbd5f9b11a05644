/**
 * A reader of Python pickles that hold plain data only: what PyTorch's
 * `torch.cuda.memory._snapshot()` and `_dump_snapshot()` write (protocols 2
 * to 5: dicts, lists, tuples, sets, ints, floats, strings, bytes, booleans,
 * None, with the memo and framing). Opcodes that build objects, call code or
 * refer to globals are refused, so reading a pickle runs nothing.
 *
 * Values come back as JavaScript values: dicts as objects without a
 * prototype (int keys written in decimal; other key types are refused),
 * lists, tuples and sets as arrays, ints as numbers (as bigints outside the
 * safe integer range), bytes as `Uint8Array`, None as `null`.
 *
 * Everything is checked against the bytes at hand before it is read, so a
 * malformed or truncated pickle fails with a {@linkcode TraceError} that
 * names the opcode and its offset, in time and memory linear in its size:
 * memo references share the value they fetch (never a copy), ints longer
 * than {@linkcode MAX_INT_BYTES} are refused, and the values a pickle may
 * build are capped (`maxValues`), so a small pickle of references to
 * references cannot fill memory.
 *
 * @module
 */

import { TraceError } from "./read_trace.ts";

/** A value read from a pickle. */
export type PickleValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | PickleValue[]
  | PickleDict;

/** A Python dict read from a pickle: an object without a prototype. */
export interface PickleDict {
  /** A value by its key (str keys as they are, int keys in decimal). */
  [key: string]: PickleValue;
}

/** The opcodes of every pickle protocol by byte, for messages (pickletools' names). */
const OPCODE_NAMES: Record<number, string> = {};
for (
  const [code, name] of [
    ["(", "MARK"],
    [".", "STOP"],
    ["0", "POP"],
    ["1", "POP_MARK"],
    ["2", "DUP"],
    ["F", "FLOAT"],
    ["I", "INT"],
    ["J", "BININT"],
    ["K", "BININT1"],
    ["L", "LONG"],
    ["M", "BININT2"],
    ["N", "NONE"],
    ["P", "PERSID"],
    ["Q", "BINPERSID"],
    ["R", "REDUCE"],
    ["S", "STRING"],
    ["T", "BINSTRING"],
    ["U", "SHORT_BINSTRING"],
    ["V", "UNICODE"],
    ["X", "BINUNICODE"],
    ["a", "APPEND"],
    ["b", "BUILD"],
    ["c", "GLOBAL"],
    ["d", "DICT"],
    ["}", "EMPTY_DICT"],
    ["e", "APPENDS"],
    ["g", "GET"],
    ["h", "BINGET"],
    ["i", "INST"],
    ["j", "LONG_BINGET"],
    ["l", "LIST"],
    ["]", "EMPTY_LIST"],
    ["o", "OBJ"],
    ["p", "PUT"],
    ["q", "BINPUT"],
    ["r", "LONG_BINPUT"],
    ["s", "SETITEM"],
    ["t", "TUPLE"],
    [")", "EMPTY_TUPLE"],
    ["u", "SETITEMS"],
    ["G", "BINFLOAT"],
    ["B", "BINBYTES"],
    ["C", "SHORT_BINBYTES"],
    ["\x80", "PROTO"],
    ["\x81", "NEWOBJ"],
    ["\x82", "EXT1"],
    ["\x83", "EXT2"],
    ["\x84", "EXT4"],
    ["\x85", "TUPLE1"],
    ["\x86", "TUPLE2"],
    ["\x87", "TUPLE3"],
    ["\x88", "NEWTRUE"],
    ["\x89", "NEWFALSE"],
    ["\x8a", "LONG1"],
    ["\x8b", "LONG4"],
    ["\x8c", "SHORT_BINUNICODE"],
    ["\x8d", "BINUNICODE8"],
    ["\x8e", "BINBYTES8"],
    ["\x8f", "EMPTY_SET"],
    ["\x90", "ADDITEMS"],
    ["\x91", "FROZENSET"],
    ["\x92", "NEWOBJ_EX"],
    ["\x93", "STACK_GLOBAL"],
    ["\x94", "MEMOIZE"],
    ["\x95", "FRAME"],
    ["\x96", "BYTEARRAY8"],
    ["\x97", "NEXT_BUFFER"],
    ["\x98", "READONLY_BUFFER"],
  ]
) OPCODE_NAMES[code.charCodeAt(0)] = name;

const PROTO = 0x80;

/**
 * Longest int read, in bytes (8,192 bits). A memory snapshot's ints are
 * addresses and sizes of 64 bits; a longer one is read in linear time, but
 * every later use of a huge bigint (printing it in decimal, comparing it)
 * costs more than its bytes, so a pickle may not carry one.
 */
export const MAX_INT_BYTES = 1024;

/**
 * Values a pickle may build by default: 32 Mi, room for a memory snapshot of
 * 64 MiB (PyTorch's build 0.36–0.38 values a byte, counting each container
 * as {@linkcode CONTAINER_COST}).
 */
export const DEFAULT_MAX_VALUES = 32 * 2 ** 20;

/**
 * What one container (dict, list, tuple, set, bytes, big int) counts against
 * `maxValues`: about its size in V8 in 8-byte words, beside the one word of
 * a value on the stack or in a list, so the cap bounds memory.
 */
export const CONTAINER_COST = 8;

/** Options of {@linkcode readPickle}. */
export interface PickleOptions {
  /**
   * Most values the pickle may build, each value pushed counted once and a
   * container {@linkcode CONTAINER_COST} times more (default
   * {@linkcode DEFAULT_MAX_VALUES}). A memo reference counts as one value:
   * it shares what it fetches.
   */
  maxValues?: number;
  /** How a user raises the cap, for the message (default: "the maxValues option"). */
  raiseWith?: string;
}
const UTF8 = new TextDecoder("utf-8", { fatal: true });
/**
 * Kinds of stack and memo items: lists and sets take APPEND(S) and ADDITEMS, tuples and
 * the rest do not. Kept beside the stack, not in a set of arrays: a set of millions of
 * objects costs a microsecond an insert.
 */
const OTHER = 0;
const LIST = 1;
const SET = 2;
const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

/**
 * True when `bytes` start as a pickle of protocol 2 to 5 does (PROTO and its
 * version); says nothing of what follows.
 *
 * @example
 * ```ts
 * import { isPickle } from "@gpuheap/gpuheap/tools";
 * import assert from "node:assert/strict";
 *
 * assert.equal(isPickle(new Uint8Array([0x80, 4, 0x4e, 0x2e])), true);
 * assert.equal(isPickle(new TextEncoder().encode("[]")), false);
 * ```
 */
export function isPickle(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === PROTO && bytes[1] >= 2 && bytes[1] <= 5;
}

/**
 * Reads a pickle of plain data (protocol 2 to 5).
 *
 * @param bytes the pickle
 * @param options the cap on the values it may build
 * @throws {TraceError} not a pickle of protocol 2 to 5, truncated or
 *   malformed, an opcode this reader refuses (the message names it and
 *   its offset), an int longer than {@linkcode MAX_INT_BYTES}, or more
 *   values than `maxValues`
 * @throws {RangeError} `options.maxValues` is not a positive integer
 *
 * @example
 * ```ts
 * import { readPickle } from "@gpuheap/gpuheap/tools";
 * import assert from "node:assert/strict";
 *
 * // pickle.dumps({"a": [1, 2.5, None]}, protocol=2)
 * const bytes = new Uint8Array([
 *   0x80, 2, 0x7d, 0x71, 0, 0x58, 1, 0, 0, 0, 0x61, 0x71, 1, 0x5d, 0x71, 2, 0x28, 0x4b, 1,
 *   0x47, 0x40, 4, 0, 0, 0, 0, 0, 0, 0x4e, 0x65, 0x73, 0x2e,
 * ]);
 * assert.deepEqual({ ...readPickle(bytes) as object }, { a: [1, 2.5, null] });
 * ```
 */
export function readPickle(bytes: Uint8Array, options: PickleOptions = {}): PickleValue {
  const max = options?.maxValues ?? DEFAULT_MAX_VALUES;
  if (!Number.isSafeInteger(max) || max < 1) {
    throw new RangeError(
      `Cannot read the pickle: maxValues must be a positive integer, got ${max}`,
    );
  }
  return new Reader(bytes, max, options?.raiseWith ?? "the maxValues option").read();
}

/** One pass over the bytes: a stack machine, as pickle's own unpickler. */
class Reader {
  readonly #bytes: Uint8Array;
  readonly #view: DataView;
  #pos = 0;
  /** Where the opcode being run starts, for messages. */
  #at = 0;
  readonly #stack: PickleValue[] = [];
  /** Stack lengths at each MARK: items above the last one form the current frame. */
  readonly #marks: number[] = [];
  readonly #memo = new Map<number, PickleValue>();
  /** The kind of each item on the stack (see LIST), and of memo items that are not OTHER. */
  readonly #kinds: number[] = [];
  readonly #memoKinds = new Map<number, number>();
  /** Values built so far (see CONTAINER_COST), and the most allowed. */
  #values = 0;
  readonly #maxValues: number;
  readonly #raiseWith: string;

  constructor(bytes: Uint8Array, maxValues: number, raiseWith: string) {
    this.#bytes = bytes;
    this.#maxValues = maxValues;
    this.#raiseWith = raiseWith;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  read(): PickleValue {
    if (!isPickle(this.#bytes)) {
      throw new TraceError(
        "not a pickle of protocol 2 to 5 (it must start with PROTO 2, 3, 4 or 5)",
      );
    }
    while (this.#pos < this.#bytes.length) {
      this.#at = this.#pos;
      const op = this.#bytes[this.#pos++];
      if (op === 0x2e) { // STOP
        const value = this.#pop();
        if (this.#pos !== this.#bytes.length) {
          this.#fail(`${this.#bytes.length - this.#pos} bytes follow STOP`);
        }
        return value;
      }
      this.#run(op);
    }
    throw new TraceError(`truncated pickle: ended at offset ${this.#pos} before STOP`);
  }

  #run(op: number): void {
    switch (op) {
      case 0x80: { // PROTO
        const version = this.#u8();
        if (version < 2 || version > 5) this.#fail(`protocol ${version} (this reads 2 to 5)`);
        return;
      }
      case 0x95: { // FRAME: a hint of how many bytes follow; only checked for truncation.
        const size = this.#u64();
        if (size > this.#left()) this.#truncated(size);
        return;
      }
      case 0x28: // MARK
        this.#marks.push(this.#stack.length);
        return;
      case 0x30: // POP: an item, or the last mark when nothing lies above it
        if (this.#stack.length > this.#floor()) this.#pop();
        else this.#popMark();
        return;
      case 0x31: // POP_MARK
        this.#popMark();
        return;
      case 0x32: // DUP
        this.#push(this.#top(), this.#kinds[this.#kinds.length - 1]);
        return;
      case 0x4e: // NONE
        return this.#push(null);
      case 0x88: // NEWTRUE
        return this.#push(true);
      case 0x89: // NEWFALSE
        return this.#push(false);
      case 0x4a: // BININT
        this.#need(4);
        this.#push(this.#view.getInt32(this.#pos, true));
        this.#pos += 4;
        return;
      case 0x4b: // BININT1
        return this.#push(this.#u8());
      case 0x4d: // BININT2
        this.#need(2);
        this.#push(this.#view.getUint16(this.#pos, true));
        this.#pos += 2;
        return;
      case 0x8a: // LONG1
        return this.#push(this.#long(this.#u8()));
      case 0x8b: { // LONG4
        this.#need(4);
        const n = this.#view.getInt32(this.#pos, true);
        this.#pos += 4;
        if (n < 0) this.#fail(`negative length ${n}`);
        return this.#push(this.#long(n));
      }
      case 0x47: // BINFLOAT
        this.#need(8);
        this.#push(this.#view.getFloat64(this.#pos, false));
        this.#pos += 8;
        return;
      case 0x8c: // SHORT_BINUNICODE
        return this.#push(this.#text(this.#u8()));
      case 0x58: // BINUNICODE
        return this.#push(this.#text(this.#u32()));
      case 0x8d: // BINUNICODE8
        return this.#push(this.#text(this.#u64()));
      case 0x43: // SHORT_BINBYTES
        return this.#push(this.#container(this.#take(this.#u8()).slice()));
      case 0x42: // BINBYTES
        return this.#push(this.#container(this.#take(this.#u32()).slice()));
      case 0x8e: // BINBYTES8
      case 0x96: // BYTEARRAY8
        return this.#push(this.#container(this.#take(this.#u64()).slice()));
      case 0x5d: // EMPTY_LIST
        return this.#push(this.#container([]), LIST);
      case 0x6c: // LIST
        return this.#push(this.#container(this.#popMark()), LIST);
      case 0x61: { // APPEND
        const item = this.#pop();
        this.#target(LIST, "list", "APPEND").push(item);
        return;
      }
      case 0x65: { // APPENDS
        const items = this.#popMark();
        const list = this.#target(LIST, "list", "APPENDS");
        for (const item of items) list.push(item);
        return;
      }
      case 0x29: // EMPTY_TUPLE
        return this.#push(this.#container([]));
      case 0x74: // TUPLE
        return this.#push(this.#container(this.#popMark()));
      case 0x85: // TUPLE1
      case 0x86: // TUPLE2
      case 0x87: { // TUPLE3
        const n = op - 0x84;
        if (this.#stack.length - this.#floor() < n) this.#underflow();
        this.#kinds.length -= n;
        return this.#push(this.#container(this.#stack.splice(this.#stack.length - n, n)));
      }
      case 0x7d: // EMPTY_DICT
        return this.#push(this.#container(Object.create(null)));
      case 0x64: { // DICT
        const items = this.#popMark();
        const dict: PickleDict = this.#container(Object.create(null));
        this.#setItems(dict, items);
        return this.#push(dict);
      }
      case 0x73: { // SETITEM
        const value = this.#pop();
        const key = this.#pop();
        this.#setItems(this.#dict("SETITEM"), [key, value]);
        return;
      }
      case 0x75: { // SETITEMS
        const items = this.#popMark();
        this.#setItems(this.#dict("SETITEMS"), items);
        return;
      }
      case 0x8f: { // EMPTY_SET
        return this.#push(this.#container([]), SET);
      }
      case 0x90: { // ADDITEMS
        const items = this.#popMark();
        const set = this.#target(SET, "set", "ADDITEMS");
        for (const item of items) set.push(item);
        return;
      }
      case 0x91: // FROZENSET
        return this.#push(this.#container(this.#popMark()));
      case 0x71: // BINPUT
        return this.#put(this.#u8());
      case 0x72: // LONG_BINPUT
        return this.#put(this.#u32());
      case 0x94: // MEMOIZE
        return this.#put(this.#memo.size);
      case 0x68: // BINGET
        return this.#get(this.#u8());
      case 0x6a: // LONG_BINGET
        return this.#get(this.#u32());
      default: {
        const name = OPCODE_NAMES[op];
        this.#fail(
          name
            ? `opcode ${name} is not read (only plain data: dicts, lists, tuples, sets, ` +
              "numbers, strings, bytes, booleans, None)"
            : "unknown opcode",
        );
      }
    }
  }

  /** Throws a TraceError about the opcode being run. */
  #fail(message: string): never {
    const op = this.#bytes[this.#at];
    const name = OPCODE_NAMES[op] ?? `0x${op.toString(16).padStart(2, "0")}`;
    throw new TraceError(`pickle: ${name} at offset ${this.#at}: ${message}`);
  }

  #truncated(needed: number): never {
    this.#fail(`truncated: needs ${needed} bytes, ${this.#left()} left`);
  }

  #underflow(): never {
    this.#fail("stack underflow");
  }

  #left(): number {
    return this.#bytes.length - this.#pos;
  }

  #need(n: number): void {
    if (n > this.#left()) this.#truncated(n);
  }

  #u8(): number {
    this.#need(1);
    return this.#bytes[this.#pos++];
  }

  #u32(): number {
    this.#need(4);
    const n = this.#view.getUint32(this.#pos, true);
    this.#pos += 4;
    return n;
  }

  /** An 8-byte length (rounded past 2^53, where it exceeds any input anyway). */
  #u64(): number {
    this.#need(8);
    const n = Number(this.#view.getBigUint64(this.#pos, true));
    this.#pos += 8;
    return n;
  }

  /** `n` bytes, checked against what is left before anything is allocated. */
  #take(n: number): Uint8Array {
    this.#need(n);
    const bytes = this.#bytes.subarray(this.#pos, this.#pos + n);
    this.#pos += n;
    return bytes;
  }

  #text(n: number): string {
    const bytes = this.#take(n);
    try {
      return UTF8.decode(bytes);
    } catch {
      this.#fail("string is not UTF-8");
    }
  }

  /**
   * A little-endian two's complement integer of `n` bytes, in time linear in
   * `n`: the bytes become hex digits and V8 reads those in one pass (shifting
   * a bigint byte by byte copies it at every step: quadratic).
   */
  #long(n: number): number | bigint {
    const bytes = this.#take(n);
    if (n > MAX_INT_BYTES) {
      this.#fail(`int of ${n} bytes (at most ${MAX_INT_BYTES}: no snapshot needs a longer one)`);
    }
    if (n === 0) return 0;
    if (n <= 6) {
      let value = 0;
      for (let i = n - 1; i >= 0; i--) value = value * 256 + bytes[i];
      return bytes[n - 1] & 0x80 ? value - 2 ** (8 * n) : value;
    }
    let hex = "0x";
    for (let i = n - 1; i >= 0; i--) hex += HEX[bytes[i]];
    let value = BigInt(hex);
    if (bytes[n - 1] & 0x80) value -= 1n << BigInt(8 * n);
    if (Number.isSafeInteger(Number(value)) && BigInt(Number(value)) === value) {
      return Number(value);
    }
    this.#count(CONTAINER_COST);
    return value;
  }

  /** The stack length below which the current frame (since the last MARK) may not pop. */
  #floor(): number {
    return this.#marks.length > 0 ? this.#marks[this.#marks.length - 1] : 0;
  }

  #push(value: PickleValue, kind = OTHER): void {
    this.#count(1);
    this.#stack.push(value);
    this.#kinds.push(kind);
  }

  /** Counts `n` more values against the cap. */
  #count(n: number): void {
    this.#values += n;
    if (this.#values > this.#maxValues) {
      this.#fail(
        `the pickle builds more than ${this.#maxValues} values, the cap on what a file may ` +
          `cost (raise it with ${this.#raiseWith})`,
      );
    }
  }

  /** A new container, counted against the cap. */
  #container<T extends PickleValue>(value: T): T {
    this.#count(CONTAINER_COST);
    return value;
  }

  #pop(): PickleValue {
    if (this.#stack.length <= this.#floor()) this.#underflow();
    this.#kinds.pop();
    return this.#stack.pop()!;
  }

  #top(): PickleValue {
    if (this.#stack.length <= this.#floor()) this.#underflow();
    return this.#stack[this.#stack.length - 1];
  }

  /** The items above the last MARK, which is removed. */
  #popMark(): PickleValue[] {
    const mark = this.#marks.pop();
    if (mark === undefined) this.#fail("no MARK to pop");
    this.#kinds.length = mark;
    return this.#stack.splice(mark);
  }

  /** Memoizes the item on top of the stack, with its kind. */
  #put(index: number): void {
    this.#memo.set(index, this.#top());
    const kind = this.#kinds[this.#kinds.length - 1];
    if (kind !== OTHER) this.#memoKinds.set(index, kind);
    else this.#memoKinds.delete(index);
  }

  /** Pushes memo item `index`: the value itself, shared, never a copy. */
  #get(index: number): void {
    if (!this.#memo.has(index)) this.#fail(`memo has no item ${index}`);
    this.#push(this.#memo.get(index)!, this.#memoKinds.get(index) ?? OTHER);
  }

  /** The list or set an APPEND(S) or ADDITEMS adds to: the item on top of the stack. */
  #target(kind: number, what: string, op: string): PickleValue[] {
    const top = this.#top();
    if (this.#kinds[this.#kinds.length - 1] !== kind) {
      this.#fail(`${op} needs a ${what} on the stack`);
    }
    return top as PickleValue[];
  }

  #dict(op: string): PickleDict {
    const top = this.#top();
    if (!isDict(top)) this.#fail(`${op} needs a dict on the stack`);
    return top;
  }

  #setItems(dict: PickleDict, items: PickleValue[]): void {
    if (items.length % 2 !== 0) this.#fail("odd number of items for a dict");
    for (let i = 0; i < items.length; i += 2) {
      const key = items[i];
      if (typeof key === "string") dict[key] = items[i + 1];
      else if (typeof key === "number" && Number.isInteger(key) || typeof key === "bigint") {
        dict[String(key)] = items[i + 1];
      } else this.#fail(`dict key of type ${typeName(key)} is not read (only str and int)`);
    }
  }
}

/** True for a dict read from a pickle (or any object without a prototype). */
function isDict(value: PickleValue): value is PickleDict {
  return typeof value === "object" && value !== null && !Array.isArray(value) &&
    !(value instanceof Uint8Array);
}

function typeName(value: PickleValue): string {
  if (value === null) return "None";
  if (Array.isArray(value)) return "tuple or list";
  if (value instanceof Uint8Array) return "bytes";
  if (typeof value === "number") return "float";
  if (typeof value === "boolean") return "bool";
  return typeof value === "object" ? "dict" : typeof value;
}
