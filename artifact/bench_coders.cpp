// golf-coder-bench — every compressor on the same quantized weights (issue 16 §1 benchmark).
//
//   golf-coder-bench F.golf [--skip-pergroup] [--all-brotli] [--group-brotli] [--golf-tasks] [--only CODER]
//                    [--json OUT.json]
//   golf-coder-bench F.golf --save-brotli OUT.golf   (a coder-neutral copy: Brotli quality 5)
//   golf-coder-bench F.golf --records-layout DIR      (the codes as the records' per-group scheme lays
//                                                      them out, for scripts/bench/lrzip_pergroup.sh)
//
// Reads an artifact (any compressor), then writes its tensors again with: today's byte-shuffled
// Brotli-11 (window 24, GENERIC: golf's fixed setting before the per-artifact choice), Brotli at
// window 22 (and with --all-brotli 23 and TEXT mode; the per-artifact choice is the smallest of
// its candidates), COMPRESSOR=pergroup and COMPRESSOR=golf; each is decoded back and
// compared bit for bit. Prints bytes, encode and decode seconds per coder, bytes per code group,
// and the order-0 entropy of each group's codes as the reference line.
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <functional>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include <sys/resource.h>
#include <time.h>

#include "core/atomic_file.h"
#include "core/error.h"
#include "artifact/artifact.h"
#include "artifact/coders.h"
#include "artifact/golf_coder.h"
#include "artifact/grouped.h"

using namespace golf;
using namespace golf::artifact;

namespace {

// CPU seconds of the whole process (all threads): on a shared machine wall time says little.
double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + 1e-6 * static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

// The 1-minute load average (/proc/loadavg; -1 where there is none): the CPU is shared, and
// wall times mean little without it.
double load_average() {
  std::FILE* f = std::fopen("/proc/loadavg", "r");
  double load = -1;
  if (f) {
    if (std::fscanf(f, "%lf", &load) != 1) load = -1;
    std::fclose(f);
  }
  return load;
}

// CPU seconds of the calling thread alone.
double thread_cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

struct Run {
  std::string name;
  int64_t bytes = 0;
  double encode_s = 0, decode_s = 0, encode_cpu = 0, decode_cpu = 0;  // wall and process CPU seconds
  double load_before = 0, load_after = 0;
  std::map<int, int64_t> group_bytes;  // grouped coders: bytes per code group
  int64_t rest_bytes = 0;
  std::string note;
};

// The records' per-group layout (docs/reference/quant-and-pack.md §2.4), for coding with the real
// `lrzip -z -L 9` outside (golf-pack's pergroup has no lrzip: xz and Brotli stand in): per code group,
// the members' codes concatenated by layer index, each matrix transposed; for the hot roles
// (tok_emb, attn.c_q, mlp.fc) its rows first put in the greedy L1 nearest-neighbour order, and the
// orders (u16 each) concatenated into one more file. Writes DIR/group_<g>.bin and DIR/orders.bin.
void write_records_layout(const Bytes& payload, std::vector<CodeSpan> spans, const std::string& dir) {
  std::stable_sort(spans.begin(), spans.end(), [&](const CodeSpan& x, const CodeSpan& y) {
    return std::pair(code_group_of(x.name), layer_index_of(x.name)) < std::pair(code_group_of(y.name), layer_index_of(y.name));
  });
  std::map<int, Bytes> groups;
  std::vector<uint16_t> orders;
  for (const CodeSpan& s : spans) {
    const int g = code_group_of(s.name);
    const std::span<const int8_t> codes(reinterpret_cast<const int8_t*>(payload.data() + s.offset), size_t{s.rows} * s.cols);
    std::vector<uint32_t> order(s.rows);
    for (uint32_t r = 0; r < s.rows; ++r) order[r] = r;
    if (g == 0 || g == 2 || g == 5) {
      order = nearest_neighbour_order(codes, s.rows, s.cols);
      for (const uint32_t r : order) orders.push_back(static_cast<uint16_t>(r));
    }
    Bytes& out = groups[g];
    for (uint32_t c = 0; c < s.cols; ++c)
      for (uint32_t r = 0; r < s.rows; ++r) out.push_back(payload[s.offset + size_t{order[r]} * s.cols + c]);
  }
  std::filesystem::create_directories(dir);
  for (const auto& [g, bytes] : groups)
    write_file_atomic(fmt::format("{}/group_{}.bin", dir, g),
                      std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
  write_file_atomic(dir + "/orders.bin",
                    std::string_view(reinterpret_cast<const char*>(orders.data()), orders.size() * 2));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s F.golf [--skip-pergroup] [--all-brotli] [--json OUT.json]\n", argv[0]);
    return 2;
  }
  bool skip_pergroup = false, all_brotli = false, group_brotli = false, golf_tasks = false;
  std::string only;  // run just this coder ("golf", "brotli w24", "brotli w22", "pergroup", "groups")
  std::string json_out;
  std::string save_brotli;  // write the artifact again with Brotli (quality 5, fast) and stop
  std::string records_layout;  // write the codes in the records' per-group layout and stop
  for (int i = 2; i < argc; ++i) {
    if (std::strcmp(argv[i], "--skip-pergroup") == 0) skip_pergroup = true;
    else if (std::strcmp(argv[i], "--all-brotli") == 0) all_brotli = true;
    else if (std::strcmp(argv[i], "--group-brotli") == 0) group_brotli = true;
    else if (std::strcmp(argv[i], "--golf-tasks") == 0) golf_tasks = true;
    else if (std::strcmp(argv[i], "--only") == 0 && i + 1 < argc) only = argv[++i];
    else if (std::strcmp(argv[i], "--json") == 0 && i + 1 < argc) json_out = argv[++i];
    else if (std::strcmp(argv[i], "--save-brotli") == 0 && i + 1 < argc) save_brotli = argv[++i];
    else if (std::strcmp(argv[i], "--records-layout") == 0 && i + 1 < argc) records_layout = argv[++i];
    else {
      std::fprintf(stderr, "unknown argument %s\n", argv[i]);
      return 2;
    }
  }
  try {
    const Artifact a = deserialize(read_file_bytes(argv[1]), argv[1]);
    if (!save_brotli.empty()) {
      // A coder-neutral copy: golf streams written by an earlier model cannot be read by a later one.
      PackOptions o;
      o.brotli_quality = 5;
      write_artifact(save_brotli, serialize(a, o));
      fmt::print("wrote {}\n", save_brotli);
      return 0;
    }
    std::vector<CodeSpan> spans;
    const Bytes payload = encode_payload(a, &spans);
    if (!records_layout.empty()) {
      write_records_layout(payload, spans, records_layout);
      fmt::print("wrote the records' per-group layout of {} code spans to {}\n", spans.size(), records_layout);
      return 0;
    }

    // Order-0 entropy of the codes, per code group and over all codes.
    std::array<std::array<int64_t, 256>, kCodeGroups> histogram{};
    std::array<int64_t, 256> all{};
    std::array<int64_t, kCodeGroups> count{};
    for (const CodeSpan& s : spans) {
      const int g = code_group_of(s.name);
      for (size_t i = 0; i < size_t{s.rows} * s.cols; ++i) {
        ++histogram[static_cast<size_t>(g)][payload[s.offset + i]];
        ++all[payload[s.offset + i]];
      }
      count[static_cast<size_t>(g)] += int64_t{s.rows} * s.cols;
    }
    const auto entropy_bytes = [](const std::array<int64_t, 256>& h) {
      int64_t n = 0;
      for (const int64_t c : h) n += c;
      double bits = 0;
      for (const int64_t c : h)
        if (c > 0) bits -= static_cast<double>(c) * std::log2(static_cast<double>(c) / static_cast<double>(n));
      return bits / 8;
    };
    int64_t codes = 0;
    for (const int64_t c : count) codes += c;
    double entropy_per_group = 0;
    for (int g = 0; g < kCodeGroups; ++g) entropy_per_group += entropy_bytes(histogram[static_cast<size_t>(g)]);

    fmt::print("artifact {}: {} tensors, {} codes, payload {} bytes, {} threads\n", argv[1], a.tensors.size(),
               with_commas(codes), with_commas(static_cast<int64_t>(payload.size())), std::thread::hardware_concurrency());

    if (golf_tasks) {
      // golf's decode tasks one at a time on this thread (thread CPU time: what each costs on an
      // idle core), and the longest-first schedule of them on two cores: the decode wall time an
      // idle 2-core machine would see (the Brotli rest, ~1 ms, left out).
      std::vector<double> task_seconds;
      fmt::print("golf per task, single thread (CPU s):\n");
      for (int g = 0; g < kCodeGroups; ++g) {
        std::vector<int8_t> q;
        std::vector<std::pair<uint32_t, uint32_t>> shapes;
        for (const CodeSpan& s : spans)
          if (code_group_of(s.name) == g) {
            q.insert(q.end(), payload.begin() + static_cast<std::ptrdiff_t>(s.offset),
                     payload.begin() + static_cast<std::ptrdiff_t>(s.offset + size_t{s.rows} * s.cols));
            shapes.emplace_back(s.rows, s.cols);
          }
        if (q.empty()) continue;
        double t0 = thread_cpu_seconds();
        const Bytes stream = golf_encode_codes(q, shapes);
        const double enc = thread_cpu_seconds() - t0;
        t0 = thread_cpu_seconds();
        if (golf_decode_codes(stream, shapes, "bench") != q) fail("golf round trip of group {} failed", code_group_name(g));
        const double dec = thread_cpu_seconds() - t0;
        task_seconds.push_back(dec);
        fmt::print("  {:<10} {:>11} bytes  encode {:5.2f}  decode {:5.2f}\n", code_group_name(g), with_commas(static_cast<int64_t>(stream.size())), enc, dec);
      }
      if (!spans.empty()) {
        const size_t tail = (spans.back().offset + size_t{spans.back().rows} * spans.back().cols + 7) / 8 * 8;
        std::vector<uint16_t> words((payload.size() - tail) / 2);
        std::memcpy(words.data(), payload.data() + tail, words.size() * 2);
        double t0 = thread_cpu_seconds();
        const Bytes stream = golf_encode_words(words);
        const double enc = thread_cpu_seconds() - t0;
        t0 = thread_cpu_seconds();
        if (golf_decode_words(stream, words.size(), "bench") != words) fail("golf round trip of the fp16 words failed");
        const double dec = thread_cpu_seconds() - t0;
        task_seconds.push_back(dec);
        fmt::print("  {:<10} {:>11} bytes  encode {:5.2f}  decode {:5.2f}  ({} fp16 words)\n", "fp16 tail",
                   with_commas(static_cast<int64_t>(stream.size())), enc, dec, with_commas(static_cast<int64_t>(words.size())));
      }
      std::sort(task_seconds.begin(), task_seconds.end(), std::greater<>());
      double core[2] = {0, 0}, total = 0;
      for (const double t : task_seconds) *std::min_element(core, core + 2) += t, total += t;
      fmt::print("  decode CPU {:.2f} s in all; longest-first on 2 idle cores: {:.2f} s wall (load now {:.1f})\n", total,
                 std::max(core[0], core[1]), load_average());
    }

    std::vector<Run> runs;
    const auto measure = [&](const std::string& name, const PackOptions& o, const std::string& note) {
      if (!only.empty() && only != name) return;
      Run r{name, 0, 0, 0, 0, 0, 0, 0, {}, 0, note};
      r.load_before = load_average();
      auto t0 = std::chrono::steady_clock::now();
      double c0 = cpu_seconds();
      GroupedReport report;
      const Bytes file = serialize(a, o, &report);
      r.encode_s = seconds_since(t0);
      r.encode_cpu = cpu_seconds() - c0;
      r.bytes = static_cast<int64_t>(file.size());
      t0 = std::chrono::steady_clock::now();
      c0 = cpu_seconds();
      const Artifact back = deserialize(file, name);
      r.decode_s = seconds_since(t0);
      r.decode_cpu = cpu_seconds() - c0;
      if (back != a) fail("{}: the round trip changed the artifact", name);
      r.load_after = load_average();
      if (o.compressor != Compressor::Brotli) {
        for (const GroupChoice& g : report.groups) r.group_bytes[g.group] = g.bytes;
        r.rest_bytes = report.rest_bytes;
        if (report.words_raw > 0)
          r.note += fmt::format(" (rest {} B: fp16 tail {} → {} B by golf)", report.rest_bytes, report.words_raw, report.words_bytes);
        std::string methods;
        for (const GroupChoice& g : report.groups)
          methods += fmt::format(" {}:{}{}", code_group_name(g.group), g.method == 1 ? "brotli" : g.method == 2 ? "xz" : "golf",
                                 g.layout == 2 ? "+reorder" : g.layout == 1 ? "+colmajor" : "");
        r.note += methods;
      } else {
        r.note += fmt::format(" (window {})", brotli_stream_window(std::span(file).subspan(kHeaderBytes)));
      }
      fmt::print("  {:<16} {:>12} bytes  encode {:6.1f} s (cpu {:6.1f} s)  decode {:5.2f} s (cpu {:5.2f} s)  load {:.1f}→{:.1f} {}\n",
                 name, with_commas(r.bytes), r.encode_s, r.encode_cpu, r.decode_s, r.decode_cpu, r.load_before, r.load_after, r.note);
      std::fflush(stdout);
      runs.push_back(r);
    };
    // golf first (fast), then Brotli: each setting alone (today's is window 24 GENERIC; the
    // per-artifact choice is the smallest of its candidates, so its size is read off these
    // runs), then pergroup (slow: every group through Brotli and xz in two layouts).
    PackOptions golf_coder;
    golf_coder.compressor = Compressor::Golf;
    measure("golf", golf_coder, "");
    std::vector<BrotliSetting> settings = {{24, 0}, {22, 0}};
    if (all_brotli) settings.insert(settings.end(), {{23, 0}, {22, 1}});
    for (const BrotliSetting b : settings) {
      PackOptions o;
      o.brotli_candidates = {b};
      measure(fmt::format("brotli w{}{}", b.window, b.mode == 1 ? " text" : ""), o,
              b.window == 24 && b.mode == 0 ? "today: byte-shuffled Brotli-11, window 24, GENERIC" : "");
    }
    if (!skip_pergroup) {
      PackOptions pg;
      pg.compressor = Compressor::PerGroup;
      pg.brotli_candidates = {{22, 0}};  // one Brotli setting per group: the CPU here is shared five ways
      measure("pergroup", pg, "(Brotli w22 only)");
    }
    if (!only.empty() && only != "groups") {
      if (!json_out.empty() && !runs.empty()) {
        const Run& r = runs[0];
        nlohmann::json j = {{"name", r.name}, {"bytes", r.bytes}, {"encode_s", r.encode_s}, {"decode_s", r.decode_s},
                            {"encode_cpu_s", r.encode_cpu}, {"decode_cpu_s", r.decode_cpu}, {"note", r.note}, {"rest_bytes", r.rest_bytes},
                            {"load_before", r.load_before}, {"load_after", r.load_after}};
        for (const auto& [g, b] : r.group_bytes) j["groups"][code_group_name(g)] = b;
        write_file_atomic(json_out, j.dump(2) + "\n");
      }
      return 0;
    }
    const auto find = [&](const std::string& name) -> const Run* {
      for (const Run& r : runs)
        if (r.name == name) return &r;
      return nullptr;
    };
    const Run* today = find("brotli w24");
    const Run* w22 = find("brotli w22");
    const Run* chosen = today && w22 ? (w22->bytes < today->bytes ? w22 : today) : nullptr;
    if (chosen)
      fmt::print("  brotli with golf's default candidates (w22, w24 GENERIC): {} bytes ({})\n", with_commas(chosen->bytes),
                 chosen->name);

    // Per group: the codes alone through Brotli (best of the default candidates), the grouped
    // coders' choices, and the order-0 entropy.
    fmt::print("\nbytes per code group{}\n",
               group_brotli ? " (Brotli column: the group's codes alone, row-major, default candidates)" : "");
    std::string header = fmt::format("  {:<10} {:>11} {:>11} {:>7}", "group", "codes", "entropy", "bits");
    if (group_brotli) header += fmt::format(" {:>11}", "brotli");
    for (const Run& r : runs)
      if (!r.group_bytes.empty()) header += fmt::format(" {:>11}", r.name);
    fmt::print("{}\n", header);
    nlohmann::json groups_json = nlohmann::json::array();
    for (int g = 0; g < kCodeGroups; ++g) {
      if (count[static_cast<size_t>(g)] == 0) continue;
      Bytes codes_alone;
      for (const CodeSpan& s : spans)
        if (code_group_of(s.name) == g)
          codes_alone.insert(codes_alone.end(), payload.begin() + static_cast<std::ptrdiff_t>(s.offset),
                             payload.begin() + static_cast<std::ptrdiff_t>(s.offset + size_t{s.rows} * s.cols));
      const double h = entropy_bytes(histogram[static_cast<size_t>(g)]);
      std::string line = fmt::format("  {:<10} {:>11} {:>11} {:>7.3f}", code_group_name(g), with_commas(count[static_cast<size_t>(g)]),
                                     with_commas(std::llround(h)), h * 8 / static_cast<double>(count[static_cast<size_t>(g)]));
      nlohmann::json gj = {{"group", code_group_name(g)}, {"codes", count[static_cast<size_t>(g)]}, {"entropy_bytes", h}};
      if (group_brotli) {  // two more quality-11 passes over all the codes: opt-in
        const int64_t brotli_alone = static_cast<int64_t>(brotli_best(codes_alone, 11, PackOptions{}.brotli_candidates).stream.size());
        line += fmt::format(" {:>11}", with_commas(brotli_alone));
        gj["brotli_alone"] = brotli_alone;
      }
      for (const Run& r : runs)
        if (!r.group_bytes.empty()) {
          line += fmt::format(" {:>11}", with_commas(r.group_bytes.at(g)));
          gj[r.name] = r.group_bytes.at(g);
        }
      fmt::print("{}\n", line);
      groups_json.push_back(gj);
    }
    std::string rest_line = fmt::format("  {:<10} {:>11} {:>11} {:>7}{}", "rest", "-", "-", "-", group_brotli ? fmt::format(" {:>11}", "-") : "");
    for (const Run& r : runs)
      if (!r.group_bytes.empty()) rest_line += fmt::format(" {:>11}", with_commas(r.rest_bytes));
    fmt::print("{}   (table, fp16 scales, passthrough: Brotli; golf codes the fp16 scales and passthrough itself)\n", rest_line);
    fmt::print("  order-0 entropy of the codes: {} bytes per group summed ({:.4f} bits/code), {} bytes over all codes\n",
               with_commas(std::llround(entropy_per_group)), entropy_per_group * 8 / static_cast<double>(codes),
               with_commas(std::llround(entropy_bytes(all))));

    const Run* pergroup = find("pergroup");
    const Run* golf_run = find("golf");
    if (golf_run && today && chosen) {
      fmt::print("\nratios: golf / brotli today = {:.4f} (goal ≤ 0.97)", static_cast<double>(golf_run->bytes) / static_cast<double>(today->bytes));
      if (pergroup) fmt::print(", golf / pergroup = {:.4f} (goal ≤ 0.99)", static_cast<double>(golf_run->bytes) / static_cast<double>(pergroup->bytes));
      fmt::print(", brotli default choice / today = {:.4f}\n", static_cast<double>(chosen->bytes) / static_cast<double>(today->bytes));
    }

    if (!json_out.empty()) {
      nlohmann::json j = {{"artifact", argv[1]}, {"codes", codes}, {"entropy_bytes_per_group", entropy_per_group},
                          {"entropy_bytes_all", entropy_bytes(all)}, {"groups", groups_json}};
      for (const Run& r : runs)
        j["coders"].push_back({{"name", r.name}, {"bytes", r.bytes}, {"encode_s", r.encode_s}, {"decode_s", r.decode_s},
                               {"encode_cpu_s", r.encode_cpu}, {"decode_cpu_s", r.decode_cpu}, {"load_before", r.load_before},
                               {"load_after", r.load_after}, {"rest_bytes", r.rest_bytes}, {"note", r.note}});
      write_file_atomic(json_out, j.dump(2) + "\n");
    }
    return 0;
  } catch (const Error& e) {
    std::fprintf(stderr, "golf-coder-bench: error: %s\n", e.what());
    return 1;
  }
}
