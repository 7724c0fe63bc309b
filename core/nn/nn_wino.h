/* nn_wino.h: Winograd F(m x m, 3 x 3) for 3x3 stride-1 circular convolutions
 * (internal to the nn module; nn_layers.c picks it, see nn_conv_forward). */
#ifndef SB_NN_WINO_H
#define SB_NN_WINO_H

#include <stddef.h>

/* The output tile m a convolution uses: 4 when H and W are multiples of 4, 2
 * when multiples of 2, 0 (im2col) otherwise or when it is not 3x3 stride 1. */
int nn_wino_m(int H, int W, int kh, int kw, int stride);

/* Floats of scratch nn_wino_conv needs (0 for m = 0). */
size_t nn_wino_size(int NI, int NO, int B, int H, int W, int m);

/* out (NO, B, H, W) = (add ? out : 0) + bias + the circular correlation of
 * x (NI, B, H, W) with w, H and W multiples of m (2 or 4), bias may be NULL.
 * flip = 0: w is (NO, NI, 3, 3), the forward convolution. flip = 1: w is
 * (NI, NO, 3, 3) and the kernel used is w transposed and rotated by 180
 * degrees (the input gradient of that convolution, x being d(out)). */
void nn_wino_conv(float *out, float *scratch, const float *x, const float *w, const float *bias,
                  int NI, int NO, int B, int H, int W, int m, int add, int flip);

/* nn_wino_conv with the transformed kernels U given (NULL: computed into
 * scratch as above); U from nn_wino_weights for the same w, m and flip. */
void nn_wino_conv_u(float *out, float *scratch, const float *x, const float *w, const float *U,
                    const float *bias, int NI, int NO, int B, int H, int W, int m, int add,
                    int flip);
/* U ((m+2)^2 planes of NO x NI, nn_wino_u_size floats) of the kernels w */
size_t nn_wino_u_size(int NI, int NO, int m);
void nn_wino_weights(float *U, const float *w, int NI, int NO, int m, int flip);

/* dw (NO, NI, 3, 3) += the weight gradient of that forward convolution given
 * x (NI, B, H, W) and dy = d(out) (NO, B, H, W), by the same transforms
 * (dU = sum over tiles (A dY A^T) (B^T d B)^T, dw = G^T dU G); scratch of
 * nn_wino_size(NI, NO, ...) floats. */
void nn_wino_dw(float *dw, float *scratch, const float *x, const float *dy, int NI, int NO, int B,
                int H, int W, int m);

/* nn_wino_fused.c: the groups of 8 samples (0 .. 8 ngr - 1 of B) of
 * nn_wino_conv's forward (flip folded into U already) as a pipeline over
 * chunks of tiles that stay in L2. U: the transformed kernels, (m+2)^2
 * planes of NO x NI. Scratch of nn_wfu_size floats. */
/* whether the fused way pays: V of at least 2 tile vectors (16 tiles) fits
 * the chunk's L2 budget (NI <= 170 for F(4x4)); wider layers keep the 36
 * large sgemms, whose U[p] stays in L2 (measured: the fused way was no
 * faster at 256 input channels with a budget that admits them) */
int nn_wfu_ok(int NI, int NO, int m);
size_t nn_wfu_size(int NI, int NO, int H, int W, int m);
void nn_wfu_conv(float *out, float *scratch, const float *x, const float *U, const float *bias,
                 int NI, int NO, int B, int ngr, int H, int W, int m, int add);

#endif
