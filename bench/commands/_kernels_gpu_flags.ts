// The flags of kernels_gpu.ts, apart from the script so that tests can read
// them without requesting a device.
import type { Conv2dTiles, Conv2dWinogradTiles } from "../../kernels/mod.ts";
import {
  type Command,
  type Flag,
  integer,
  type ManyFlag,
  toggle,
  type ValueFlag,
} from "../../allocator/tools/flags.ts";

const TILE_KEYS = ["tileM", "tileN", "tileK", "threadM", "threadN"] as const;
const WINOGRAD_TILE_KEYS = ["tiles", "tileN", "tileK", "threadM", "threadN"] as const;

/**
 * A tile configuration as JSON: the sizes `keys`, each an integer from 1 to
 * 1024, optionally those of `optional` too, and optionally `"half": true`
 * (f16 products).
 */
function tiles<T>(
  help: string,
  keys: readonly string[],
  example: string,
  optional: readonly string[] = [],
): ValueFlag<T> {
  return {
    help,
    arg: "JSON",
    expects: `JSON such as ${example}`,
    read(text) {
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch {
        throw new RangeError();
      }
      if (!value || typeof value !== "object" || Array.isArray(value)) throw new RangeError();
      const sizes = value as Record<string, unknown>;
      const given = Object.keys(sizes).filter((k) => k !== "half" && !optional.includes(k));
      const size = (k: string) =>
        Number.isInteger(sizes[k]) && (sizes[k] as number) >= 1 && (sizes[k] as number) <= 1024;
      const ok = given.length === keys.length && (sizes.half ?? true) === true &&
        keys.every((k) => Object.hasOwn(sizes, k) && size(k)) &&
        optional.every((k) => !Object.hasOwn(sizes, k) || size(k));
      if (!ok) {
        throw new RangeError(
          `${keys.join(", ")}, each an integer from 1 to 1024 (${
            optional.map((k) => `${k} if wanted, `).join("")
          }and "half": true if wanted)`,
        );
      }
      return value as T;
    },
  };
}

/** A peer's pipeline time to print beside ours: `NAME=MS`. */
function peer(help: string): ManyFlag<{ name: string; ms: number }> {
  return {
    help,
    arg: "NAME=MS",
    expects: 'a name and milliseconds such as "cuDNN fp32=1.18"',
    many: true,
    read(text) {
      const m = /^(.+)=(\d+(?:\.\d+)?)$/.exec(text);
      if (!m) throw new RangeError();
      return { name: m[1], ms: Number(m[2]) };
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
    tiles: tiles<Conv2dTiles>(
      "one more tiled-kernel configuration for the sweep, tried first",
      TILE_KEYS,
      `{"tileM":128,"tileN":64,"tileK":8,"threadM":8,"threadN":8}`,
    ),
    winogradTiles: tiles<Conv2dWinogradTiles>(
      "one more Winograd configuration for the sweep, tried first",
      WINOGRAD_TILE_KEYS,
      `{"tiles":64,"tileN":32,"tileK":4,"threadM":16,"threadN":8}`,
      ["passChannels"],
    ),
    peer: peer("a peer's figure for the pipeline row, NAME=MS; repeat for more"),
  },
  notes: "Exit status: 0 on success, 1 on an error, 2 for bad flags.",
} satisfies Command<Record<string, Flag<unknown>>>;
