// Draws a trace or a snapshot as one self-contained HTML page on stdout.
//
//   deno task memviz trace-or-snapshot.json > memory.html
//   deno task memviz trace.json --at reserved > memory.html   # heap map at peak reserved
import { memvizHtml } from "./memviz.ts";
import { loadTraceFile } from "./load_trace.ts";

const USAGE = "usage: deno task memviz TRACE-OR-SNAPSHOT.json [--at allocated|reserved] > out.html";

/** Reads the arguments and returns the page. */
export async function memvizMain(args: readonly string[]): Promise<string> {
  let file: string | undefined;
  let at: "allocated" | "reserved" = "allocated";
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--at") {
      const v = args[++i];
      if (v !== "allocated" && v !== "reserved") {
        throw new RangeError(`Cannot draw: --at must be allocated or reserved, got ${v}`);
      }
      at = v;
    } else if (args[i].startsWith("-") || file !== undefined) {
      throw new RangeError(`Cannot draw: unknown argument ${JSON.stringify(args[i])}\n${USAGE}`);
    } else file = args[i];
  }
  if (file === undefined) throw new RangeError(`Cannot draw: no input file given\n${USAGE}`);
  const name = file.split("/").pop()!;
  return memvizHtml(await loadTraceFile(file), { title: `gpuheap memory: ${name}`, at });
}

if (import.meta.main) {
  try {
    console.log(await memvizMain(Deno.args));
  } catch (error) {
    console.error((error as Error).message);
    Deno.exit(1);
  }
}
