// SwiGLU (Shazeer 2020) as Llama's MLP uses it: out = silu(gate) * up, silu(x) = x / (1 + e^-x).
// Backward (planned): dgate = dout * up * s (1 + x (1 - s)), s = sigmoid(gate); dup = dout * silu(gate).

extern "C" __global__ void swiglu_forward(float* out, const float* gate, const float* up, long long n) {
  for (long long i = blockIdx.x * (long long) blockDim.x + threadIdx.x; i < n;
       i += (long long) gridDim.x * blockDim.x) {
    float x = gate[i];
    out[i] = x / (1.0f + expf(-x)) * up[i];
  }
}
