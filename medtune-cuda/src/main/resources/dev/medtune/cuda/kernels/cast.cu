// Casts. cast_to_16: float32 activations to the bf16/f16 operand of a cuBLASLt product whose
// weight is bf16/f16 (round to nearest even). cast_to_f32: any stored dtype to float32 (reading a
// weight back to the host).

extern "C" __global__ void cast_to_16(unsigned short* out, const float* in, long long n, int dtype) {
  for (long long i = blockIdx.x * (long long) blockDim.x + threadIdx.x; i < n;
       i += (long long) gridDim.x * blockDim.x) {
    out[i] = float_to_16(in[i], dtype);
  }
}

extern "C" __global__ void cast_to_f32(float* out, const void* in, int dtype, long long n) {
  for (long long i = blockIdx.x * (long long) blockDim.x + threadIdx.x; i < n;
       i += (long long) gridDim.x * blockDim.x) {
    out[i] = load_as_float(in, i, dtype);
  }
}
