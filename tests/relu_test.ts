// relu on the real adapter against the float64 reference.
import assert from "node:assert/strict";
import { relu, reluRef, tensor } from "../kernels/mod.ts";
import {
  assertClose,
  f16Test,
  half,
  randomRef,
  rng,
  withAllocator,
  withCheckedAllocator,
} from "./_kernels_util.ts";

Deno.test("relu() matches the reference exactly, vectorised and scalar sizes, leaving no block live", async () => {
  await withCheckedAllocator(async (allocator) => {
    const random = rng(11);
    for (const shape of [[4, 4, 4, 4], [2, 3, 5, 7], [1], [3, 1, 1, 1], [1025]]) {
      const xr = randomRef(random, shape);
      using x = tensor(allocator, xr.data, shape);
      using y = relu(x);
      assert.deepEqual(y.shape, shape);
      assert.equal(y.label, "relu");
      const out = await y.read();
      const ref = reluRef(xr);
      assertClose(out, ref.data, 1e-5, `relu ${shape}`);
      // ReLU is exact: every element equals the reference.
      assert.deepEqual([...out], [...ref.data]);
    }
    // One shape at a time: at most 1025 floats in, out and read back (12 KiB),
    // and the batch's 16 KiB block of parameter slots.
  }, { peakAllocated: "64KiB" });
});

f16Test("relu() matches the reference", async () => {
  await withAllocator(async (allocator) => {
    const random = rng(602);
    for (const shape of [[2, 3, 5, 7], [4, 4, 4, 4]]) {
      const xr = half(randomRef(random, shape));
      const x = tensor(allocator, xr.data, shape, { dtype: "f16" });
      assertClose(await relu(x).read(), reluRef(xr).data, 1e-2, `relu ${shape}`);
    }
  });
});
