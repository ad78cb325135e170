// What bench/serve_overhead.mjs and bench/browser_cpu.mjs share: their options, the run
// they ask the server for, and CPU times read from /proc.
import { readFileSync } from 'node:fs';

// `--name value` from the command line's arguments, or the fallback.
export function option(args, name, fallback) {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : fallback;
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
