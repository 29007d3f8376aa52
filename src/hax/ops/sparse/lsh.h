// LSH bucketing of queries and keys (reference.md §3.6). A bucket comes from the projections x·H of a vector on the
// caller's random matrix H (N, num_hash):
//   paper : x is first centred and scaled per feature over the whole sequence, padding included: mean over time,
//           then division by max(L2 norm over time, 1e-12) (F.normalize with dim=1, the time axis);
//   causal: the projections of the raw vector, x·H. Centring or scaling would need statistics of other positions,
//           and a per-feature statistic of the prefix would make a key's bucket change as the sequence grows; the
//           random H alone is the hash, so a position's bucket depends on its vector and H only.
//   causal with running statistics (hax_lsh_statistics "running", an option): paper's centring and scaling over the
//           prefix x_0..x_t instead of the whole sequence: (x_t - m_t) / max(||x_0..x_t - m_t||, 1e-12) per feature,
//           m_t the prefix mean. Causal, and streamable from the running sums; a key keeps the bucket of its own
//           position while later queries are hashed with later statistics.
// Buckets: sign_bin = sum_j [proj_j > 0] 2^j (2^num_hash buckets; exactly 0 is bit 0), argmax = argmax_j proj_j
// (num_hash buckets, first index on ties).
#pragma once

#include <cstdint>

#include "hax/ops/sparse/semantics.h"

namespace hax::ops::sparse {

inline int sign_bin_bucket_count(int num_hash) { return 1 << num_hash; }
inline int argmax_bucket_count(int num_hash) { return num_hash; }

// proj (T, num_hash) = normalized(x) H, with x (T, N), H (N, num_hash), normalized() as above per semantics.
void lsh_projections(float* proj, const float* x, const float* H, int T, int N, int num_hash, Semantics semantics);

// proj (T, num_hash) with running statistics, for T rows that follow `before` earlier positions of the sequence.
// sums (2N) hold sum_x then sum_x^2 per feature over those earlier positions, in double, and are advanced over the T
// rows: a chunked stream carries them, a whole sequence starts from zeros.
void lsh_projections_running(float* proj, const float* x, const float* H, int T, int N, int num_hash, double* sums,
                             std::int64_t before);

// bucket (T) from proj (T, num_hash): exact integer and comparison work, shared by the fast and reference paths.
template <class Real>
void sign_bin_buckets(std::int32_t* bucket, const Real* proj, int T, int num_hash) {
  for (int t = 0; t < T; ++t) {
    std::int32_t b = 0;
    for (int j = 0; j < num_hash; ++j)
      if (proj[std::int64_t(t) * num_hash + j] > Real(0)) b |= std::int32_t(1) << j;
    bucket[t] = b;
  }
}

template <class Real>
void argmax_buckets(std::int32_t* bucket, const Real* proj, int T, int num_hash) {
  for (int t = 0; t < T; ++t) {
    const Real* p = proj + std::int64_t(t) * num_hash;
    int best = 0;
    for (int j = 1; j < num_hash; ++j)
      if (p[j] > p[best]) best = j;
    bucket[t] = best;
  }
}

}  // namespace hax::ops::sparse
