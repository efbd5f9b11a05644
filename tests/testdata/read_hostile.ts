// Builds the crafted files of tests/_hostile_files.ts and reads each as the commands do
// (parse, read, replay), one JSON line per file: its size, how long reading took, the
// error's name and message if any, and the process's resident memory after it. Run with a
// heap limit by tests/hostile_files_test.ts; it needs no permission.
import { parseTraceBytes } from "../../allocator/tools/load_trace.ts";
import { readTrace } from "../../allocator/tools/read_trace.ts";
import { replay } from "../../allocator/tools/replay.ts";
import { hostileFiles } from "../_hostile_files.ts";

for (const [name, bytes] of Object.entries(await hostileFiles())) {
  const t0 = performance.now();
  let error: Error | null = null;
  try {
    replay(readTrace(await parseTraceBytes(bytes)));
  } catch (e) {
    error = e as Error;
  }
  console.log(JSON.stringify({
    name,
    size: bytes.length,
    ms: Math.round(performance.now() - t0),
    error: error?.name ?? null,
    message: error?.message ?? null,
    rss: Deno.memoryUsage().rss,
  }));
}
