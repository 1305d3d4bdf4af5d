// The backward of the KV store and of causal grouped-query attention, from the probabilities
// p = att[t, h, :] the forward saved (Vaswani et al. 2017; GQA: Ainslie et al. 2023).
//
// kv_store_backward, a gather: dk[t,:] = dkCache[slots[t], positions[t], :], same for dv.
//
// For query head h of token t (KV head g = h / (heads / kvHeads), slot s, last = positions[t]):
//   dp_j = dout[t,h,:] . vCache[s,j,g,:],   ds_j = p_j (dp_j - sum_i p_i dp_i)     (j <= last)
//   dq[t,h,:]        = scale * sum_j ds_j kCache[s,j,g,:]                          (overwritten)
//   dkCache[s,j,g,:] += scale * sum_{t,h in g} ds_j(t,h) q[t,h,:]
//   dvCache[s,j,g,:] += sum_{t,h in g} p_j(t,h) dout[t,h,:]
// Two kernels, no atomics (so the sums run in one fixed order on every run):
// attention_backward_dq: one block per (t, h); writes dq and ds (scratch [rows, heads, maxLength]).
// attention_backward_dkv: one block per (s, j, g), threads over the head dimension; each block is
// the only writer of its rows of dkCache/dvCache and sums over the rows t of slot s that see j,
// looking only at rows [range[2s], range[2s+1]) (the first and past-the-last row of slot s, made
// on the host: a training batch keeps each sequence's rows together).
// Like the forward, a straightforward kernel with the T x T probabilities in memory; the
// flash-attention backward (recompute p per tile, no T x T buffer) is issue 5's next step.

extern "C" __global__ void kv_store_backward(float* dk, float* dv, const float* dkCache,
                                             const float* dvCache, const int* slots,
                                             const int* positions, int kvDim, int maxLength) {
  int t = blockIdx.x;
  long long src = ((long long) slots[t] * maxLength + positions[t]) * kvDim;
  long long dst = (long long) t * kvDim;
  for (int e = threadIdx.x; e < kvDim; e += blockDim.x) {
    dk[dst + e] = dkCache[src + e];
    dv[dst + e] = dvCache[src + e];
  }
}

extern "C" __global__ void attention_backward_dq(float* dq, float* ds, const float* dout,
                                                 const float* att, const float* kCache,
                                                 const float* vCache, const int* slots,
                                                 const int* positions, int heads, int kvHeads,
                                                 int headDim, int maxLength, float scale) {
  extern __shared__ float shared[];
  float* dos = shared;                // headDim
  float* scratch = shared + headDim;  // 32
  int th = blockIdx.x;
  int t = th / heads;
  int h = th % heads;
  int g = h / (heads / kvHeads);
  int last = positions[t];
  int kvDim = kvHeads * headDim;
  const float* dop = dout + (long long) th * headDim;
  for (int d = threadIdx.x; d < headDim; d += blockDim.x) {
    dos[d] = dop[d];
  }
  __syncthreads();
  long long base = (long long) slots[t] * maxLength * kvDim + (long long) g * headDim;
  const float* p = att + (long long) th * maxLength;
  float* dsr = ds + (long long) th * maxLength;
  float sum = 0.0f;
  for (int j = threadIdx.x; j <= last; j += blockDim.x) {
    const float* vp = vCache + base + (long long) j * kvDim;
    float dp = 0.0f;
    for (int d = 0; d < headDim; d++) {
      dp += dos[d] * vp[d];
    }
    dsr[j] = dp;
    sum += p[j] * dp;
  }
  sum = block_sum(sum, scratch);
  for (int j = threadIdx.x; j <= last; j += blockDim.x) {
    dsr[j] = p[j] * (dsr[j] - sum);
  }
  __syncthreads();  // every ds_j is read by all threads below
  float* dqr = dq + (long long) th * headDim;
  for (int d = threadIdx.x; d < headDim; d += blockDim.x) {
    const float* kp = kCache + base + d;
    float acc = 0.0f;
    for (int j = 0; j <= last; j++) {
      acc += dsr[j] * kp[(long long) j * kvDim];
    }
    dqr[d] = acc * scale;
  }
}

extern "C" __global__ void attention_backward_dkv(float* dkCache, float* dvCache, const float* ds,
                                                  const float* att, const float* q,
                                                  const float* dout, const int* slots,
                                                  const int* positions, const int* range, int heads,
                                                  int kvHeads, int headDim, int maxLength,
                                                  float scale) {
  long long b = blockIdx.x;             // (s * maxLength + j) * kvHeads + g
  int g = (int) (b % kvHeads);
  long long sj = b / kvHeads;
  int j = (int) (sj % maxLength);
  int s = (int) (sj / maxLength);
  int group = heads / kvHeads;
  int kvDim = kvHeads * headDim;
  long long at = sj * kvDim + (long long) g * headDim;
  for (int d = threadIdx.x; d < headDim; d += blockDim.x) {
    float dk = 0.0f;
    float dv = 0.0f;
    int end = range[2 * s + 1];
    for (int t = range[2 * s]; t < end; t++) {
      if (slots[t] != s || positions[t] < j) {
        continue;
      }
      for (int h = g * group; h < (g + 1) * group; h++) {
        long long th = (long long) t * heads + h;
        dk += ds[th * maxLength + j] * q[th * headDim + d];
        dv += att[th * maxLength + j] * dout[th * headDim + d];
      }
    }
    dkCache[at + d] += dk * scale;
    dvCache[at + d] += dv;
  }
}
