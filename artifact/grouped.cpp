// artifact/grouped.cpp — the grouped stream (format: grouped.h): cut the codes out of the payload,
// group them by role, compress each group on its own; and the validating decoder.
#include "artifact/grouped.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <mutex>
#include <thread>

#include "core/error.h"
#include "artifact/golf_coder.h"
#include "artifact/row_distance.h"

namespace golf::artifact {

namespace {

enum Method : uint8_t { kBrotli = 1, kXz = 2, kGolf = 3 };
enum Layout : uint8_t { kRowMajor = 0, kColumnMajor = 1, kReordered = 2 };

constexpr const char* kRoleSuffix[7] = {"",  // tok_emb is matched by its full name
                                        "attn.c_k.weight", "attn.c_q.weight", "attn.c_v.weight",
                                        "attn.proj.weight", "mlp.fc.weight",  "mlp.proj.weight"};
constexpr const char* kGroupNames[kCodeGroups] = {"tok_emb", "attn.c_k", "attn.c_q", "attn.c_v",
                                                  "attn.proj", "mlp.fc", "mlp.proj", "other"};
// The records reorder the rows of these roles only (R0427L "hot" keys).
bool hot(int group) { return group == 0 || group == 2 || group == 5; }

struct Span {
  size_t offset = 0, rows = 0, cols = 0;
  int group = 0, layer = -1;  // layer: the writer's only (layer_index_of)
  size_t size() const { return rows * cols; }
};

template <class T>
void put(Bytes& out, T v) {
  uint8_t b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  out.insert(out.end(), b, b + sizeof(T));
}

// memcpy that accepts the null data() of an empty vector (a zero-byte memcpy from null is UB).
void copy_bytes(void* to, const void* from, size_t n) {
  if (n) std::memcpy(to, from, n);
}

void put_block(Bytes& out, const Bytes& block) {
  put(out, static_cast<uint32_t>(block.size()));
  out.insert(out.end(), block.begin(), block.end());
}

// Runs tasks on all cores, the costliest first when `costs` are given (longest-processing-time
// order: the two big MLP groups must not be the last to start); the first failure is rethrown
// (as golf::Error when it was one).
void run_parallel(std::vector<std::function<void()>>& tasks, const std::vector<size_t>& costs = {}) {
  if (!costs.empty()) {
    std::vector<size_t> order(tasks.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return costs[a] > costs[b]; });
    std::vector<std::function<void()>> sorted;
    for (const size_t i : order) sorted.push_back(std::move(tasks[i]));
    tasks = std::move(sorted);
  }
  const size_t workers = std::clamp<size_t>(std::thread::hardware_concurrency(), 1, std::max<size_t>(tasks.size(), 1));
  std::mutex m;
  size_t next = 0;
  std::string error;
  bool golf_error = false;
  std::vector<std::thread> pool;
  for (size_t w = 0; w < workers; ++w)
    pool.emplace_back([&] {
      for (;;) {
        size_t i;
        {
          std::lock_guard lock(m);
          if (next >= tasks.size() || !error.empty()) return;
          i = next++;
        }
        try {
          tasks[i]();
        } catch (const std::exception& e) {
          std::lock_guard lock(m);
          if (error.empty()) error = e.what(), golf_error = dynamic_cast<const Error*>(&e) != nullptr;
        }
      }
    });
  for (auto& t : pool) t.join();
  if (!error.empty()) {
    if (golf_error) throw Error(error);
    throw std::runtime_error(error);
  }
}

// One group's members laid out for compression; `orders` filled for kReordered.
Bytes lay_out(std::span<const uint8_t> payload, const std::vector<Span>& members, Layout layout,
              std::vector<uint32_t>* orders) {
  Bytes out;
  for (const Span& s : members) {
    const uint8_t* m = payload.data() + s.offset;
    if (layout == kRowMajor) {
      out.insert(out.end(), m, m + s.size());
      continue;
    }
    std::vector<uint32_t> order(s.rows);
    for (size_t r = 0; r < s.rows; ++r) order[r] = static_cast<uint32_t>(r);
    if (layout == kReordered) {
      order = nearest_neighbour_order({reinterpret_cast<const int8_t*>(m), s.size()}, s.rows, s.cols);
      orders->insert(orders->end(), order.begin(), order.end());
    }
    const size_t base = out.size();
    out.resize(base + s.size());
    for (size_t i = 0; i < s.rows; ++i)
      for (size_t c = 0; c < s.cols; ++c) out[base + c * s.rows + i] = m[order[i] * s.cols + c];
  }
  return out;
}

// The inverse of lay_out: writes the members' codes back into `payload`.
void restore(std::span<const uint8_t> data, const std::vector<Span>& members, Layout layout,
             const std::vector<uint32_t>& orders, std::span<uint8_t> payload) {
  size_t pos = 0, order_pos = 0;
  for (const Span& s : members) {
    uint8_t* m = payload.data() + s.offset;
    const uint8_t* d = data.data() + pos;
    if (layout == kRowMajor) {
      copy_bytes(m, d, s.size());
    } else {
      for (size_t i = 0; i < s.rows; ++i) {
        const size_t row = layout == kReordered ? orders[order_pos + i] : i;
        for (size_t c = 0; c < s.cols; ++c) m[row * s.cols + c] = d[c * s.rows + i];
      }
      if (layout == kReordered) order_pos += s.rows;
    }
    pos += s.size();
  }
}

// COMPRESSOR=golf: where the payload's fp16 tail (S and V streams) begins: the end of the last
// span (`spans` by payload offset) rounded up to 8 bytes; none (payload size) without spans or
// when the tail would not be whole u16 words.
size_t fp16_tail_start(const std::vector<Span>& spans, size_t payload_bytes) {
  if (spans.empty()) return payload_bytes;
  const size_t start = (spans.back().offset + spans.back().size() + 7) / 8 * 8;
  return start <= payload_bytes && (payload_bytes - start) % 2 == 0 ? start : payload_bytes;
}

std::vector<std::pair<uint32_t, uint32_t>> shapes_of(const std::vector<Span>& members) {
  std::vector<std::pair<uint32_t, uint32_t>> shapes;
  for (const Span& s : members) shapes.emplace_back(static_cast<uint32_t>(s.rows), static_cast<uint32_t>(s.cols));
  return shapes;
}

// A bounds-checked reader over the stream.
struct Reader {
  std::span<const uint8_t> in;
  const std::string& source;
  size_t pos = 0;
  std::span<const uint8_t> take(size_t n, const char* what) {
    if (n > in.size() - pos)
      fail("{}: truncated grouped stream: {} needs {} bytes, {} are left", source, what, n, in.size() - pos);
    const auto out = in.subspan(pos, n);
    pos += n;
    return out;
  }
  template <class T>
  T get(const char* what) {
    T v;
    std::memcpy(&v, take(sizeof(T), what).data(), sizeof(T));
    return v;
  }
};

}  // namespace

int code_group_of(const std::string& name) {
  if (name == "tok_emb.weight") return 0;
  for (int g = 1; g < 7; ++g) {
    const std::string_view suffix = kRoleSuffix[g];
    if (name.size() > suffix.size() && name.ends_with(suffix) && name[name.size() - suffix.size() - 1] == '.') return g;
  }
  return 7;
}

int layer_index_of(const std::string& name) { return name.starts_with("blocks.") ? std::atoi(name.c_str() + 7) : -1; }

std::string code_group_name(int group) { return group >= 0 && group < kCodeGroups ? kGroupNames[group] : "?"; }

std::vector<uint32_t> nearest_neighbour_order(std::span<const int8_t> codes, size_t rows, size_t cols) {
  std::vector<uint32_t> order;
  if (rows == 0) return order;
  // Codes offset to unsigned bytes (|a − b| is unchanged).
  std::vector<uint8_t> u(codes.size());
  for (size_t i = 0; i < codes.size(); ++i) u[i] = static_cast<uint8_t>(codes[i] + 128);
  // Rows still to place, kept compact and ascending so each step scans only those and the first
  // smallest distance found is the lowest index.
  std::vector<uint32_t> left(rows - 1);
  for (size_t r = 1; r < rows; ++r) left[r - 1] = static_cast<uint32_t>(r);
  order.push_back(0);
  while (!left.empty()) {
    const uint8_t* cur = u.data() + size_t{order.back()} * cols;
    size_t best = 0;
    uint32_t best_distance = std::numeric_limits<uint32_t>::max();
    for (size_t k = 0; k < left.size(); ++k) {
      const uint32_t d = l1_distance(cur, u.data() + size_t{left[k]} * cols, cols);
      if (d < best_distance) best_distance = d, best = k;
    }
    order.push_back(left[best]);
    left.erase(left.begin() + static_cast<std::ptrdiff_t>(best));
  }
  return order;
}

Bytes grouped_encode(std::span<const uint8_t> payload, const std::vector<CodeSpan>& code_spans, const PackOptions& o,
                     GroupedReport* report) {
  if (o.compressor != Compressor::PerGroup && o.compressor != Compressor::Golf)
    fail("grouped streams are written for COMPRESSOR=pergroup or golf, not {}", compressor_name(o.compressor));
  std::vector<Span> spans;
  std::vector<std::vector<Span>> members(kCodeGroups);
  size_t end = 0;
  for (const CodeSpan& c : code_spans) {
    const Span s{c.offset, c.rows, c.cols, code_group_of(c.name), layer_index_of(c.name)};
    if (s.offset < end || s.size() == 0 || s.offset + s.size() > payload.size())
      fail("code span of '{}' at {} ({}x{}) does not fit the payload", c.name, c.offset, c.rows, c.cols);
    end = s.offset + s.size();
    spans.push_back(s);
    members[static_cast<size_t>(s.group)].push_back(s);
  }
  // Each group's members by layer index, as the records concatenate them (the payload holds the
  // tensors by name: blocks.10 before blocks.2); the span list below says this order.
  for (auto& group : members)
    std::stable_sort(group.begin(), group.end(), [](const Span& x, const Span& y) { return x.layer < y.layer; });
  const bool golf = o.compressor == Compressor::Golf;
  const size_t tail = golf ? fp16_tail_start(spans, payload.size()) : payload.size();
  Bytes rest;
  size_t from = 0;
  for (const Span& s : spans) {
    rest.insert(rest.end(), payload.begin() + static_cast<std::ptrdiff_t>(from), payload.begin() + static_cast<std::ptrdiff_t>(s.offset));
    from = s.offset + s.size();
  }
  rest.insert(rest.end(), payload.begin() + static_cast<std::ptrdiff_t>(from), payload.begin() + static_cast<std::ptrdiff_t>(tail));
  std::vector<uint16_t> words((payload.size() - tail) / 2);
  copy_bytes(words.data(), payload.data() + tail, payload.size() - tail);

  // Every (group, layout, method) candidate is one task; the smallest per group wins.
  struct Candidate {
    int group;
    Layout layout;
    Method method;
    BrotliSetting brotli;
    Bytes data, orders;
  };
  std::vector<Bytes> layouts(kCodeGroups * 3);
  std::vector<std::vector<uint32_t>> orders(kCodeGroups);
  std::vector<Candidate> candidates;
  std::vector<std::function<void()>> tasks;
  for (int g = 0; g < kCodeGroups; ++g) {
    if (members[static_cast<size_t>(g)].empty()) continue;
    if (o.compressor == Compressor::Golf) {
      candidates.push_back({g, kRowMajor, kGolf, {}, {}, {}});
      continue;
    }
    const bool reorder = hot(g) && std::all_of(members[static_cast<size_t>(g)].begin(), members[static_cast<size_t>(g)].end(),
                                               [](const Span& s) { return s.rows <= 65536; });
    for (const Layout layout : {kRowMajor, reorder ? kReordered : kColumnMajor}) {
      candidates.push_back({g, layout, kXz, {}, {}, {}});
      for (const BrotliSetting& b : o.brotli_candidates) candidates.push_back({g, layout, kBrotli, b, {}, {}});
    }
  }
  // Layouts first (the reordering is the slow part), then the compressors.
  for (int g = 0; g < kCodeGroups; ++g)
    for (const Layout layout : {kRowMajor, kColumnMajor, kReordered})
      if (std::any_of(candidates.begin(), candidates.end(), [&](const Candidate& c) { return c.group == g && c.layout == layout; }))
        tasks.push_back([&, g, layout] {
          layouts[static_cast<size_t>(g * 3 + layout)] =
              lay_out(payload, members[static_cast<size_t>(g)], layout, layout == kReordered ? &orders[static_cast<size_t>(g)] : nullptr);
        });
  run_parallel(tasks);
  tasks.clear();
  // Costs for the longest-first order: input bytes (golf's per-byte time is ~30× Brotli-11's
  // smaller; the rest is small either way).
  std::vector<size_t> costs;
  for (Candidate& c : candidates) {
    costs.push_back(layouts[static_cast<size_t>(c.group * 3 + c.layout)].size());
    tasks.push_back([&] {
      const Bytes& in = layouts[static_cast<size_t>(c.group * 3 + c.layout)];
      if (c.method == kGolf) {
        c.data = golf_encode_codes({reinterpret_cast<const int8_t*>(in.data()), in.size()},
                                   shapes_of(members[static_cast<size_t>(c.group)]));
      } else {
        c.data = c.method == kXz ? xz_encode(in) : brotli_compress(in, o.brotli_quality, c.brotli);
      }
      if (c.layout == kReordered) {
        Bytes raw;
        for (const uint32_t r : orders[static_cast<size_t>(c.group)]) put(raw, static_cast<uint16_t>(r));
        c.orders = brotli_compress(raw, o.brotli_quality, {22, 0});
      }
    });
  }
  BrotliResult rest_stream;
  tasks.push_back([&] { rest_stream = brotli_best(byte_shuffle(rest, o.shuffle_stride), o.brotli_quality, o.brotli_candidates); });
  costs.push_back(rest.size() * 32);
  Bytes words_stream;
  if (golf) {
    tasks.push_back([&] { words_stream = golf_encode_words(words); });
    costs.push_back(words.size() * 8);
  }
  run_parallel(tasks, costs);

  Bytes out;
  put(out, static_cast<uint32_t>(spans.size()));
  for (const auto& group : members)
    for (const Span& s : group) {
      put(out, static_cast<uint32_t>(s.offset));
      put(out, static_cast<uint32_t>(s.rows));
      put(out, static_cast<uint32_t>(s.cols));
      put(out, static_cast<uint8_t>(s.group));
    }
  put_block(out, rest_stream.stream);
  if (golf) put_block(out, words_stream);
  if (report)
    *report = {static_cast<int64_t>(rest.size() + words.size() * 2),
               static_cast<int64_t>(rest_stream.stream.size() + 4 + (golf ? words_stream.size() + 4 : 0)),
               {},
               static_cast<int64_t>(words.size() * 2),
               golf ? static_cast<int64_t>(words_stream.size() + 4) : 0};
  for (int g = 0; g < kCodeGroups; ++g) {
    const Candidate* best = nullptr;
    const auto cost = [](const Candidate& c) { return c.data.size() + (c.layout == kReordered ? c.orders.size() + 4 : 0); };
    for (const Candidate& c : candidates)
      if (c.group == g && (!best || cost(c) < cost(*best))) best = &c;
    if (!best) continue;
    const size_t start = out.size();
    put(out, static_cast<uint8_t>(best->method));
    put(out, static_cast<uint8_t>(best->layout));
    if (best->layout == kReordered) put_block(out, best->orders);
    put_block(out, best->data);
    if (report) {
      int64_t codes = 0;
      for (const Span& s : members[static_cast<size_t>(g)]) codes += static_cast<int64_t>(s.size());
      report->groups.push_back({g, codes, best->method, best->layout, static_cast<int64_t>(out.size() - start)});
    }
  }
  return out;
}

Bytes grouped_decode(std::span<const uint8_t> stream, size_t payload_bytes, Compressor c, int shuffle_stride,
                     const std::string& source) {
  Reader in{stream, source};
  const auto count = in.get<uint32_t>("the span count");
  if (count > kMaxTensors) fail("{}: span count {} exceeds the format's limit of {}", source, count, kMaxTensors);
  std::vector<Span> spans;  // as listed; sorted by offset below
  std::vector<std::vector<Span>> members(kCodeGroups);
  size_t codes = 0;
  for (uint32_t i = 0; i < count; ++i) {
    Span s;
    s.offset = in.get<uint32_t>("a span");
    s.rows = in.get<uint32_t>("a span");
    s.cols = in.get<uint32_t>("a span");
    s.group = in.get<uint8_t>("a span");
    if (s.group >= kCodeGroups) fail("{}: span {} names group {}, the format has {}", source, i, s.group, kCodeGroups);
    if (s.rows == 0 || s.cols == 0) fail("{}: span {} is empty ({}x{})", source, i, s.rows, s.cols);
    if (s.cols > payload_bytes / s.rows || s.offset + s.size() > payload_bytes)
      fail("{}: span {} ({}x{} at offset {}) runs past the {}-byte payload", source, i, s.rows, s.cols, s.offset,
           payload_bytes);
    codes += s.size();
    spans.push_back(s);
    members[static_cast<size_t>(s.group)].push_back(s);
  }
  std::stable_sort(spans.begin(), spans.end(), [](const Span& x, const Span& y) { return x.offset < y.offset; });
  for (size_t i = 1; i < spans.size(); ++i)
    if (spans[i].offset < spans[i - 1].offset + spans[i - 1].size())
      fail("{}: the spans at payload offsets {} and {} overlap", source, spans[i - 1].offset, spans[i].offset);
  const auto rest_size = in.get<uint32_t>("the rest's length");
  const auto rest_stream = in.take(rest_size, "the rest");
  const size_t tail = c == Compressor::Golf ? fp16_tail_start(spans, payload_bytes) : payload_bytes;
  std::span<const uint8_t> words_stream;
  if (c == Compressor::Golf) words_stream = in.take(in.get<uint32_t>("the fp16 words' length"), "the fp16 words");

  struct Group {
    int group;
    Method method;
    Layout layout;
    std::span<const uint8_t> orders, data;
  };
  std::vector<Group> groups;
  for (int g = 0; g < kCodeGroups; ++g) {
    if (members[static_cast<size_t>(g)].empty()) continue;
    Group gr{g, static_cast<Method>(in.get<uint8_t>("a group's method")), static_cast<Layout>(in.get<uint8_t>("a group's layout")), {}, {}};
    const bool golf_stream = c == Compressor::Golf;
    if (gr.method < kBrotli || gr.method > kGolf || (gr.method == kGolf) != golf_stream)
      fail("{}: group {} has method {}, not valid for COMPRESSOR={}", source, kGroupNames[g], static_cast<int>(gr.method),
           compressor_name(c));
    if (gr.layout > kReordered || (gr.method == kGolf && gr.layout != kRowMajor))
      fail("{}: group {} has layout {}, not valid for its method", source, kGroupNames[g], static_cast<int>(gr.layout));
    if (gr.layout == kReordered) gr.orders = in.take(in.get<uint32_t>("a row order's length"), "a row order");
    gr.data = in.take(in.get<uint32_t>("a group's length"), "a group's data");
    groups.push_back(gr);
  }
  if (in.pos != stream.size()) fail("{}: {} bytes follow the last group of the grouped stream", source, stream.size() - in.pos);

  // Every piece is decoded into its own buffer first (decoders allocate only what their input
  // really yields), side by side; the payload is assembled once all of them succeeded.
  Bytes rest;
  std::vector<uint16_t> words;
  std::vector<Bytes> decoded(groups.size());
  std::vector<std::vector<uint32_t>> group_orders(groups.size());
  std::vector<std::function<void()>> tasks;
  std::vector<size_t> costs;  // compressed bytes: decode time follows them
  tasks.push_back([&] {
    rest = byte_unshuffle(brotli_decompress(rest_stream, tail - codes, source + " (rest)"), shuffle_stride);
  });
  costs.push_back(rest_stream.size());
  if (c == Compressor::Golf) {
    tasks.push_back([&] { words = golf_decode_words(words_stream, (payload_bytes - tail) / 2, source + " (fp16 words)"); });
    costs.push_back(words_stream.size());
  }
  for (size_t gi = 0; gi < groups.size(); ++gi) {
    costs.push_back(groups[gi].data.size());
    tasks.push_back([&, gi] {
      const Group& gr = groups[gi];
      std::vector<uint32_t>& orders = group_orders[gi];
      const auto& mem = members[static_cast<size_t>(gr.group)];
      size_t size = 0;
      for (const Span& s : mem) size += s.size();
      const std::string where = fmt::format("{} (group {})", source, kGroupNames[gr.group]);
      if (gr.layout == kReordered) {
        size_t rows = 0;
        for (const Span& s : mem) rows += s.rows;
        const Bytes raw = brotli_decompress(gr.orders, rows * 2, where + " row order");
        size_t k = 0;
        for (const Span& s : mem) {
          std::vector<bool> seen(s.rows, false);
          for (size_t i = 0; i < s.rows; ++i, ++k) {
            const uint32_t row = raw[2 * k] | (uint32_t{raw[2 * k + 1]} << 8);
            if (row >= s.rows || seen[row]) fail("{}: the stored row order is not a permutation of {} rows", where, s.rows);
            seen[row] = true;
            orders.push_back(row);
          }
        }
      }
      if (gr.method == kGolf) {
        const std::vector<int8_t> q = golf_decode_codes(gr.data, shapes_of(mem), where);
        decoded[gi].assign(reinterpret_cast<const uint8_t*>(q.data()), reinterpret_cast<const uint8_t*>(q.data()) + q.size());
      } else {
        decoded[gi] = gr.method == kXz ? xz_decode(gr.data, size, where) : brotli_decompress(gr.data, size, where);
      }
    });
  }
  run_parallel(tasks, costs);

  Bytes payload(payload_bytes);
  // The rest fills everything between the spans, the groups fill the spans.
  size_t from = 0, r = 0;
  for (const Span& s : spans) {
    copy_bytes(payload.data() + from, rest.data() + r, s.offset - from);
    r += s.offset - from;
    from = s.offset + s.size();
  }
  copy_bytes(payload.data() + from, rest.data() + r, tail - from);
  copy_bytes(payload.data() + tail, words.data(), payload_bytes - tail);

  for (size_t gi = 0; gi < groups.size(); ++gi)
    restore(decoded[gi], members[static_cast<size_t>(groups[gi].group)], groups[gi].layout, group_orders[gi], payload);
  return payload;
}

}  // namespace golf::artifact
