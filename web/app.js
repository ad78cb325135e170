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

document.getElementById('write-form').addEventListener('submit', draw);
showModel().catch((e) => { document.getElementById('model-line').textContent = e.message; });
