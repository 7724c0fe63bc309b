/* nn_gradcheck.h: finite-difference gradient checking for nn tests (header only).
 *
 * Method: scalar L = sum_i out_i * r_i (r fixed random), evaluated in double
 * from the float32 output. The analytic gradient is backward(dout = r).
 * The numeric gradient uses the ggml 4-point formula
 *   (8 L(x+h/2) + L(x-h) - 8 L(x-h/2) - L(x+h)) / (6h),  truncation O(h^4),
 * with h = 1e-2 * max(1, |x|) on float32 inputs, so the float32 rounding noise
 * in L (~1e-7 |L|) contributes ~1e-5 relative: far below the tolerance.
 * Per tensor we require ||num - ana|| <= tol * ||ana|| + atol over the
 * checked entries (tol = 1e-2, atol = 1e-4 * sqrt(n)): a wrong formula, a
 * missing term or a missing accumulation gives errors of order 1 and fails. */
#ifndef NN_GRADCHECK_H
#define NN_GRADCHECK_H

#include <math.h>
#include <stdio.h>
#include <string.h>

#define GC_MAX_VARS 200

typedef struct gc_var {
  const char *name;
  float *x, *grad;
  size_t n;
} gc_var;

typedef struct gc {
  void (*forward)(void *ctx);
  void (*backward)(void *ctx); /* uses ctx's dout = r, accumulates into var grads */
  void *ctx;
  float *out;
  size_t n_out;
  const float *r;
  int n_vars;
  gc_var var[GC_MAX_VARS];
  size_t max_checks; /* entries checked per tensor (spread evenly); 0 = all */
} gc;

static double gc_loss(gc *g) {
  g->forward(g->ctx);
  double L = 0.0;
  for (size_t i = 0; i < g->n_out; i++) L += (double)g->out[i] * g->r[i];
  return L;
}

/* Returns the worst relative error over tensors; prints a line per tensor. */
static double gc_run(gc *g, double tol) {
  for (int v = 0; v < g->n_vars; v++)
    if (g->var[v].grad) memset(g->var[v].grad, 0, g->var[v].n * sizeof(float));
  g->forward(g->ctx);
  g->backward(g->ctx);
  double worst = 0.0;
  for (int v = 0; v < g->n_vars; v++) {
    gc_var *V = &g->var[v];
    size_t stride = 1, checked = 0;
    if (g->max_checks && V->n > g->max_checks) stride = V->n / g->max_checks;
    double num2 = 0.0, err2 = 0.0;
    for (size_t i = 0; i < V->n; i += stride) {
      float x0 = V->x[i];
      float h = 1e-2f * (fabsf(x0) > 1.0f ? fabsf(x0) : 1.0f);
      V->x[i] = x0 + h / 2;
      double lp2 = gc_loss(g);
      V->x[i] = x0 - h / 2;
      double lm2 = gc_loss(g);
      V->x[i] = x0 + h;
      double lp = gc_loss(g);
      V->x[i] = x0 - h;
      double lm = gc_loss(g);
      V->x[i] = x0;
      double num = (8.0 * lp2 + lm - 8.0 * lm2 - lp) / (6.0 * h);
      double ana = V->grad[i];
      num2 += ana * ana;
      err2 += (num - ana) * (num - ana);
      checked++;
    }
    double rel = sqrt(err2) / (sqrt(num2) + 1e-4 * sqrt((double)checked));
    if (rel > worst) worst = rel;
    if (rel > tol) printf("  gradcheck %-24s rel err %.3e (|g| %.3e, %zu entries) FAIL\n",
                          V->name, rel, sqrt(num2), checked);
  }
  g->forward(g->ctx);
  return worst;
}

#endif
