// RMSNorm (Zhang and Sennrich 2019), as Llama computes it in float32:
//   rstd[t] = 1 / sqrt(mean(x[t,:]^2) + eps),   out[t,:] = weight * x[t,:] * rstd[t]
// One block per row; rstd saved for the backward when the pointer is not null.
// Backward (frozen weight, accumulated): g = w * dout,
//   dx[t,:] += rstd[t] * (g - x[t,:] * rstd[t]^2 * mean(x[t,:] * g))
// One block per row; the mean is a block sum in float32 (the CPU sums in double).

extern "C" __global__ void rmsnorm_forward(float* out, const float* x, const float* weight,
                                           float* rstd, float eps, int dim) {
  __shared__ float scratch[32];
  int t = blockIdx.x;
  const float* xr = x + (long long) t * dim;
  float* orow = out + (long long) t * dim;
  float ss = 0.0f;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) {
    float v = xr[i];
    ss += v * v;
  }
  ss = block_sum(ss, scratch);
  // as the CPU reference: the mean in float32, the reciprocal square root in double
  float inv = (float) (1.0 / sqrt((double) (ss / dim + eps)));
  if (rstd != 0 && threadIdx.x == 0) {
    rstd[t] = inv;
  }
  for (int i = threadIdx.x; i < dim; i += blockDim.x) {
    orow[i] = xr[i] * inv * weight[i];
  }
}

// rmsnorm_forward_cast: the same, also writing out's rounding to bf16/f16 into out16 (cast_to_16's
// result for out, without its launch): the normalised input of q/k/v and gate/up is cast anyway.
extern "C" __global__ void rmsnorm_forward_cast(float* out, unsigned short* out16, const float* x,
                                                const float* weight, float* rstd, float eps, int dim,
                                                int dtype) {
  __shared__ float scratch[32];
  int t = blockIdx.x;
  const float* xr = x + (long long) t * dim;
  float* orow = out + (long long) t * dim;
  unsigned short* hrow = out16 + (long long) t * dim;
  float ss = 0.0f;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) {
    float v = xr[i];
    ss += v * v;
  }
  ss = block_sum(ss, scratch);
  float inv = (float) (1.0 / sqrt((double) (ss / dim + eps)));
  if (rstd != 0 && threadIdx.x == 0) {
    rstd[t] = inv;
  }
  for (int i = threadIdx.x; i < dim; i += blockDim.x) {
    float o = xr[i] * inv * weight[i];
    orow[i] = o;
    hrow[i] = float_to_16(o, dtype);
  }
}

extern "C" __global__ void rmsnorm_backward(float* dx, const float* dout, const float* x,
                                            const float* weight, const float* rstd, int dim) {
  __shared__ float scratch[32];
  int t = blockIdx.x;
  const float* xr = x + (long long) t * dim;
  const float* gr = dout + (long long) t * dim;
  float* dr = dx + (long long) t * dim;
  float dot = 0.0f;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) {
    dot += xr[i] * (weight[i] * gr[i]);
  }
  dot = block_sum(dot, scratch);
  float inv = rstd[t];
  float c = dot / dim * inv * inv;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) {
    dr[i] += inv * (weight[i] * gr[i] - xr[i] * c);
  }
}
