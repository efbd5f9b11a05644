// The shader cache: one compilation per program key and device, whatever
// the shapes the shader then runs on.
import assert from "node:assert/strict";
import {
  conv2d,
  getShader,
  relu,
  reluShader,
  shaderCacheStats,
  shaderCompilations,
  type ShaderProgram,
  tensor,
} from "../kernels/mod.ts";
import { randomValues, rng, withAllocator } from "./_kernels_util.ts";

Deno.test("getShader() compiles once per shaderKey, building the WGSL only then", async () => {
  await withAllocator((_, device) => {
    let builds = 0;
    const program = (key: string): ShaderProgram => ({
      shaderKey: `test:${key}`,
      wgsl() {
        builds++;
        return reluShader({ dtype: "f32", width: 1, workgroupSize: 64 }).wgsl();
      },
    });
    const before = shaderCacheStats(device);
    const a = getShader(device, program("a"));
    assert.equal(getShader(device, program("a")), a);
    const b = getShader(device, program("b"));
    assert.notEqual(b, a);
    assert.equal(builds, 2);
    const after = shaderCacheStats(device);
    assert.equal(after.compilations - before.compilations, 2);
    assert.equal(after.hits - before.hits, 1);
    assert.equal(after.size - before.size, 2);
  });
});

Deno.test("getShader() keys a kernel's program on its description, in any field order", async () => {
  await withAllocator((_, device) => {
    const before = shaderCompilations(device);
    const a = getShader(device, reluShader({ dtype: "f32", width: 4, workgroupSize: 32 }));
    const b = getShader(device, reluShader({ workgroupSize: 32, width: 4, dtype: "f32" }));
    const c = getShader(device, reluShader({ dtype: "f32", width: 1, workgroupSize: 32 }));
    assert.equal(a, b);
    assert.notEqual(a, c);
    assert.equal(shaderCompilations(device) - before, 2);
  });
});

Deno.test("getShader() compiles one shader that serves every shape of a kernel", async () => {
  await withAllocator(async (allocator, device) => {
    const random = rng(9);
    const w = tensor(allocator, randomValues(random, 8 * 8 * 9), [8, 8, 3, 3]);
    let before = -1;
    for (const [n, h, wd] of [[1, 8, 8], [2, 12, 4], [1, 16, 16], [3, 4, 4]]) {
      const x = tensor(allocator, randomValues(random, n * 8 * h * wd), [n, 8, h, wd]);
      const y = relu(conv2d(x, w, null, { padding: 1, algorithm: "tiled" }));
      await y.read();
      if (before < 0) before = shaderCompilations(device);
      else assert.equal(shaderCompilations(device), before, `[${n},8,${h},${wd}] compiled`);
    }
  });
});
