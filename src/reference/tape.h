// The scalar autograd tape of the reference engine: micrograd's Value, stored flat.
//
// Every scalar is a node in one arena (arrays reused across steps), addressed by a
// 32-bit index: its value, its gradient, and up to two children with the local
// derivative with respect to each, computed when the node is made (docs/algorithm.md §8).
// The first nodes are the leaves (the model's parameters); everything after them is
// the graph of one step and is dropped by reset().
//
// Deliberate departures from a literal port, none of which changes a bit:
//  - Constants get no node. In microgpt.py `a + 2.0` makes a leaf Value(2.0), but a
//    leaf has no children and its gradient is never read, so it changes neither the
//    order of the backward walk nor any gradient that matters. A missing child points
//    at node 0, a sink whose gradient is never read. Leaves are not entered in the
//    walk for the same reason.
//  - Python's sum(ai * bi for ...) builds, per term, a product node pi = ai * bi and a
//    sum node si = s(i-1) + pi (s0 = p0 + 0). Here that chain is one dot node with a
//    list of terms (ai, bi). Its value is computed with the same roundings. In the
//    walk it enters a0, b0, a1, b1, ... in that order, just as the chain does, and it
//    is emitted once per term at the place where si would be emitted. Backward, the
//    i-th emission adds bi * g to ai's gradient and then ai * g to bi's, with g the dot
//    node's gradient: the chain passes g down unchanged (1 * g into nodes that have no
//    other parent), so these are the very contributions pi makes, in the same order.
//  - backward() clears the gradients of non-leaf nodes before it runs, so running it
//    twice adds each parameter's gradient twice (micrograd would compound the interior
//    gradients instead).
// A step that would need more than 2^31 nodes or terms (tens of GB of tape) is refused
// with an error rather than wrapping around.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace microgpt {

class Tape {
 public:
  using Id = uint32_t;
  static constexpr Id kSink = 0;

  // A tape whose leaves are nodes 1..n_leaves, all zero.
  explicit Tape(int64_t n_leaves);

  Id leaf(int64_t i) const { return static_cast<Id>(1 + i); }
  int64_t n_leaves() const { return n_leaves_; }
  int64_t size() const { return static_cast<int64_t>(size_); }

  double value(Id id) const { return value_[id]; }
  double grad(Id id) const { return grad_[id]; }
  void set_value(Id id, double v) { value_[id] = v; }
  void set_grad(Id id, double g) { grad_[id] = g; }

  // The operations of micrograd's Value; `c` is a plain number.
  Id add(Id a, Id b) { return make(value(a) + value(b), a, 1.0, b, 1.0); }
  Id add(Id a, double c) { return make(value(a) + c, a, 1.0, kSink, 1.0); }
  Id mul(Id a, Id b) { return make(value(a) * value(b), a, value(b), b, value(a)); }
  Id mul(Id a, double c) { return make(value(a) * c, a, c, kSink, value(a)); }
  Id pow(Id a, double c);
  Id log(Id a);
  Id exp(Id a);
  Id relu(Id a);
  Id neg(Id a) { return mul(a, -1.0); }                    // -a is a * -1
  Id sub(Id a, Id b) { return add(a, neg(b)); }            // a - b is a + (-b)
  Id sub(Id a, double c) { return add(a, -c); }
  Id div(Id a, Id b) { return mul(a, pow(b, -1.0)); }      // a / b is a * b**-1
  Id div(Id a, double c);                                  // a * c**-1
  // Python's sum(): ((a0 + 0) + a1) + ... + ak.
  Id sum(std::span<const Id> terms);
  // Python's sum(ai * bi for ai, bi in zip(a, b)), as one dot node (see above).
  Id dot(std::span<const Id> a, std::span<const Id> b);

  // Gradients of `root` by reverse-mode: a depth-first post-order from root (children
  // in order, each node once), walked backwards, each node adding local * its grad
  // into its children. Leaf gradients accumulate across calls until zero_leaf_grads().
  void backward(Id root);
  void zero_leaf_grads();

  // Drops every non-leaf node; leaf values and gradients stay.
  void reset() {
    size_ = static_cast<size_t>(n_leaves_) + 1;
    terms_.clear();
  }

 private:
  // A node's children. A dot node has no children of its own: c[0] is kDot plus the
  // index of its first term and c[1] the number of terms.
  struct Children {
    Id c[2];
  };
  struct Locals {
    double d[2];  // d value / d c[i]
  };
  struct Term {
    Id a, b;
    Id dot;  // the dot node the term belongs to
  };
  static constexpr Id kDot = Id{1} << 31;

  Id make(double value, Id c0, double d0, Id c1, double d1) {
    if (size_ == capacity_) grow();
    value_[size_] = value;
    children_[size_] = Children{{c0, c1}};
    locals_[size_] = Locals{{d0, d1}};
    return static_cast<Id>(size_++);
  }
  void grow();

  // The arena, one array per field: the backward walk touches only what it needs.
  std::vector<double> value_;
  std::vector<double> grad_;
  std::vector<Children> children_;
  std::vector<Locals> locals_;
  std::vector<Term> terms_;
  size_t size_ = 0;
  size_t capacity_ = 0;
  int64_t n_leaves_ = 0;

  struct PowMemo {  // the last pow(): arguments as bits (so -0.0 is not 0.0)
    bool valid = false;
    uint64_t x_bits = 0, c_bits = 0;
    double value = 0.0, local = 0.0;
  };
  PowMemo pow_memo_;

  // Scratch for backward(), kept to avoid reallocating every step.
  struct Frame {
    Id node;
    uint32_t next;  // the next child slot to look at
  };
  std::vector<Frame> stack_;
  std::vector<Id> order_;  // emitted nodes, and terms tagged with kDot
  std::vector<uint8_t> visited_;
};

}  // namespace microgpt
