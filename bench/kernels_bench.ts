// conv2d, relu and the three-stage pipeline through the caching allocator,
// against the same kernels on an allocator that calls createBuffer for every
// block (outputs, parameters, readbacks) and destroys it after the submit.
//
// Each iteration records the op, disposes its output and submits; every
// SYNC_EVERY iterations it waits for the GPU. "record" figures time only the
// op call and the dispose: the CPU cost per op, where creating buffers shows
// (the stand-in's destroys happen in the untimed submit, so they flatter it).
// "throughput" figures time everything, waits included, so the GPU's time
// (the same kernels either way) dominates them: on the software adapter the
// kernels run on the same CPU cores, in the submit.
//
//   deno bench --allow-env --allow-read bench/kernels_bench.ts
import { HeapAllocator } from "../allocator/allocator.ts";
import { requestDevice } from "../allocator/request_device.ts";
import {
  commandBatchOf,
  conv2d,
  type ConvWeights,
  pipeline,
  relu,
  type Tensor,
  tensor,
  type TensorAllocator,
} from "../kernels/mod.ts";
import { UncachedAllocator } from "../kernels/workers/pipeline_job.ts";
import { mulberry32, randomValues } from "../kernels/_random.ts";

const SYNC_EVERY = 16;

const device = await requestDevice();
const adapterName = device.adapterInfo.description || device.adapterInfo.vendor;
const allocators: [string, TensorAllocator][] = [
  ["gpuheap", new HeapAllocator(device)],
  ["createBuffer", new UncachedAllocator(device)], // a GPUBuffer per output, destroyed after
];

function upload(allocator: TensorAllocator, shape: number[], seed: number, scale = 1): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return tensor(allocator, randomValues(mulberry32(seed), n, scale), shape);
}

/**
 * Registers the same op through each allocator. "record" rows form a group
 * with gpuheap the baseline; "throughput" rows time the GPU and the waits
 * (the same either way), so they form no group and print no ratio.
 */
function benchGroup(
  group: string,
  setup: (allocator: TensorAllocator) => () => Tensor,
  mode: "record" | "throughput" = "record",
): void {
  const title = `${group}, ${mode}`;
  for (const [name, allocator] of allocators) {
    let run: (() => Tensor) | null = null;
    let i = 0;
    Deno.bench({
      name: `${title} (${name})`,
      ...(mode === "record"
        ? { group: `${title}, ${adapterName}`, baseline: name === "gpuheap" }
        : {}),
      async fn(b) {
        run ??= setup(allocator);
        if (mode === "record" && i % SYNC_EVERY === 0) {
          await device.queue.onSubmittedWorkDone();
        }
        if (mode === "record") b.start();
        run().dispose();
        if (mode === "record") b.end();
        commandBatchOf(allocator).submit();
        if (mode === "throughput" && (i + 1) % SYNC_EVERY === 0) {
          await device.queue.onSubmittedWorkDone();
        }
        i++;
      },
    });
  }
}

for (const [n, c, hw, cout] of [[1, 8, 16, 16], [1, 16, 32, 32]]) {
  benchGroup(`conv2d [${n},${c},${hw},${hw}] -> ${cout}, 3x3 pad 1, tiled`, (allocator) => {
    const x = upload(allocator, [n, c, hw, hw], 1);
    const w = upload(allocator, [cout, c, 3, 3], 2, 1 / Math.sqrt(c * 9));
    const b = upload(allocator, [cout], 3);
    return () => conv2d(x, w, b, { padding: 1, algorithm: "tiled" });
  });
}

benchGroup("conv2d [1,16,32,32] -> 32, 3x3 pad 1, naive", (allocator) => {
  const x = upload(allocator, [1, 16, 32, 32], 1);
  const w = upload(allocator, [32, 16, 3, 3], 2, 1 / 12);
  return () => conv2d(x, w, null, { padding: 1, algorithm: "naive" });
});

for (const shape of [[1, 1, 16, 16], [1, 16, 64, 64]]) {
  const setup = (allocator: TensorAllocator) => {
    const x = upload(allocator, shape, 4);
    return () => relu(x);
  };
  benchGroup(`relu [${shape}]`, setup);
  benchGroup(`relu [${shape}]`, setup, "throughput");
}

function pipelineSetup(allocator: TensorAllocator): () => Tensor {
  const x = upload(allocator, [1, 16, 32, 32], 5);
  const weights: ConvWeights[] = [16, 32, 32].map((cin, i) => ({
    weight: upload(allocator, [32, cin, 3, 3], 10 + i, 1 / Math.sqrt(cin * 9)),
    bias: upload(allocator, [32], 20 + i),
  }));
  return () => pipeline(x, weights);
}
benchGroup("pipeline [1,16,32,32] -> 32/32/32", pipelineSetup);
benchGroup("pipeline [1,16,32,32] -> 32/32/32", pipelineSetup, "throughput");
