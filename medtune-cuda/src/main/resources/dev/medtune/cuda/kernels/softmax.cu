// Row-wise softmax: out[t,:] = exp(x[t,:] - max) / sum, in place allowed. One block per row.

extern "C" __global__ void softmax_forward(float* out, const float* x, int dim) {
  __shared__ float scratch[32];
  long long row = (long long) blockIdx.x * dim;
  float mx = NEG_INF;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) {
    mx = fmaxf(mx, x[row + i]);
  }
  mx = block_max(mx, scratch);
  float sum = 0.0f;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) {
    float e = expf(x[row + i] - mx);
    out[row + i] = e;
    sum += e;
  }
  sum = block_sum(sum, scratch);
  float inv = 1.0f / sum;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) {
    out[row + i] *= inv;
  }
}
