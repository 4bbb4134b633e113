// powerinfer-rs CUDA kernels, compiled at run time by NVRTC (no CUDA headers needed).
//
// Weights are ggml row-major blocks, exactly as on the host (F32, F16, Q8_0, Q4_0,
// Q4_1); `wtype` selects the decoder: 0 F32, 1 F16, 2 Q8_0, 3 Q4_0, 4 Q4_1. Every
// output is written by one thread with a fixed order of additions: results are
// deterministic and no atomics are used.
//
//   gemv_rows  y[b][k] = W[row k] . x[b]      a warp per (row, token); rows gathered by idx
//   ffn_act    h[b][k] = act(g, u) with the skip rule and per-token membership
//   axpy_rows  y[b][c] += sum_k h[b][k] * W[row k][c]   a thread per output column,
//              looping over the active rows (a block owns a tile of columns)

typedef unsigned char u8;
typedef unsigned short u16;

__device__ __forceinline__ float f16_to_f32(u16 h) {
    unsigned int sign = (h >> 15) & 1u, exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
    unsigned int bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign << 31;
        } else {
            // Subnormal: normalise.
            exp = 127 - 15 + 1;
            while ((man & 0x400u) == 0) { man <<= 1; exp--; }
            man &= 0x3ffu;
            bits = (sign << 31) | (exp << 23) | (man << 13);
        }
    } else if (exp == 31) {
        bits = (sign << 31) | 0x7f800000u | (man << 13);
    } else {
        bits = (sign << 31) | ((exp + 127 - 15) << 23) | (man << 13);
    }
    return __int_as_float((int)bits);
}

__device__ __forceinline__ u16 load_u16(const u8* p) {
    return (u16)p[0] | ((u16)p[1] << 8);
}

// Weight `j` of a row starting at `row` (any type).
__device__ __forceinline__ float weight_at(const u8* row, int wtype, int j) {
    switch (wtype) {
    case 0: return __int_as_float((int)((unsigned int)row[4 * j] | ((unsigned int)row[4 * j + 1] << 8)
                                       | ((unsigned int)row[4 * j + 2] << 16) | ((unsigned int)row[4 * j + 3] << 24)));
    case 1: return f16_to_f32(load_u16(row + 2 * j));
    case 2: {
        const u8* b = row + (j / 32) * 34;
        return f16_to_f32(load_u16(b)) * (float)(signed char)b[2 + j % 32];
    }
    case 3: {
        const u8* b = row + (j / 32) * 18;
        int t = j % 32;
        int q = t < 16 ? (b[2 + t] & 0x0f) : (b[2 + t - 16] >> 4);
        return f16_to_f32(load_u16(b)) * (float)(q - 8);
    }
    default: {
        const u8* b = row + (j / 32) * 20;
        int t = j % 32;
        int q = t < 16 ? (b[4 + t] & 0x0f) : (b[4 + t - 16] >> 4);
        return f16_to_f32(load_u16(b)) * (float)q + f16_to_f32(load_u16(b + 2));
    }
    }
}

// Grid: (ceil(m / warps_per_block), n); a warp per output row k of token b.
extern "C" __global__ void gemv_rows(const u8* w, long long row_bytes, int wtype, int cols,
                                     const int* idx, int m, const float* x, int n, float* y) {
    int warps = blockDim.x / 32;
    int k = blockIdx.x * warps + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    int b = blockIdx.y;
    if (k >= m || b >= n) return;
    const u8* row = w + (long long)(idx ? idx[k] : k) * row_bytes;
    const float* xb = x + (long long)b * cols;
    float acc = 0.0f;
    for (int j = lane; j < cols; j += 32) acc += weight_at(row, wtype, j) * xb[j];
    for (int off = 16; off > 0; off >>= 1) acc += __shfl_down_sync(0xffffffffu, acc, off);
    if (lane == 0) y[(long long)b * m + k] = acc;
}

// act: 0 ReLU (no up), 1 ReGLU, 2 dReLU, 3 SwiGLU, 4 GeGLU (tanh GELU). Candidate k is neuron idx[k] (the
// per-neuron `bias`, or null, is indexed by it). `member` (n x m, or null) says which
// candidates token b may use; `threshold` is the skip cut on |act(g)| (negative: none).
// `u` may be null for ReLU and GELU (no up projection). Writes h (n x m): 0 where a neuron is skipped.
extern "C" __global__ void ffn_act(const float* g, const float* u, const float* bias,
                                   const int* idx, const unsigned char* member, int act,
                                   float threshold, int m, int n, float* h) {
    long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= (long long)m * n) return;
    int k = (int)(e % m);
    float v = g[e] + (bias ? bias[idx[k]] : 0.0f);
    float a = act == 3   ? v / (1.0f + expf(-v))
              : act == 4 ? 0.5f * v * (1.0f + tanhf(0.7978846f * v * (1.0f + 0.044715f * v * v)))
              : act == 5 ? 0.5f * v * (1.0f + erff(v * 0.70710678f))
                         : fmaxf(v, 0.0f);
    bool keep = (member == 0 || member[e] != 0) && fabsf(a) > threshold;
    float out = 0.0f;
    if (keep) {
        if (act == 0 || act == 5) out = a;
        else if (act == 2) out = a * fmaxf(u[e], 0.0f);
        else out = a * u[e];
    }
    h[e] = out;
}

// Grid: (ceil(dim / blockDim.x), n). Thread c of token b: y[b][c] += sum over k in
// order of h[b][k] * W[row k][c]. Rows with h == 0 are skipped (they add nothing).
extern "C" __global__ void axpy_rows(const u8* w, long long row_bytes, int wtype, int dim,
                                     const int* idx, const float* h, int m, int n, float* y) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    int b = blockIdx.y;
    if (c >= dim || b >= n) return;
    const float* hb = h + (long long)b * m;
    float acc = 0.0f;
    for (int k = 0; k < m; k++) {
        float hk = hb[k];
        if (hk == 0.0f) continue;
        const u8* row = w + (long long)(idx ? idx[k] : k) * row_bytes;
        acc += hk * weight_at(row, wtype, c);
    }
    y[(long long)b * dim + c] += acc;
}
