// The command batch: blocks disposed mid-batch are not reused before the
// work reading them is submitted, parameters read as storage where uniform
// blocks share tensor heaps, and a long batch submits itself.
import assert from "node:assert/strict";
import type { Block } from "../allocator/allocator.ts";
import {
  AUTO_SUBMIT_DISPATCHES,
  commandBatchOf,
  conv2d,
  conv2dRef,
  pipeline,
  pipelineRef,
  readAll,
  relu,
  tensor,
  type TensorAllocator,
} from "../kernels/mod.ts";
import {
  assertClose,
  randomRef,
  randomValues,
  randomWeights,
  rng,
  uploadWeights,
  withAllocator,
} from "./_kernels_util.ts";

Deno.test("CommandBatch keeps an input disposed before submit from a new tensor's upload", async () => {
  await withAllocator(async (allocator) => {
    const random = rng(8);
    const a = randomValues(random, 1024);
    const b = randomValues(random, 1024);
    const x = tensor(allocator, a, [1024]);
    const y = relu(x);
    x.dispose();
    // Same size: with x's memory it would be written before the relu runs.
    const z = tensor(allocator, b, [1024]);
    const [yv, zv] = await readAll([y, z]);
    assert.deepEqual([...yv], [...a].map((e) => Math.max(e, 0)));
    assert.deepEqual([...zv], [...b]);
  });
});

Deno.test("CommandBatch reads parameters from storage when uniform blocks share tensor heaps", async () => {
  await withAllocator(async (allocator) => {
    // An allocator whose uniform blocks sit in the storage heaps: binding one
    // as a uniform next to a writable tensor of the same GPUBuffer is a
    // validation error, so the batch must read parameters as storage.
    const shared: TensorAllocator = {
      device: allocator.device,
      alloc: (size, options) =>
        allocator.alloc(
          size,
          options?.usage === "uniform" ? { ...options, usage: "storage" } : options,
        ),
      free: (block) => allocator.free(block as Block),
      submit: (commands) => allocator.submit(commands),
      beforeSubmit: (hook) => allocator.beforeSubmit(hook),
    };
    assert.equal(commandBatchOf(shared).paramsSpace, "storage");
    const random = rng(12);
    const xr = randomRef(random, [1, 8, 16, 16]);
    const wr = randomWeights(random, 8, [16, 16, 16]);
    const ref = pipelineRef(xr, wr);
    for (const algorithm of ["naive", "tiled"] as const) {
      const y = pipeline(tensor(shared, xr.data, xr.shape), uploadWeights(shared, wr), {
        algorithm,
      });
      assertClose(await y.read(), ref.data, 1e-5, `storage params, ${algorithm}`);
    }
  });
});

Deno.test("CommandBatch submits itself after AUTO_SUBMIT_DISPATCHES, mid-op included, and stays correct", async () => {
  await withAllocator(async (allocator) => {
    const random = rng(13);
    const xr = randomRef(random, [1, 4, 6, 6]);
    const wr = randomRef(random, [8, 4, 3, 3]);
    const x = tensor(allocator, xr.data, xr.shape);
    const w = tensor(allocator, wr.data, wr.shape);
    const batch = commandBatchOf(allocator);
    batch.submit();
    const submits = batch.submits;
    // Two dispatches per tiled conv (weight packing, then the conv): an odd
    // threshold crossing lands between the two.
    const outputs = [];
    for (let i = 0; i < AUTO_SUBMIT_DISPATCHES + 1; i++) {
      const y = conv2d(x, w, null, { padding: 1, algorithm: "tiled" });
      if (i % 16 === 0) outputs.push(y);
      else y.dispose();
    }
    assert.equal(batch.submits, submits + 2);
    const ref = conv2dRef(xr, wr, null, { padding: 1 });
    for (const out of await readAll(outputs)) assertClose(out, ref.data, 1e-5, "conv");
  });
});
