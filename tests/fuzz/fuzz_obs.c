/* fuzz_obs.c: observation operators from JSON (core/obs/obs.c), every type,
 * on three state shapes: a 1D Lorenz96 state [1][1][40], a 2D velocity field
 * [2][32][32] and a small odd grid [1][8][12]. Invariants for an operator
 * built: its CSR rows are well formed (increasing row_ptr, columns inside the
 * state, finite values); obs_to_json gives JSON that builds the same matrix;
 * obs_apply and obs_apply_adjoint agree (<A x, r> = <x, A^T r>). A nonlinear
 * operator f(A x): the same for its linear part A, obs_apply is f of it, and
 * J^T r = A^T (f'(A x) r). */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "obs/obs.h"

static const int shapes[][3] = {{1, 1, 40}, {2, 32, 32}, {1, 8, 12}};

static void check_csr(const obs_op *op) {
  FUZZ_CHECK(op->n_obs >= 0 && op->state_dim == op->C * op->H * op->W, "n_obs %d, state_dim %d", op->n_obs,
             op->state_dim);
  FUZZ_CHECK(op->row_ptr && op->row_ptr[0] == 0, "row_ptr[0] != 0");
  for (int i = 0; i < op->n_obs; i++) {
    FUZZ_CHECK(op->row_ptr[i + 1] >= op->row_ptr[i], "row_ptr decreases at row %d", i);
    for (int e = op->row_ptr[i]; e < op->row_ptr[i + 1]; e++) {
      FUZZ_CHECK(op->col[e] >= 0 && op->col[e] < op->state_dim, "row %d: column %d outside the state", i, op->col[e]);
      FUZZ_CHECK(isfinite(op->val[e]), "row %d: value %g", i, op->val[e]);
    }
  }
}

static void check_same(const obs_op *a, const obs_op *b) {
  FUZZ_CHECK(a->fn == b->fn, "obs_to_json changed the function (%s -> %s)", obs_fn_name(a->fn), obs_fn_name(b->fn));
  FUZZ_CHECK(a->kind == b->kind && a->n_obs == b->n_obs, "obs_to_json changed the operator (%s, %d rows -> %s, %d)",
             obs_kind_name(a->kind), a->n_obs, obs_kind_name(b->kind), b->n_obs);
  int nnz = a->row_ptr[a->n_obs];
  FUZZ_CHECK(nnz == b->row_ptr[b->n_obs], "obs_to_json changed the number of entries");
  FUZZ_CHECK(!memcmp(a->row_ptr, b->row_ptr, sizeof(int) * (size_t)(a->n_obs + 1)), "obs_to_json changed row_ptr");
  FUZZ_CHECK(!nnz || !memcmp(a->col, b->col, sizeof(int) * (size_t)nnz), "obs_to_json changed the columns");
  for (int e = 0; e < nnz; e++)
    FUZZ_CHECK(a->val[e] == b->val[e], "obs_to_json changed entry %d: %.17g -> %.17g", e, a->val[e], b->val[e]);
}

/* f(A x) against the linear part, and J^T r against A^T (f' r) */
static void check_nonlinear(const obs_op *op) {
  obs_op lin = *op; /* shares the CSR; not freed */
  lin.fn = OBS_FN_NONE;
  int n = op->state_dim, m = op->n_obs ? op->n_obs : 1;
  double *x = malloc(sizeof(double) * (size_t)n), *g = calloc((size_t)n, sizeof(double)),
         *g2 = calloc((size_t)n, sizeof(double)), *y = malloc(sizeof(double) * (size_t)m),
         *ax = malloc(sizeof(double) * (size_t)m), *dy = malloc(sizeof(double) * (size_t)m),
         *r = malloc(sizeof(double) * (size_t)m);
  FUZZ_CHECK(x && g && g2 && y && ax && dy && r, "out of memory");
  for (int i = 0; i < n; i++) x[i] = sin(0.37 * i + 0.1);
  for (int i = 0; i < op->n_obs; i++) r[i] = cos(0.91 * i + 0.3);
  obs_apply(op, x, y, 1);
  obs_apply(&lin, x, ax, 1);
  for (int i = 0; i < op->n_obs; i++) {
    FUZZ_CHECK(y[i] == obs_fn_value(op->fn, ax[i]), "row %d: %s gives %g, f(A x) = %g", i, obs_fn_name(op->fn), y[i],
               obs_fn_value(op->fn, ax[i]));
    dy[i] = obs_fn_deriv(op->fn, ax[i]) * r[i];
  }
  obs_jacobian_t(op, x, r, g, 1);
  obs_apply_adjoint(&lin, dy, g2, 1);
  for (int i = 0; i < n; i++) FUZZ_CHECK(fabs(g[i] - g2[i]) <= 1e-12 * (1 + fabs(g2[i])), "J^T r differs at %d", i);
  free(x), free(g), free(g2), free(y), free(ax), free(dy), free(r);
}

static void check_adjoint(const obs_op *op) {
  if (!obs_is_linear(op)) {
    check_nonlinear(op);
    obs_op lin = *op;
    lin.fn = OBS_FN_NONE;
    check_adjoint(&lin);
    return;
  }
  int n = op->state_dim, m = op->n_obs;
  double *x = malloc(sizeof(double) * (size_t)n), *g = calloc((size_t)n, sizeof(double));
  double *y = malloc(sizeof(double) * (size_t)(m ? m : 1)), *r = malloc(sizeof(double) * (size_t)(m ? m : 1));
  FUZZ_CHECK(x && g && y && r, "out of memory");
  for (int i = 0; i < n; i++) x[i] = sin(0.37 * i + 0.1);
  for (int i = 0; i < m; i++) r[i] = cos(0.91 * i + 0.3);
  obs_apply(op, x, y, 1);
  obs_apply_adjoint(op, r, g, 1);
  double ax_r = 0, x_atr = 0, scale = 0;
  for (int i = 0; i < m; i++) ax_r += y[i] * r[i], scale += fabs(y[i] * r[i]);
  for (int i = 0; i < n; i++) x_atr += x[i] * g[i], scale += fabs(x[i] * g[i]);
  FUZZ_CHECK(fabs(ax_r - x_atr) <= 1e-9 * (1 + scale), "<Ax,r> = %.17g but <x,A^T r> = %.17g", ax_r, x_atr);
  free(x), free(g), free(y), free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  json_t *j = json_loadb((const char *)data, size, 0, NULL);
  if (!j) return 0;
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
    obs_op *op;
    sb_error err = {0};
    if (obs_from_json(&op, j, shapes[s][0], shapes[s][1], shapes[s][2], &err)) {
      FUZZ_CHECK(!op && err.msg[0], "obs_from_json failed without a message or left an operator");
      continue;
    }
    check_csr(op);
    json_t *back = obs_to_json(op);
    FUZZ_CHECK(back, "obs_to_json returned NULL");
    obs_op *op2;
    FUZZ_CHECK(!obs_from_json(&op2, back, op->C, op->H, op->W, &err), "the JSON of a built operator is refused: %s",
               err.msg);
    check_same(op, op2);
    check_adjoint(op);
    obs_free(op2);
    json_decref(back);
    obs_free(op);
  }
  json_decref(j);
  return 0;
}
