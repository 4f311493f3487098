// XAI_HOST_DEVICE marks the inline math shared by the CPU and CUDA kernels: the CPU build
// compiles it as plain inline C++, nvcc as __host__ __device__, so the CPU tests exercise the
// exact per-element arithmetic the GPU runs.
#pragma once

#if defined(__CUDACC__) || defined(__HIPCC__)
#define XAI_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define XAI_HOST_DEVICE inline
#endif
