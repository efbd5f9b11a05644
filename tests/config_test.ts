// Reading the allocator's options: byte counts, the alloc conf, debug flags.
import assert from "node:assert/strict";
import {
  DEFAULT_ALLOC_CONF,
  formatAllocConf,
  parseAllocConf,
  parseBytes,
  parseDebug,
} from "../allocator/config.ts";

const MiB = 1 << 20;

Deno.test("parseBytes() reads integers and strings with a unit", () => {
  assert.equal(parseBytes("512MiB", "x"), 512 * MiB);
  assert.equal(parseBytes("1.5 GiB", "x"), 1.5 * 1024 * MiB);
  assert.equal(parseBytes("1000", "x"), 1000);
  assert.equal(parseBytes("2GB", "x"), 2e9);
  assert.equal(parseBytes(" 4 k ", "x"), 4096);
  assert.equal(parseBytes(0, "x"), 0);
  assert.throws(() => parseBytes("lots", "highWatermark"), /highWatermark: cannot read "lots"/);
  assert.throws(() => parseBytes(-5, "x"), /got -5/);
  assert.throws(() => parseBytes(1.5, "x"), /got 1\.5/);
  assert.throws(() => parseBytes(null as unknown as number, "x"), TypeError);
});

Deno.test("parseAllocConf() reads every key and rejects unknown ones", () => {
  assert.equal(parseAllocConf("roundup_power2_divisions:4").roundupPower2Divisions, 4);
  assert.equal(parseAllocConf("caching:0, small_heap:16MiB").smallHeap, 16 * MiB);
  assert.equal(parseAllocConf("caching:false").caching, false);
  assert.equal(parseAllocConf("large_heap:64MiB").largeHeap, 64 * MiB);
  assert.equal(parseAllocConf("xlarge_heap:256MiB").xlargeHeap, 256 * MiB);
  assert.equal(parseAllocConf("max_split_size:20MiB").maxSplitSize, 20 * MiB);
  assert.throws(() => parseAllocConf("max_split_size:-1"), /max_split_size/);
  assert.equal(parseAllocConf("max_reserved_ratio:1.5").maxReservedRatio, 1.5);
  assert.deepEqual(parseAllocConf(""), DEFAULT_ALLOC_CONF);
  assert.throws(() => parseAllocConf("roundup_power2_divisions:3"), /power of two <= 64, got 3/);
  assert.throws(() => parseAllocConf("max_split:4"), /cannot read "max_split:4"/);
  assert.throws(() => parseAllocConf("caching"), /cannot read "caching"/);
  assert.throws(() => parseAllocConf("caching:1:2"), /cannot read "caching:1:2"/);
  assert.throws(() => parseAllocConf("max_reserved_ratio:0.5"), /0 or a number >= 1, got 0\.5/);
  assert.throws(() => parseAllocConf("small_heap:512KiB"), /1 MiB <= small_heap <= large_heap/);
  assert.throws(
    () => parseAllocConf("small_heap:64MiB,large_heap:32MiB"),
    /1 MiB <= small_heap <= large_heap/,
  );
});

Deno.test("formatAllocConf() writes what parseAllocConf() reads back", () => {
  const conf = parseAllocConf(
    "roundup_power2_divisions:8,caching:0,xlarge_heap:256MiB,max_split_size:20MiB",
  );
  assert.deepEqual(parseAllocConf(formatAllocConf(conf)), conf);
  assert.equal(
    formatAllocConf(DEFAULT_ALLOC_CONF),
    "roundup_power2_divisions:0,caching:1,small_heap:8388608,large_heap:33554432," +
      "xlarge_heap:0,max_reserved_ratio:1.04,max_split_size:0",
  );
});

Deno.test("parseDebug() reads flags, all of them, or silence", () => {
  assert.deepEqual(parseDebug("alloc,release"), {
    allocations: true,
    reuses: false,
    releases: true,
    leaks: false,
  });
  assert.deepEqual(parseDebug("leak"), {
    allocations: false,
    reuses: false,
    releases: false,
    leaks: true,
  });
  const all = { allocations: true, reuses: true, releases: true, leaks: true };
  assert.deepEqual(parseDebug(true), all);
  assert.deepEqual(parseDebug("all"), all);
  assert.deepEqual(parseDebug("1"), all);
  const none = { allocations: false, reuses: false, releases: false, leaks: false };
  assert.deepEqual(parseDebug("0"), none);
  assert.deepEqual(parseDebug(""), none);
  assert.deepEqual(parseDebug(undefined), none);
  assert.throws(() => parseDebug("loud"), /unknown flag "loud"/);
});

Deno.test("parseAllocConf() rejects names of Object.prototype with its own message", () => {
  for (const key of ["constructor", "toString", "valueOf", "hasOwnProperty", "__proto__"]) {
    assert.throws(
      () => parseAllocConf(`${key}:1`),
      (e: unknown) => e instanceof RangeError && /cannot read ".*" \(known keys: /.test(e.message),
      key,
    );
  }
  assert.throws(() => parseAllocConf("roundup_power2_divisions:0x10"), /got 0x10/);
  assert.throws(() => parseAllocConf("roundup_power2_divisions: "), /got $/);
});

Deno.test("parseBytes() is strict: whole bytes only, no absurd sizes, no unit from Object.prototype", () => {
  assert.equal(parseBytes("1.1kb", "x"), 1100, "decimal fractions are exact");
  assert.equal(parseBytes("0.5KiB", "x"), 512);
  assert.equal(parseBytes("1.25 MiB", "x"), 1.25 * MiB);
  assert.equal(parseBytes("8 PiB".replace("P", "G"), "x"), 8 * 1024 * MiB);
  for (
    const [text, message] of [
      ["1.5", /"1\.5" is 1\.5 bytes, not a whole number/],
      ["0.4", /"0\.4" is 0\.4 bytes, not a whole number/],
      ["0.1 GiB", /not a whole number/],
      ["9".repeat(400), /too large \(at most 9007199254740991 bytes\)/],
      ["99999999999999999999999GiB", /too large/],
      ["5constructor", /cannot read "5constructor"/],
      ["1toString", /cannot read "1toString"/],
      ["1e3", /cannot read "1e3"/],
      ["-1", /cannot read "-1"/],
      ["", /cannot read ""/],
      [".5", /cannot read ".5"/],
    ] as const
  ) {
    assert.throws(
      () => parseBytes(text, "highWatermark"),
      (e: unknown) =>
        e instanceof RangeError && e.message.startsWith("Invalid highWatermark: ") &&
        message.test(e.message),
      text,
    );
  }
  assert.throws(() => parseBytes(2 ** 53, "x"), /got 9007199254740992/);
  assert.throws(() => parseBytes(Infinity, "x"), RangeError);
});
