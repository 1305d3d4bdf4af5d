// Temperature sampling on the device (Backend.sampleOf, the host Sampler's meaning without top-k /
// top-p): with s_i = x_i * invT (float), m = max s_i, e_i = exp(s_i - m) in double and
// r = u * sum e_i, out = the first i whose cumulative sum e_0 + ... + e_i exceeds r; when there is
// none (rounding at the very end, or a NaN / infinity that makes the sum NaN): the argmax of the
// scaled row (argmax.cu's order). u is the caller's uniform, so the Java RNG's seed decides.
//
// One block per row. Pass 1 (strided, coalesced): the max, the argmax, and whether a NaN occurs
// (Java's Math.max propagates NaN, so the host then falls back to the argmax; so do we). Pass 2:
// each thread sums e_i over its own contiguous chunk of the row (index order), thread 0 makes the
// exclusive prefix of the chunk sums and the total in chunk order. Pass 3: each thread finds the
// first i of its chunk whose cumulative sum exceeds r; the smallest such i wins. The sums are in
// another order than the host's sequential one, so the two can differ only when r lies within
// rounding (~1e-16 relative) of a cumulative sum.

#define SAMPLE_BLOCK 1024

extern "C" __global__ void sample_rows(int* out, const float* x, int dim, float invT, const double* uniforms) {
  __shared__ double prefix[SAMPLE_BLOCK];
  __shared__ float values[32];
  __shared__ int indices[32];
  __shared__ float rowMax;
  __shared__ int rowArgmax;
  __shared__ double total;
  __shared__ int chosen;
  const float* row = x + (long long) blockIdx.x * dim;
  int tid = threadIdx.x;

  // pass 1: max, argmax (NaN passed over), any NaN
  float bv = NEG_INF;
  int bi = -1;
  int nan = 0;
  for (int i = tid; i < dim; i += blockDim.x) {
    float s = __fmul_rn(row[i], invT);
    if (s != s) {
      nan = 1;
    } else if (bi < 0 || s > bv) {
      bv = s;
      bi = i;
    }
  }
  nan = __syncthreads_or(nan);
  argmax_warp(bv, bi);
  int lane = tid & 31;
  int warp = tid >> 5;
  if (lane == 0) {
    values[warp] = bv;
    indices[warp] = bi;
  }
  __syncthreads();
  if (warp == 0) {
    int warps = blockDim.x >> 5;
    bv = lane < warps ? values[lane] : NEG_INF;
    bi = lane < warps ? indices[lane] : -1;
    argmax_warp(bv, bi);
    if (lane == 0) {
      rowMax = bv;  // the max of the non-NaN values (-inf for an all -inf row)
      rowArgmax = bi < 0 ? 0 : bi;
      chosen = 0x7fffffff;
    }
  }
  __syncthreads();
  if (nan) {
    if (tid == 0) {
      out[blockIdx.x] = rowArgmax;
    }
    return;
  }
  float m = rowMax;

  // pass 2: chunk sums in index order, then their exclusive prefix in chunk order
  int chunk = (dim + blockDim.x - 1) / blockDim.x;
  int from = min(dim, tid * chunk);
  int to = min(dim, from + chunk);
  double sum = 0.0;
  for (int i = from; i < to; i++) {
    sum += exp((double) __fsub_rn(__fmul_rn(row[i], invT), m));
  }
  prefix[tid] = sum;
  __syncthreads();
  if (tid == 0) {
    double run = 0.0;
    for (int t = 0; t < blockDim.x; t++) {
      double c = prefix[t];
      prefix[t] = run;
      run += c;
    }
    total = run;
  }
  __syncthreads();

  // pass 3: the first index whose cumulative sum exceeds r (never, when r or the sums are NaN)
  double r = uniforms[blockIdx.x] * total;
  double cumulative = prefix[tid];
  if (cumulative + sum > r) {
    for (int i = from; i < to; i++) {
      cumulative += exp((double) __fsub_rn(__fmul_rn(row[i], invT), m));
      if (cumulative > r) {
        atomicMin(&chosen, i);
        break;
      }
    }
  }
  __syncthreads();
  if (tid == 0) {
    out[blockIdx.x] = chosen == 0x7fffffff ? rowArgmax : chosen;
  }
}
