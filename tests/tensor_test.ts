// Tensors: uploads, readbacks, lifetimes (dispose, `using`, the leak report
// of debug mode), and bad arguments rejected with typed errors.
import assert from "node:assert/strict";
import { AllocatorError, FakeDevice, HeapAllocator } from "../mod.ts";
import { commandBatchOf, empty, readAll, relu, Tensor, tensor } from "../kernels/mod.ts";
import {
  assertRejected,
  f16Test,
  randomValues,
  rng,
  tensorBytes,
  withAllocator,
  withCheckedAllocator,
} from "./_kernels_util.ts";

Deno.test("tensor() uploads and read() reads back the same values", async () => {
  await withAllocator(async (allocator) => {
    const values = randomValues(rng(3), 37);
    const t = tensor(allocator, values, [37], { label: "x" });
    assert.equal(t.label, "x");
    assert.deepEqual([...await t.read()], [...values]);
    assert.deepEqual([...await tensor(allocator, [1, 2, 3], [3]).read()], [1, 2, 3]);
  });
});

f16Test("tensor() uploads f16 values, odd counts included", async () => {
  await withAllocator(async (allocator) => {
    const values = Float16Array.from(randomValues(rng(4), 37));
    const out = await tensor(allocator, values, [37], { dtype: "f16" }).read();
    assert.ok(out instanceof Float16Array);
    assert.deepEqual([...out], [...values]);
  });
});

Deno.test("empty() leaves the contents unwritten: poisoned outputs read NaN", async () => {
  await withAllocator(async (allocator) => {
    const t = empty(allocator, [3, 5]);
    const values = await t.read();
    assert.equal(values.length, 15);
    assert.ok(values.every((v) => Number.isNaN(v)));
  });
});

Deno.test("readAll() reads many tensors with one submit, keeping no staging block", async () => {
  await withCheckedAllocator(async (allocator) => {
    const random = rng(7);
    const inputs = Array.from({ length: 6 }, (_, i) => randomValues(random, 16 + i));
    const xs = inputs.map((v) => tensor(allocator, v, [v.length]));
    const ys = xs.map((x) => relu(x));
    const batch = commandBatchOf(allocator);
    const submits = batch.submits;
    const out = await readAll([...xs, ...ys]);
    assert.equal(batch.submits, submits + 1);
    inputs.forEach((v, i) => {
      assert.deepEqual([...out[i]], [...v]);
      assert.deepEqual([...out[6 + i]], [...v].map((e) => Math.max(e, 0)));
    });
    for (const t of [...xs, ...ys]) t.dispose();
  });
});

Deno.test("Tensor is freed at the end of a using block: tensor memory back to before, no block live", async () => {
  await withCheckedAllocator(async (allocator) => {
    const before = tensorBytes(allocator);
    {
      using x = tensor(allocator, [-1, 2, -3, 4], [4]);
      using y = relu(x);
      assert.deepEqual([...await y.read()], [0, 2, 0, 4]);
      assert.ok(tensorBytes(allocator) > before);
    }
    assert.equal(tensorBytes(allocator), before);
    // A throw leaves the block too.
    let inner: Tensor | undefined;
    assert.throws(() => {
      using t = empty(allocator, [64]);
      inner = t;
      throw new RangeError("boom");
    }, /boom/);
    assert.equal(inner?.disposed, true);
    assert.equal(tensorBytes(allocator), before);
  });
});

Deno.test("Tensor.dispose() twice does nothing, nor after the allocator's destroy()", () => {
  const allocator = new HeapAllocator(new FakeDevice());
  const t = empty(allocator, [16]);
  t.dispose();
  t.dispose();
  assert.equal(allocator.currentAllocatedMemory(), 0);
  const u = empty(allocator, [16]);
  allocator.destroy();
  u.dispose();
  assert.equal(u.disposed, true);
});

/** Runs the leak fixture in a process of its own, with garbage collection exposed. */
async function runLeakFixture(mode: string, env: Record<string, string> = {}) {
  const command = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--v8-flags=--expose-gc",
      "--allow-env",
      "--allow-read",
      new URL("./testdata/tensor_leak.ts", import.meta.url).pathname,
      mode,
    ],
    env,
    stdout: "piped",
    stderr: "piped",
  });
  const { code, stdout, stderr } = await command.output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b).split("\n").filter((l) => l);
  const [out, err] = [text(stdout), text(stderr)];
  assert.equal(code, 0, err.join("\n"));
  return { out, err };
}

const LEAK_LINE =
  'gpuheap: tensor "activations" [1,3,8,8] f32 (768 B) was garbage-collected without dispose(): its block stays allocated until the allocator is destroyed';

Deno.test("Tensor garbage-collected without dispose() is reported once in debug mode", async () => {
  const { out, err } = await runLeakFixture("env", { GPUHEAP_DEBUG: "1" });
  // Only the tensor that was dropped: not the disposed one, not the `using` one.
  assert.deepEqual(err, [LEAK_LINE]);
  assert.deepEqual(out, ["allocated after: 768"]);
});

Deno.test("reportTensorLeaks() sends reports to a function, or turns them off", async () => {
  const sent = await runLeakFixture("function");
  assert.deepEqual(sent.out, [`report: ${LEAK_LINE}`, "allocated after: 768"]);
  assert.deepEqual(sent.err, []);
  const off = await runLeakFixture("off", { GPUHEAP_DEBUG: "1" });
  assert.deepEqual(off.err, []);
  // Outside debug mode nothing is watched, and nothing said; nor with flags other than leak.
  const quiet = await runLeakFixture("env");
  assert.deepEqual(quiet.err, []);
  const allocOnly = await runLeakFixture("env", { GPUHEAP_DEBUG: "alloc" });
  assert.ok(
    allocOnly.err.every((line) => !line.includes("garbage-collected")),
    allocOnly.err.join("\n"),
  );
  const leakOnly = await runLeakFixture("env", { GPUHEAP_DEBUG: "leak" });
  assert.ok(leakOnly.err.includes(LEAK_LINE), leakOnly.err.join("\n"));
});

Deno.test("tensor() and empty() reject bad data, shapes and dtypes, keeping nothing", async () => {
  await withAllocator((allocator, device) => {
    assertRejected(
      allocator,
      RangeError,
      () => tensor(allocator, [1, 2, 3], [2, 2]),
      "Cannot create tensor: data has 3 values but shape [2,2] needs 4",
    );
    assertRejected(
      allocator,
      RangeError,
      () => tensor(allocator, [1, 2], [2, 0]),
      "Cannot create tensor: shape must have positive integer sizes, got [2,0]",
    );
    assertRejected(
      allocator,
      TypeError,
      () => empty(allocator, [] as number[]),
      /^Cannot create tensor: shape must be a non-empty array of sizes/,
    );
    assertRejected(
      allocator,
      TypeError,
      () => tensor(allocator, [1, 2], [2], { dtype: "f64" as "f32" }),
      'Cannot create tensor: dtype must be "f32" or "f16", got "f64"',
    );
    assertRejected(
      allocator,
      TypeError,
      () => empty(allocator, [2], { longLived: "yes" as unknown as boolean }),
      "Cannot create tensor: longLived must be a boolean, got string",
    );
    if (!device.features.has("shader-f16")) {
      assertRejected(
        allocator,
        TypeError,
        () => tensor(allocator, [1, 2], [2], { dtype: "f16" }),
        "Cannot create tensor: dtype f16 needs the device feature shader-f16, which this device lacks",
      );
    }
  });
});

Deno.test("tensor() rejects data that is not numbers: strings, objects, mixed arrays", async () => {
  await withAllocator((allocator) => {
    for (
      const [data, message] of [
        [
          "1234",
          "Cannot create tensor: data must be an array or typed array of numbers, got a string",
        ],
        [
          { length: 4 },
          "Cannot create tensor: data must be an array or typed array of numbers, got Object",
        ],
        [null, "Cannot create tensor: data must be an array or typed array of numbers, got null"],
        [
          new BigInt64Array(4),
          "Cannot create tensor: data must be an array or typed array of numbers, got a BigInt64Array",
        ],
        [[1, "2", 3, 4], 'Cannot create tensor: data[1] must be a number, got "2"'],
        [[1, 2, undefined, 4], "Cannot create tensor: data[2] must be a number, got undefined"],
      ] as const
    ) {
      assertRejected(
        allocator,
        TypeError,
        () => tensor(allocator, data as unknown as number[], [4]),
        message,
      );
    }
    // NaN and infinities are numbers: max pooling, for one, gives them meaning.
    tensor(allocator, [NaN, Infinity, -Infinity, 0], [4]).dispose();
  });
});

Deno.test("new Tensor() rejects a block too small for the shape, bad shapes, dtypes, allocators, f16 without the feature", () => {
  const allocator = new HeapAllocator(new FakeDevice());
  const block = allocator.alloc(16);
  const make = (...args: unknown[]) => () =>
    new (Tensor as unknown as new (...a: unknown[]) => Tensor)(...args);
  assert.throws(
    make(allocator, block, [1, 1, 64, 64], "f32"),
    RangeError,
    "Cannot create tensor: a block of 16 bytes cannot hold shape [1,1,64,64] of f32 (16384 bytes)",
  );
  assert.throws(
    make(allocator, block, [5], "f32"),
    RangeError,
    "Cannot create tensor: a block of 16 bytes cannot hold shape [5] of f32 (20 bytes)",
  );
  assert.throws(
    make(allocator, block, [2, -1], "f32"),
    RangeError,
    "Cannot create tensor: shape must have positive integer sizes, got [2,-1]",
  );
  assert.throws(
    make(allocator, block, [4], "i8"),
    TypeError,
    'Cannot create tensor: dtype must be "f32" or "f16", got "i8"',
  );
  assert.throws(
    make(allocator, { size: 64 }, [4], "f32"),
    TypeError,
    "Cannot create tensor: block must be an allocator block (buffer, offset, requestedSize), got Object",
  );
  assert.throws(
    make({}, block, [4], "f32"),
    TypeError,
    "Cannot create tensor: allocator must have alloc, free, submit and beforeSubmit, got Object",
  );
  // f16 shaders do not compile without the device feature (a fake device has none).
  assert.throws(
    make(allocator, block, [8], "f16"),
    TypeError,
    "Cannot create tensor: dtype f16 needs the device feature shader-f16, which this device lacks",
  );
  // What fits is accepted: 4 f32 values in 16 bytes.
  assert.deepEqual(new Tensor(allocator, block, [2, 2], "f32").shape, [2, 2]);
  allocator.destroy();
});

Deno.test("readAll() rejects what is not a live tensor, reading nothing", async () => {
  await withAllocator(async (allocator) => {
    const live = tensor(allocator, [1, 2], [2]);
    const gone = tensor(allocator, [3, 4], [2]);
    gone.dispose();
    const submits = commandBatchOf(allocator).submits;
    await assert.rejects(
      () => readAll([live, gone]),
      AllocatorError,
      "Cannot read tensor [2]: it was disposed",
    );
    await assert.rejects(
      () => readAll([live, [1, 2] as unknown as Tensor]),
      TypeError,
      "Cannot read tensors: expected Tensors, got an array of 2",
    );
    await assert.rejects(
      () => readAll(live as unknown as Tensor[]),
      TypeError,
      "Cannot read tensors: expected an array of tensors, got Tensor",
    );
    assert.equal(commandBatchOf(allocator).submits, submits);
  });
});
