// Shared helpers for medtune's kernels. NVRTC compiles all kernel files as one program with no
// include path, so nothing here includes a header: bf16/f16 conversions are bit operations or
// single PTX instructions, and reductions use warp shuffles.
//
// Storage dtypes, as Java's DType passes them: 0 = float32, 1 = bfloat16, 2 = float16.

#define DT_F32 0
#define DT_BF16 1
#define DT_F16 2
#define NEG_INF __int_as_float(0xff800000)

// element i of a tensor stored as dtype, as float32 (bf16 is the high half of a float32)
__device__ __forceinline__ float load_as_float(const void* p, long long i, int dtype) {
  if (dtype == DT_F32) {
    return ((const float*) p)[i];
  }
  unsigned short h = ((const unsigned short*) p)[i];
  if (dtype == DT_BF16) {
    return __uint_as_float(((unsigned int) h) << 16);
  }
  float f;
  asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
  return f;
}

// float32 to bf16 or f16 bits, round to nearest even (what torch's .to(bfloat16) does)
__device__ __forceinline__ unsigned short float_to_16(float f, int dtype) {
  unsigned short h;
  if (dtype == DT_BF16) {
    asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(h) : "f"(f));
  } else {
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
  }
  return h;
}

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) {
    v += __shfl_xor_sync(0xffffffffu, v, o);
  }
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) {
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  }
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the result.
// scratch: 32 floats of shared memory, reused after a barrier.
__device__ float block_sum(float v, float* scratch) {
  int lane = threadIdx.x & 31;
  int warp = threadIdx.x >> 5;
  v = warp_sum(v);
  __syncthreads();
  if (lane == 0) {
    scratch[warp] = v;
  }
  __syncthreads();
  int warps = blockDim.x >> 5;
  v = lane < warps ? scratch[lane] : 0.0f;
  return warp_sum(v);
}

__device__ float block_max(float v, float* scratch) {
  int lane = threadIdx.x & 31;
  int warp = threadIdx.x >> 5;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) {
    scratch[warp] = v;
  }
  __syncthreads();
  int warps = blockDim.x >> 5;
  v = lane < warps ? scratch[lane] : NEG_INF;
  return warp_max(v);
}
