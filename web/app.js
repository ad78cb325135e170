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
  const c = m.config;
  line.textContent = `${m.path}: ${c.n_layer} layer${c.n_layer > 1 ? 's' : ''}, ${c.n_embd} wide, ` +
    `${c.n_head} heads, block ${c.block_size}, ${m.vocab.length} characters, ` +
    `${m.num_params.toLocaleString()} parameters, step ${m.step} of ${m.steps} (${m.engine} engine, ${m.format})`;
}

function numberOr(value, fallback) {
  return value === '' ? fallback : Number(value);
}

async function draw(event) {
  event.preventDefault();
  const form = new FormData(event.target);
  const error = document.getElementById('write-error');
  const list = document.getElementById('samples');
  error.hidden = true;
  try {
    const answer = await call('/api/sample', {
      temperature: numberOr(form.get('temperature'), 0.5),
      top_k: numberOr(form.get('top_k'), 0),
      top_p: numberOr(form.get('top_p'), 1),
      prefix: form.get('prefix'),
      num_samples: numberOr(form.get('num_samples'), 10),
      seed: numberOr(form.get('seed'), 42),
    });
    list.replaceChildren(...answer.samples.map((s) => {
      const item = document.createElement('li');
      item.textContent = s;
      return item;
    }));
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
function diverging(value, scale) {
  const t = Math.max(-1, Math.min(1, value / scale));
  const fade = (c) => Math.round(255 - (255 - c) * Math.abs(t));
  return t < 0 ? `rgb(${fade(33)},${fade(102)},${fade(172)})` : `rgb(${fade(178)},${fade(24)},${fade(43)})`;
}

function strips(positions) {
  const scale = Math.max(1e-9, ...positions.flatMap((p) => [...p.wte, ...p.wpe, ...p.sum].map(Math.abs)));
  const cell = 8, label = 70, width = label + cell * positions[0].sum.length;
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
          const r = svgElement('rect', { x: label + k * cell, y, width: cell, height: cell, fill: diverging(v, scale) });
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
  const T = rows.length, cell = 16, pad = 20;
  const svg = svgElement('svg', { width: pad + T * cell, height: pad + T * cell + 14, role: 'img' });
  const caption = svgElement('text', { x: 0, y: 10, 'font-size': 10 });
  caption.textContent = title;
  svg.append(caption);
  rows.forEach((row, t) => row.forEach((w, u) => {
    const gray = Math.round(255 * (1 - w));
    const r = svgElement('rect', { x: pad + u * cell, y: 14 + t * cell, width: cell - 1, height: cell - 1, fill: `rgb(${gray},${gray},${gray})` });
    const tip = svgElement('title', {});
    tip.textContent = `${labels[t]} -> ${labels[u]}: ${w.toFixed(3)}`;
    r.append(tip);
    svg.append(r);
  }));
  labels.forEach((l, t) => {
    const text = svgElement('text', { x: 0, y: 14 + t * cell + 11, 'font-size': 9 });
    text.textContent = l;
    svg.append(text);
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
    document.getElementById('strips').replaceChildren(strips(answer.positions));
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
showModel().catch((e) => { document.getElementById('model-line').textContent = e.message; });
