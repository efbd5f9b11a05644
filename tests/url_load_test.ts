// The package loaded from a URL, as JSR serves it: the repository served over
// http on 127.0.0.1, and a child process importing only http://127.0.0.1:PORT
// URLs (its one permission to import: that host) runs the Worker pool with the
// stress job and with a user's job module, and the replay and memviz commands;
// every other command entry answers --help, and trace-gen and memdiff run.
// Worker scripts must resolve from where the package is served.
import assert from "node:assert/strict";
import { FakeDevice, HeapAllocator } from "../mod.ts";

const ROOT = new URL("..", import.meta.url);
const TYPES: Record<string, string> = {
  ".ts": "application/typescript",
  ".js": "text/javascript",
  ".json": "application/json",
};
/** A child still running after this long hung: it is killed and fails. */
const CHILD_TIMEOUT_MS = 180_000;

/** Serves the repository's files read-only, and counts the paths asked for. */
function serve(): { server: Deno.HttpServer<Deno.NetAddr>; asked: Set<string> } {
  const asked = new Set<string>();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (request) => {
    const path = new URL(request.url).pathname;
    asked.add(path);
    const type = TYPES[path.slice(path.lastIndexOf("."))];
    if (path.includes("..") || type === undefined) return new Response("not here", { status: 404 });
    try {
      return new Response(await Deno.readFile(new URL(`.${path}`, ROOT)), {
        headers: { "content-type": type },
      });
    } catch {
      return new Response("not found", { status: 404 });
    }
  });
  return { server, asked };
}

/** Runs `deno run` on an http URL, allowed to import from `host` only, with `input` on stdin. */
async function child(
  host: string,
  url: string,
  args: string[] = [],
  input = "",
  permissions: string[] = [],
): Promise<{ code: number; stdout: string; stderr: string }> {
  {
    const process = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--no-config",
        "--no-lock",
        "--reload=http://" + host,
        `--allow-import=${host}`,
        ...permissions,
        url,
        ...args,
      ],
      // Outside the repository: no configuration of it applies (and --no-config).
      cwd: "/",
      env: { NO_COLOR: "1" },
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const timer = setTimeout(() => process.kill("SIGKILL"), CHILD_TIMEOUT_MS);
    const writer = process.stdin.getWriter();
    await writer.write(new TextEncoder().encode(input));
    await writer.close();
    const out = await process.output();
    clearTimeout(timer);
    const text = new TextDecoder();
    return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
  }
}

/** A small trace, recorded on the fake device. */
function smallTrace(): string {
  const heap = new HeapAllocator(new FakeDevice());
  heap.startRecording();
  const a = heap.alloc(3 << 20);
  const b = heap.alloc(40 << 20);
  heap.free(a);
  heap.submit();
  heap.free(heap.alloc(1 << 20, { usage: "readback" }));
  heap.free(b);
  const trace = heap.stopRecording();
  heap.destroy();
  return JSON.stringify(trace);
}

Deno.test("the package served over http: the pool with the stress job and a user job, replay and memviz", async () => {
  const { server, asked } = serve();
  const host = `127.0.0.1:${server.addr.port}`;
  const base = `http://${host}`;
  try {
    const pool = await child(host, `${base}/tests/testdata/url_client.ts`);
    assert.equal(pool.code, 0, pool.stderr);
    const report = JSON.parse(pool.stdout);
    assert.equal(report.module, `${base}/tests/testdata/url_client.ts`);
    for (const r of report.stress) assert.deepEqual(r, { iterations: 6, failed: 0, error: null });
    for (const r of report.user) {
      assert.equal(r.error, null, JSON.stringify(r.error));
      assert.equal(r.steps, 3);
      assert.equal(r.failed, 0);
      assert.ok(r.result.maxError <= 1e-6);
    }
    assert.equal(report.reservedAtEnd, 0);
    assert.equal(report.sharesAtEnd, 0);
    // The Workers' own modules came over http too.
    for (const path of ["/kernels/workers/worker.ts", "/kernels/workers/pipeline_job.ts"]) {
      assert.ok(asked.has(path), `${path} was loaded from the server`);
    }
    assert.ok(asked.has("/tests/testdata/jobs/saxpy_job.ts"));

    const trace = smallTrace();
    const replay = await child(
      host,
      `${base}/allocator/tools/replay_command.ts`,
      ["-", "--json"],
      trace,
    );
    assert.equal(replay.code, 0, replay.stderr);
    assert.ok(JSON.parse(replay.stdout).peakReserved > 0, replay.stdout);

    const memviz = await child(host, `${base}/allocator/tools/memviz_command.ts`, ["-"], trace);
    assert.equal(memviz.code, 0, memviz.stderr);
    assert.match(memviz.stdout, /^<!DOCTYPE html>/i);

    // Every other command entry answers from the URL; trace-gen and memdiff run for real.
    const exports = JSON.parse(await Deno.readTextFile(new URL("deno.json", ROOT))).exports;
    for (const key of ["./stress", "./memviz-png", "./fragmentation", "./trace-gen", "./memdiff"]) {
      const help = await child(host, `${base}/${exports[key].slice(2)}`, ["--help"]);
      assert.equal(help.code, 0, `${key}: ${help.stderr}`);
      assert.match(help.stdout, /^Usage: /, key);
    }
    const generated = await child(host, `${base}/bench/commands/trace_gen.ts`, [
      "training",
      "--steps",
      "2",
    ]);
    assert.equal(generated.code, 0, generated.stderr);
    const dir = await Deno.makeTempDir();
    try {
      await Deno.writeTextFile(`${dir}/old.json`, trace);
      await Deno.writeTextFile(`${dir}/new.json`, generated.stdout);
      const diff = await child(
        host,
        `${base}/allocator/tools/memdiff_command.ts`,
        [`${dir}/old.json`, `${dir}/new.json`, "--max-growth", "5%"],
        "",
        [`--allow-read=${dir}`],
      );
      // The generated training trace peaks far above the small one: past 5%, exit 1.
      assert.equal(diff.code, 1, diff.stderr);
      assert.match(diff.stdout + diff.stderr, /peak allocated/i);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  } finally {
    await server.shutdown();
  }
});
