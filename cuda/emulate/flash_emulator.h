// A CPU stand-in for the CUDA features flash_attention.cu uses, so that its kernels run on a
// machine without a GPU (cuda/emulate/emulate-flash.sh): every CUDA thread of a block is a host
// thread, __syncthreads a barrier of the block, and each warp collective (shfl, ldmatrix, mma) a
// pair of barriers of the warp around an exchange of the lanes' operands. The fragment layouts
// below are written from the PTX ISA's descriptions ("Matrix fragments for mma.m16n8k16 with
// floating point type", "ldmatrix"), independently of the kernels' index math, which is what this
// checks. Slow (a barrier per collective) and for small shapes only.
#pragma once
#include <ucontext.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <vector>

using std::max;
using std::min;

#define __device__
#define __global__
#define __forceinline__ inline
#define __shared__
#define __launch_bounds__(...)
#define NEG_INF (-INFINITY)

struct EmuDim {
  unsigned x, y, z;
};

// The threads of a block are user-level contexts run by one host thread, switched at barriers
// (a warp collective is two warp barriers around an exchange through EmuWarp): cheap switches,
// deterministic order.
struct EmuGroup {
  int expected;
  int arrived;
};

struct EmuThread {
  ucontext_t context;
  EmuDim idx;
  bool done;
  EmuGroup* waiting;  // the barrier this thread waits at, or null
};

struct EmuWarp {
  EmuGroup group{32, 0};
  uint32_t u[32][8];
  float f[32];
};

inline EmuThread* emu_threads;
inline EmuThread* emu_current;
inline ucontext_t emu_scheduler;
inline EmuWarp* emu_warps;
inline EmuGroup emu_block_group;
inline EmuDim blockIdx;
inline EmuDim blockDim = {128, 1, 1};
inline EmuDim gridDim = {1, 1, 1};
inline unsigned char* emu_shared;  // the block's dynamic shared memory

#define threadIdx (emu_current->idx)

inline void emu_release(EmuGroup* g) {
  g->arrived = 0;
  for (int t = 0; t < 128; t++) {
    if (emu_threads[t].waiting == g) {
      emu_threads[t].waiting = nullptr;
    }
  }
}

inline void emu_wait(EmuGroup* g) {
  if (++g->arrived == g->expected) {
    emu_release(g);
  } else {
    emu_current->waiting = g;
  }
  swapcontext(&emu_current->context, &emu_scheduler);
}

inline EmuWarp& emu_warp() { return emu_warps[threadIdx.x >> 5]; }
inline int emu_lane() { return threadIdx.x & 31; }

inline void __syncthreads() { emu_wait(&emu_block_group); }

inline float __shfl_xor_sync(unsigned, float v, int o) {
  EmuWarp& w = emu_warp();
  int l = emu_lane();
  w.f[l] = v;
  emu_wait(&w.group);
  float r = w.f[l ^ o];
  emu_wait(&w.group);
  return r;
}

inline float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) {
    v += __shfl_xor_sync(0xffffffffu, v, o);
  }
  return v;
}

inline uint16_t emu_bf16(float f) {  // round to nearest even
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if (std::isnan(f)) {
    return 0x7fc0;
  }
  u += 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t) (u >> 16);
}

inline float emu_float(uint16_t h) {
  uint32_t u = (uint32_t) h << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline float __uint_as_float(unsigned int u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline unsigned int fa_pack(float lo, float hi) { return emu_bf16(lo) | ((unsigned int) emu_bf16(hi) << 16); }

inline unsigned int fa_smem_address(const void* p) {
  return (unsigned int) ((const unsigned char*) p - emu_shared);
}

inline uint16_t emu_smem16(unsigned int address) {
  uint16_t h;
  std::memcpy(&h, emu_shared + address, 2);
  return h;
}

// ldmatrix .x4: lane 8m + i gives the address of row i of matrix m (16 bytes, 8 b16); lane l
// receives, of each matrix m, row l/4 and elements 2(l%4), 2(l%4)+1 (with .trans: column l/4 of
// rows 2(l%4) and 2(l%4)+1), the lower-index element in the lower half.
inline void emu_ldsm(unsigned int address, unsigned int* r, bool trans) {
  EmuWarp& w = emu_warp();
  int l = emu_lane();
  w.u[l][0] = address;
  emu_wait(&w.group);
  for (int m = 0; m < 4; m++) {
    if (!trans) {
      unsigned int row = w.u[8 * m + l / 4][0];
      r[m] = emu_smem16(row + 4 * (l % 4)) | ((unsigned int) emu_smem16(row + 4 * (l % 4) + 2) << 16);
    } else {
      unsigned int row0 = w.u[8 * m + 2 * (l % 4)][0];
      unsigned int row1 = w.u[8 * m + 2 * (l % 4) + 1][0];
      r[m] = emu_smem16(row0 + 2 * (l / 4)) | ((unsigned int) emu_smem16(row1 + 2 * (l / 4)) << 16);
    }
  }
  emu_wait(&w.group);
}

inline void fa_ldsm(unsigned int address, unsigned int* r) { emu_ldsm(address, r, false); }
inline void fa_ldsm_trans(unsigned int address, unsigned int* r) { emu_ldsm(address, r, true); }

// mma.m16n8k16.row.col bf16, float32 accumulation. Lane l, gid = l/4, tig = l%4:
// A: a0 (gid, 2tig..+1), a1 (gid+8, 2tig..+1), a2 (gid, 2tig+8..+9), a3 (gid+8, 2tig+8..+9)
// B: b0 (k 2tig..+1, n gid), b1 (k 2tig+8..+9, n gid); C: c0,c1 (gid, 2tig..+1), c2,c3 (gid+8, ..)
inline void fa_mma(float* c, const unsigned int* a, unsigned int b0, unsigned int b1) {
  EmuWarp& w = emu_warp();
  int l = emu_lane();
  for (int i = 0; i < 4; i++) {
    w.u[l][i] = a[i];
  }
  w.u[l][4] = b0;
  w.u[l][5] = b1;
  emu_wait(&w.group);
  float A[16][16];
  float B[16][8];
  for (int L = 0; L < 32; L++) {
    int g = L / 4;
    int t = L % 4;
    const uint32_t* x = w.u[L];
    A[g][2 * t] = emu_float(x[0] & 0xffff);
    A[g][2 * t + 1] = emu_float(x[0] >> 16);
    A[g + 8][2 * t] = emu_float(x[1] & 0xffff);
    A[g + 8][2 * t + 1] = emu_float(x[1] >> 16);
    A[g][2 * t + 8] = emu_float(x[2] & 0xffff);
    A[g][2 * t + 9] = emu_float(x[2] >> 16);
    A[g + 8][2 * t + 8] = emu_float(x[3] & 0xffff);
    A[g + 8][2 * t + 9] = emu_float(x[3] >> 16);
    B[2 * t][g] = emu_float(x[4] & 0xffff);
    B[2 * t + 1][g] = emu_float(x[4] >> 16);
    B[2 * t + 8][g] = emu_float(x[5] & 0xffff);
    B[2 * t + 9][g] = emu_float(x[5] >> 16);
  }
  emu_wait(&w.group);
  int g = l / 4;
  int t = l % 4;
  for (int e = 0; e < 4; e++) {
    int row = g + 8 * (e / 2);
    int col = 2 * t + (e % 2);
    float acc = c[e];
    for (int k = 0; k < 16; k++) {
      acc += A[row][k] * B[k][col];
    }
    c[e] = acc;
  }
}

inline std::function<void()>* emu_kernel;

inline void emu_trampoline() {
  (*emu_kernel)();
  emu_current->done = true;
  // a thread that returns leaves the block's barrier (as a finished CUDA thread does)
  if (--emu_block_group.expected > 0 && emu_block_group.arrived == emu_block_group.expected) {
    emu_release(&emu_block_group);
  }
  swapcontext(&emu_current->context, &emu_scheduler);
}

// Runs kernel() over a grid (gx, gy) of blocks of 128 threads, one block at a time.
inline void emu_launch(int gx, int gy, size_t sharedBytes, std::function<void()> kernel) {
  std::vector<unsigned char> shared(sharedBytes + 16, 0xff);  // garbage, as on a GPU
  emu_shared = shared.data();
  emu_kernel = &kernel;
  gridDim = {(unsigned) gx, (unsigned) gy, 1};
  const size_t stackBytes = 256 * 1024;
  std::vector<char> stacks(128 * stackBytes);
  std::vector<EmuThread> threads(128);
  emu_threads = threads.data();
  for (int by = 0; by < gy; by++) {
    for (int bx = 0; bx < gx; bx++) {
      EmuWarp warps[4];
      emu_warps = warps;
      emu_block_group = {128, 0};
      blockIdx = {(unsigned) bx, (unsigned) by, 0};
      for (int t = 0; t < 128; t++) {
        EmuThread& th = threads[t];
        th.idx = {(unsigned) t, 0, 0};
        th.done = false;
        th.waiting = nullptr;
        getcontext(&th.context);
        th.context.uc_stack.ss_sp = stacks.data() + t * stackBytes;
        th.context.uc_stack.ss_size = stackBytes;
        th.context.uc_link = nullptr;
        makecontext(&th.context, emu_trampoline, 0);
      }
      for (;;) {
        bool any = false;
        bool ran = false;
        for (int t = 0; t < 128; t++) {
          EmuThread& th = threads[t];
          if (th.done) {
            continue;
          }
          any = true;
          if (th.waiting == nullptr) {
            emu_current = &th;
            swapcontext(&emu_scheduler, &th.context);
            ran = true;
          }
        }
        if (!any) {
          break;
        }
        if (!ran) {
          std::fprintf(stderr, "emulator: deadlock in block (%d, %d): threads wait at a barrier others never reach\n",
                       bx, by);
          std::exit(2);
        }
      }
    }
  }
}
