#include "train/data_parallel.h"

#include <algorithm>
#include <cstdio>
#include <string_view>

#include "core/files.h"

namespace microgpt {

namespace {

std::vector<int64_t> row_starts(std::span<const DocRef> docs, int64_t block_size) {
  std::vector<int64_t> starts{0};
  for (const DocRef& d : docs) starts.push_back(starts.back() + predicted_rows(d, block_size));
  return starts;
}

std::string quoted_list(const std::vector<std::pair<std::string, std::string>>& settings, size_t i) {
  return settings[i].first + " " + settings[i].second;
}

}  // namespace

DataParallel::DataParallel(ProcessGroup& group, bool zero, int64_t check_every)
    : group_(group), zero_(zero), check_every_(check_every) {}

std::vector<int64_t> DataParallel::part_bounds(int64_t params) const {
  std::vector<int64_t> bounds;
  for (int64_t r = 0; r < group_.size(); r++) bounds.push_back(param_part(params, r, group_.size()).begin);
  bounds.push_back(params);
  return bounds;
}

ParamRange DataParallel::optimizer_part(int64_t params) const {
  return zero_ ? param_part(params, group_.rank(), group_.size()) : ParamRange{0, params};
}

void DataParallel::agree(const std::string& error, int exit_code,
                         const std::vector<std::pair<std::string, std::string>>& settings) {
  // Each process's state as one string: "E<code> <message>", or "S" and its settings,
  // one per line.
  std::string mine;
  if (!error.empty()) {
    mine = "E";  // (appended: GCC 12 warns falsely about "E" + string)
    mine += std::to_string(exit_code) + " " + error;
  } else {
    mine = "S";
    for (const auto& [name, value] : settings) mine += "\n" + name + "\t" + value;
  }
  const std::vector<std::string> all = group_.all_gather(mine);
  // The first rank that failed, and whether every rank failed in the same words.
  for (size_t r = 0; r < all.size(); r++) {
    if (all[r][0] != 'E') continue;
    const size_t space = all[r].find(' ');
    const int code = std::stoi(all[r].substr(1, space - 1));
    const std::string message = all[r].substr(space + 1);
    const bool everywhere = std::all_of(all.begin(), all.end(), [&](const std::string& s) { return s == all[r]; });
    throw GroupError(everywhere ? message : "rank " + std::to_string(r) + " of " + std::to_string(all.size()) + ": " + message,
                     code == 2 ? Error::Kind::usage : Error::Kind::runtime);
  }
  // Settings: every rank's against rank 0's, line by line.
  auto lines = [](const std::string& s) {
    std::vector<std::pair<std::string, std::string>> out;
    size_t at = s.find('\n');
    while (at != std::string::npos) {
      const size_t next = s.find('\n', at + 1);
      const std::string line = s.substr(at + 1, next == std::string::npos ? std::string::npos : next - at - 1);
      const size_t tab = line.find('\t');
      out.emplace_back(line.substr(0, tab), line.substr(tab + 1));
      at = next;
    }
    return out;
  };
  const auto first = lines(all[0]);
  for (size_t r = 1; r < all.size(); r++) {
    const auto other = lines(all[r]);
    for (size_t i = 0; i < std::max(first.size(), other.size()); i++) {
      if (i < first.size() && i < other.size() && first[i] == other[i]) continue;
      const std::string theirs = i < other.size() ? quoted_list(other, i) : "nothing";
      const std::string ours = i < first.size() ? quoted_list(first, i) : "nothing";
      throw GroupError("the processes disagree: rank " + std::to_string(r) + " has " + theirs + ", rank 0 has " + ours +
                           " (every process must train on the same data with the same settings)",
                       Error::Kind::usage);
    }
  }
}

const Batch& DataParallel::share(const Batch& batch, int64_t block_size) {
  const std::vector<int64_t> starts = row_starts(batch.docs, block_size);
  const DocRange mine = batch_part(starts, group_.rank(), group_.size());
  share_.docs.assign(batch.docs.begin() + mine.begin, batch.docs.begin() + mine.end);
  share_.tokens = batch.tokens;
  share_.first_row = batch.first_row + starts[static_cast<size_t>(mine.begin)];
  return share_;
}

double DataParallel::reduce(Engine& engine, const Batch& batch) {
  const std::span<float> g = engine.gradient();
  const int64_t P = static_cast<int64_t>(g.size()), N = group_.size();
  const std::vector<int64_t> bounds = part_bounds(P);
  const std::vector<float> parts = group_.exchange(g, bounds);
  // This process's part of the sum: rank 0's gradient + rank 1's + ..., in that order.
  const int64_t begin = bounds[static_cast<size_t>(group_.rank())];
  const int64_t n = bounds[static_cast<size_t>(group_.rank()) + 1] - begin;
  float* sum = g.data() + begin;
  std::copy(parts.begin(), parts.begin() + n, sum);
  for (int64_t r = 1; r < N; r++) {
    const float* from = parts.data() + r * n;
    for (int64_t i = 0; i < n; i++) sum[i] += from[i];
  }
  if (!zero_) group_.all_gather_parts(g, bounds);
  // The loss: every document's, in batch order.
  const std::vector<double> losses = group_.all_gather(engine.doc_losses());
  double total = 0.0;
  for (double l : losses) total += l;
  return total / static_cast<double>(std::max<int64_t>(1, batch.tokens));
}

bool DataParallel::finish_update(Engine& engine, bool finite) {
  if (!zero_) return finite;  // every process applied the same update to the same weights
  const double mine = finite ? 1.0 : 0.0;
  const std::vector<double> all = group_.all_gather(std::span<const double>(&mine, 1));
  for (std::span<float> w : engine.trained_weights()) group_.all_gather_parts(w, part_bounds(static_cast<int64_t>(w.size())));
  return std::all_of(all.begin(), all.end(), [](double f) { return f == 1.0; });
}

void DataParallel::check_weights(Engine& engine, int64_t step) {
  uint32_t crc = 0;
  for (std::span<float> w : engine.trained_weights()) {
    crc = crc32(std::string_view(reinterpret_cast<const char*>(w.data()), w.size_bytes()), crc);
  }
  char hex[16];
  std::snprintf(hex, sizeof hex, "%08x", crc);
  const std::vector<std::string> all = group_.all_gather(hex);
  for (size_t r = 1; r < all.size(); r++) {
    if (all[r] != all[0]) {
      throw GroupError("the weights of rank " + std::to_string(r) + " differ from rank 0's after step " +
                       std::to_string(step) + " (CRC-32 " + all[r] + " against " + all[0] +
                       "): the processes no longer train the same model");
    }
  }
}

double DataParallel::evaluate(Engine& engine, std::span<const DocRef> docs, int64_t block_size) {
  const std::vector<int64_t> starts = row_starts(docs, block_size);
  const DocRange mine = batch_part(starts, group_.rank(), group_.size());
  engine.evaluate(docs.subspan(static_cast<size_t>(mine.begin), static_cast<size_t>(mine.end - mine.begin)));
  const std::vector<double> losses = group_.all_gather(engine.doc_losses());
  double total = 0.0;
  for (double l : losses) total += l;
  return starts.back() > 0 ? total / static_cast<double>(starts.back()) : 0.0;
}

void DataParallel::gather_state(CheckpointData& c) {
  if (!zero_) return;
  const int64_t P = static_cast<int64_t>(c.params.size());
  const std::vector<int64_t> bounds = part_bounds(P);
  const int64_t begin = bounds[static_cast<size_t>(group_.rank())];
  for (std::vector<double>* moments : {&c.adam_m, &c.adam_v}) {
    std::vector<double> whole(static_cast<size_t>(P), 0.0);
    std::copy(moments->begin(), moments->end(), whole.begin() + begin);
    group_.gather_parts(whole, bounds);
    *moments = std::move(whole);
  }
}

}  // namespace microgpt
