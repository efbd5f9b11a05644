// scope() and keep(): tensors made inside a scope and not returned are
// disposed when it ends, whatever way it ends.
import assert from "node:assert/strict";
import { FakeDevice, HeapAllocator } from "../mod.ts";
import { empty, keep, maxPool2d, relu, scope, type Tensor, tensor } from "../kernels/mod.ts";
import { tensorBytes, withCheckedAllocator } from "./_kernels_util.ts";

/** An allocator on the fake device: empty() needs no GPU. */
function fakeAllocator(): HeapAllocator {
  return new HeapAllocator(new FakeDevice());
}

Deno.test("scope() disposes a chain's intermediates: tensor memory back to before, no block live", async () => {
  await withCheckedAllocator(async (allocator) => {
    const before = tensorBytes(allocator);
    const y = scope(() => {
      const x = tensor(allocator, [-1, 2, -3, 4, 5, -6, 7, -8], [1, 2, 2, 2]);
      return maxPool2d(relu(x), { kernelSize: 2 });
    });
    assert.deepEqual([...await y.read()], [4, 7]);
    y.dispose();
    assert.equal(tensorBytes(allocator), before);
  });
});

Deno.test("scope() keeps what it returns, in arrays and plain objects at any depth", () => {
  const allocator = fakeAllocator();
  let dropped: Tensor[] = [];
  const result = scope(() => {
    dropped = [empty(allocator, [4]), empty(allocator, [8])];
    const r = {
      a: empty(allocator, [1]),
      list: [1, { b: empty(allocator, [2]) }] as const,
      nested: { deeper: [[empty(allocator, [3])]] },
      self: null as unknown,
    };
    r.self = r; // cycles end the search, not the process
    return r;
  });
  assert.deepEqual(dropped.map((t) => t.disposed), [true, true]);
  const kept = [result.a, result.list[1].b, result.nested.deeper[0][0]];
  assert.deepEqual(kept.map((t) => t.disposed), [false, false, false]);
  assert.equal(allocator.memoryStats().blocks, 3);
  allocator.destroy();
});

Deno.test("scope() hands what it returns to the enclosing scope, which disposes it", () => {
  const allocator = fakeAllocator();
  let inner: Tensor | undefined;
  let kept: Tensor | undefined;
  const outer = scope(() => {
    inner = scope(() => empty(allocator, [4]));
    kept = scope(() => empty(allocator, [4]));
    return kept;
  });
  assert.equal(outer, kept);
  assert.equal(inner?.disposed, true);
  assert.equal(kept?.disposed, false);
  outer.dispose();
  assert.equal(allocator.currentAllocatedMemory(), 0);
  allocator.destroy();
});

Deno.test("scope() disposes everything made when its function throws, and rethrows", () => {
  const allocator = fakeAllocator();
  const made: Tensor[] = [];
  assert.throws(
    () =>
      scope(() => {
        made.push(empty(allocator, [4]), empty(allocator, [16]));
        throw new RangeError("stage 2 failed");
      }),
    { name: "RangeError", message: "stage 2 failed" },
  );
  assert.deepEqual(made.map((t) => t.disposed), [true, true]);
  assert.equal(allocator.currentAllocatedMemory(), 0);
  // The scope is gone: a tensor made afterwards is not disposed by anything.
  const after = empty(allocator, [4]);
  assert.equal(after.disposed, false);
  allocator.destroy();
});

Deno.test("scope() rejects an async function with a TypeError, disposing what it made", async () => {
  const allocator = fakeAllocator();
  let made: Tensor | undefined;
  let finished = false;
  assert.throws(
    () =>
      scope(async () => {
        made = empty(allocator, [4]);
        await Promise.resolve();
        finished = true;
        throw new Error("after the await");
      }),
    {
      name: "TypeError",
      message:
        "Cannot run scope: the function returned a promise; scopes are synchronous (use `using` in async code)",
    },
  );
  assert.equal(made?.disposed, true);
  // The orphaned promise's rejection is handled: this test would fail on an
  // unhandled rejection.
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.equal(finished, true);
  assert.throws(() => scope(42 as unknown as () => void), {
    name: "TypeError",
    message: "Cannot run scope: expected a function, got number",
  });
  allocator.destroy();
});

Deno.test("keep() keeps a tensor past every running scope", () => {
  const allocator = fakeAllocator();
  let weight: Tensor | undefined;
  let scratch: Tensor | undefined;
  scope(() => {
    scope(() => {
      weight = keep(empty(allocator, [16]));
      scratch = empty(allocator, [16]);
    });
  });
  assert.equal(weight?.disposed, false);
  assert.equal(scratch?.disposed, true);
  // Outside a scope it does nothing.
  const t = keep(empty(allocator, [4]));
  assert.equal(t.disposed, false);
  allocator.destroy();
});
