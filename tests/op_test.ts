// What every op checks of its tensors before recording: that each is a live
// Tensor, all of one allocator and one dtype.
import assert from "node:assert/strict";
import { HeapAllocator } from "../allocator/allocator.ts";
import { conv2d, relu, Tensor } from "../kernels/mod.ts";
import { assertRejected, filled, withAllocator } from "./_kernels_util.ts";

Deno.test("conv2d() and relu() reject disposed tensors, naming them", async () => {
  await withAllocator(async (allocator) => {
    const x = filled(allocator, [1, 2, 4, 4]);
    const w = filled(allocator, [2, 2, 3, 3]);
    const gone = filled(allocator, [1, 2, 4, 4]);
    gone.dispose();
    assertRejected(allocator, Error, () => relu(gone), "Cannot relu: input [1,2,4,4] was disposed");
    assertRejected(
      allocator,
      Error,
      () => conv2d(x, w, gone),
      "Cannot conv2d: bias [1,2,4,4] was disposed",
    );
    await assert.rejects(() => gone.read(), /Cannot read tensor \[1,2,4,4\]: it was disposed/);
  });
});

Deno.test("conv2d() rejects tensors of another allocator", async () => {
  await withAllocator((allocator, device) => {
    const x = filled(allocator, [1, 2, 4, 4]);
    const other = new HeapAllocator(device);
    try {
      const w = filled(other, [2, 2, 3, 3]);
      assertRejected(
        allocator,
        Error,
        () => conv2d(x, w),
        "Cannot conv2d: weight comes from a different allocator than input (tensors of one op must share an allocator)",
      );
    } finally {
      other.destroy();
    }
  });
});

Deno.test("conv2d() rejects mixed dtypes and arguments that are not tensors", async () => {
  await withAllocator((allocator) => {
    const x = filled(allocator, [1, 2, 4, 4]);
    // An f16 tensor, made directly: this adapter may lack shader-f16.
    const wHalf = new Tensor(allocator, allocator.alloc(2 * 2 * 9 * 2), [2, 2, 3, 3], "f16");
    assertRejected(
      allocator,
      TypeError,
      () => conv2d(x, wHalf),
      "Cannot conv2d: weight has dtype f16 but input has f32",
    );
    wHalf.dispose();
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
