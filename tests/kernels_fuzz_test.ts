// Seeded bad inputs to every kernel entry point (shapes, options, dtypes,
// tensors that are disposed or of another allocator, things that are not
// tensors): each call either works or throws one of our typed errors with
// our message, and a rejected call records nothing and keeps no block.
import assert from "node:assert/strict";
import { AllocatorError, type Block, HeapAllocator, OutOfMemoryError } from "../mod.ts";
import {
  avgPool2d,
  type AvgPool2dOptions,
  avgPool2dRef,
  commandBatchOf,
  conv2d,
  conv2dRef,
  conv2dRelu,
  type ConvWeights,
  type DType,
  empty,
  maxPool2d,
  type MaxPool2dOptions,
  maxPool2dRef,
  pipeline,
  pipelineRef,
  readAll,
  type RefConvWeights,
  type RefTensor,
  relu,
  scope,
  Tensor,
  tensor,
} from "../kernels/mod.ts";
import { rng, withAllocator } from "./_kernels_util.ts";

const CASES = 12_000;
const TYPED = [AllocatorError, OutOfMemoryError, RangeError, TypeError];

/** Values an option, a size or a dtype may be given as, good and bad. */
const VALUES: unknown[] = [
  undefined,
  null,
  0,
  1,
  2,
  3,
  -1,
  1.5,
  NaN,
  Infinity,
  -Infinity,
  2 ** 31,
  2 ** 40,
  -(2 ** 53),
  Number.MAX_VALUE,
  "1",
  "2",
  "same",
  "valid",
  "tiled",
  "naive",
  "auto",
  "winograd",
  "max",
  "avg",
  "f32",
  "f16",
  "f64",
  true,
  false,
  [],
  [1],
  [1, 2],
  [2, 2],
  [0, 1],
  [1, "2"],
  [NaN, 1],
  [1, 2, 3],
  {},
  Symbol("s"),
  10n,
  () => 1,
  Object.create(null),
  new Float32Array(4),
];

Deno.test("kernel entry points given 12,000 seeded bad inputs throw only our typed errors", async () => {
  await withAllocator(async (allocator, device) => {
    const random = rng(2024);
    const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)];
    const chance = (p: number) => random() < p;
    const fill = (shape: number[]) => new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(0.5);

    // Tensors the calls choose from: live ones of many shapes, and bad ones.
    const shapes = [
      [1, 2, 5, 5],
      [2, 3, 4, 4],
      [1, 4, 6, 6],
      [4, 2, 3, 3],
      [4, 4, 3, 3],
      [8, 4, 3, 3],
      [6, 1, 3, 3],
      [4, 3, 1, 1],
      [4, 1, 3, 3],
      [4],
      [8],
      [2],
      [3, 3],
      [1, 1, 1, 1],
      [1, 2, 16, 16],
      [1, 1, 16, 16],
    ];
    const live = shapes.map((s) => tensor(allocator, fill(s), s));
    const byShape = (s: string) => live[shapes.findIndex((t) => String(t) === s)];
    const gone = tensor(allocator, fill([1, 2, 5, 5]), [1, 2, 5, 5]);
    gone.dispose();
    const other = new HeapAllocator(device);
    const foreign = tensor(other, fill([4, 2, 3, 3]), [4, 2, 3, 3]);
    // An f16 tensor where the adapter can make one, else a second f32 one.
    const dtype = device.features.has("shader-f16") ? "f16" : "f32";
    const half = tensor(allocator, fill([4, 2, 3, 3]), [4, 2, 3, 3], { dtype });
    const notTensors = [null, undefined, 0, "x", {}, [], new Float32Array(4), Symbol("t"), 10n];
    const anyTensor = (): unknown =>
      chance(0.75) ? pick(live) : pick([gone, foreign, half, ...notTensors]);

    // Inputs, weights and biases that fit together, so that half the calls
    // fail on their options, past the checks of the tensors.
    const fitting = [
      [byShape("1,2,5,5"), byShape("4,2,3,3"), byShape("4")],
      [byShape("1,4,6,6"), byShape("8,4,3,3"), byShape("8")],
      [byShape("2,3,4,4"), byShape("4,3,1,1"), null],
      [byShape("1,2,16,16"), byShape("4,2,3,3"), byShape("4")],
      [byShape("1,4,6,6"), byShape("4,4,3,3"), null],
    ];
    const anyConv = () =>
      chance(0.5) ? pick(fitting) : [anyTensor(), anyTensor(), chance(0.5) ? null : anyTensor()];
    // Pipelines that fit; under algorithm "auto" the one-channel input runs
    // its first stage naive and the next two tiled.
    const pipelines = [
      [byShape("1,2,16,16"), byShape("4,2,3,3")],
      [byShape("1,1,16,16"), byShape("4,1,3,3")],
    ].map(([x, w]) => ({
      x,
      weights: [w, byShape("4,4,3,3"), byShape("4,4,3,3")].map((weight) => ({
        weight,
        bias: byShape("4"),
      })),
    }));

    const anyShape = (): unknown =>
      chance(0.2) ? pick(VALUES) : Array.from(
        { length: Math.floor(random() * 6) },
        () => chance(0.8) ? pick([1, 2, 3, 4]) : pick(VALUES),
      );
    // One good value per field, so that few distinct tiled shaders compile
    // (each takes a while on a software adapter); the rest are bad.
    const anyTiles = () => ({
      tileM: pick([64, 64, 64, 3, -1, 2 ** 40, "64", 10n]),
      tileN: pick([16, 16, 16, 0, 1.5]),
      tileK: pick([4, 4, 4, 0, 1024]),
      threadM: pick([4, 4, 3]),
      threadN: pick([4, 4, NaN]),
    });
    const anyWinogradTiles = () => ({
      tiles: pick([16, 16, 16, 3, -1, 2 ** 40, "16", 10n]),
      tileN: pick([16, 16, 16, 0, 1.5]),
      tileK: pick([4, 4, 4, 0, 1024]),
      threadM: pick([4, 4, 2]),
      threadN: pick([4, 4, NaN]),
      half: pick([undefined, undefined, false, true, "yes"]),
    });
    /**
     * Options with some of `keys` set to any value; half the time a good
     * `base` with one key changed, so the checks after the first are reached.
     */
    const anyOptions = (keys: string[], base: Record<string, unknown> = {}): unknown => {
      if (chance(0.05)) return pick(VALUES);
      const value = (k: string) =>
        k === "tiles" && chance(0.5)
          ? anyTiles()
          : k === "winogradTiles" && chance(0.5)
          ? anyWinogradTiles()
          : pick(VALUES);
      if (chance(0.5)) {
        const k = pick(keys);
        return { ...base, [k]: value(k) };
      }
      const o: Record<string, unknown> = {};
      for (const k of keys) if (chance(0.4)) o[k] = value(k);
      return o;
    };
    const CONV = [
      "stride",
      "padding",
      "dilation",
      "groups",
      "algorithm",
      "relu",
      "tiles",
      "pool",
      "winogradTiles",
    ];
    const MAX_POOL = ["kernelSize", "stride", "padding", "dilation", "ceilMode"];
    const AVG_POOL = ["kernelSize", "stride", "padding", "ceilMode", "countIncludePad"];
    const anyData = (): unknown =>
      chance(0.5) ? fill([4]) : pick([...VALUES, [1, 2, 3, 4], [1, "2", 3, 4], "1234"]);
    const anyRef = (): unknown =>
      chance(0.2)
        ? pick(VALUES)
        : { data: anyData(), shape: chance(0.5) ? [1, 1, 2, 2] : anyShape() };
    const anyAllocator = (): unknown => chance(0.9) ? allocator : pick(VALUES);

    // Each entry: a name, and a maker of one random call.
    const calls: [string, () => () => unknown][] = [
      ["conv2d", () => {
        const [x, w, b] = anyConv();
        const base = pick([{ padding: 1 }, { pool: "max" }]);
        const o = anyOptions(CONV, base);
        return () => conv2d(x as Tensor, w as Tensor, b as Tensor, o as object);
      }],
      ["conv2dRelu", () => {
        const [x, w, b] = anyConv();
        const base = pick([{ stride: 2 }, { algorithm: "winograd", pool: "avg" }]);
        const o = anyOptions(CONV.filter((k) => k !== "relu"), base);
        return () => conv2dRelu(x as Tensor, w as Tensor, b as Tensor, o as object);
      }],
      ["relu", () => {
        const x = anyTensor();
        return () => relu(x as Tensor);
      }],
      ["maxPool2d", () => {
        const x = chance(0.5) ? byShape("1,2,16,16") : anyTensor();
        const o = anyOptions(MAX_POOL, { kernelSize: 2 });
        return () => maxPool2d(x as Tensor, o as MaxPool2dOptions);
      }],
      ["avgPool2d", () => {
        const x = chance(0.5) ? byShape("1,2,16,16") : anyTensor();
        const o = anyOptions([...AVG_POOL, "divisorOverride"], { kernelSize: 3, padding: 1 });
        return () => avgPool2d(x as Tensor, o as AvgPool2dOptions);
      }],
      ["pipeline", () => {
        const fit = pick(pipelines);
        const x = chance(0.5) ? fit.x : anyTensor();
        const weights = chance(0.5) ? fit.weights : chance(0.1) ? pick(VALUES) : Array.from(
          { length: pick([3, 3, 3, 2, 4]) },
          () =>
            chance(0.1)
              ? pick(VALUES)
              : { weight: anyTensor(), bias: chance(0.5) ? null : anyTensor() },
        );
        const o = anyOptions(["algorithm", "tiles"], { algorithm: "auto" });
        return () => pipeline(x as Tensor, weights as ConvWeights[], o as object);
      }],
      ["tensor", () => {
        const [a, d, s] = [anyAllocator(), anyData(), chance(0.5) ? [4] : anyShape()];
        const o = anyOptions(["dtype", "label"]);
        return () => tensor(a as HeapAllocator, d as number[], s as number[], o as object);
      }],
      ["empty", () => {
        const [a, s, o] = [anyAllocator(), anyShape(), anyOptions(["dtype", "label"])];
        return () => empty(a as HeapAllocator, s as number[], o as object);
      }],
      ["new Tensor", () => {
        const a = anyAllocator();
        const size = pick([16, 64, 400]);
        const s = anyShape();
        const dtype = chance(0.7) ? pick(["f32", "f16"]) : pick(VALUES);
        const label = chance(0.8) ? undefined : pick(VALUES);
        const ownBlock = chance(0.8);
        const notBlock = pick(VALUES);
        return () => {
          const block = ownBlock ? allocator.alloc(size) : notBlock;
          try {
            return new Tensor(
              a as HeapAllocator,
              block as Block,
              s as number[],
              dtype as DType,
              label as string,
            );
          } catch (error) {
            if (ownBlock) allocator.free(block as Block);
            throw error;
          }
        };
      }],
      ["readAll", () => {
        const list = chance(0.1) ? pick(VALUES) : [pick(live), pick([gone, ...notTensors])];
        return () => readAll(list as Tensor[]);
      }],
      ["scope", () => {
        const fn = pick(VALUES);
        return () => scope(fn as () => void);
      }],
      ["conv2dRef", () => {
        const [x, w] = [anyRef(), anyRef()];
        const o = anyOptions(["stride", "padding", "dilation", "groups", "relu"]);
        return () => conv2dRef(x as RefTensor, w as RefTensor, null, o as object);
      }],
      ["maxPool2dRef", () => {
        const [x, o] = [anyRef(), anyOptions(MAX_POOL, { kernelSize: 2 })];
        return () => maxPool2dRef(x as RefTensor, o as MaxPool2dOptions);
      }],
      ["avgPool2dRef", () => {
        const [x, o] = [anyRef(), anyOptions(AVG_POOL, { kernelSize: 2 })];
        return () => avgPool2dRef(x as RefTensor, o as AvgPool2dOptions);
      }],
      ["pipelineRef", () => {
        const x = anyRef();
        const w = chance(0.5)
          ? pick(VALUES)
          : [anyRef(), anyRef(), anyRef()].map((weight) => ({ weight }));
        return () => pipelineRef(x as RefTensor, w as RefConvWeights[]);
      }],
    ];

    const batch = commandBatchOf(allocator);
    const tally = new Map<string, { calls: number; typed: number; worked: number }>();
    for (let i = 0; i < CASES; i++) {
      const [name, make] = pick(calls);
      const count = tally.get(name) ?? { calls: 0, typed: 0, worked: 0 };
      tally.set(name, count);
      count.calls++;
      const call = make();
      const dispatches = batch.dispatches;
      const submits = batch.submits;
      const blocks = allocator.memoryStats().blocks;
      let result: unknown;
      let failure: unknown = null;
      try {
        result = call();
        if (result instanceof Promise) result = await result;
      } catch (error) {
        failure = error;
      }
      const what = `case ${i}: ${name}`;
      if (failure === null) {
        count.worked++;
        if (result instanceof Tensor && !live.includes(result)) result.dispose();
        continue;
      }
      count.typed++;
      const e = failure as Error;
      assert.ok(TYPED.some((type) => e instanceof type), `${what} threw ${e?.name}: ${e?.message}`);
      assert.match(e.message, /^(Cannot |gpuheap )/, `${what}: not our message: ${e.message}`);
      assert.equal(batch.submits, submits, `${what} submitted before failing: ${e.message}`);
      assert.equal(batch.dispatches, dispatches, `${what} recorded before failing: ${e.message}`);
      assert.equal(allocator.memoryStats().blocks, blocks, `${what} kept a block: ${e.message}`);
    }
    other.destroy();
    // The batch still works after all that.
    const y = relu(tensor(allocator, [-1, 2], [2]));
    assert.deepEqual([...await y.read()], [0, 2]);
    console.log(JSON.stringify(Object.fromEntries(tally)));
    // Every entry point was tried, and rejected many times.
    assert.equal(tally.size, calls.length);
    for (const [name, c] of tally) assert.ok(c.typed >= 100, `${name}: ${JSON.stringify(c)}`);
  }, { poison: false });
});
