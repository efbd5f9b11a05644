// What every op checks of its tensors before recording: that each is a live
// Tensor, all of one allocator and one dtype.
import assert from "node:assert/strict";
import { AllocatorError, HeapAllocator } from "../mod.ts";
import { conv2d, relu, type Tensor, tensor } from "../kernels/mod.ts";
import { assertRejected, f16Test, filled, withAllocator } from "./_kernels_util.ts";

Deno.test("conv2d() and relu() reject disposed tensors with an AllocatorError naming them", async () => {
  await withAllocator(async (allocator) => {
    const x = filled(allocator, [1, 2, 4, 4]);
    const w = filled(allocator, [2, 2, 3, 3]);
    const gone = filled(allocator, [1, 2, 4, 4]);
    gone.dispose();
    assertRejected(
      allocator,
      AllocatorError,
      () => relu(gone),
      "Cannot relu: input [1,2,4,4] was disposed",
    );
    assertRejected(
      allocator,
      AllocatorError,
      () => conv2d(x, w, gone),
      "Cannot conv2d: bias [1,2,4,4] was disposed",
    );
    await assert.rejects(
      () => gone.read(),
      AllocatorError,
      "Cannot read tensor [1,2,4,4]: it was disposed",
    );
    assert.throws(() => gone.block, AllocatorError, "Cannot use tensor [1,2,4,4]: it was disposed");
  });
});

Deno.test("conv2d() rejects tensors of another allocator with an AllocatorError", async () => {
  await withAllocator((allocator, device) => {
    const x = filled(allocator, [1, 2, 4, 4]);
    const other = new HeapAllocator(device);
    try {
      const w = filled(other, [2, 2, 3, 3]);
      assertRejected(
        allocator,
        AllocatorError,
        () => conv2d(x, w),
        "Cannot conv2d: weight comes from a different allocator than input (tensors of one op must share an allocator)",
      );
    } finally {
      other.destroy();
    }
  });
});

Deno.test("conv2d() and relu() reject arguments that are not tensors", async () => {
  await withAllocator((allocator) => {
    const x = filled(allocator, [1, 2, 4, 4]);
    assertRejected(
      allocator,
      TypeError,
      () => conv2d(x, new Float32Array(36) as unknown as Tensor),
      "Cannot conv2d: weight must be a Tensor, got a Float32Array",
    );
    assertRejected(
      allocator,
      TypeError,
      () => relu({ shape: [1] } as unknown as Tensor),
      "Cannot relu: input must be a Tensor, got Object",
    );
  });
});

f16Test("conv2d() rejects mixed dtypes", async () => {
  await withAllocator((allocator) => {
    const x = filled(allocator, [1, 2, 4, 4]);
    const wHalf = tensor(allocator, new Float32Array(36), [2, 2, 3, 3], { dtype: "f16" });
    assertRejected(
      allocator,
      TypeError,
      () => conv2d(x, wHalf),
      "Cannot conv2d: weight has dtype f16 but input has f32",
    );
  });
});
