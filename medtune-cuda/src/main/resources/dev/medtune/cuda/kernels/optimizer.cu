// The training step's small ops on float32 buffers (LoRA weights, gradients, AdamW state).
//
// dropout_forward: inverted dropout (Srivastava et al. 2014); element i of x[0..n) is kept when
//   u(seed, i) >= p and scaled by 1 / (1 - p), else zeroed; u is SplitMix64's finaliser (Steele
//   et al. 2014) on the counter: z = seed + (i + 1) * 0x9E3779B97F4A7C15, then the three
//   xor-shift-multiply rounds, u = (z >> 40) * 2^-24 (bit for bit the CPU backend's mask).
// scale_inplace: t[0..n) *= s (gradient clipping).
// squared_norm: sum t[i]^2 in double, one block, a fixed order (the same on every run).
// adamw_step (Loshchilov and Hutter, ICLR 2019; torch.optim.AdamW, amsgrad off, float32):
//   p *= decay; m += (1 - beta1) (g - m); v = beta2 v + (1 - beta2) g^2;
//   p -= stepSize * m / (sqrt(v) / bc2Sqrt + eps)

__device__ __forceinline__ float dropout_uniform(unsigned long long seed, unsigned long long i) {
  unsigned long long z = seed + (i + 1ULL) * 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  z = z ^ (z >> 31);
  return (float) (z >> 40) * 0x1.0p-24f;
}

extern "C" __global__ void dropout_forward(float* out, const float* x, float p, float keepScale,
                                           unsigned long long seed, long long n) {
  for (long long i = blockIdx.x * (long long) blockDim.x + threadIdx.x; i < n;
       i += (long long) gridDim.x * blockDim.x) {
    out[i] = dropout_uniform(seed, (unsigned long long) i) >= p ? x[i] * keepScale : 0.0f;
  }
}

extern "C" __global__ void scale_inplace(float* t, float s, long long n) {
  for (long long i = blockIdx.x * (long long) blockDim.x + threadIdx.x; i < n;
       i += (long long) gridDim.x * blockDim.x) {
    t[i] *= s;
  }
}

// one block of 1024 threads; result[0] = sum t[i]^2
extern "C" __global__ void squared_norm(double* result, const float* t, long long n) {
  __shared__ double partial[1024];
  double s = 0.0;
  for (long long i = threadIdx.x; i < n; i += blockDim.x) {
    double v = t[i];
    s += v * v;
  }
  partial[threadIdx.x] = s;
  __syncthreads();
  for (int w = blockDim.x / 2; w > 0; w >>= 1) {
    if (threadIdx.x < w) {
      partial[threadIdx.x] += partial[threadIdx.x + w];
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    result[0] = partial[0];
  }
}

extern "C" __global__ void adamw_step(float* param, const float* grad, float* expAvg,
                                      float* expAvgSq, long long n, float decay,
                                      float oneMinusBeta1, float beta2, float oneMinusBeta2,
                                      float stepSize, float bc2Sqrt, float eps) {
  for (long long j = blockIdx.x * (long long) blockDim.x + threadIdx.x; j < n;
       j += (long long) gridDim.x * blockDim.x) {
    float g = grad[j];
    float p = param[j] * decay;
    float m = expAvg[j] + oneMinusBeta1 * (g - expAvg[j]);
    float v = beta2 * expAvgSq[j] + oneMinusBeta2 * g * g;
    expAvg[j] = m;
    expAvgSq[j] = v;
    float denom = sqrtf(v) / bc2Sqrt + eps;
    param[j] = p - stepSize * (m / denom);
  }
}

// squared_norm_many (trainspeed): the global gradient norm's sum for many tensors at once, one
// block of 1024 threads per tensor: partial[b] = sum t_b[i]^2 over its count[b] elements, in
// double, the same fixed order as squared_norm; the host sums the partials in list order after
// one copy (one wait per optimizer step instead of one per tensor).
extern "C" __global__ void squared_norm_many(double* partial, const unsigned long long* pointers,
                                             const long long* counts) {
  __shared__ double sums[1024];
  const float* t = (const float*) pointers[blockIdx.x];
  long long n = counts[blockIdx.x];
  double s = 0.0;
  for (long long i = threadIdx.x; i < n; i += blockDim.x) {
    double v = t[i];
    s += v * v;
  }
  sums[threadIdx.x] = s;
  __syncthreads();
  for (int w = blockDim.x / 2; w > 0; w >>= 1) {
    if (threadIdx.x < w) {
      sums[threadIdx.x] += sums[threadIdx.x + w];
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    partial[blockIdx.x] = sums[0];
  }
}
