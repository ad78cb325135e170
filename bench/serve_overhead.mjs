// What watching costs: the same run started from the API with no page open, and with
// the page open in Debian's chromium (headless, drawing every event as it comes, in a
// window that shows the Train and Embeddings views), in alternating order, each pair on
// a fresh server, each run after a warm-up run (which the page watches when it is open:
// as it would after watching a run for a few seconds), timed from the POST that starts it to
// the moment /api/train says idle again. Prints each time, the medians, the median of
// the pairs' ratios with a 95% interval, how often the page redrew, and CPU times.
//   node bench/serve_overhead.mjs build/microgpt [--runs 5] [--preset makemore]
//       [--steps 1000] [--threads 2] [--snapshot-every 50] [--viewport 1280x1600]
//       [--page full|blank|line] [--warm-up STEPS]
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
const binary = args[0];
const option = (name, fallback) => optionOf(args, name, fallback);
const runs = Number(option('runs', 5));
// --page blank or line: instead of the page, a bare page that reads the events and draws
// nothing (what merely receiving them costs), or only a line of text (serve_bench.mjs).
const pageKind = pageKindOf(args);
const bare = pageKind !== 'full';
const request = runRequest(args);

const dir = mkdtempSync(join(tmpdir(), 'microgpt-bench-'));
// Each pair of runs has a server of its own: a server keeps every run's events, which a
// page replays when it opens, so one server for all would make each page open slower.
let server, base;
const api = async (path, body) => (await fetch(base + path.slice(1), body === undefined ? {} : {
  method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
})).json();
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// CPU seconds that processes have used: the server's, and the browser's (every
// chromium process). The server's threads' CPU seconds, by thread id:
function threadSeconds(pid) {
  const seconds = new Map();
  for (const tid of readdirSync(`/proc/${pid}/task`)) seconds.set(tid, cpuSeconds(`/proc/${pid}/task/${tid}/stat`));
  return seconds;
}
// Each chromium process's CPU seconds, by pid.
function browserSeconds() {
  const seconds = new Map();
  for (const pid of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    try {
      if (/chrom/.test(readFileSync(`/proc/${pid}/comm`, 'utf8'))) seconds.set(pid, cpuSeconds(`/proc/${pid}/stat`));
    } catch { /* ended */ }
  }
  return seconds;
}
// What the browser used between two readings (a process that ended meanwhile, such as
// the last page's, is left out; one that started counts from zero).
function browserUsed(before, after) {
  let total = 0;
  for (const [pid, s] of after) total += s - (before.get(pid) ?? 0);
  return total;
}

async function timedRun(run, cpu) {
  const server0 = cpuSeconds(`/proc/${server.pid}/stat`), browser0 = browserSeconds(), threads0 = threadSeconds(server.pid);
  const start = performance.now();
  const answer = await api('/api/train', run);
  if (!answer.started) throw new Error(JSON.stringify(answer));
  // (the training's thread ends with the run: its time is read while it runs, and each
  // thread's last reading kept)
  const threads = new Map(threads0);
  while ((await api('/api/train')).state !== 'idle') {
    for (const [tid, t] of threadSeconds(server.pid)) threads.set(tid, t);
    await sleep(10);
  }
  const seconds = (performance.now() - start) / 1000;
  if (cpu) {
    cpu.server.push(cpuSeconds(`/proc/${server.pid}/stat`) - server0);
    cpu.browser.push(browserUsed(browser0, browserSeconds()));
    // the busiest thread: the training (with --threads 1, the only one)
    cpu.training.push(Math.max(...[...threads].map(([tid, t]) => t - (threads0.get(tid) ?? 0))));
  }
  return seconds;
}

const browser = await puppeteer.launch(launchOptions);
const page = await browser.newPage();
// A window tall enough to show the Train and Embeddings views at once: a watcher sees
// both, and the page draws only the views on the screen.
const [width, height] = option('viewport', '1280x1600').split('x').map(Number);
await page.setViewport({ width, height });
const without = [], withPage = [], rates = [];
const cpuWithout = { server: [], browser: [], training: [] }, cpuWith = { server: [], browser: [], training: [] };
try {
  for (let r = 0; r < runs; r++) {
    ({ server, base } = await startServer(binary, dir, option('threads', '2')));
    for (const open of r % 2 === 0 ? [false, true] : [true, false]) {
      // Before each timed run, a warm-up run (--warm-up steps, by default as many), which
      // the page, when open, watches: a page that has watched a run for a few seconds has
      // its script compiled and optimized, as it stays while it watches (in its first
      // seconds, the browser used twice the CPU a second of run: README).
      const warmUp = { ...request, steps: Number(option('warm-up', request.steps)), name: 'warm-up' };
      if (open) {
        if (bare) {
          await openBarePage(page, base, pageKind);
          await sleep(1500);
          await timedRun(warmUp);
          await page.evaluate(() => { window.frames_drawn = []; });
        } else {
          await page.goto(base, { waitUntil: 'load' });
          await sleep(1500);  // (the page replays the server's earlier runs first)
          await timedRun(warmUp);
          // every time the page redraws the run's status line (with its views)
          await page.evaluate(() => {
            window.frames_drawn = [];
            new MutationObserver(() => window.frames_drawn.push(performance.now()))
              .observe(document.getElementById('train-status'), { childList: true, characterData: true, subtree: true });
          });
        }
        withPage.push(await timedRun(request, cpuWith));
        const drawn = await page.evaluate(() => window.frames_drawn);
        rates.push((drawn.length - 1) / ((drawn[drawn.length - 1] - drawn[0]) / 1000));
        await page.goto('about:blank');
      } else {
        await timedRun(warmUp);
        without.push(await timedRun(request, cpuWithout));
      }
    }
    server.kill('SIGINT');
    await new Promise((resolve) => server.once('exit', resolve));
  }
} finally {
  await browser.close();
  if (server && server.exitCode === null) server.kill('SIGINT');
  rmSync(dir, { recursive: true, force: true });
}
const median = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
console.log(`run: ${JSON.stringify(request)}, threads ${option('threads', '2')}, page ${pageKind}`);
console.log(`no page:   ${without.map((t) => t.toFixed(3)).join(' ')} s, median ${median(without).toFixed(3)}`);
console.log(`page open: ${withPage.map((t) => t.toFixed(3)).join(' ')} s, median ${median(withPage).toFixed(3)}`);
// Each run with the page against the run without it next to it (the machine's load
// drifts; neighbours share it).
const pairs = withPage.map((t, i) => t / without[i]);
// How sure that median is: the middle 95% of the medians of 2000 resamples of the pairs
// (a bootstrap, with a fixed generator so that it repeats).
let state = 12345;
const uniform = () => ((state = (Math.imul(state, 1103515245) + 12345) >>> 0) / 2 ** 32);
const resampled = Array.from({ length: 2000 }, () => median(pairs.map(() => pairs[Math.floor(uniform() * pairs.length)])))
  .sort((a, b) => a - b);
console.log(`ratio of the medians: ${(median(withPage) / median(without)).toFixed(3)}; median of the ${runs} pairs' ratios: ${
  median(pairs).toFixed(3)}, 95% interval ${resampled[50].toFixed(3)} to ${resampled[1949].toFixed(3)}`);
console.log(`pairs' ratios: ${[...pairs].sort((a, b) => a - b).map((r) => r.toFixed(3)).join(' ')}`);
console.log(`the page ${pageKind === 'blank' ? 'received steps' : 'redrew'} ${median(rates).toFixed(2)} times a second (median over the runs with it open)`);
const cpu = (c) => `server ${median(c.server).toFixed(2)} s (its busiest thread ${median(c.training).toFixed(2)} s), browser ${median(c.browser).toFixed(2)} s`;
console.log(`CPU time, medians: no page: ${cpu(cpuWithout)}; page open: ${cpu(cpuWith)}`);
console.log(`what watching used, as a share of the run's CPU without a page: ${
  ((median(cpuWith.server) + median(cpuWith.browser) - median(cpuWithout.server) - median(cpuWithout.browser))
    / median(cpuWithout.server) * 100).toFixed(1)}%`);
