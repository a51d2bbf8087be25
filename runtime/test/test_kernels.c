/*===- test_kernels.c - CPU kernels used by the runtime tests ------------===*\
|*                                                                          *|
|* Tiny kernels with the runtime's CPU entry convention                     *|
|* `void entry(void **params)`: params[i] points at argument i's value, as   *|
|* cuLaunchKernel's kernelParams. Built as a shared object and loaded       *|
|* through a bundle manifest.                                               *|
|*                                                                          *|
\*===----------------------------------------------------------------------===*/

#include <stdint.h>
#include <string.h>

/* y[i] += a * x[i] for i < n. Args: ptr y, ptr x, f32 a, i32 n. */
void kvopt_test_axpy(void **params) {
  float *y = *(float **)params[0];
  const float *x = *(const float **)params[1];
  float a = *(const float *)params[2];
  int32_t n = *(const int32_t *)params[3];
  for (int32_t i = 0; i < n; ++i)
    y[i] += a * x[i];
}

/* Copies the K data rows of one sequence, found through its block table, to
 * `out` [seq_len][row_bytes]. Args: ptr cache_base (page 0 of the cache),
 * ptr block_table, i32 seq_len, i32 page_size, i64 page_bytes,
 * i64 row_bytes, ptr out. K data sits at offset 0 of a page. */
void kvopt_test_gather_keys(void **params) {
  const uint8_t *base = *(const uint8_t **)params[0];
  const int32_t *table = *(const int32_t **)params[1];
  int32_t len = *(const int32_t *)params[2];
  int32_t pageSize = *(const int32_t *)params[3];
  int64_t pageBytes = *(const int64_t *)params[4];
  int64_t rowBytes = *(const int64_t *)params[5];
  uint8_t *out = *(uint8_t **)params[6];
  for (int32_t t = 0; t < len; ++t) {
    const uint8_t *page = base + (int64_t)table[t / pageSize] * pageBytes;
    memcpy(out + (int64_t)t * rowBytes,
           page + (int64_t)(t % pageSize) * rowBytes, (size_t)rowBytes);
  }
}
