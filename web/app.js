// The page of `microgpt serve`: plain JavaScript on the server's JSON API (README
// "Watch it in the browser"); it loads nothing from anywhere else.
'use strict';

async function call(path, body) {
  const options = body === undefined ? {} : {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  };
  const response = await fetch(path, options);
  const answer = await response.json();
  if (!response.ok) throw new Error(answer.error || response.statusText);
  return answer;
}

async function showModel() {
  const line = document.getElementById('model-line');
  const m = await call('/api/model');
  if (!m.loaded) {
    line.textContent = 'no model loaded (start the server with --model PATH)';
    return;
  }
  // a text model's samples are passages, each across the page; names go in columns
  document.getElementById('samples').classList.toggle('passages', m.format === 'text');
  const c = m.config;
  line.textContent = `${m.path}: ${c.n_layer} layer${c.n_layer > 1 ? 's' : ''}, ${c.n_embd} wide, ` +
    `${c.n_head} heads, block ${c.block_size}, ${m.vocab.length} characters, ` +
    `${m.num_params.toLocaleString()} parameters, step ${m.step} of ${m.steps} (${m.engine} engine, ${m.format})`;
}

function numberOr(value, fallback) {
  return value === '' ? fallback : Number(value);
}

// Draws samples as the server writes them (a text model's characters as they come).
async function draw(event) {
  event.preventDefault();
  const form = new FormData(event.target);
  const error = document.getElementById('write-error');
  const list = document.getElementById('samples');
  error.hidden = true;
  list.replaceChildren();
  try {
    const response = await fetch('/api/sample/stream', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({
        temperature: numberOr(form.get('temperature'), 0.5),
        top_k: numberOr(form.get('top_k'), 0),
        top_p: numberOr(form.get('top_p'), 1),
        prefix: form.get('prefix'),
        num_samples: numberOr(form.get('num_samples'), 10),
        seed: numberOr(form.get('seed'), 42),
      }),
    });
    if (!response.ok) throw new Error((await response.json()).error || response.statusText);
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    const items = new Map();
    const item = (i) => {
      if (!items.has(i)) {
        const li = document.createElement('li');
        items.set(i, li);
        list.append(li);
      }
      return items.get(i);
    };
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let newline;
      while ((newline = buffer.indexOf('\n')) >= 0) {
        const line = JSON.parse(buffer.slice(0, newline));
        buffer = buffer.slice(newline + 1);
        if (line.error) throw new Error(line.error);
        if (line.chars !== undefined) item(line.sample).textContent += line.chars;
        if (line.text !== undefined) item(line.sample).textContent = line.text;
      }
    }
  } catch (e) {
    error.textContent = e.message;
    error.hidden = false;
  }
}

const SVG = 'http://www.w3.org/2000/svg';  // the SVG namespace: a name, which nothing fetches

function svgElement(name, attributes) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attributes)) e.setAttribute(k, v);
  return e;
}

// Blue for negative, white for 0, red for positive, at full strength at +-scale.
function divergingRGB(value, scale) {
  const t = Math.max(-1, Math.min(1, value / scale));
  const fade = (c) => Math.round(255 - (255 - c) * Math.abs(t));
  return t < 0 ? [fade(33), fade(102), fade(172)] : [fade(178), fade(24), fade(43)];
}
function diverging(value, scale) {
  return `rgb(${divergingRGB(value, scale).join(',')})`;
}

// Each position's wte, wpe and sum rows as strips of cells, 8 pixels wide, or narrower for
// a wide model, so that a row fits the width the page gives it (384 channels: 2 pixels).
function strips(positions, room) {
  const scale = Math.max(1e-9, ...positions.flatMap((p) => [...p.wte, ...p.wpe, ...p.sum].map(Math.abs)));
  const label = 70, C = positions[0].sum.length, cell = 8;
  const across = Math.max(1, Math.min(cell, Math.floor((room - label) / C)));
  const width = label + across * C;
  const rows = positions.length * 4;
  const svg = svgElement('svg', { width, height: rows * (cell + 2), role: 'img' });
  positions.forEach((p, i) => {
    [['pos ' + p.pos + ' ' + p.token, null], ['wte[' + p.id + ']', p.wte], ['wpe[' + p.pos + ']', p.wpe], ['sum', p.sum]]
      .forEach(([name, values], j) => {
        const y = (i * 4 + j) * (cell + 2);
        const text = svgElement('text', { x: 0, y: y + cell, 'font-size': 9 });
        text.textContent = name;
        svg.append(text);
        (values || []).forEach((v, k) => {
          const r = svgElement('rect', { x: label + k * across, y, width: across, height: cell, fill: diverging(v, scale) });
          const title = svgElement('title', {});
          title.textContent = `${name}[${k}] = ${v.toFixed(3)}`;
          r.append(title);
          svg.append(r);
        });
      });
  });
  return svg;
}

function heatmap(rows, labels, title) {
  const T = rows.length, cell = 16, pad = 40;  // room for the <BOS> label
  const svg = svgElement('svg', { width: pad + T * cell, height: pad + T * cell + 14, role: 'img' });
  const head = svgElement('text', { x: 0, y: 10, 'font-size': 10 });
  head.textContent = title;
  svg.append(head);
  rows.forEach((row, t) => row.forEach((w, u) => {
    const gray = Math.round(255 * (1 - w));
    const r = svgElement('rect', { x: pad + u * cell, y: 14 + t * cell, width: cell - 1, height: cell - 1, fill: `rgb(${gray},${gray},${gray})` });
    const tip = svgElement('title', {});
    tip.textContent = `${labels[t]} -> ${labels[u]}: ${w.toFixed(3)}`;
    r.append(tip);
    svg.append(r);
  }));
  // the positions that look, left of the rows; those they look at, under the columns (a
  // label wider than a character, <BOS>, turned to read downwards)
  labels.forEach((l, t) => {
    // (<space>, wider than the margin at 9 pixels, at 7)
    const text = svgElement('text', { x: 0, y: 14 + t * cell + 11, 'font-size': l.length > 5 ? 7 : 9 });
    text.textContent = l;
    const x = pad + t * cell + cell / 2, y = 14 + T * cell + 3;
    const column = svgElement('text', l.length > 1
      ? { transform: `translate(${x - 3},${y}) rotate(90)`, 'font-size': 9 }
      : { x, y: y + 8, 'font-size': 9, 'text-anchor': 'middle' });
    column.textContent = l;
    svg.append(text, column);
  });
  return svg;
}

function nextBars(positions) {
  const box = document.createElement('div');
  for (const p of positions) {
    const block = document.createElement('div');
    block.className = 'bars';
    const head = document.createElement('div');
    head.textContent = `after pos ${p.pos} (${p.token}):`;
    block.append(head);
    for (const n of p.next) {
      const bar = document.createElement('div');
      bar.className = 'bar';
      bar.style.width = `${Math.max(1, Math.round(200 * n.p))}px`;
      bar.textContent = `${n.token} ${n.p.toFixed(3)}`;
      block.append(bar);
    }
    box.append(block);
  }
  return box;
}

async function inspect(event) {
  event.preventDefault();
  const error = document.getElementById('inside-error');
  error.hidden = true;
  try {
    const answer = await call('/api/inspect', { text: new FormData(event.target).get('text') });
    const labels = answer.positions.map((p) => p.token);
    const holder = document.getElementById('strips');
    holder.replaceChildren(strips(answer.positions, holder.clientWidth || 900));
    const maps = document.getElementById('attention');
    maps.replaceChildren();
    if (answer.attention === null) {
      maps.textContent = 'attention weights: shown for models of the fast engine';
    } else {
      answer.attention.forEach((heads, l) => heads.forEach((rows, h) => {
        const full = rows.map((r) => [...r, ...Array(rows.length - r.length).fill(0)]);
        maps.append(heatmap(full, labels, `layer ${l} head ${h}`));
      }));
    }
    document.getElementById('next').replaceChildren(nextBars(answer.positions));
  } catch (e) {
    error.textContent = e.message;
    error.hidden = false;
  }
}

document.getElementById('inside-form').addEventListener('submit', inspect);
document.getElementById('write-form').addEventListener('submit', draw);
// Their text areas (a text model's input or prefix may hold line breaks) send the form on
// Enter, as a one-line field does; Shift+Enter breaks the line.
for (const area of document.querySelectorAll('#inside-form textarea, #write-form textarea')) {
  area.addEventListener('keydown', (event) => {
    if (event.key !== 'Enter' || event.shiftKey || event.isComposing) return;
    event.preventDefault();
    area.form.requestSubmit();
  });
}
// Every text area grows to show the lines it holds (up to six; then it scrolls).
for (const area of document.querySelectorAll('textarea')) {
  const fit = () => { area.rows = Math.min(6, area.value.split('\n').length); };
  area.addEventListener('input', fit);
  fit();
}
showModel().catch((e) => { document.getElementById('model-line').textContent = e.message; });

// ---- Train: start, pause, resume, stop; the loss as it comes ------------------------

// Every run since the server started (the events replay them all), the last one current.
const runs = [];
// (`first`: the steps a resumed run had done; `last`: the last step told)
function newRun(total, first = 0) {
  return { validations: [], snapshots: [], vocab: [], labels: [], classes: [], name: '', config: {}, total, first, last: null, started: performance.now(), tokens: 0 };
}
let run = newRun(0);

// The canvas of this size in the element `holder` (or the element of that id), cleared,
// or a new one put there. A view redrawn five times a second draws on the same canvas
// rather than making a new one (which the browser would lay out, allocate and composite
// anew each time), and draws on a canvas rather than in SVG: a plot of SVG elements
// costs the browser style, layout and paint for each of them, each frame.
function canvasIn(holder, width, height) {
  if (typeof holder === 'string') holder = document.getElementById(holder);
  let canvas = holder.firstElementChild;
  if (!canvas || canvas.tagName !== 'CANVAS' || canvas.width !== width || canvas.height !== height) {
    canvas = document.createElement('canvas');
    canvas.width = width;
    canvas.height = height;
    holder.replaceChildren(canvas);
  }
  const g = canvas.getContext('2d');
  g.clearRect(0, 0, width, height);
  canvas.drawn = { curves: [], labels: [], caption: '', axes: [] };
  return [canvas, g];
}

// A new canvas of this size (for views drawn once, not as a run goes).
function newCanvas(width, height) {
  return canvasIn(document.createElement('div'), width, height)[0];
}

// A plot's curve through [x, y] pixel points, and its caption. Each canvas keeps what was
// drawn on it since it was cleared in `canvas.drawn` (the curves' lengths, the labels and
// where they are, the caption), for hovering and for the tests.
function curve(canvas, points, color, width = 2) {
  const g = canvas.getContext('2d');
  g.strokeStyle = color;
  g.lineWidth = width;
  g.beginPath();
  for (const [x, y] of points) g.lineTo(x, y);
  g.stroke();
  canvas.drawn.curves.push(points.length);
}
function caption(canvas, text, x) {
  const g = canvas.getContext('2d');
  g.font = '10px sans-serif';
  g.fillStyle = '#222';
  g.textAlign = 'start';
  g.fillText(text, x, 12);
  canvas.drawn.caption = text;
}
// The steps under a chart's plot (its x axis from step 0 to `last`, `pad` pixels in from
// either side): 0 at the left end, `last` at the right, and what they count between.
function stepAxis(canvas, pad, last) {
  const g = canvas.getContext('2d');
  const y = canvas.height - pad + 14;
  g.font = '10px sans-serif';
  g.fillStyle = '#555';
  const ticks = [['0', 'start', pad], ['step', 'center', canvas.width / 2], [thousands.format(last), 'end', canvas.width - pad]];
  for (const [text, align, x] of ticks) {
    g.textAlign = align;
    g.fillText(text, x, y);
    canvas.drawn.axes.push(text);
  }
  g.textAlign = 'start';
}

// The loss chart, in pixels: its plot is what the pad leaves of its width, a column a pixel.
const LOSS_WIDTH = 640, LOSS_PAD = 36, LOSS_COLUMNS = LOSS_WIDTH - 2 * LOSS_PAD;

// A run's steps folded into the plot's pixel columns as they come, and the chart
// returned: per column its steps' smallest and largest loss, its last step, and the
// smoothed loss there (the server's, over every step). The page keeps the columns and
// not the steps, and a redraw costs the columns: drawing every step took 35 ms a frame
// at 100,000 steps and 427 ms at a million (headless chromium, here).
function foldSteps(r, steps = []) {
  if (!r.chart) r.chart = { lo: Infinity, hi: -Infinity, columns: [] };
  const c = r.chart;
  for (const d of steps) {
    const { step, loss } = d;
    r.last = d;
    const k = Math.min(LOSS_COLUMNS - 1, Math.max(0, Math.floor(LOSS_COLUMNS * step / Math.max(1, r.total))));
    let column = c.columns[c.columns.length - 1];
    if (!column || column.k !== k) c.columns.push(column = { k, lo: Infinity, hi: -Infinity });
    column.step = step;
    column.smooth = d.smooth ?? NaN;  // (not finite: none yet)
    if (!Number.isFinite(loss)) continue;
    column.lo = Math.min(column.lo, loss);
    column.hi = Math.max(column.hi, loss);
    c.lo = Math.min(c.lo, loss);
    c.hi = Math.max(c.hi, loss);
  }
  return c;
}

// The loss curves on a canvas: training (each column's range of losses), smoothed and
// validation. The canvas says what it drew (`canvas.drawn`): the steps the curves cover,
// the columns they take and the validations.
function lossChart() {
  const width = LOSS_WIDTH, height = 220, pad = LOSS_PAD;
  const [canvas, g] = canvasIn('loss-chart', width, height);
  g.font = '10px sans-serif';
  g.fillStyle = '#222';
  g.fillText('loss: training (gray), smoothed (black), validation (red dots)', pad, 12);
  const c = foldSteps(run);
  let lo = c.lo, hi = c.hi;
  for (const v of run.validations) {
    if (!Number.isFinite(v.loss)) continue;
    lo = Math.min(lo, v.loss);
    hi = Math.max(hi, v.loss);
  }
  if (lo > hi) return canvas;
  const x = (step) => pad + (width - 2 * pad) * step / Math.max(1, run.total);
  const y = (loss) => height - pad - (height - 2 * pad) * (loss - lo) / Math.max(1e-9, hi - lo);
  // (a point that is not finite is left out: the canvas ignores it)
  g.strokeStyle = '#bbb';
  g.lineWidth = 1;
  g.beginPath();
  for (const column of c.columns) {
    g.lineTo(x(column.step), y(column.hi));
    g.lineTo(x(column.step), y(column.lo));
  }
  g.stroke();
  g.strokeStyle = '#222';
  g.lineWidth = 2;
  g.beginPath();
  for (const column of c.columns) g.lineTo(x(column.step), y(column.smooth));
  g.stroke();
  g.fillStyle = '#b2182b';
  for (const v of run.validations) {
    g.beginPath();
    g.arc(x(v.step), y(v.loss), 3, 0, 2 * Math.PI);
    g.fill();
  }
  // hovering names the losses at the step under the mouse (its column's, and a
  // validation's within 3 pixels)
  const validations = run.validations;
  canvas.onmousemove = (event) => {
    const at = event.clientX - canvas.getBoundingClientRect().left;
    let near = null;
    for (const column of c.columns) if (near === null || Math.abs(x(column.step) - at) < Math.abs(x(near.step) - at)) near = column;
    const v = validations.find((u) => Math.abs(x(u.step) - at) <= 3);
    canvas.title = near === null ? '' : lossTip(near) + (v ? `; validation ${v.loss.toFixed(4)} at step ${v.step}` : '');
  };
  g.fillStyle = '#222';
  g.fillText(hi.toFixed(2), 0, y(hi) + 4);
  g.fillText(lo.toFixed(2), 0, y(lo) + 4);
  stepAxis(canvas, pad, run.total);
  // (the steps it covers, though a long run's batches hold only some of theirs)
  const covered = run.last ? run.last.step - run.first : 0;
  Object.assign(canvas.drawn, { steps: covered, columns: c.columns.length, validations: run.validations.length });
  return canvas;
}

// A loss chart's column as words: its last step, its losses (their range, when the column
// holds several steps) and the smoothed loss there.
function lossTip(column) {
  const losses = column.lo === column.hi ? column.lo.toFixed(4) : `${column.lo.toFixed(4)} to ${column.hi.toFixed(4)}`;
  return `step ${column.step}: loss ${losses}` + (Number.isFinite(column.smooth) ? `, smoothed ${column.smooth.toFixed(4)}` : '');
}

const thousands = new Intl.NumberFormat();  // (made once: toLocaleString makes one a call)
function showStatus() {
  const last = run.last;
  const status = document.getElementById('train-status');
  if (!last) return;
  const seconds = (performance.now() - run.started) / 1000;
  const perStep = seconds / Math.max(1, last.step - run.first);
  const left = Math.max(0, (run.total - last.step) * perStep);
  status.textContent = run.ended || `step ${last.step} / ${run.total}, loss ${last.loss.toFixed(4)}, ` +
    `${thousands.format(Math.round(run.tokens / Math.max(1e-9, seconds)))} tokens/s, ${Math.round(left)} s left`;
  lossChart();
}

async function trainCall(path, body) {
  const error = document.getElementById('train-error');
  error.hidden = true;
  try {
    return await call(path, body);
  } catch (e) {
    error.textContent = e.message;
    error.hidden = false;
    return null;
  }
}

document.getElementById('train-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const request = { name: form.get('name'), engine: form.get('engine'), data: form.get('data') };
  if (form.get('preset')) request.preset = form.get('preset');
  // the inputs (model/inputs.h), sent when not the default (which the reference engine needs)
  for (const [key, fallback] of [['wte', 'learned'], ['wpe', 'learned'], ['combine', 'add']]) {
    if (form.get(key) !== fallback) request[key] = form.get(key);
  }
  for (const key of ['steps', 'batch_size', 'n_layer', 'n_embd', 'n_head', 'block_size', 'lr', 'warmup', 'seed', 'val_frac',
    'snapshot_every']) {
    if (form.get(key) !== '') request[key] = Number(form.get(key));
  }
  if (request.preset) {  // a preset's own sizes and format
    for (const key of ['batch_size', 'n_layer', 'n_embd', 'n_head', 'block_size', 'lr', 'warmup']) delete request[key];
  } else {
    request.format = form.get('format');
  }
  trainCall('/api/train', request);
});
for (const action of ['pause', 'resume', 'stop']) {
  document.getElementById(action).addEventListener('click', async () => {
    const answer = await trainCall(`/api/train/${action}`, {});
    if (answer) document.getElementById('train-status').textContent = answer.state;
  });
}

// ---- Embeddings: PCA of wte and wpe, aligned from snapshot to snapshot --------------

// Rows (n arrays of d numbers) as one flat array, each less the rows' mean. The PCA works
// on such arrays (Float64Array) only, and each of its loops is a small function of its
// own that runs to its end: V8 then compiles each once. A loop inside a longer function
// was compiled while the function ran (on-stack replacement), before the code after it
// had ever run, and that code then fell back to the interpreter, and V8 compiled it
// again: the browser spent about an eighth more of its time watching a run (README,
// "What watching costs").
function centredMatrix(rows) {
  const n = rows.length, d = rows[0].length;
  const x = new Float64Array(n * d), mean = new Float64Array(d);
  for (let i = 0; i < n; i++) {
    const r = rows[i];
    for (let j = 0; j < d; j++) {
      x[i * d + j] = r[j];
      mean[j] += r[j];
    }
  }
  for (let j = 0; j < d; j++) mean[j] /= n;
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) x[i * d + j] -= mean[j];
  return { x, n, d };
}

// The dot product of a[ai...] and b[bi...], of length `length`: the loop of every
// product in the PCA.
function dotAt(a, ai, b, bi, length) {
  let s0 = 0, s1 = 0, s2 = 0, s3 = 0, k = 0;  // (four sums: the additions need not wait for each other)
  for (; k + 4 <= length; k += 4) {
    s0 += a[ai + k] * b[bi + k];
    s1 += a[ai + k + 1] * b[bi + k + 1];
    s2 += a[ai + k + 2] * b[bi + k + 2];
    s3 += a[ai + k + 3] * b[bi + k + 3];
  }
  for (; k < length; k++) s0 += a[ai + k] * b[bi + k];
  return (s0 + s1) + (s2 + s3);
}

function dot(a, b) {
  return dotAt(a, 0, b, 0, a.length);
}

// v made a unit vector at right angles to `against` (a unit vector, or null); left all
// zero when nothing of it is left (a matrix of one row has no second axis).
function unitAgainst(v, against) {
  if (against !== null) {
    const along = dot(v, against);
    for (let i = 0; i < v.length; i++) v[i] -= along * against[i];
  }
  const norm = Math.sqrt(dot(v, v));
  for (let i = 0; i < v.length; i++) v[i] = norm > 1e-300 ? v[i] / norm : 0;
  return v;
}

// w = the m-by-m matrix (flat) times q.
function timesMatrix(matrix, m, q, w) {
  for (let i = 0; i < m; i++) w[i] = dotAt(matrix, i * m, q, 0, m);
}

// a and b turned by the angle of cosine c and sine s within their plane, in place.
function turn(a, b, c, s) {
  for (let i = 0; i < a.length; i++) {
    const ai = a[i], bi = b[i];
    a[i] = c * ai + s * bi;
    b[i] = c * bi - s * ai;
  }
}

// |w - l q|: how far q is from an eigenvector of eigenvalue l, w being the matrix times q.
function residual(w, q, l) {
  let s = 0;
  for (let i = 0; i < w.length; i++) s += (w[i] - l * q[i]) ** 2;
  return Math.sqrt(s);
}

// The two leading eigenvectors of a symmetric m-by-m matrix (flat), into q0 and q1, by
// subspace iteration from what they hold: the pair is multiplied by the matrix, turned
// within its plane to the eigenvectors of the 2-by-2 problem there (Rayleigh-Ritz), and
// made orthonormal again, until each is an eigenvector to within 1e-4 of the largest
// eigenvalue: on the 81 snapshots of a makemore run, every point then sits within a
// fifth of a pixel of where the exact axes put it, after 75 rounds a snapshot (tokens
// and positions) started from the last snapshot's axes.
function topTwo(matrix, m, q0, q1) {
  unitAgainst(q0, null);
  unitAgainst(q1, q0);
  const w0 = new Float64Array(m), w1 = new Float64Array(m);
  for (let round = 0; round < 300; round++) {  // (close eigenvalues: 300 rounds at most)
    timesMatrix(matrix, m, q0, w0);
    timesMatrix(matrix, m, q1, w1);
    // the plane's 2-by-2 problem [[h00, h01], [h01, h11]], turned by t: the larger first
    const h00 = dot(q0, w0), h01 = dot(q0, w1), h11 = dot(q1, w1);
    const t = 0.5 * Math.atan2(2 * h01, h00 - h11), c = Math.cos(t), s = Math.sin(t);
    turn(q0, q1, c, s);
    turn(w0, w1, c, s);
    const l0 = c * c * h00 + 2 * c * s * h01 + s * s * h11, l1 = s * s * h00 - 2 * c * s * h01 + c * c * h11;
    if (Math.max(residual(w0, q0, l0), residual(w1, q1, l1)) <= 1e-4 * Math.abs(l0)) return;
    q0.set(w0);
    q1.set(w1);
    unitAgainst(q0, null);
    unitAgainst(q1, q0);
  }
}

// The n-by-n matrix of the dot products of n rows of width d (flat).
function gramMatrix(x, n, d) {
  const gram = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) gram[i * n + j] = gram[j * n + i] = dotAt(x, i * d, x, j * d, d);
  return gram;
}

// The d-by-d sum of the outer products of n rows of width d (flat) with themselves: the
// Gram matrix of the columns, each laid out in a row of its own first: its dot products
// then read memory in order (1024 rows of 384: 270 ms before, 150 ms with dotAt's four
// sums, in node here).
function scatterMatrix(x, n, d) {
  const columns = new Float64Array(n * d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) columns[j * n + i] = x[i * d + j];
  return gramMatrix(columns, d, n);
}

// Each of n rows of width d (flat) dotted with an axis.
function projectOn(x, n, d, axis) {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = dotAt(x, i * d, axis, 0, d);
  return out;
}

// The n rows of width d (flat) weighted by u and summed.
function weightedRows(x, n, d, u) {
  const out = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) out[j] += u[i] * x[i * d + j];
  return out;
}

function negate(v) {
  for (let i = 0; i < v.length; i++) v[i] = -v[i];
}

// 1, cos 1, cos 2, ... (shifted by k): where the first snapshot's iteration starts.
function fallbackStart(k, m) {
  const v = new Float64Array(m);
  for (let i = 0; i < m; i++) v[i] = Math.cos(i + k);
  return v;
}

// The first two principal axes of a centred matrix (centredMatrix: n rows of width d),
// each turned to agree with `previous` (the last snapshot's axes) so that points move
// rather than flip. The iteration runs on the smaller of the n-by-n Gram matrix and the
// d-by-d scatter matrix, started from the previous axes.
function principalAxes({ x, n, d }, previous) {
  let a0, a1;
  if (n < d) {
    // started from the rows' coordinates on the previous axes; an axis is then the rows
    // weighted by its eigenvector of the Gram matrix
    const u0 = previous === null ? fallbackStart(0, n) : projectOn(x, n, d, previous[0]);
    const u1 = previous === null ? fallbackStart(1, n) : projectOn(x, n, d, previous[1]);
    topTwo(gramMatrix(x, n, d), n, u0, u1);
    a0 = unitAgainst(weightedRows(x, n, d, u0), null);
    a1 = unitAgainst(weightedRows(x, n, d, u1), null);
  } else {
    a0 = previous === null ? fallbackStart(0, d) : Float64Array.from(previous[0]);
    a1 = previous === null ? fallbackStart(1, d) : Float64Array.from(previous[1]);
    topTwo(scatterMatrix(x, n, d), d, a0, a1);
  }
  if (previous !== null && dot(previous[0], a0) < 0) negate(a0);
  if (previous !== null && dot(previous[1], a1) < 0) negate(a1);
  return [a0, a1];
}

// A centred matrix's rows, or rows (arrays), as points [x, y] on two axes.
function project(rows, axes) {
  if (Array.isArray(rows)) rows = { x: Float64Array.from(rows.flat()), n: rows.length, d: rows[0].length };
  const xs = projectOn(rows.x, rows.n, rows.d, axes[0]), ys = projectOn(rows.x, rows.n, rows.d, axes[1]);
  return Array.from(xs, (v, i) => [v, ys[i]]);
}

// (plain loops: the views take thousands of these a frame, and Math.hypot is slow)
function cosine(a, b) {
  let ab = 0, aa = 0, bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += a[i] * b[i];
    aa += a[i] * a[i];
    bb += b[i] * b[i];
  }
  return ab / (Math.sqrt(aa) * Math.sqrt(bb) || 1);
}

function classSimilarity(wte, r = run) {
  const groups = { vowels: [], consonants: [] };
  r.classes.forEach((c, id) => {
    if (c === 'vowel' || c === 'consonant') groups[`${c}s`].push(wte[id]);
  });
  const mean = (pairs) => pairs.length ? pairs.reduce((s, x) => s + x, 0) / pairs.length : NaN;
  const within = (g) => mean(g.flatMap((a, i) => g.slice(i + 1).map((b) => cosine(a, b))));
  return {
    vowels: within(groups.vowels),
    consonants: within(groups.consonants),
    across: mean(groups.vowels.flatMap((a) => groups.consonants.map((b) => cosine(a, b)))),
  };
}

// A matrix of a snapshot as the page asks for them (/api/events?snapshots=float32):
// {rows, cols, float32: base64 of little-endian float32s, row after row}, as rows (views
// of one Float32Array). Less than half the bytes of the decimals, which were nine
// tenths of a run's stream, and no numbers to parse (README, "What watching costs").
function float32Rows(m) {
  const text = atob(m.float32), bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  const view = new DataView(bytes.buffer), values = new Float32Array(m.rows * m.cols);
  for (let i = 0; i < values.length; i++) values[i] = view.getFloat32(4 * i, true);
  return Array.from({ length: m.rows }, (_, r) => values.subarray(r * m.cols, (r + 1) * m.cols));
}

// The slider is set when the snapshots are drawn, not as each comes: changing the page
// makes the browser draw a frame, and a run sends snapshots faster than the views redraw.
function addSnapshot(s) {
  run.snapshots.push({ step: s.step, wte: float32Rows(s.wte), wpe: float32Rows(s.wpe) });
  later(drawSnapshot, 'embeddings');
}

// The slider reaches to the last snapshot, and stays on it if it was there.
function extendSlider() {
  const slider = document.getElementById('snapshot');
  const following = Number(slider.value) >= Number(slider.max);
  slider.max = Math.max(0, run.snapshots.length - 1);
  if (following) slider.value = slider.max;
}

// A run's snapshots not yet analysed (PCA, similarities), in order, each one's axes
// turned to agree with the one before. Done when they are first drawn, not as they come.
function analyse(r) {
  r.snapshots.forEach((s, i) => {
    if (s.tokenAxes) return;
    const previous = i > 0 ? r.snapshots[i - 1] : null;
    const tokens = centredMatrix(s.wte), positions = centredMatrix(s.wpe);
    s.tokenAxes = principalAxes(tokens, previous === null ? null : previous.tokenAxes);
    s.positionAxes = principalAxes(positions, previous === null ? null : previous.positionAxes);
    s.tokenPoints = project(tokens, s.tokenAxes);
    s.positionPoints = project(positions, s.positionAxes);
    s.similarity = classSimilarity(s.wte, r);
  });
}

// Points on a square canvas (a snapshot's tokens, positions, sums) on their principal
// axes, each drawn as its label, in its colour; `path` joins them in order.
const SCATTER = 300;
function scatter(canvas, points, labels, colors, path) {
  const size = SCATTER, pad = 34;  // room for labels such as 0:<BOS> at the edges
  const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
  const span = Math.max(1e-9, ...xs.map(Math.abs), ...ys.map(Math.abs));
  const at = (p) => [size / 2 + (size / 2 - pad) * p[0] / span, size / 2 - (size / 2 - pad) * p[1] / span];
  if (path) curve(canvas, points.map(at), '#999', 1);
  const g = canvas.getContext('2d');
  g.font = '12px sans-serif';
  g.textAlign = 'center';
  points.forEach((p, i) => {
    if (labels[i] === '') return;  // a point on the path without a label of its own
    const [x, y] = at(p);
    g.fillStyle = colors[i];
    g.fillText(labels[i], x, y);
    canvas.drawn.labels.push({ text: labels[i], x, y, color: colors[i], index: i });
  });
  return canvas;
}

// The label drawn nearest to where the mouse is on a scatter's canvas, within 10 pixels
// of its middle, or null.
function labelAt(canvas, event) {
  const box = canvas.getBoundingClientRect();
  const x = event.clientX - box.left, y = event.clientY - box.top;
  let nearest = null, best = 10 * 10;
  for (const label of canvas.drawn.labels) {
    const d = (label.x - x) ** 2 + (label.y - 4 - y) ** 2;
    if (d < best) [nearest, best] = [label, d];
  }
  return nearest;
}

// Token id's label in run r: its character's as the server tells it (<space>, \n: as
// `microgpt embed` shows them), or <BOS> (the id after the characters).
function tokenLabel(r, id) {
  return r.labels[id] ?? '<BOS>';
}
function tokenLabels(r, s) {
  return s.wte.map((_, id) => tokenLabel(r, id));
}

// A snapshot's tokens on its principal axes, vowels red, consonants blue, the rest gray
// (the server's classes: accented letters and capitals too, as `microgpt embed` has them).
const CLASS_COLORS = { vowel: '#b2182b', consonant: '#2166ac' };
function tokenScatter(canvas, r, s) {
  const colors = s.wte.map((_, id) => CLASS_COLORS[r.classes[id]] ?? '#777');
  return scatter(canvas, s.tokenPoints, tokenLabels(r, s), colors, false);
}

// A snapshot's positions on their principal axes, joined in order; a long context's
// labelled every so often (at most 64 labels and the last: a thousand would hide the
// path).
function positionScatter(canvas, s) {
  const n = s.positionPoints.length, every = Math.ceil(n / 64);
  const labels = s.positionPoints.map((_, p) => (p % every === 0 || p === n - 1 ? String(p) : ''));
  return scatter(canvas, s.positionPoints, labels, s.positionPoints.map(() => '#444'), true);
}

function drawSnapshot() {
  extendSlider();
  const s = run.snapshots[Number(document.getElementById('snapshot').value)];
  if (!s) return;
  document.getElementById('snapshot-step').textContent = `step ${s.step}`;
  const labels = tokenLabels(run, s);
  // (the views on the principal axes or of the similarities analyse the snapshots
  // first: none does while none of them is on the screen)
  const views = {
    'pca': () => {
      analyse(run);
      const [tokens] = canvasIn('pca-tokens', SCATTER, SCATTER);
      tokenScatter(tokens, run, s);
      tokens.onmousemove = (event) => {
        const label = labelAt(tokens, event);
        if (label === null) return;
        const i = label.index;
        const near = s.wte.map((row, j) => [j, cosine(s.wte[i], row)]).filter(([j]) => j !== i)
          .sort((a, b) => b[1] - a[1]).slice(0, 5);
        document.getElementById('neighbours').textContent = `nearest to ${labels[i]}: ` +
          near.map(([j, c]) => `${labels[j]} ${c.toFixed(2)}`).join(', ');
      };
      positionScatter(canvasIn('pca-positions', SCATTER, SCATTER)[0], s);
    },
    'similarity': () => {
      analyse(run);
      similarityChart(canvasIn('similarity', 640, 160)[0]);
    },
    'sums': () => {
      analyse(run);
      sumsPath(s);
    },
    'follow-chart': () => followChart(canvasIn('follow-chart', 640, 160)[0]),
    'heatmap': () => cosineHeatmap(s, labels),
  };
  // each view drawn if it is on the screen, else when it comes into view; its element
  // says which snapshot it shows (`step`)
  for (const [id, draw] of Object.entries(views)) {
    onScreen(id, () => {
      draw();
      document.getElementById(id).step = s.step;
    });
  }
}

// wte[token] + wpe[position] for <BOS> + a word (a text model: the text alone, line
// breaks and all), each position's sum on the snapshot's token axes (around the tokens'
// mean), joined in order.
function sumsPath(s) {
  const holder = document.getElementById('sums');
  const bos = s.wte.length > run.vocab.length ? run.vocab.length : -1;
  const ids = [...(bos >= 0 ? [bos] : []), ...[...document.getElementById('receives').value].map((c) => run.vocab.indexOf(c))];
  // (a text model's empty text has no position at all)
  if (ids.length === 0 || ids.some((id) => id < 0) || ids.length > s.wpe.length) {
    const note = document.createElement('p');
    note.className = 'note';
    note.textContent = ids.length === 0 ? 'type a text to see what the model receives for it'
      : 'every character must be in the vocabulary, and the word within the context';
    holder.replaceChildren(note);
    return;
  }
  const mean = Array.from(s.wte[0], (_, j) => s.wte.reduce((t, r) => t + r[j], 0) / s.wte.length);
  const sums = ids.map((id, p) => Array.from(s.wte[id], (v, j) => v + s.wpe[p][j] - mean[j]));
  const points = project(sums, s.tokenAxes);
  const labels = ids.map((id, p) => `${p}:${tokenLabel(run, id)}`);
  scatter(canvasIn(holder, SCATTER, SCATTER)[0], points, labels, labels.map(() => '#444'), true);
}

// Every pair of tokens' cosine similarity at a snapshot (blue -1, white 0, red 1), on a
// canvas (hundreds of cells redrawn as the run goes); hovering a cell names the pair.
const heatmapCells = document.createElement('canvas');  // off the page
function cosineHeatmap(s, labels) {
  const n = s.wte.length, cell = Math.max(6, Math.min(14, Math.floor(420 / n))), pad = 34;
  const [canvas, g] = canvasIn('heatmap', 2 * pad + n * cell, pad + n * cell);
  canvas.className = 'heatmap';
  const sims = s.wte.map((a) => s.wte.map((b) => cosine(a, b)));
  // a pixel per cell, scaled up without smoothing (a fill per cell, each parsing its
  // colour, is slow)
  const image = new ImageData(n, n);
  sims.forEach((row, i) => row.forEach((c, j) => image.data.set([...divergingRGB(c, 1), 255], 4 * (i * n + j))));
  heatmapCells.width = heatmapCells.height = n;
  heatmapCells.getContext('2d').putImageData(image, 0, 0);
  g.imageSmoothingEnabled = false;
  g.drawImage(heatmapCells, pad, pad, n * cell, n * cell);
  // each token's label left of its row and above its column; one wider than a character
  // (<BOS>, <space>) turned upright above its column, and squeezed into the margin if
  // need be
  g.font = `${Math.min(10, cell)}px sans-serif`;
  g.fillStyle = '#222';
  for (let i = 0; i < n; i++) {
    g.textAlign = 'end';
    g.fillText(labels[i], pad - 3, pad + i * cell + cell - 2, pad - 4);
    if (labels[i].length > 1) {
      g.save();
      g.translate(pad + i * cell + cell / 2 + 3, pad - 4);
      g.rotate(-Math.PI / 2);
      g.textAlign = 'start';
      g.fillText(labels[i], 0, 0, pad - 6);
      g.restore();
    } else {
      g.textAlign = 'center';
      g.fillText(labels[i], pad + i * cell + cell / 2, pad - 4);
    }
  }
  canvas.onmousemove = (event) => {
    const box = canvas.getBoundingClientRect();
    const j = Math.floor((event.clientX - box.left - pad) / cell), i = Math.floor((event.clientY - box.top - pad) / cell);
    canvas.title = i >= 0 && j >= 0 && i < n && j < n ? `${labels[i]} ~ ${labels[j]}: ${sims[i][j].toFixed(2)}` : '';
  };
}

// Where a cosine (-1 to 1) at a step (0 to `last`) is on a canvas of curves over the
// steps: a function of (step, cosine) to [x, y] pixels. Draws the axes too: the steps
// under the plot, and the cosines 1, 0 and -1 at its left with a faint line at 0.
const CURVES_PAD = 30;
function cosineOverSteps(canvas, last) {
  const width = canvas.width, height = canvas.height, pad = CURVES_PAD;
  const at = (step, c) => [pad + (width - 2 * pad) * step / Math.max(1, last), height - pad - (height - 2 * pad) * (c + 1) / 2];
  const g = canvas.getContext('2d');
  g.strokeStyle = '#ddd';
  g.lineWidth = 1;
  g.beginPath();
  g.moveTo(...at(0, 0));
  g.lineTo(...at(last, 0));
  g.stroke();
  g.font = '10px sans-serif';
  g.fillStyle = '#555';
  g.textAlign = 'end';
  for (const c of [1, 0, -1]) {
    g.fillText(String(c), pad - 4, at(0, c)[1] + 3);
    canvas.drawn.axes.push(String(c));
  }
  stepAxis(canvas, pad, last);
  return at;
}

// The followed token's cosine similarity to its 5 nearest neighbours of the last
// snapshot, at every snapshot: how the neighbourhood formed.
function followChart(canvas) {
  const last = run.snapshots[run.snapshots.length - 1];
  if (!last) return;
  // (a character, or its label: <space>, \n for a text's line break, <BOS>)
  const typed = document.getElementById('follow').value;
  const id = [...Array(last.wte.length).keys()].find((t) => tokenLabel(run, t) === typed) ?? run.vocab.indexOf(typed);
  if (id < 0) return;
  const near = last.wte.map((row, j) => [j, cosine(last.wte[id], row)]).filter(([j]) => j !== id)
    .sort((a, b) => b[1] - a[1]).slice(0, 5).map(([j]) => j);
  const palette = ['#1b9e77', '#d95f02', '#7570b3', '#e7298a', '#66a61e'];
  const at = cosineOverSteps(canvas, last.step);
  near.forEach((j, k) => curve(canvas, run.snapshots.map((s) => at(s.step, cosine(s.wte[id], s.wte[j]))), palette[k]));
  caption(canvas, `cosine similarity of ${tokenLabel(run, id)} to ` +
    near.map((j, k) => `${tokenLabel(run, j)} (${['green', 'orange', 'purple', 'pink', 'olive'][k]})`).join(', '), CURVES_PAD);
}

document.getElementById('follow').addEventListener('input', () => now(drawSnapshot, 'embeddings'));
document.getElementById('receives').addEventListener('input', () => now(drawSnapshot, 'embeddings'));
// (it draws as it is typed: Enter has nothing to send, and Shift+Enter breaks the line)
document.getElementById('receives').addEventListener('keydown', (event) => {
  if (event.key === 'Enter' && !event.shiftKey) event.preventDefault();
});

function similarityChart(canvas, r = run) {
  const at = cosineOverSteps(canvas, r.snapshots[r.snapshots.length - 1].step);
  for (const [key, color] of [['vowels', '#b2182b'], ['consonants', '#2166ac'], ['across', '#777']]) {
    curve(canvas, r.snapshots.filter((s) => Number.isFinite(s.similarity[key])).map((s) => at(s.step, s.similarity[key])), color);
  }
  caption(canvas, canvas.width < 500 ? 'cosine: vowels (red), consonants (blue), across (gray)'
    : 'mean cosine similarity (-1 to 1): within vowels (red), within consonants (blue), across (gray)', CURVES_PAD);
  return canvas;
}

document.getElementById('snapshot').addEventListener('input', () => now(drawSnapshot, 'embeddings'));

// ---- The events of every run, from the first ---------------------------------------

// Redrawing waits: the views are drawn together once for the events that came meanwhile
// (a page that replays a long history draws it once), and only while their section is
// on the screen (else when it comes into view; and the Embeddings section's views each
// only while it is on the screen itself), so that watching takes little from the
// training it watches. The server writes the events 180 ms apart at the least (five and
// a half times a second), and the page draws each write as it comes: one wake-up a frame.
// FRAME_MS is the least time between two frames whatever the writes.
const FRAME_MS = 150;
const waiting = new Set();
let drawing = false;  // a frame that draws what waits is due
let drawn = -Infinity;  // when the last frame drew
const visible = new Set();
const hidden = new Map();  // section or view -> the draw it missed
function later(draw, section) {
  if (section && !visible.has(section)) {
    hidden.set(section, draw);
    return;
  }
  waiting.add(draw);
  if (drawing) return;
  drawing = true;
  // one frame draws every view that waits (the browser paints once, not once per view),
  // no sooner than FRAME_MS after the last one drew
  setTimeout(() => requestAnimationFrame(() => {
    drawing = false;
    drawn = performance.now();
    const draws = [...waiting];
    waiting.clear();
    for (const d of draws) d();
  }), Math.max(0, drawn + FRAME_MS - performance.now()));
}
// Draws a view (of a section being drawn) now if it is on the screen, else when it comes
// into view.
function onScreen(view, draw) {
  if (visible.has(view)) {
    hidden.delete(view);
    draw();
  } else {
    hidden.set(view, draw);
  }
}
// Draws at once, and cancels the drawing that was waiting (or missed while hidden).
function now(draw, section) {
  waiting.delete(draw);
  if (section) hidden.delete(section);
  draw();
}
const observer = new IntersectionObserver((entries) => {
  for (const e of entries) {
    if (!e.isIntersecting) {
      visible.delete(e.target.id);
      continue;
    }
    visible.add(e.target.id);
    if (hidden.has(e.target.id)) {
      const draw = hidden.get(e.target.id);
      hidden.delete(e.target.id);
      later(draw, e.target.id);
    }
  }
});
for (const id of ['train', 'embeddings', 'pca', 'similarity', 'sums', 'follow-chart', 'heatmap', 'compare']) {
  observer.observe(document.getElementById(id));
}

const events = new EventSource('/api/events?snapshots=float32');
events.addEventListener('start', (e) => {
  const d = JSON.parse(e.data);
  run = newRun(d.steps, d.first_step);
  runs.push(run);
  document.getElementById('snapshot').max = 0;
});
events.addEventListener('model', () => showModel());
events.addEventListener('run', (e) => {
  const d = JSON.parse(e.data);
  Object.assign(run, { vocab: d.vocab, labels: d.labels, classes: d.classes, name: d.name, config: d });
  // (a long run's snapshots are spaced out to fit: the server says how)
  if (d.snapshot_every) document.getElementById('snapshot').title = `a snapshot every ${d.snapshot_every} steps`;
  listRuns();
});
// (a long run's batch of steps holds only some of its steps: the server says why)
events.addEventListener('steps', (e) => {
  const batch = JSON.parse(e.data);
  foldSteps(run, batch.steps);
  run.tokens += batch.tokens;
  later(showStatus, 'train');
});
events.addEventListener('validation', (e) => { run.validations.push(JSON.parse(e.data)); later(showStatus, 'train'); });
events.addEventListener('snapshot', (e) => addSnapshot(JSON.parse(e.data)));
events.addEventListener('finished', (e) => {
  const d = JSON.parse(e.data);
  run.ended = `${d.stopped ? 'stopped' : 'finished'} at step ${d.step}; saved ${d.checkpoint}`;
  // the end of a run is drawn at once, whatever was waiting
  now(showStatus, 'train');
  now(drawSnapshot, 'embeddings');
  document.getElementById('train-status').textContent = run.ended;
  later(drawComparison, 'compare');
});
events.addEventListener('error', (e) => {
  if (e.data) document.getElementById('train-status').textContent = JSON.parse(e.data).message;
});

call('/api/presets').then((answer) => {
  const select = document.querySelector('select[name=preset]');
  for (const p of answer.presets) {
    const option = document.createElement('option');
    option.value = p.name;
    option.textContent = p.name;
    option.title = p.description;
    select.append(option);
  }
}).catch(() => {});

// ---- Save and load checkpoints in the server's --out-dir --------------------------

async function listCheckpoints() {
  const answer = await call('/api/checkpoints');
  document.getElementById('checkpoint-names').replaceChildren(...answer.checkpoints.map((n) => {
    const option = document.createElement('option');
    option.value = n;
    return option;
  }));
}

for (const action of ['save', 'load']) {
  document.getElementById(action).addEventListener('click', async () => {
    const name = new FormData(document.getElementById('files-form')).get('name');
    const status = document.getElementById('files-status');
    try {
      const answer = await call(`/api/${action}`, { name });
      status.textContent = action === 'save' ? `saved ${answer.saved}` : `loaded ${answer.path}`;
      await showModel();
      await listCheckpoints();
    } catch (e) {
      status.textContent = e.message;
    }
  });
}
listCheckpoints().catch(() => {});

// ---- Two runs side by side ----------------------------------------------------------

function runLabel(r, i) {
  const c = r.config;
  const inputs = [c.wte && c.wte !== 'learned' ? `wte ${c.wte}` : '', c.wpe && c.wpe !== 'learned' ? `wpe ${c.wpe}` : '',
    c.combine && c.combine !== 'add' ? c.combine : ''].filter(Boolean).map((x) => `, ${x}`).join('');
  return `${i + 1}: ${r.name} (${c.n_layer}x${c.n_embd}, ${c.n_head} heads, context ${c.block_size}, batch ${c.batch_size}, lr ${c.lr}, seed ${c.seed}, ${c.engine}${inputs})`;
}

// Run B follows the newest run and run A the one before, until the user picks others.
const picked = { 'run-a': false, 'run-b': false };

function listRuns() {
  for (const [id, pick] of [['run-a', runs.length - 2], ['run-b', runs.length - 1]]) {
    const select = document.getElementById(id);
    const chosen = picked[id] ? select.value : '';
    select.replaceChildren(...runs.map((r, i) => {
      const option = document.createElement('option');
      option.value = String(i);
      option.textContent = runLabel(r, i);
      return option;
    }));
    select.value = chosen !== '' && Number(chosen) < runs.length ? chosen : String(Math.max(0, pick));
  }
  later(drawComparison, 'compare');
}

// The two runs' views, drawn as a run starts or ends while the section is on the screen
// (else when it comes into view), and at once when the user picks; the section says
// which runs it shows (`runs`).
function drawComparison() {
  const a = runs[Number(document.getElementById('run-a').value)];
  const b = runs[Number(document.getElementById('run-b').value)];
  if (!a || !b) return;
  document.getElementById('compare').runs = [a, b].map((r) => runs.indexOf(r));
  analyse(a);
  analyse(b);
  const width = 640, height = 200, pad = 36;
  const [canvas, g] = canvasIn('compare-loss', width, height);
  const series = [[a, '#b2182b'], [b, '#2166ac']];
  // each run's smoothed loss at the last step of each of its loss chart's columns
  const folded = series.map(([r]) => foldSteps(r));
  const lo = Math.min(...folded.map((c) => c.lo)), hi = Math.max(...folded.map((c) => c.hi));
  if (lo <= hi) {
    const last = Math.max(1, a.total, b.total);
    const y = (loss) => height - pad - (height - 2 * pad) * (loss - lo) / Math.max(1e-9, hi - lo);
    series.forEach(([, color], i) => {
      curve(canvas, folded[i].columns.filter((column) => Number.isFinite(column.smooth)).map((column) =>
        [pad + (width - 2 * pad) * column.step / last, y(column.smooth)]), color);
    });
    // (the losses' range, as the Train section's chart shows it)
    g.font = '10px sans-serif';
    g.fillStyle = '#222';
    g.fillText(hi.toFixed(2), 0, y(hi) + 4);
    g.fillText(lo.toFixed(2), 0, y(lo) + 4);
  }
  caption(canvas, 'smoothed training loss: run A (red), run B (blue)', pad);
  stepAxis(canvas, pad, Math.max(a.total, b.total));
  // Each run's snapshot at the shared slider (or its last, when it has fewer), with the
  // views of the Embeddings section.
  const slider = document.getElementById('compare-snapshot');
  slider.max = Math.max(0, a.snapshots.length - 1, b.snapshots.length - 1);
  const pictures = [a, b].map((r, k) => {
    const box = document.createElement('div');
    box.className = 'run-views';
    const s = r.snapshots[Math.min(Number(slider.value), r.snapshots.length - 1)];
    if (!s) return box;
    const title = document.createElement('div');
    title.textContent = `run ${'AB'[k]} at step ${s.step}`;
    box.append(title, tokenScatter(newCanvas(SCATTER, SCATTER), r, s), positionScatter(newCanvas(SCATTER, SCATTER), s),
      similarityChart(newCanvas(320, 160), r));
    return box;
  });
  document.getElementById('compare-pca').replaceChildren(...pictures);
}

document.getElementById('compare-snapshot').addEventListener('input', drawComparison);
for (const id of ['run-a', 'run-b']) {
  document.getElementById(id).addEventListener('change', () => {
    picked[id] = true;
    drawComparison();
  });
}

// The data to train on: the embedded names, or the file the server was started with.
call('/api/data').then((answer) => {
  if (answer.file === null) return;
  const select = document.querySelector('select[name=data]');
  const option = document.createElement('option');
  option.value = 'file';
  option.textContent = answer.file;
  select.append(option);
  select.value = 'file';
}).catch(() => {});
