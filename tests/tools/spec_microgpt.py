#!/usr/bin/env python3
"""microgpt as docs/algorithm.md describes it, in plain Python: a test oracle.

Written for this project from that description, to make golden files for settings and
data that the reference program's own outputs (tests/data/embedded_default.jsonl,
names_default.jsonl, names_l2_e32_h8.jsonl) do not cover: non-ASCII text, other seeds
and shapes. It reproduces those three files exactly (tests/tools/README.md says how that
was checked), so its output stands in for the reference program's.

  python3 tests/tools/spec_microgpt.py --data FILE --seed 7 ... --log out.jsonl

Slow by design (one Python object per scalar); keep runs small.
"""
import argparse
import json
import math
import random


class Value:
    """A scalar in the graph: value, children, local derivatives (docs/algorithm.md §8)."""
    __slots__ = ("data", "grad", "children", "local_grads")

    def __init__(self, data, children=(), local_grads=()):
        self.data = data
        self.grad = 0
        self.children = children
        self.local_grads = local_grads

    def __add__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        return Value(self.data + other.data, (self, other), (1, 1))

    def __mul__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        return Value(self.data * other.data, (self, other), (other.data, self.data))

    def __pow__(self, exponent):
        return Value(self.data ** exponent, (self,), (exponent * self.data ** (exponent - 1),))

    def log(self):
        return Value(math.log(self.data), (self,), (1 / self.data,))

    def exp(self):
        return Value(math.exp(self.data), (self,), (math.exp(self.data),))

    def relu(self):
        return Value(max(0, self.data), (self,), (float(self.data > 0),))

    def __neg__(self):
        return self * -1

    def __radd__(self, other):
        return self + other

    def __sub__(self, other):
        return self + (-other)

    def __rmul__(self, other):
        return self * other

    def __truediv__(self, other):
        return self * other ** -1

    def backward(self):
        order, seen = [], set()
        stack = [(self, iter(self.children))]
        seen.add(self)
        while stack:  # depth-first post-order, children in order, without recursion
            node, it = stack[-1]
            for child in it:
                if child not in seen:
                    seen.add(child)
                    stack.append((child, iter(child.children)))
                    break
            else:
                order.append(node)
                stack.pop()
        self.grad = 1
        for node in reversed(order):
            for child, local in zip(node.children, node.local_grads):
                child.grad += local * node.grad


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--n-layer", type=int, default=1)
    ap.add_argument("--n-embd", type=int, default=16)
    ap.add_argument("--n-head", type=int, default=4)
    ap.add_argument("--block-size", type=int, default=16)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--temperature", type=float, default=0.5)
    ap.add_argument("--num-samples", type=int, default=20)
    ap.add_argument("--log", required=True)
    a = ap.parse_args()

    random.seed(a.seed)
    with open(a.data, encoding="utf-8") as f:  # text mode: universal newlines
        docs = [line.strip() for line in f.read().strip().split("\n") if line.strip()]
    random.shuffle(docs)
    uchars = sorted(set("".join(docs)))
    BOS = len(uchars)
    vocab_size = len(uchars) + 1

    n_embd, n_head, n_layer, block_size = a.n_embd, a.n_head, a.n_layer, a.block_size
    head_dim = n_embd // n_head

    def matrix(nout, nin, std=0.08):
        return [[Value(random.gauss(0, std)) for _ in range(nin)] for _ in range(nout)]

    sd = {"wte": matrix(vocab_size, n_embd), "wpe": matrix(block_size, n_embd),
          "lm_head": matrix(vocab_size, n_embd)}
    for i in range(n_layer):
        sd[f"layer{i}.attn_wq"] = matrix(n_embd, n_embd)
        sd[f"layer{i}.attn_wk"] = matrix(n_embd, n_embd)
        sd[f"layer{i}.attn_wv"] = matrix(n_embd, n_embd)
        sd[f"layer{i}.attn_wo"] = matrix(n_embd, n_embd)
        sd[f"layer{i}.mlp_fc1"] = matrix(4 * n_embd, n_embd)
        sd[f"layer{i}.mlp_fc2"] = matrix(n_embd, 4 * n_embd)
    params = [p for mat in sd.values() for row in mat for p in row]

    def linear(x, w):
        return [sum(wi * xi for wi, xi in zip(row, x)) for row in w]

    def softmax(logits):
        max_val = max(v.data for v in logits)
        exps = [(v - max_val).exp() for v in logits]
        total = sum(exps)
        return [e / total for e in exps]

    def rmsnorm(x):
        ms = sum(xi * xi for xi in x) / len(x)
        scale = (ms + 1e-5) ** -0.5
        return [xi * scale for xi in x]

    def gpt(token, pos, keys, values):
        x = [t + p for t, p in zip(sd["wte"][token], sd["wpe"][pos])]
        x = rmsnorm(x)
        for li in range(n_layer):
            residual = x
            x = rmsnorm(x)
            q = linear(x, sd[f"layer{li}.attn_wq"])
            k = linear(x, sd[f"layer{li}.attn_wk"])
            v = linear(x, sd[f"layer{li}.attn_wv"])
            keys[li].append(k)
            values[li].append(v)
            x_attn = []
            for h in range(n_head):
                hs = h * head_dim
                q_h = q[hs:hs + head_dim]
                k_h = [ki[hs:hs + head_dim] for ki in keys[li]]
                v_h = [vi[hs:hs + head_dim] for vi in values[li]]
                logits = [sum(q_h[j] * k_h[t][j] for j in range(head_dim)) / head_dim ** 0.5
                          for t in range(len(k_h))]
                weights = softmax(logits)
                x_attn.extend(sum(weights[t] * v_h[t][j] for t in range(len(v_h)))
                              for j in range(head_dim))
            x = linear(x_attn, sd[f"layer{li}.attn_wo"])
            x = [p + r for p, r in zip(x, residual)]
            residual = x
            x = rmsnorm(x)
            x = [xi.relu() for xi in linear(x, sd[f"layer{li}.mlp_fc1"])]
            x = linear(x, sd[f"layer{li}.mlp_fc2"])
            x = [p + r for p, r in zip(x, residual)]
        return linear(x, sd["lm_head"])

    beta1, beta2, eps = 0.85, 0.99, 1e-8
    m = [0.0] * len(params)
    v = [0.0] * len(params)
    log = open(a.log, "w")
    for step in range(a.steps):
        doc = docs[step % len(docs)]
        tokens = [BOS] + [uchars.index(ch) for ch in doc] + [BOS]
        n = min(block_size, len(tokens) - 1)
        keys, values = [[] for _ in range(n_layer)], [[] for _ in range(n_layer)]
        losses = []
        for pos in range(n):
            probs = softmax(gpt(tokens[pos], pos, keys, values))
            losses.append(-probs[tokens[pos + 1]].log())
        loss = (1 / n) * sum(losses)
        loss.backward()
        lr_t = a.lr * (1 - step / a.steps)
        for i, p in enumerate(params):
            m[i] = beta1 * m[i] + (1 - beta1) * p.grad
            v[i] = beta2 * v[i] + (1 - beta2) * p.grad ** 2
            m_hat = m[i] / (1 - beta1 ** (step + 1))
            v_hat = v[i] / (1 - beta2 ** (step + 1))
            p.data -= lr_t * m_hat / (v_hat ** 0.5 + eps)
            p.grad = 0
        log.write(json.dumps({"step": step + 1, "loss": loss.data}) + "\n")

    for i in range(a.num_samples):
        keys, values = [[] for _ in range(n_layer)], [[] for _ in range(n_layer)]
        token, out = BOS, []
        for pos in range(block_size):
            probs = softmax([l / a.temperature for l in gpt(token, pos, keys, values)])
            token = random.choices(range(vocab_size), weights=[p.data for p in probs])[0]
            if token == BOS:
                break
            out.append(uchars[token])
        log.write(json.dumps({"sample": i + 1, "text": "".join(out)}) + "\n")
    log.close()


if __name__ == "__main__":
    main()
