// RISE mask geometry, shared by the CPU and CUDA kernels.
//
// A mask is a (cells x cells) grid, reflect-padded by one cell to (cells + 2), bilinearly
// upsampled (align_corners=False) by cell_up = ceil((size + cell) / cells) per cell, and cropped
// at offset cell_up + shift, shift in [0, cell), cell = ceil(size / cells). Per axis, mask pixel p
// reads two grid cells with weights (1 - lambda, lambda), exactly as torch's upsample_bilinear2d.
#pragma once

#include <cstdint>

#include "common/host_device.h"

namespace xaifast {

struct RiseAxis {
  int64_t cells;    // grid cells along this axis
  int64_t size;     // mask pixels along this axis
  int64_t cell;     // shift range: ceil(size / cells)
  int64_t cell_up;  // upsampled cell: ceil((size + cell) / cells)
};

XAI_HOST_DEVICE RiseAxis rise_axis(int64_t cells, int64_t size) {
  RiseAxis axis;
  axis.cells = cells;
  axis.size = size;
  axis.cell = (size + cells - 1) / cells;
  axis.cell_up = (size + axis.cell + cells - 1) / cells;
  return axis;
}

// Index into the unpadded grid of padded cell p (0 .. cells + 1): reflect by one, or the only
// cell when there is one. cells = 7: p = 0 -> 1, p = 1 -> 0, p = 8 -> 5.
XAI_HOST_DEVICE int64_t rise_unpad(int64_t p, int64_t cells) {
  if (cells == 1) return 0;
  const int64_t i = p - 1;
  return i < 0 ? -i : (i >= cells ? 2 * (cells - 1) - i : i);
}

// The two grid cells and weights read by mask pixel `pixel` at `shift`.
// 224 px, 7 cells (cell 32, cell_up 37), shift 0, pixel 0: u = 37, src = 0.5135,
// padded cells 0 and 1 -> grid cells 1 and 0, weights 0.4865 and 0.5135.
template <typename acc_t>
XAI_HOST_DEVICE void rise_taps(const RiseAxis& axis, int64_t shift, int64_t pixel, int64_t& cell0, int64_t& cell1,
                               acc_t& weight0, acc_t& weight1) {
  const int64_t in_len = axis.cells + 2;
  const int64_t out_len = axis.cell_up * in_len;
  const acc_t scale = static_cast<acc_t>(in_len) / static_cast<acc_t>(out_len);
  const int64_t u = axis.cell_up + shift + pixel;
  acc_t src = scale * (static_cast<acc_t>(u) + static_cast<acc_t>(0.5)) - static_cast<acc_t>(0.5);
  if (src < 0) src = 0;
  int64_t p0 = static_cast<int64_t>(src);  // src >= 0: truncation is floor
  if (p0 > in_len - 1) p0 = in_len - 1;
  acc_t lambda = src - static_cast<acc_t>(p0);
  lambda = lambda < 0 ? acc_t(0) : (lambda > 1 ? acc_t(1) : lambda);
  const int64_t p1 = p0 + (p0 < in_len - 1 ? 1 : 0);
  cell0 = rise_unpad(p0, axis.cells);
  cell1 = rise_unpad(p1, axis.cells);
  weight0 = static_cast<acc_t>(1) - lambda;
  weight1 = lambda;
}

}  // namespace xaifast
