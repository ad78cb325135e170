// What bench/serve_overhead.mjs and bench/browser_cpu.mjs share: their options, the run
// they ask the server for, and CPU times read from /proc.
import { readFileSync } from 'node:fs';

// `--name value` from the command line's arguments, or the fallback.
export function option(args, name, fallback) {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : fallback;
}

// --page: full (the page), or a bare page (openBarePage below); any other value ends the
// bench with one line, before anything starts.
export function pageKind(args) {
  const kind = option(args, 'page', 'full');
  if (['full', 'blank', 'line'].includes(kind)) return kind;
  console.error(`--page is full, blank or line, not ${kind}`);
  process.exit(2);
}

// The run both measure (POST /api/train): --preset, --steps and --snapshot-every.
export function runRequest(args) {
  return {
    preset: option(args, 'preset', 'makemore'),
    steps: Number(option(args, 'steps', 1000)),
    snapshot_every: Number(option(args, 'snapshot-every', 50)),
    name: 'bench',
  };
}

// CPU seconds (user + system) a process or thread has used: /proc/PID/stat or
// /proc/PID/task/TID/stat; 0 for one that ended meanwhile.
export function cpuSeconds(statPath) {
  try {
    const fields = readFileSync(statPath, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;  // utime, stime in ticks
  } catch {
    return 0;
  }
}

// How the benchmarks start chromium: headless, and without DevTools' network tracking,
// which puppeteer turns on by default and which copies every event of the stream into
// DevTools messages (a user's browser, with no DevTools attached, does not; it cost the
// browser's main process 8 to 13 ms a second of run here, on the makemore run).
export const launchOptions = {
  executablePath: '/usr/bin/chromium', headless: true, args: ['--no-sandbox'], networkEnabled: false, issuesEnabled: false,
};

// Opens, in place of the page, a bare page of the server's own (a JSON answer) that reads
// the run's events as the page does (/api/events?snapshots=float32) and parses them:
//   blank: draws nothing (what merely receiving the events costs);
//   line: also shows the last step in a line of text, changed once a write of the stream
//         in an animation frame, as the page draws (the least a page that shows the run
//         live could cost: a frame, however little it changes, costs the browser its
//         whole pipeline of style, layout, paint and compositing).
// window.frames_drawn lists when a batch of steps came (blank) or a frame drew (line).
export async function openBarePage(page, base, kind) {
  await page.goto(`${base}api/presets`, { waitUntil: 'load' });
  await page.evaluate((draws) => {
    window.frames_drawn = [];
    const line = document.createElement('p');
    document.body.replaceChildren(line);
    let due = false, step = 0;
    const events = new EventSource('/api/events?snapshots=float32');
    for (const type of ['start', 'run', 'steps', 'validation', 'snapshot', 'finished']) {
      events.addEventListener(type, (e) => {
        const d = JSON.parse(e.data);
        if (type !== 'steps') return;
        step = d.steps[d.steps.length - 1].step;
        if (!draws) {
          window.frames_drawn.push(performance.now());
        } else if (!due) {
          due = true;
          setTimeout(() => requestAnimationFrame(() => {
            due = false;
            line.textContent = `step ${step}`;
            window.frames_drawn.push(performance.now());
          }));
        }
      });
    }
  }, kind === 'line');
}
