// Tensors: uploads, readbacks, lifetimes (dispose, `using`, the leak report
// of debug mode), and bad arguments rejected with typed errors.
import assert from "node:assert/strict";
import { FakeDevice, HeapAllocator } from "../mod.ts";
import { commandBatchOf, empty, readAll, relu, type Tensor, tensor } from "../kernels/mod.ts";
import { assertRejected, f16Test, randomValues, rng, withAllocator } from "./_kernels_util.ts";

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

Deno.test("readAll() reads many tensors with one submit", async () => {
  await withAllocator(async (allocator) => {
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
  });
});

Deno.test("Tensor is freed at the end of a using block: currentAllocatedMemory() back to before", async () => {
  await withAllocator(async (allocator) => {
    const before = allocator.currentAllocatedMemory();
    {
      using x = tensor(allocator, [-1, 2, -3, 4], [4]);
      using y = relu(x);
      assert.deepEqual([...await y.read()], [0, 2, 0, 4]);
      assert.ok(allocator.currentAllocatedMemory() > before);
    }
    assert.equal(allocator.currentAllocatedMemory(), before);
    // A throw leaves the block too.
    let inner: Tensor | undefined;
    assert.throws(() => {
      using t = empty(allocator, [64]);
      inner = t;
      throw new RangeError("boom");
    }, /boom/);
    assert.equal(inner?.disposed, true);
    assert.equal(allocator.currentAllocatedMemory(), before);
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
  // Outside debug mode nothing is watched, and nothing said.
  const quiet = await runLeakFixture("env");
  assert.deepEqual(quiet.err, []);
});

Deno.test("tensor() and empty() reject bad data, shapes and dtypes, keeping nothing", async () => {
  await withAllocator((allocator, device) => {
    assertRejected(
      allocator,
      RangeError,
      () => tensor(allocator, [1, 2, 3], [2, 2]),
      "Cannot create tensor: data has 3 elements but shape [2,2] needs 4",
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
