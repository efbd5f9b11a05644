// Runs tests/testdata/gc_probe.ts in a process with V8's gc() exposed (deno
// test has no way to force a collection) and returns what it printed.
import assert from "node:assert/strict";

/** What the probe prints. */
export interface GcProbe {
  /** Lines logged by the allocator with debug flag "leak". */
  lines: string[];
  /** Lines logged by an allocator without debug output. */
  quiet: string[];
  /** currentAllocatedMemory() of the debug allocator at the end. */
  allocated: number;
  /** The block kept in a variable is still live. */
  kept: boolean;
  /** An allocator dropped while its device lived was garbage-collected. */
  allocatorCollected: boolean;
  /** That device was still alive (not lost) at the end. */
  deviceAlive: boolean;
}

let probe: Promise<GcProbe> | undefined;

/** The probe's result (run once per test file). */
export function gcProbe(): Promise<GcProbe> {
  probe ??= (async () => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--v8-flags=--expose-gc",
        "--allow-read",
        new URL("./testdata/gc_probe.ts", import.meta.url).pathname,
      ],
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    return JSON.parse(new TextDecoder().decode(out.stdout));
  })();
  return probe;
}
