#include "reference/tape.h"

#include <algorithm>
#include <bit>

#include "core/error.h"
#include "core/pymath.h"

namespace microgpt {

namespace {
constexpr size_t kMaxIds = (size_t{1} << 31) - 1;  // ids and term indices stay below kDot
}  // namespace

Tape::Tape(int64_t n_leaves) : n_leaves_(n_leaves) {
  if (n_leaves < 0 || static_cast<uint64_t>(n_leaves) >= kMaxIds / 2) {
    throw Error("reference engine: too many parameters for the scalar tape (" + std::to_string(n_leaves) +
                "); use --engine fast");
  }
  size_ = static_cast<size_t>(n_leaves) + 1;
  capacity_ = size_;
  value_.assign(capacity_, 0.0);
  grad_.assign(capacity_, 0.0);
  children_.assign(capacity_, Children{{kSink, kSink}});
  locals_.assign(capacity_, Locals{{0.0, 0.0}});
}

void Tape::grow() {
  if (capacity_ >= kMaxIds) {
    throw Error("reference engine: one step needs more than 2^31 scalar nodes; use --engine fast for a model this large");
  }
  capacity_ = std::min(kMaxIds, std::max<size_t>(4096, capacity_ * 2));
  value_.resize(capacity_);
  grad_.resize(capacity_);
  children_.resize(capacity_);
  locals_.resize(capacity_);
}

Tape::Id Tape::pow(Id a, double c) {
  // A softmax raises the same total to -1 once per element; pow is pure, so the last
  // result is remembered (each call still makes its own node).
  const double x = value(a);
  const uint64_t x_bits = std::bit_cast<uint64_t>(x);
  const uint64_t c_bits = std::bit_cast<uint64_t>(c);
  PowMemo& m = pow_memo_;
  if (!m.valid || m.x_bits != x_bits || m.c_bits != c_bits) {
    m = PowMemo{true, x_bits, c_bits, pymath::pow(x, c), c * pymath::pow(x, c - 1.0)};
  }
  return make(m.value, a, m.local, kSink, 0.0);
}

Tape::Id Tape::log(Id a) {
  const double x = value(a);
  return make(pymath::log(x), a, 1.0 / x, kSink, 0.0);
}

Tape::Id Tape::exp(Id a) {
  const double e = pymath::exp(value(a));
  return make(e, a, e, kSink, 0.0);
}

Tape::Id Tape::relu(Id a) {
  const double x = value(a);
  return make(x > 0.0 ? x : 0.0, a, x > 0.0 ? 1.0 : 0.0, kSink, 0.0);
}

Tape::Id Tape::div(Id a, double c) { return mul(a, pymath::pow(c, -1.0)); }

Tape::Id Tape::sum(std::span<const Id> terms) {
  if (terms.empty()) throw Error("Tape::sum of nothing");
  Id acc = add(terms[0], 0.0);
  for (size_t i = 1; i < terms.size(); i++) acc = add(acc, terms[i]);
  return acc;
}

Tape::Id Tape::dot(std::span<const Id> a, std::span<const Id> b) {
  if (a.empty() || a.size() != b.size()) throw Error("Tape::dot of mismatched or empty vectors");
  const size_t first = terms_.size();
  if (first + a.size() >= kMaxIds) {
    throw Error("reference engine: one step needs more than 2^31 product terms; use --engine fast for a model this large");
  }
  const Id self = static_cast<Id>(size_);  // the id make() below will return
  const double* v = value_.data();
  double acc = v[a[0]] * v[b[0]] + 0.0;  // (a0 * b0) + 0, then acc + ai * bi
  terms_.push_back(Term{a[0], b[0], self});
  for (size_t i = 1; i < a.size(); i++) {
    acc = acc + v[a[i]] * v[b[i]];
    terms_.push_back(Term{a[i], b[i], self});
  }
  return make(acc, kDot | static_cast<Id>(first), 0.0, static_cast<Id>(a.size()), 0.0);
}

void Tape::zero_leaf_grads() { std::fill(grad_.begin() + 1, grad_.begin() + 1 + n_leaves_, 0.0); }

void Tape::backward(Id root) {
  const Id first = static_cast<Id>(n_leaves_ + 1);  // the first non-leaf node
  const size_t n_interior = size_ - first;
  std::fill(grad_.begin() + first, grad_.begin() + static_cast<std::ptrdiff_t>(size_), 0.0);

  // Depth-first post-order from root over non-leaf nodes, children in order, each node
  // once, without recursion (graphs are tens of thousands of nodes deep). A plain node
  // has child slots 0 and 1 and is emitted after both; a dot node has three slots per
  // term (a, b, emit the term).
  order_.clear();
  order_.reserve(n_interior + terms_.size());
  stack_.clear();
  visited_.assign(n_interior, 0);
  uint8_t* visited = visited_.data() - first;
  const Children* children = children_.data();
  const Term* terms = terms_.data();
  auto enter = [&](Id c) {
    if (c >= first && !visited[c]) {
      visited[c] = 1;
      stack_.push_back(Frame{c, 0});
      return true;
    }
    return false;
  };
  enter(root);
  while (!stack_.empty()) {
    Frame& f = stack_.back();
    const Children ch = children[f.node];
    if (!(ch.c[0] & kDot)) {
      if (f.next < 2) {
        enter(ch.c[f.next++]);  // may invalidate f; the loop re-reads the top
        continue;
      }
      order_.push_back(f.node);
      stack_.pop_back();
      continue;
    }
    const Id first_term = ch.c[0] & ~kDot;
    const uint32_t n_slots = 3 * ch.c[1];
    bool descended = false;
    while (!descended && f.next < n_slots) {  // f dangles once enter() has pushed
      const uint32_t slot = f.next++;
      const Term& t = terms[first_term + slot / 3];
      switch (slot % 3) {
        case 0: descended = enter(t.a); break;
        case 1: descended = enter(t.b); break;
        default: order_.push_back(kDot | (first_term + slot / 3)); break;
      }
    }
    if (!descended) stack_.pop_back();  // its last term's emission was the node's own
  }

  double* grad = grad_.data();
  const double* value = value_.data();
  const Locals* locals = locals_.data();
  grad[root] = 1.0;
  for (size_t k = order_.size(); k-- > 0;) {
    const Id e = order_[k];
    if (e & kDot) {
      const Term& t = terms[e & ~kDot];
      const double g = grad[t.dot];
      grad[t.a] += value[t.b] * g;
      grad[t.b] += value[t.a] * g;
    } else {
      const double g = grad[e];
      grad[children[e].c[0]] += locals[e].d[0] * g;
      grad[children[e].c[1]] += locals[e].d[1] * g;
    }
  }
  grad[kSink] = 0.0;
}

}  // namespace microgpt
