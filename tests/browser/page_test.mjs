// The page of `microgpt serve` in a real browser: Debian's chromium, headless, driven by
// puppeteer-core (this folder's package-lock.json; `make test` runs `npm ci` here).
//   node tests/browser/page_test.mjs BUILD/microgpt [SCREENSHOT_DIR]
// Starts the server on a free port in a fresh folder, then, as a user would: trains a
// model from the page and watches it (loss curve, embedding snapshots, the slider),
// looks inside an input, draws names, saves the model. Fails on any error in the page,
// any request to another address, or any view that does not show what the API gave.
// Each view is saved as a PNG in SCREENSHOT_DIR (ctest: build/tests/screenshots; the
// README's pictures in docs/ are these).
// Exits 77 (ctest: skipped) when no browser is installed, unless CI is set.
import { startServer } from './serve_process.mjs';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const binary = process.argv[2];
const shots = process.argv[3];
const chromium = [process.env.CHROMIUM, '/usr/bin/chromium', '/usr/bin/chromium-browser'].filter(Boolean).find(existsSync);
if (!chromium) {
  console.log('skipped: no chromium (make test installs it on Debian)');
  process.exit(process.env.CI ? 1 : 77);
}
let puppeteer;
try {
  puppeteer = (await import('puppeteer-core')).default;
} catch {
  console.log('skipped: puppeteer-core is not installed (cd tests/browser && npm ci)');
  process.exit(process.env.CI ? 1 : 77);
}

const failures = [];
function check(ok, what) {
  if (!ok) failures.push(what);
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
}

const dir = mkdtempSync(join(tmpdir(), 'microgpt-browser-'));
// (a book for the text run at the end, the server's --data)
writeFileSync(join(dir, 'book.txt'), 'To be, or not to be, that is the question:\n'.repeat(30));
const { server, base } = await startServer(binary, dir, 1, ['--data', join(dir, 'book.txt')]);

const browser = await puppeteer.launch({ executablePath: chromium, headless: true, args: ['--no-sandbox'] });
try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1100, height: 900 });
  if (shots) mkdirSync(shots, { recursive: true });
  const shoot = async (id) => {
    if (shots) await (await page.$(`#${id}`)).screenshot({ path: join(shots, `serve-${id}.png`) });
  };
  // A field's value set (as a script would, without input events), and Shift+Enter typed.
  const fill = (selector, value) => page.$eval(selector, (e, v) => { e.value = v; }, value);
  const shiftEnter = async () => {
    await page.keyboard.down('Shift');
    await page.keyboard.press('Enter');
    await page.keyboard.up('Shift');
  };
  page.setDefaultTimeout(120000);  // a busy machine (ctest runs other tests beside this one)
  const errors = [], outside = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('request', (r) => { if (!r.url().startsWith(base)) outside.push(r.url()); });
  // (not 'networkidle0': the page keeps its event stream open)
  await page.goto(base, { waitUntil: 'load' });
  await page.waitForFunction(() => document.getElementById('model-line').textContent.includes('--model'));
  check(true, 'the page asked for the model: none at first');
  await page.waitForFunction(() => document.querySelectorAll('select[name=preset] option').length > 1);
  // The server's --data is offered, and chosen; the runs until the last train on the embedded names.
  await page.waitForFunction(() => document.querySelector('select[name=data]').value === 'file');
  const offered = await page.$eval('select[name=data]', (e) => [...e.options].map((o) => o.textContent));
  check(offered.length === 2 && offered[1].endsWith('book.txt'), `the --data file is offered beside the names: ${offered}`);
  await page.select('select[name=data]', 'embedded');

  // The page's PCA finds the principal axes of points whose axes are known: variance 9
  // along coordinate 3, 4 along coordinate 5, none elsewhere; fewer points than
  // coordinates (the Gram matrix's way) and more (the scatter matrix's way).
  // Started from the last snapshot's axes, it turns each to agree with them.
  const found = await page.evaluate(() => [6, 20].map((n) => {
    const rows = Array.from({ length: n }, (_, i) => Array.from({ length: 8 }, (_, j) =>
      (j === 3 ? 3 * (i % 2 ? 1 : -1) : j === 5 ? 2 * (i % 4 < 2 ? 1 : -1) : 0)));
    const unit = (j, sign) => Float64Array.from({ length: 8 }, (_, k) => (k === j ? sign : 0));
    const fresh = principalAxes(centredMatrix(rows), null);
    const turned = principalAxes(centredMatrix(rows), [unit(3, -1), unit(5, 1)]);
    return [Math.abs(fresh[0][3]), Math.abs(fresh[1][5]), -turned[0][3], turned[1][5]];
  }));
  check(found.flat().every((x) => x > 0.999999), `the PCA finds known axes, signed as the last ones: ${JSON.stringify(found)}`);
  // What the model receives, for a model 384 wide: the strips' cells narrow to fit.
  const wide = await page.evaluate(() => {
    const row = Array.from({ length: 384 }, (_, k) => Math.sin(k));
    const svg = strips([{ pos: 0, token: 'a', id: 1, wte: row, wpe: row, sum: row }], 900);
    return [Number(svg.getAttribute('width')), svg.querySelectorAll('rect').length];
  });
  check(wide[0] <= 900 && wide[1] === 3 * 384, `a 384-wide model's strips fit in 900 pixels: ${wide}`);
  check(await page.$$eval('select[name=preset] option', (o) => o.some((x) => x.value === 'makemore')), 'the presets are offered');
  // A long run (more steps than the arguments a JavaScript call can take, about 120,000
  // here): the loss chart covers every step, one pixel column of the plot's 568 at a time.
  // (The page folds the steps as they come and keeps the columns, not the steps.)
  const long = await page.evaluate(() => {
    const current = run;
    run = newRun(200000);
    const arrive = (from, to) => {
      const steps = [];
      for (let i = from; i <= to; i++) steps.push({ step: i, loss: 3 - i / 1e5, smooth: 3 - i / 1e5, tokens: 16 });
      foldSteps(run, steps);
    };
    try {
      arrive(1, 100000);
      lossChart();  // drawn halfway, as a live run is: the rest is added to what it folded
      arrive(100001, 200000);
      const chart = lossChart();
      return `${chart.drawn.steps},${chart.drawn.columns}`;
    } catch (e) {
      return e.message;
    } finally {
      run = current;
    }
  });
  check(long === '200000,568', `the loss chart draws 200,000 steps in 568 columns: ${long}`);

  // Train 600 steps, a snapshot every 100 (long enough for the pictures to show something).
  await fill('input[name=steps]', '600');
  await fill('input[name=snapshot_every]', '100');
  await fill('input[name=batch_size]', '8');
  await fill('#train-form input[name=name]', 'b');
  await page.click('#train-form button[type=submit]');
  await page.waitForFunction(() => document.getElementById('train-status').textContent.startsWith('finished'));
  const status = await page.$eval('#train-status', (e) => e.textContent);
  check(status.includes('step 600') && status.includes('b.safetensors'), `the run finished and saved: ${status}`);
  const curve = await page.$eval('#loss-chart canvas', (c) => `${c.drawn.steps},${c.drawn.columns}`);
  check(curve === '600,568', `the loss curves cover the 600 steps, in the plot's 568 columns: ${curve}`);
  const smoothed = await page.evaluate(() => run.chart.columns.every((c) => Number.isFinite(c.smooth) && c.smooth >= run.chart.lo && c.smooth <= run.chart.hi));
  check(smoothed, 'every column of the chart has a smoothed loss (the server\'s), within the losses');
  check(await page.$eval('#loss-chart canvas', (c) => c.drawn.validations) >= 1, 'a validation point is drawn');
  const inked = await page.$eval('#loss-chart canvas', (c) => {
    const d = c.getContext('2d').getImageData(36, 30, c.width - 72, c.height - 66).data;
    let dark = 0;
    for (let i = 0; i < d.length; i += 4) dark += d[i + 3] > 0 && d[i] < 100 ? 1 : 0;
    return dark;
  });
  check(inked > 300, `the smoothed curve is drawn (${inked} dark pixels)`);
  // Hovering the chart halfway along names the losses about step 300.
  const [midX, midY] = await page.$eval('#loss-chart canvas', (c) => {
    const box = c.getBoundingClientRect();
    return [box.left + c.width / 2, box.top + c.height / 2];
  });
  await page.mouse.move(midX, midY);
  const tip = await page.$eval('#loss-chart canvas', (c) => c.title);
  const tipStep = Number((tip.match(/^step (\d+): loss [\d.]+( to [\d.]+)?, smoothed [\d.]+/) ?? [])[1]);
  check(Math.abs(tipStep - 300) <= 2, `hovering the loss chart halfway names step 300's losses: ${tip}`);
  const lossAxis = await page.$eval('#loss-chart canvas', (c) => c.drawn.axes.join(' '));
  check(lossAxis === '0 step 600', `the loss chart's steps run from 0 to 600: ${lossAxis}`);
  check(await page.$eval('#snapshot', (e) => e.max) === '6', 'seven snapshots to replay (steps 0 to 600)');
  check(await page.$eval('#snapshot-step', (e) => e.textContent) === 'step 600', 'the slider follows the last snapshot');
  // The Embeddings section's views are drawn only while they are on the screen: the
  // heatmap, below this window, has not drawn the last snapshot; it does when it is
  // scrolled into view. `inView` scrolls a view into view and waits until it shows the
  // snapshot the slider picks. (The views draw on canvases, which keep what they drew
  // in `canvas.drawn`: the curves' lengths, the labels, the caption.)
  check(await page.$eval('#heatmap', (e) => e.step) !== 600, 'the heatmap, off the screen, is not drawn');
  const inView = async (id) => {
    await page.$eval(`#${id}`, (e) => e.scrollIntoView({ block: 'center' }));
    await page.waitForFunction((view) => document.getElementById(view).step ===
      Number(document.getElementById('snapshot-step').textContent.replace('step ', '')), {}, id);
  };
  await inView('heatmap');
  check(true, 'the heatmap is drawn when it comes into view');
  await page.$eval('#snapshot', (e) => { e.value = '0'; e.dispatchEvent(new Event('input')); });
  check(await page.$eval('#snapshot-step', (e) => e.textContent) === 'step 0', 'the slider replays step 0');
  await inView('pca');
  const pca = await page.$$eval('#pca canvas', (s) => s.map((x) => x.drawn.labels.length));
  check(pca.length === 2 && pca[0] === 28 && pca[1] === 16, `token PCA (28 tokens) and position path (16): ${pca}`);
  const colors = await page.$eval('#pca-tokens canvas', (c) => ['a', 'b', '-', '<BOS>'].map((t) => c.drawn.labels.find((x) => x.text === t).color));
  check(JSON.stringify(colors) === JSON.stringify(['#b2182b', '#2166ac', '#777', '#777']),
    `vowels are drawn red, consonants blue, the rest gray (the server's classes): ${colors}`);
  const [hoverX, hoverY] = await page.$eval('#pca-tokens canvas', (c) => {
    const box = c.getBoundingClientRect(), label = c.drawn.labels[1];
    return [box.left + label.x, box.top + label.y - 4];
  });
  await page.mouse.move(hoverX, hoverY);
  check((await page.$eval('#neighbours', (e) => e.textContent)).startsWith('nearest to '), 'hovering a token lists its neighbours');
  await inView('similarity');
  check((await page.$eval('#similarity canvas', (c) => c.drawn.curves.length)) === 3, 'three similarity curves');
  // The curves end at what `microgpt embed` says of the model the run saved.
  const similarity = await page.evaluate(() => {
    const s = run.snapshots[run.snapshots.length - 1].similarity;
    return `within vowels ${s.vowels.toFixed(2)} (5 tokens), within consonants ${s.consonants.toFixed(2)} (21 tokens), across ${s.across.toFixed(2)}`;
  });
  const embedded = execFileSync(binary, ['embed', '--model', join(dir, 'b.safetensors')], { encoding: 'utf8' });
  check(embedded.includes(`cosine similarity: ${similarity}\n`), `the similarities at the last snapshot are microgpt embed's: ${similarity}`);
  const cosineAxes = await page.$eval('#similarity canvas', (c) => c.drawn.axes.join(' '));
  check(cosineAxes === '1 0 -1 0 step 600', `the similarities from -1 to 1, over steps 0 to 600: ${cosineAxes}`);
  await inView('heatmap');
  const heat = await page.$eval('#heatmap canvas', (c) => {
    // the cell of 'a' with itself (row 1, column 1 after '-'): full red
    const d = c.getContext('2d').getImageData(34 + 14 + 7, 34 + 14 + 7, 1, 1).data;
    return [c.width, c.height, d[0], d[1], d[2]];
  });
  check(heat[0] === 34 * 2 + 28 * 14 && heat[1] === 34 + 28 * 14 && heat[2] === 178 && heat[3] === 24 && heat[4] === 43,
    `a cosine heatmap of 28 x 28 tokens, a~a full red: ${heat}`);
  await inView('sums');
  const sums = await page.$eval('#sums canvas', (c) => c.drawn.labels.map((x) => x.text));
  check(sums.join(' ') === '0:<BOS> 1:e 2:m 3:m 4:a', `what the model receives for emma, in order: ${sums}`);
  await inView('follow-chart');
  const follow = await page.$eval('#follow-chart canvas', (c) => c.drawn.curves);
  check(follow.length === 5 && follow.every((n) => n === 7), `'a' and its 5 neighbours over the 7 snapshots: ${follow}`);
  await page.$eval('#follow', (e) => { e.value = 'e'; e.dispatchEvent(new Event('input')); });
  check((await page.$eval('#follow-chart canvas', (c) => c.drawn.caption)).startsWith('cosine similarity of e to'), 'following e');
  await page.$eval('#follow', (e) => { e.value = '<BOS>'; e.dispatchEvent(new Event('input')); });
  check((await page.$eval('#follow-chart canvas', (c) => c.drawn.caption)).startsWith('cosine similarity of <BOS> to'),
    'following a token by its label (<BOS>)');
  await page.waitForFunction(() => document.getElementById('model-line').textContent.includes('step 600 of 600'));
  check(true, 'the trained model is the page\'s model');
  // The page reads the snapshots' weights from their compact form (float32 bytes): the
  // last one's row of 'a' is the model's, as /api/inspect gives it.
  const rowOfA = await page.evaluate(async () => {
    const model = (await call('/api/inspect', { text: 'a' })).positions[1].wte;
    const snapshot = run.snapshots[run.snapshots.length - 1].wte[1];
    return [model.length === snapshot.length && model.every((v, k) => Math.fround(v) === snapshot[k]), model[0], snapshot[0]];
  });
  check(rowOfA[0], `the last snapshot's wte row of 'a' is the model's: ${rowOfA.slice(1)}`);
  await shoot('train');
  await page.$eval('#snapshot', (e) => { e.value = e.max; e.dispatchEvent(new Event('input')); });
  for (const id of ['pca', 'similarity', 'sums', 'follow-chart', 'heatmap']) await inView(id);
  await shoot('embeddings');

  // A second run, on the reference engine (one name a step), beside the first.
  await fill('input[name=steps]', '20');
  await fill('input[name=batch_size]', '1');
  // (with 2 heads and a context of 8, which the form sends)
  await fill('input[name=n_head]', '2');
  await fill('input[name=block_size]', '8');
  await page.select('select[name=engine]', 'reference');
  await fill('#train-form input[name=name]', 'c');
  // the form sends the inputs (which the reference engine refuses), then the default again
  await page.select('select[name=wte]', 'scalar');
  await page.click('#train-form button[type=submit]');
  await page.waitForFunction(() => document.getElementById('train-error').textContent.includes('--wte'));
  check((await page.$eval('#train-error', (e) => e.textContent)).includes('options of the fast engine'),
    'the token input is sent, and the reference engine refuses it');
  // (the browser logs the refusal's 400 as a console error: that one was asked for)
  const refused = errors.findIndex((e) => e.includes('status of 400'));
  check(refused >= 0, 'the refusal was a 400');
  if (refused >= 0) errors.splice(refused, 1);
  await page.select('select[name=wte]', 'learned');
  await page.click('#train-form button[type=submit]');
  await page.waitForFunction(() => document.getElementById('train-status').textContent.includes('c.safetensors'));
  const sizes = await page.evaluate(() => [run.config.n_head, run.config.block_size, run.snapshots.at(-1).wpe.length]);
  check(sizes.join() === '2,8,8', `the run has the heads and the context asked for, and 8 positions: ${sizes}`);
  await fill('input[name=n_head]', '4');
  await fill('input[name=block_size]', '16');
  const options = await page.$$eval('#run-a option', (o) => o.map((x) => x.textContent));
  check(options.length === 2 && options[1].includes('reference') && options[1].includes('2 heads, context 8'),
    `both runs are offered for comparison, by their settings: ${options}`);
  check(await page.$eval('#run-a', (e) => e.value) === '0' && await page.$eval('#run-b', (e) => e.value) === '1',
    'run A is the first, run B the second');
  // (the comparison is drawn when it comes into view)
  await page.$eval('#compare', (e) => e.scrollIntoView());
  await page.waitForFunction(() => String(document.getElementById('compare').runs) === '0,1');
  check((await page.$eval('#compare-loss canvas', (c) => c.drawn.curves.length)) === 2, 'two loss curves overlaid');
  const views = await page.$$eval('#compare-pca .run-views', (v) => v.map((x) => x.querySelectorAll('canvas').length));
  check(views.length === 2 && views.every((n) => n === 3), `tokens, positions and similarity for each run: ${views}`);
  await page.$eval('#compare-snapshot', (e) => { e.value = '0'; e.dispatchEvent(new Event('input')); });
  const titles = await page.$$eval('#compare-pca .run-views > div', (d) => d.map((x) => x.textContent));
  check(titles.join(', ') === 'run A at step 0, run B at step 0', `the shared slider replays both: ${titles}`);
  await page.$eval('#compare-snapshot', (e) => { e.value = e.max; e.dispatchEvent(new Event('input')); });
  await shoot('compare');

  // Inside one input (of the reference engine's model now: no attention weights).
  // (typed, and Enter shows it, as in a one-line field)
  await fill('#inside-form textarea[name=text]', '');
  await page.type('#inside-form textarea[name=text]', 'emma');
  await page.keyboard.press('Enter');
  await page.waitForSelector('#strips svg');
  check((await page.$eval('#inside-form textarea[name=text]', (e) => e.value)) === 'emma', 'Enter shows the text and adds no line break');
  const cells = await page.$$eval('#strips rect', (r) => r.length);
  check(cells === 5 * 3 * 16, `colour strips: 5 positions x (wte, wpe, sum) x 16 (${cells})`);
  check((await page.$eval('#attention', (e) => e.textContent)).includes('fast engine'), 'no attention shown for the reference engine');
  await fill('#files-form input[name=name]', 'b');
  await page.click('#load');
  await page.waitForFunction(() => document.getElementById('files-status').textContent.startsWith('loaded'));
  await page.click('#inside-form button');
  await page.waitForFunction(() => document.querySelectorAll('#attention svg').length > 0);
  check((await page.$$eval('#attention svg', (s) => s.length)) === 4, 'after loading b: one attention heatmap per head (1 layer x 4)');
  const headLabels = await page.$eval('#attention svg', (s) => [...s.querySelectorAll('text')].map((t) => t.textContent).join(' '));
  check(headLabels === 'layer 0 head 0 <BOS> <BOS> e e m m m m a a',
    `a head's title, and each position labelled at its row and at its column: ${headLabels}`);
  check((await page.$$eval('#next .bars', (b) => b.length)) === 5, 'next-character bars for each position');
  // The probabilities shown are the API's.
  const bars = await page.$$eval('#next .bars', (b) => b.map((x) => [...x.querySelectorAll('.bar')].map((y) => y.textContent)));
  const inspected = await page.evaluate(async () => (await (await fetch('/api/inspect', {
    method: 'POST', body: JSON.stringify({ text: 'emma' }),
  })).json()).positions.map((p) => p.next.map((n) => `${n.token} ${n.p.toFixed(3)}`)));
  check(JSON.stringify(bars) === JSON.stringify(inspected), `the probabilities shown are the API's: ${bars[1].slice(0, 3)}`);
  await shoot('inside');

  // Write: the page's names are the API's.
  await fill('#write-form input[name=seed]', '7');
  await fill('#write-form input[name=num_samples]', '5');
  await page.click('#write-form button');
  await page.waitForFunction(() => document.querySelectorAll('#samples li').length === 5);
  const shown = await page.$$eval('#samples li', (l) => l.map((x) => x.textContent));
  const api = await page.evaluate(async () => (await (await fetch('/api/sample', {
    method: 'POST', body: JSON.stringify({ temperature: 0.5, top_k: 0, top_p: 1, prefix: '', num_samples: 5, seed: 7 }),
  })).json()).samples);
  check(JSON.stringify(shown) === JSON.stringify(api), `the names drawn are the API's: ${shown}`);
  await shoot('write');

  // Save under another name.
  await fill('#files-form input[name=name]', 'copy');
  await page.click('#save');
  await page.waitForFunction(() => document.getElementById('files-status').textContent.startsWith('saved'));
  check(existsSync(join(dir, 'copy.safetensors')), 'Save wrote copy.safetensors');

  // A text model, trained from the page on the --data book: its samples are passages, one
  // under another, not names in columns.
  await page.select('select[name=data]', 'file');
  await page.select('select[name=format]', 'text');
  await page.select('select[name=engine]', 'fast');
  await fill('input[name=steps]', '30');
  await fill('input[name=batch_size]', '4');
  await fill('#train-form input[name=name]', 'book');
  await fill('#train-form input[name=seed]', '7');
  await fill('#train-form input[name=warmup]', '5');
  await page.click('#train-form button[type=submit]');
  await page.waitForFunction(() => document.getElementById('train-status').textContent.includes('book.safetensors'));
  const settings = await page.evaluate(() => [run.config.format, run.config.seed, run.config.warmup, run.config.block_size]);
  check(settings.join() === 'text,7,5,16', `the text run has the format, seed and warm-up asked for: ${settings}`);
  await page.waitForFunction(() => document.getElementById('model-line').textContent.includes('book.safetensors'));
  // What the model receives for two lines: the text alone (no <BOS>), the line break as \n
  // (Enter adds none; Shift+Enter does).
  await fill('#receives', '');
  await inView('sums');
  await page.type('#receives', 'be,');
  await page.keyboard.press('Enter');
  await shiftEnter();
  await page.type('#receives', 'or');
  const received = await page.$eval('#sums canvas', (c) => c.drawn.labels.map((x) => x.text));
  check(received.join(' ') === '0:b 1:e 2:, 3:\\n 4:o 5:r', `what a text model receives for two lines, in order: ${received}`);
  await fill('#write-form input[name=num_samples]', '2');
  // (its prefix may hold a line break: the field is a text area)
  await fill('#write-form textarea[name=prefix]', 'To be,\nor');
  await page.click('#write-form button');
  await page.waitForFunction(() => document.querySelectorAll('#samples li').length === 2);
  const columns = await page.$eval('#samples', (e) => getComputedStyle(e).columnCount);
  check(columns === '1', `a text model's samples are passages, in one column (${columns})`);
  const passages = await page.$$eval('#samples li', (l) => l.map((x) => x.textContent));
  check(passages.every((p) => p.startsWith('To be,\nor')), `each passage starts with the prefix, line break and all: ${JSON.stringify(passages[0].slice(0, 20))}`);
  // Inside one input takes a line break too (Shift+Enter), and labels it as \n.
  await fill('#inside-form textarea[name=text]', '');
  await page.type('#inside-form textarea[name=text]', 'be,');
  await shiftEnter();
  await page.type('#inside-form textarea[name=text]', 'or');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => document.querySelectorAll('#next .bars').length === 6);
  check(await page.$eval('#inside-form textarea[name=text]', (e) => e.rows) === 2, 'the field grows to show the two lines typed');
  const after = await page.$$eval('#next .bars > div:first-child', (d) => d.map((x) => x.textContent));
  check(after[3] === 'after pos 3 (\\n):', `the line break typed is position 3, labelled \\n: ${JSON.stringify(after)}`);
  const looked = await page.$eval('#attention svg', (s) => [...s.querySelectorAll('text')].map((t) => t.textContent).join(' '));
  check(looked.includes('\\n \\n'), `the attention map labels the line break's row and column: ${looked}`);

  check(errors.length === 0, `no errors in the page ${JSON.stringify(errors)}`);
  check(outside.length === 0, `no request left the server ${JSON.stringify(outside)}`);
} catch (e) {
  check(false, `the page did what was asked: ${e.message}`);
} finally {
  // Closing the browser has been seen to hang on a busy machine: ten seconds, then it
  // is killed (the checks are done by then).
  const proc = browser.process();
  await Promise.race([browser.close().catch(() => {}), new Promise((resolve) => setTimeout(resolve, 10000))]);
  if (proc && proc.exitCode === null) proc.kill('SIGKILL');
  server.kill('SIGINT');
  rmSync(dir, { recursive: true, force: true });
}
process.exit(failures.length === 0 ? 0 : 1);
