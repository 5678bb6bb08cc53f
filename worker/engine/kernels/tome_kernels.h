// ToMe's matching and merging as a few fused CUDA kernels (tome_kernels.cu,
// see cuda_kernels.h for when they are built). At 512 px the ATen version is
// about 24 small kernels per transformer block, whose launch-to-launch time
// in a CUDA graph costs more than merging saves; these compute the same
// matching (the same stable order, the same one-hot assignment) in 5.
//
// Plain types only, so that this header and the .cu see no Torch header:
// every pointer is device memory, `stream` is a cudaStream_t, and each call
// returns nullptr or a description of the CUDA error it met.
#pragma once

#include <cstdint>

#include "worker/engine/kernels/kernel_dtype.h"

namespace diffsearch::engine::tome_kernels {

using Dtype = kernels::Dtype;

// scores [rows, cols] (row-major, `dtype`): each row's largest value and the
// first column holding it. Keys are float32, or float64 for float64 scores.
const char* row_max(const void* scores, Dtype dtype, int64_t rows, int64_t cols, void* keys,
                    int64_t* index, void* stream);

// Whether order_tokens() can take n tokens and `num_dst` destinations in one
// thread block's shared memory on the current device.
bool order_fits(int64_t n, int64_t num_dst, bool float64_keys);

// Per batch row b (keys, node_index [batch, n] from row_max): destinations
// dst_pos [num_dst] get key -inf, then every token is ordered by key
// descending, position ascending (a stable descending sort: one thread
// block's radix sort, for n up to 16384 as order_fits() says). Writes
// order [batch, n]; src_to_dst [batch, r] = node_index of the first r;
// map [batch, n], the merged row each position unmerges from; counts
// [batch, num_dst] = 1 + sources per destination (`counts_dtype`); and 1 at
// assign[b, src_to_dst[b, k], k] of the zero-filled assign [batch, num_dst, r]
// (`assign_dtype`).
const char* order_tokens(const void* keys, bool float64_keys, const int64_t* node_index,
                   const int64_t* dst_pos, int64_t batch, int64_t n, int64_t num_dst, int64_t r,
                   int64_t* order, int64_t* src_to_dst, int64_t* map, void* counts,
                   Dtype counts_dtype, void* assign, Dtype assign_dtype, void* stream);

// x [batch, n, channels] rows in `order`: the first r to src [batch, r,
// channels], the rest to kept [batch, n - r, channels].
const char* gather_rows(const void* x, Dtype dtype, const int64_t* order, int64_t batch, int64_t n,
                        int64_t channels, int64_t r, void* src, void* kept, void* stream);

// Unmerging: out [batch, n, channels] row (b, k) = x [batch, rows_in,
// channels] row (b, map[b, k]); map [batch, n] as order_tokens writes it.
const char* rows_by_map(const void* x, Dtype dtype, const int64_t* map, int64_t batch,
                        int64_t rows_in, int64_t n, int64_t channels, void* out, void* stream);
// kept's last num_dst rows per batch row become (row + sums[b, j]) / counts[b, j],
// computed in float32 (float64 for float64). sums [batch, num_dst, channels]
// has kept's dtype; counts is [batch, num_dst] in `counts_dtype`.
const char* finish_destinations(void* kept, const void* sums, Dtype dtype, const void* counts,
                                Dtype counts_dtype, int64_t batch, int64_t kept_rows,
                                int64_t num_dst, int64_t channels, void* stream);

}  // namespace diffsearch::engine::tome_kernels
