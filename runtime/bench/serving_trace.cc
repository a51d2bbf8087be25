//===- serving_trace.cc - Cache pool on a synthetic serving trace ---------===//
//
// Replays a synthetic serving trace against the paged cache pool and prints
// allocation throughput and memory waste, next to the baseline of
// contiguous max-length pre-allocation (each request reserves max-len
// tokens on arrival; forks copy the prefix into their own reservation).
//
// Trace: requests arrive as a Poisson process; prompt and output lengths are
// log-normal (long-tailed), clipped to max-len; a fraction of requests ask
// for several samples, served by forking the prefilled sequence. Each step,
// every running sequence decodes one token; finished ones are freed;
// requests that do not fit wait. The trace is generated before timing.
//
// Usage: kvopt-rt-bench-serving [--seed N] [--steps N] [--rate R]
//                               [--pages N] [--max-len N] [--page-size N]
//
//===----------------------------------------------------------------------===//

#include "kvopt/runtime/cache_pool.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <random>
#include <string>
#include <vector>

using namespace kvopt::rt;

namespace {

struct Options {
  uint64_t seed = 1;
  int steps = 20000;
  double rate = 0.6;      ///< mean arrivals per decode step
  uint32_t pages = 24576; ///< pool page slots
  uint32_t maxLen = 8192; ///< context limit (baseline reservation)
  uint32_t pageSize = 16;
  double forkFraction = 0.1; ///< requests with 2..4 samples
};

struct Request {
  int arrival;
  uint32_t prompt;
  std::vector<uint32_t> outputs; ///< one output length per sample
};

struct Running {
  SequenceId id;
  uint32_t length;
  uint32_t target;
};

bool parseArgs(int argc, char **argv, Options &o) {
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    double v = std::atof(argv[i + 1]);
    if (flag == "--seed")
      o.seed = std::strtoull(argv[i + 1], nullptr, 10);
    else if (flag == "--steps")
      o.steps = int(v);
    else if (flag == "--rate")
      o.rate = v;
    else if (flag == "--pages")
      o.pages = uint32_t(v);
    else if (flag == "--max-len")
      o.maxLen = uint32_t(v);
    else if (flag == "--page-size")
      o.pageSize = uint32_t(v);
    else
      return false;
  }
  return argc % 2 == 1;
}

std::vector<Request> makeTrace(const Options &o) {
  std::mt19937_64 rng(o.seed);
  std::poisson_distribution<int> arrivals(o.rate);
  // Medians 600 (prompt) and 150 (output) tokens, long right tails.
  std::lognormal_distribution<double> prompt(std::log(600.0), 1.0);
  std::lognormal_distribution<double> output(std::log(150.0), 1.0);
  std::uniform_real_distribution<double> unit(0, 1);
  std::vector<Request> trace;
  for (int step = 0; step < o.steps; ++step) {
    for (int k = arrivals(rng); k > 0; --k) {
      Request r;
      r.arrival = step;
      r.prompt = uint32_t(std::clamp(prompt(rng), 1.0, o.maxLen / 2.0));
      int samples = unit(rng) < o.forkFraction ? 2 + int(rng() % 3) : 1;
      for (int s = 0; s < samples; ++s)
        r.outputs.push_back(uint32_t(
            std::clamp(output(rng), 1.0, double(o.maxLen - r.prompt))));
      trace.push_back(r);
    }
  }
  return trace;
}

double seconds(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

void check(const Status &s, const char *what) {
  if (!s.isOk()) {
    std::fprintf(stderr, "%s: %s\n", what, s.toString().c_str());
    std::exit(1);
  }
}

} // namespace

int main(int argc, char **argv) {
  Options o;
  if (!parseArgs(argc, argv, o)) {
    std::fprintf(stderr,
                 "usage: %s [--seed N] [--steps N] [--rate R] [--pages N] "
                 "[--max-len N] [--page-size N]\n",
                 argv[0]);
    return 2;
  }
  // One layer of a Llama-3-8B-like model: 8 KV heads x 128, f16.
  CacheLayout layout;
  layout.kvHeads = 8;
  layout.headDim = 128;
  layout.element = ElementType::F16;
  layout.pageSize = o.pageSize;
  layout.numLayers = 1;
  layout.layerToCache = {0};
  std::unique_ptr<CachePool> pool;
  PoolOptions po;
  po.numPages = o.pages;
  check(CachePool::create(layout, po, createHostMemory(), pool), "pool");
  const double bpt = layout.bytesPerToken();
  const double pageBytes = double(pool->stats().pageBytes);

  std::vector<Request> trace = makeTrace(o);
  std::deque<const Request *> waiting;
  std::vector<Running> running;
  std::vector<SequenceId> batchIds;
  BlockTableBatch batch;
  size_t next = 0;
  uint64_t ops = 0, tokens = 0, forks = 0, admitted = 0, deferred = 0;
  uint64_t batchPageIds = 0;
  double sumPaged = 0, sumBase = 0, sumPagedReserved = 0, sumBaseReserved = 0;
  double worstPagesPerSeq = 0, sumLive = 0, sumTokens = 0;
  int samples = 0;
  std::chrono::steady_clock::duration poolTime{}, tableTime{};
  auto start = std::chrono::steady_clock::now();

  for (int step = 0; step < o.steps || !running.empty(); ++step) {
    auto t0 = std::chrono::steady_clock::now();
    while (next < trace.size() && trace[next].arrival <= step)
      waiting.push_back(&trace[next++]);
    // Admit waiting requests in order while their prefill fits.
    while (!waiting.empty()) {
      const Request &r = *waiting.front();
      uint64_t need = (r.prompt + o.pageSize - 1) / o.pageSize +
                      r.outputs.size() + 1; // COW copies + first decode page
      if (pool->stats().freePages < need + running.size() / 8) {
        ++deferred;
        break;
      }
      waiting.pop_front();
      SequenceId id;
      check(pool->createSequence(id), "create");
      check(pool->appendTokens(id, r.prompt), "prefill");
      ops += 2;
      tokens += r.prompt;
      ++admitted;
      running.push_back({id, r.prompt, r.prompt + r.outputs[0]});
      for (size_t s = 1; s < r.outputs.size(); ++s) {
        SequenceId child;
        check(pool->fork(id, child), "fork");
        ++ops;
        ++forks;
        running.push_back({child, r.prompt, r.prompt + r.outputs[s]});
      }
    }
    // Decode: one token per running sequence; free finished ones. A
    // sequence that cannot grow is preempted (freed) like vLLM's recompute.
    for (size_t i = 0; i < running.size();) {
      Running &seq = running[i];
      Status s = pool->appendTokens(seq.id, 1);
      ++ops;
      if (s.isOk()) {
        ++tokens;
        ++seq.length;
      }
      if (!s.isOk() || seq.length >= seq.target) {
        check(pool->freeSequence(seq.id), "free");
        ++ops;
        seq = running.back();
        running.pop_back();
        continue;
      }
      ++i;
    }
    auto t1 = std::chrono::steady_clock::now();
    // The kernels' view: block tables of the whole running batch.
    batchIds.clear();
    for (const Running &seq : running)
      batchIds.push_back(seq.id);
    check(pool->blockTables(batchIds.data(), batchIds.size(), batch),
          "block tables");
    batchPageIds += batch.pageIds.size();
    auto t2 = std::chrono::steady_clock::now();
    poolTime += t1 - t0;
    tableTime += t2 - t1;

    if (running.empty())
      continue;
    PoolStats st = pool->stats();
    double pagedWaste = double(st.bytesReserved) - st.bytesInUse;
    double baseReserved = double(running.size()) * o.maxLen * bpt;
    double baseUsed = 0;
    for (const Running &seq : running)
      baseUsed += seq.length * bpt;
    sumLive += double(running.size());
    sumTokens += baseUsed / bpt;
    sumPaged += pagedWaste / double(st.bytesReserved);
    sumBase += (baseReserved - baseUsed) / baseReserved;
    sumPagedReserved += double(st.bytesReserved);
    sumBaseReserved += baseReserved;
    worstPagesPerSeq = std::max(worstPagesPerSeq, pagedWaste / pageBytes /
                                                      double(running.size()));
    ++samples;
  }
  double total = seconds(std::chrono::steady_clock::now() - start);

  std::printf("kvopt runtime serving-trace benchmark\n");
  std::printf("  layout: 8 KV heads x 128, f16, page %u tokens, %.0f B/token, "
              "%u pages\n",
              o.pageSize, bpt, o.pages);
  std::printf("  trace: seed %llu, %d arrival steps, rate %.2f/step, "
              "max-len %u, %zu requests (%llu admitted, %llu forks)\n",
              (unsigned long long)o.seed, o.steps, o.rate, o.maxLen,
              trace.size(), (unsigned long long)admitted,
              (unsigned long long)forks);
  std::printf("  replay: %d steps, %.3f s total; mean %.1f live sequences, "
              "%.0f tokens of context\n",
              samples, total, sumLive / samples, sumTokens / samples);
  std::printf("allocation throughput\n");
  std::printf("  pool ops (create/append/fork/free): %llu in %.3f s = "
              "%.2f M ops/s\n",
              (unsigned long long)ops, seconds(poolTime),
              ops / seconds(poolTime) / 1e6);
  std::printf("  tokens appended: %.2f M tokens/s\n",
              tokens / seconds(poolTime) / 1e6);
  std::printf("  block tables: %.2f M page ids/s (%.1f us per batch)\n",
              batchPageIds / seconds(tableTime) / 1e6,
              seconds(tableTime) / samples * 1e6);
  std::printf("memory waste (reserved - used) / reserved, mean over steps\n");
  std::printf("  paged pool:                   %.4f\n", sumPaged / samples);
  std::printf("  contiguous max-len baseline:  %.4f\n", sumBase / samples);
  std::printf("  mean reserved bytes, paged / baseline: %.4f\n",
              sumPagedReserved / sumBaseReserved);
  std::printf(
      "  worst paged waste per live sequence: %.3f pages (bound: < 1)\n",
      worstPagesPerSeq);
  std::printf("  deferred admissions (pool full): %llu\n",
              (unsigned long long)deferred);
  return worstPagesPerSeq < 1.0 ? 0 : 1;
}
