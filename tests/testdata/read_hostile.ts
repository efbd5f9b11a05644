// Reads each file of a directory as the commands do (load, then replay), one JSON line per
// file: how long it took, the error's name and message if any, and the process's resident
// memory after it. Run with a heap limit by tests/hostile_files_test.ts.
import { loadTraceFile } from "../../allocator/tools/load_trace.ts";
import { readTrace } from "../../allocator/tools/read_trace.ts";
import { replay } from "../../allocator/tools/replay.ts";

const dir = Deno.args[0];
for (const name of Deno.args.slice(1)) {
  const t0 = performance.now();
  let error: Error | null = null;
  try {
    replay(readTrace(await loadTraceFile(`${dir}/${name}`)));
  } catch (e) {
    error = e as Error;
  }
  console.log(JSON.stringify({
    name,
    ms: Math.round(performance.now() - t0),
    error: error?.name ?? null,
    message: error?.message ?? null,
    rss: Deno.memoryUsage().rss,
  }));
}
