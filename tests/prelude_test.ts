// The shared WGSL prelude: program keys, and the index every kernel gets
// (rebuilt over a 2-D grid, checked against its bound) on the real adapter.
import assert from "node:assert/strict";
import {
  commandBatchOf,
  empty,
  getShader,
  makeShader,
  shaderKey,
  shaderProgram,
} from "../kernels/mod.ts";
import { grid2d } from "../kernels/_prelude.ts";
import { withAllocator } from "./_kernels_util.ts";

Deno.test("shaderKey() ignores field order and undefined fields, and tells descriptions apart", () => {
  assert.equal(shaderKey("k", { a: 1, b: "x" }), shaderKey("k", { b: "x", a: 1 }));
  assert.equal(shaderKey("k", { a: 1, b: undefined }), shaderKey("k", { a: 1 }));
  assert.notEqual(shaderKey("k", { a: 1 }), shaderKey("k", { a: 2 }));
  assert.notEqual(shaderKey("k", { a: 1 }), shaderKey("j", { a: 1 }));
  assert.notEqual(shaderKey("k", { a: 1 }), shaderKey("k", { a: 1, unroll: false }));
});

Deno.test("makeShader() declares params, tensors and the f16 enable line", () => {
  const code = makeShader({
    kernel: "t",
    dtype: "f16",
    params: "storage",
    fields: ["total", "n"],
    f32Fields: ["scale"],
    tensors: ["x", { name: "y", type: "vec4<f16>" }],
    workgroupSize: 32,
    index: "thread",
    bound: "p.total",
    body: "  y[i] = vec4<f16>(x[i]);",
  });
  assert.match(code, /^enable f16;\n/);
  assert.match(code, /struct Params \{\n {2}total: i32,\n {2}n: i32,\n {2}scale: f32,\n\}/);
  assert.match(code, /@binding\(0\) var<storage, read_write> p: Params;/);
  assert.match(code, /@binding\(1\) var<storage, read_write> x: array<f16>;/);
  assert.match(code, /@binding\(2\) var<storage, read_write> y: array<vec4<f16>>;/);
  assert.match(code, /@workgroup_size\(32\)/);
  assert.doesNotMatch(
    makeShader({ ...shaderOf("f32"), params: undefined }),
    /enable|storage, read_write> p/,
  );
  assert.throws(
    () => makeShader({ ...shaderOf("f32"), workgroupSize: 2048 }),
    {
      name: "RangeError",
      message: "Cannot build index test: workgroup size must be 1..1024, got 2048",
    },
  );
});

/** A kernel that writes, for each index below `total`, the index plus one. */
function shaderOf(dtype: "f32", index: "thread" | "workgroup" = "thread", workgroupSize = 1) {
  return {
    kernel: "index test",
    dtype,
    fields: ["total"],
    tensors: ["y"],
    workgroupSize,
    index,
    bound: "p.total",
    body: index === "thread"
      ? "  y[i] = f32(i + 1);"
      : `  y[tile * ${workgroupSize} + tid] = f32(tile + 1);`,
  } as const;
}

Deno.test("makeShader() rebuilds every index over a 2-D grid and stops at the bound", async () => {
  await withAllocator(async (allocator, device) => {
    const batch = commandBatchOf(allocator);
    // More workgroups than one grid dimension holds: the index runs over y too.
    const total = 70_000;
    const y = empty(allocator, [2 * 65535]);
    const grid = grid2d(total);
    assert.deepEqual(grid, [65535, 2, 1]);
    const program = shaderProgram("index test", () => makeShader(shaderOf("f32")))({});
    batch.dispatch(
      getShader(device, program),
      batch.params(new Int32Array([total]).buffer),
      [y.block],
      grid,
    );
    const out = await y.read();
    const wrong = out.findIndex((v, i) => i < total ? v !== i + 1 : !Number.isNaN(v));
    assert.equal(wrong, -1, `element ${wrong} is ${out[wrong]}`);
  });
});

Deno.test('makeShader() with index "workgroup" runs each tile below the bound, every thread', async () => {
  await withAllocator(async (allocator, device) => {
    const batch = commandBatchOf(allocator);
    const tiles = 5;
    const y = empty(allocator, [8 * 16]);
    const program = shaderProgram("tile test", () => makeShader(shaderOf("f32", "workgroup", 16)))(
      {},
    );
    // Three workgroups past the bound, which must write nothing.
    batch.dispatch(
      getShader(device, program),
      batch.params(new Int32Array([tiles]).buffer),
      [y.block],
      [8, 1, 1],
    );
    const out = await y.read();
    const wrong = out.findIndex((v, i) =>
      i < tiles * 16 ? v !== Math.floor(i / 16) + 1 : !Number.isNaN(v)
    );
    assert.equal(wrong, -1, `element ${wrong} is ${out[wrong]}`);
  });
});
