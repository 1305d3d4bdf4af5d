// RMSNorm (Zhang and Sennrich 2019), as Llama computes it in float32:
//   rstd[t] = 1 / sqrt(mean(x[t,:]^2) + eps),   out[t,:] = weight * x[t,:] * rstd[t]
// One block per row; rstd saved for the backward when the pointer is not null.
// Backward (planned): dx = rstd * (w*dout - x * rstd^2 * mean(x * w*dout)).

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
