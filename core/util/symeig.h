/* symeig.h: eigendecomposition of a small dense symmetric matrix in double.
 *
 * Householder tridiagonalization + implicit QL (the EISPACK tred2/tql2 pair as
 * published in JAMA, public domain). O(n^3), no allocation beyond a caller
 * workspace, no threads: meant for the ensemble-space matrices of the ETKF
 * (n = ensemble size, up to a few hundred), called from many threads at once. */
#ifndef SB_SYMEIG_H
#define SB_SYMEIG_H

#include "util/sb_error.h"

/* Decomposes A = V diag(w) V^T. a [n][n] row-major holds A on entry (only
 * symmetric input is meaningful) and is overwritten with V: column j of V
 * (a[i*n + j], i = 0..n-1) is the unit eigenvector of w[j]. Eigenvalues come
 * out in ascending order. work must hold n doubles. Returns SB_ENUMERIC if QL
 * does not converge (non-finite input). */
int symeig(double *a, double *w, double *work, int n, sb_error *err);

#endif
