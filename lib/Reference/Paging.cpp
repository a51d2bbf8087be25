//===- Paging.cpp - Reference paged gather and paged append ---------------===//
//
// Block-table indirection over full-precision page tensors in token-major
// (docs/CacheLayout.md) or head-major page order.
//
//===----------------------------------------------------------------------===//

#include "kvopt/Reference/Reference.h"

#include <algorithm>

using namespace kvopt::reference;

namespace {

/// Offset in `pages` of element (head, token, channel) of a sequence whose
/// token lives in physical page `page` at `slot`.
int64_t pageOffset(const Tensor &pages, PageOrder order, int64_t page,
                   int64_t slot, int64_t head, int64_t channel) {
  if (order == PageOrder::TokenMajor)
    return pages.offset({page, slot, head, channel});
  return pages.offset({page, head, slot, channel});
}

int64_t pageHeads(const Tensor &pages, PageOrder order) {
  return pages.dim(order == PageOrder::TokenMajor ? 2 : 1);
}

/// Physical page and slot of `token` of sequence `b`.
std::pair<int64_t, int64_t> locate(const BlockTable &table, int64_t pageSize,
                                   int64_t b, int64_t token) {
  return {table.page(b, token / pageSize), token % pageSize};
}

} // namespace

int32_t BlockTable::page(int64_t b, int64_t i) const {
  KVOPT_REF_CHECK(b >= 0 && b < batch && i >= 0 && i < maxPages,
                  "block table index out of range");
  KVOPT_REF_CHECK(static_cast<int64_t>(pages.size()) == batch * maxPages,
                  "block table size is not batch * maxPages");
  return pages[b * maxPages + i];
}

int64_t kvopt::reference::pageSizeOf(const Tensor &pages, PageOrder order) {
  KVOPT_REF_CHECK(pages.rank() == 4, "page tensors are rank 4");
  return pages.dim(order == PageOrder::TokenMajor ? 1 : 2);
}

Tensor kvopt::reference::gatherPages(const Tensor &pages, PageOrder order,
                                     const BlockTable &table,
                                     const std::vector<int64_t> &lengths) {
  int64_t pageSize = pageSizeOf(pages, order);
  int64_t heads = pageHeads(pages, order), dim = pages.dim(3);
  KVOPT_REF_CHECK(static_cast<int64_t>(lengths.size()) == table.batch,
                  "one length per block-table row");
  int64_t capacity =
      lengths.empty() ? 0 : *std::max_element(lengths.begin(), lengths.end());
  Tensor out({table.batch, heads, capacity, dim});
  for (int64_t b = 0; b < table.batch; ++b) {
    KVOPT_REF_CHECK(lengths[b] <= table.maxPages * pageSize,
                    "sequence longer than its block-table row");
    for (int64_t t = 0; t < lengths[b]; ++t) {
      auto [page, slot] = locate(table, pageSize, b, t);
      KVOPT_REF_CHECK(page >= 0 && page < pages.dim(0),
                      "block table names a page outside the pool");
      for (int64_t h = 0; h < heads; ++h)
        for (int64_t d = 0; d < dim; ++d)
          out.at({b, h, t, d}) =
              pages.data()[pageOffset(pages, order, page, slot, h, d)];
    }
  }
  return out;
}

void kvopt::reference::appendPaged(Tensor &pages, PageOrder order,
                                   const BlockTable &table, const Tensor &rows,
                                   const std::vector<int64_t> &start,
                                   double ropeTheta) {
  int64_t pageSize = pageSizeOf(pages, order);
  KVOPT_REF_CHECK(rows.rank() == 4 && rows.dim(0) == table.batch &&
                      rows.dim(1) == pageHeads(pages, order) &&
                      rows.dim(3) == pages.dim(3),
                  "rows must be [B, Hkv, Tn, D] matching pages and table");
  KVOPT_REF_CHECK(static_cast<int64_t>(start.size()) == table.batch,
                  "one start position per sequence");
  int64_t tokens = rows.dim(2);
  Tensor stored = appendedRows(rows, start, ropeTheta);
  for (int64_t b = 0; b < table.batch; ++b)
    for (int64_t t = 0; t < tokens; ++t) {
      KVOPT_REF_CHECK(start[b] >= 0, "negative append position");
      auto [page, slot] = locate(table, pageSize, b, start[b] + t);
      KVOPT_REF_CHECK(page >= 0 && page < pages.dim(0),
                      "block table names a page outside the pool");
      for (int64_t h = 0; h < rows.dim(1); ++h)
        for (int64_t d = 0; d < rows.dim(3); ++d)
          pages.data()[pageOffset(pages, order, page, slot, h, d)] =
              stored.at({b, h, t, d});
    }
}
