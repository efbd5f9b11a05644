// The flags of kernels_gpu.ts, apart from the script so that tests can read
// them without requesting a device.
import type { Conv2dTiles } from "../../kernels/mod.ts";
import {
  type Command,
  type Flag,
  integer,
  toggle,
  type ValueFlag,
} from "../../allocator/tools/flags.ts";

const TILE_KEYS = ["tileM", "tileN", "tileK", "threadM", "threadN"] as const;

/** A tile configuration as JSON: the five sizes, each an integer from 1 to 1024. */
function tiles(help: string): ValueFlag<Conv2dTiles> {
  return {
    help,
    arg: "JSON",
    expects: `JSON such as {"tileM":128,"tileN":64,"tileK":8,"threadM":8,"threadN":8}`,
    read(text) {
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch {
        throw new RangeError();
      }
      if (!value || typeof value !== "object" || Array.isArray(value)) throw new RangeError();
      const keys = Object.keys(value);
      const sizes = value as Record<string, unknown>;
      const ok = keys.length === TILE_KEYS.length &&
        TILE_KEYS.every((k) =>
          Object.hasOwn(sizes, k) && Number.isInteger(sizes[k]) && (sizes[k] as number) >= 1 &&
          (sizes[k] as number) <= 1024
        );
      if (!ok) throw new RangeError(`${TILE_KEYS.join(", ")}, each an integer from 1 to 1024`);
      return value as Conv2dTiles;
    },
  };
}

/** The kernels_gpu command's flags. */
export const KERNELS_GPU_COMMAND = {
  name: "kernels_gpu",
  synopsis: "deno run --allow-env --allow-read bench/commands/kernels_gpu.ts [flags]",
  about: "GPU-time figures of the kernels: relu against a buffer copy, conv2d per layer\n" +
    "(tiled and naive), the three-stage pipeline; optionally a sweep of tile sizes.",
  flags: {
    quick: toggle("small shapes, for the software adapter (default: the target shape)"),
    sweep: toggle("sweep the tiled kernel's tile sizes, checked against the naive kernel"),
    noCheck: toggle("skip the checks against the float64 reference and the naive kernel"),
    naive: toggle("time the naive kernel on every layer (default: the first only)"),
    reps: integer("repetitions timed per figure (default 10, 3 with --quick)", {
      min: 1,
      max: 100_000,
    }),
    tiles: tiles("one more tile configuration for the sweep, tried first"),
  },
  notes: "Exit status: 0 on success, 1 on an error, 2 for bad flags.",
} satisfies Command<Record<string, Flag<unknown>>>;
