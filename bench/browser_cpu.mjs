// Where the browser's CPU goes while the page watches a run: every chromium thread's
// CPU seconds over each run (read from /proc), summed by process type and thread name,
// for builds side by side. Each run has a fresh server and a fresh load of the page;
// with several builds the runs alternate between them (the machine's load drifts).
//   node bench/browser_cpu.mjs build/microgpt [other/microgpt ...] [--runs 4]
//       [--preset makemore] [--steps 1000] [--threads 2] [--snapshot-every 50]
//       [--viewport 1280x1600] [--page full|blank|line] [--warm-up STEPS]
// Prints each run's browser CPU seconds and wall time, then per build the median CPU
// seconds a run and CPU milliseconds a second of run, the median of the runs' ratios to
// the first build's (run by run) of the latter, and where the time went (milliseconds a
// second of run, every run pooled). A second of run is the measure to compare: the page
// draws five and a half times a second, and the machine's other work makes the same
// run take longer or shorter.
// Needs tests/browser's packages (cd tests/browser && npm ci) and chromium.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, '../tests/browser/package.json'));
const { startServer } = await import(join(here, '../tests/browser/serve_process.mjs'));
const { cpuSeconds, launchOptions, openBarePage, option: optionOf, pageKind: pageKindOf, runRequest } = await import(join(here, 'serve_bench.mjs'));
const puppeteer = require('puppeteer-core');

const args = process.argv.slice(2);
const option = (name, fallback) => optionOf(args, name, fallback);
const binaries = args.filter((a, i) => !a.startsWith('--') && (i === 0 || !args[i - 1].startsWith('--')));
const runs = Number(option('runs', 4));
const pageKind = pageKindOf(args);
const request = runRequest(args);
const warmUp = Number(option('warm-up', request.steps));
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
// Every chromium thread now: "pid/tid" -> {key: "process-type thread-name", seconds}.
function browserThreads() {
  const threads = new Map();
  for (const pid of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    let comm, cmdline;
    try {
      comm = readFileSync(`/proc/${pid}/comm`, 'utf8');
      cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    } catch {
      continue;
    }
    if (!/chrom/.test(comm)) continue;
    const type = (cmdline.match(/--type=([a-z-]+)/) || [null, 'browser'])[1];
    const sub = (cmdline.match(/--utility-sub-type=([\w.]+)/) || [null, ''])[1].split('.').pop();
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      let name;
      try {
        name = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim().replace(/\d+$/, '');
      } catch {
        continue;
      }
      threads.set(`${pid}/${tid}`, { key: `${type}${sub ? `:${sub}` : ''} ${name}`, seconds: cpuSeconds(`/proc/${pid}/task/${tid}/stat`) });
    }
  }
  return threads;
}

const dir = mkdtempSync(join(tmpdir(), 'microgpt-bench-'));
const browser = await puppeteer.launch(launchOptions);
const page = await browser.newPage();
const [width, height] = option('viewport', '1280x1600').split('x').map(Number);
await page.setViewport({ width, height });
const results = binaries.map(() => ({ cpu: [], wall: [], where: new Map() }));
try {
  for (let r = 0; r < runs; r++) {
    for (let b = 0; b < binaries.length; b++) {
      const { server, base } = await startServer(binaries[b], dir, option('threads', '2'));
      const api = async (path, body) => (await fetch(base + path.slice(1), body === undefined ? {} : {
        method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
      })).json();
      if (pageKind !== 'full') {
        await openBarePage(page, base, pageKind);
      } else {
        await page.goto(base, { waitUntil: 'load' });
      }
      await sleep(1000);
      // The page watches a run first, as one watching a run of more than a few seconds
      // has: its script is then compiled and optimized, as it stays while it watches.
      if (warmUp > 0) {
        const warm = await api('/api/train', { ...request, steps: warmUp, name: 'warm-up' });
        if (!warm.started) throw new Error(JSON.stringify(warm));
        while ((await api('/api/train')).state !== 'idle') await sleep(20);
        await sleep(500);
      }
      const before = browserThreads(), start = performance.now();
      const answer = await api('/api/train', request);
      if (!answer.started) throw new Error(JSON.stringify(answer));
      while ((await api('/api/train')).state !== 'idle') await sleep(20);
      const wall = (performance.now() - start) / 1000, after = browserThreads();
      let cpu = 0;
      for (const [id, t] of after) {
        const used = t.seconds - (before.get(id)?.seconds ?? 0);
        cpu += used;
        results[b].where.set(t.key, (results[b].where.get(t.key) ?? 0) + used);
      }
      results[b].cpu.push(cpu);
      results[b].wall.push(wall);
      console.log(`${binaries[b]}: browser ${cpu.toFixed(2)} CPU-s over a run of ${wall.toFixed(2)} s: ${
        (cpu / wall * 1000).toFixed(0)} ms/s`);
      await page.goto('about:blank');
      server.kill('SIGINT');
      await new Promise((resolve) => server.once('exit', resolve));
    }
  }
} finally {
  await browser.close();
  rmSync(dir, { recursive: true, force: true });
}
const median = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
console.log(`run: ${JSON.stringify(request)}, threads ${option('threads', '2')}, page ${pageKind}, ${width}x${height}`);
results.forEach((result, b) => {
  const perSecond = result.cpu.map((c, r) => c / result.wall[r]);
  const ratios = perSecond.map((c, r) => c / (results[0].cpu[r] / results[0].wall[r]));
  const seconds = result.wall.reduce((s, w) => s + w, 0);
  console.log(`${binaries[b]}: browser ${median(result.cpu).toFixed(3)} CPU-s a run, ${
    (median(perSecond) * 1000).toFixed(1)} ms a second of run (medians of ${runs})` +
    (b > 0 ? `; a second of run ${median(ratios).toFixed(3)} of the first build's (the median of the runs' ratios; ${
      ratios.filter((x) => x < 1).length} of ${runs} lower)` : ''));
  for (const [key, used] of [...result.where].sort((x, y) => y[1] - x[1])) {
    if (used / seconds >= 0.0005) console.log(`  ${(used / seconds * 1000).toFixed(1).padStart(6)} ms/s  ${key}`);
  }
});
