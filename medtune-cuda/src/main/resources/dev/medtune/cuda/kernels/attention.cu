// The KV cache and causal grouped-query attention (Vaswani et al. 2017; GQA: Ainslie et al. 2023).
//
// kv_store_forward: kCache[slots[t], positions[t], :] = k[t, :], same for v. One block per row.
//
// attention_forward: for query head h of token t, KV head g = h / (heads / kvHeads), slot s:
//   p_j = softmax_j(q[t,h,:] . kCache[s,j,g,:] / sqrt(headDim))  for j <= positions[t]
//   out[t,h,:] = sum_j p_j vCache[s,j,g,:]
// The probabilities are written to att[t, h, :maxLength] (saved for the backward); entries past
// positions[t] are left as they were. With lse (not null: the flash-attention layout, where att is
// only this kernel's scratch), lse[t, h] = log sum_j exp(scores) is written too, the state
// flash_attention.cu's backward reads. One block per (token, head): threads take keys j, then
// output dimensions d. A straightforward kernel that reads the cache once per query head; the
// flash-attention kernel of issue 5 (no T x T scores in memory) replaces it for long sequences.

extern "C" __global__ void kv_store_forward(float* kCache, float* vCache, const float* k,
                                            const float* v, const int* slots, const int* positions,
                                            int kvDim, int maxLength) {
  int t = blockIdx.x;
  long long dst = ((long long) slots[t] * maxLength + positions[t]) * kvDim;
  long long src = (long long) t * kvDim;
  for (int e = threadIdx.x; e < kvDim; e += blockDim.x) {
    kCache[dst + e] = k[src + e];
    vCache[dst + e] = v[src + e];
  }
}

extern "C" __global__ void attention_forward(float* out, float* att, float* lse, const float* q,
                                             const float* kCache, const float* vCache,
                                             const int* slots, const int* positions, int heads,
                                             int kvHeads, int headDim, int maxLength, float scale) {
  extern __shared__ float shared[];
  float* qs = shared;                 // headDim
  float* scratch = shared + headDim;  // 32
  int th = blockIdx.x;
  int t = th / heads;
  int h = th % heads;
  int g = h / (heads / kvHeads);
  int last = positions[t];
  int kvDim = kvHeads * headDim;
  const float* qp = q + (long long) th * headDim;
  for (int d = threadIdx.x; d < headDim; d += blockDim.x) {
    qs[d] = qp[d];
  }
  __syncthreads();
  long long base = (long long) slots[t] * maxLength * kvDim + (long long) g * headDim;
  float* p = att + (long long) th * maxLength;

  float mx = NEG_INF;
  for (int j = threadIdx.x; j <= last; j += blockDim.x) {
    const float* kp = kCache + base + (long long) j * kvDim;
    float s = 0.0f;
    for (int d = 0; d < headDim; d++) {
      s += qs[d] * kp[d];
    }
    s *= scale;
    p[j] = s;
    mx = fmaxf(mx, s);
  }
  mx = block_max(mx, scratch);
  float sum = 0.0f;
  for (int j = threadIdx.x; j <= last; j += blockDim.x) {
    float e = expf(p[j] - mx);
    p[j] = e;
    sum += e;
  }
  sum = block_sum(sum, scratch);
  float inv = 1.0f / sum;
  for (int j = threadIdx.x; j <= last; j += blockDim.x) {
    p[j] *= inv;
  }
  if (lse != 0 && threadIdx.x == 0) {
    lse[th] = mx + logf(sum);
  }
  __syncthreads();  // every p[j] written above is read by all threads below
  float* o = out + (long long) th * headDim;
  for (int d = threadIdx.x; d < headDim; d += blockDim.x) {
    const float* vp = vCache + base + d;
    float acc = 0.0f;
    for (int j = 0; j <= last; j++) {
      acc += p[j] * vp[(long long) j * kvDim];
    }
    o[d] = acc;
  }
}
