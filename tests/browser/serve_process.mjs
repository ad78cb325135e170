// Starts `microgpt serve` on a free port with its --out-dir in `dir`, and resolves to the
// process and the address it prints (http://127.0.0.1:PORT/). Shared by the browser
// test and bench/serve_overhead.mjs.
import { spawn } from 'node:child_process';

export async function startServer(binary, dir, threads, more = []) {
  const server = spawn(binary, ['serve', '--port', '0', '--out-dir', dir, '--threads', String(threads), ...more],
    { stdio: ['ignore', 'pipe', 'inherit'] });
  const base = await new Promise((resolve, reject) => {
    let out = '';
    server.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/http:\/\/127\.0\.0\.1:\d+\//);
      if (m) resolve(m[0]);
    });
    server.on('exit', (code) => reject(new Error(`the server exited with ${code}: ${out}`)));
    setTimeout(() => reject(new Error(`no address from the server: ${out}`)), 20000);
  });
  return { server, base };
}
