/* flow.c: the npe coupling stack (see flow.h). */
#include "kinds/npe/flow.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kinds/npe/npe.h"
#include "nn/nn_layers.h"
#include "nn/nn_parallel.h"
#include "util/par.h"

static const double LOG_2PI = 1.8378770664093454836;

void flow_mask(int k, int N, float *mask) {
  for (int n = 0; n < N; n++) {
    int pat = k % 4, bit = pat < 2 ? n % 2 : (n / 2) % 2;
    mask[n] = (float)(bit == (pat % 2 ? 1 : 0));
  }
}

void flow_buf_free(flow_buf *fb) {
  if (!fb) return;
  if (fb->ws)
    for (int k = 0; k < (fb->train ? fb->K : 1); k++) nn_workspace_free(&fb->ws[k]);
  free(fb->ws);
  free(fb->mask); free(fb->h); free(fb->sraw); free(fb->shift); free(fb->in); free(fb->out); free(fb->scal);
  free(fb->ld); free(fb->dh); free(fb->dh2); free(fb->ds); free(fb->dt); free(fb->din); free(fb->dlogdet);
  free(fb->grads);
  memset(fb, 0, sizeof *fb);
}

int flow_buf_init(flow_buf *fb, const model *sm, int max_batch, int train, sb_error *err) {
  memset(fb, 0, sizeof *fb);
  const int K = sm->kind == &kind_npe && sm->settings ? npe_settings_of(sm)->couplings : 0, N = sm->N;
  if (K < 1 || max_batch < 1) return sb_fail(err, SB_EINVAL, "flow_buf_init: not an npe model (%d couplings) or no batch", K);
  fb->K = K, fb->N = N, fb->W = sm->W, fb->max_batch = max_batch, fb->train = train;
  fb->cin = nn_in_size(&sm->net) / N;
  fb->ns = nn_n_scalars(&sm->net);
  int nws = train ? K : 1;
  size_t BN = (size_t)max_batch * N;
  fb->ws = calloc((size_t)nws, sizeof *fb->ws);
  fb->mask = malloc(sizeof(float) * (size_t)K * N);
  fb->h = malloc(sizeof(float) * (size_t)(K + 1) * BN);
  fb->sraw = malloc(sizeof(float) * (size_t)K * BN);
  fb->shift = malloc(sizeof(float) * (size_t)K * BN);
  fb->in = malloc(sizeof(float) * (size_t)fb->cin * BN);
  fb->out = malloc(sizeof(float) * 2 * BN);
  fb->scal = malloc(sizeof(float) * (size_t)max_batch * (fb->ns > 0 ? fb->ns : 1));
  fb->ld = malloc(sizeof(float) * (size_t)max_batch);
  int ok = fb->ld && fb->ws && fb->mask && fb->h && fb->sraw && fb->shift && fb->in && fb->out && fb->scal;
  if (ok && train) {
    fb->dh = malloc(sizeof(float) * BN);
    fb->dh2 = malloc(sizeof(float) * BN);
    fb->ds = malloc(sizeof(float) * BN);
    fb->dt = malloc(sizeof(float) * BN);
    fb->din = malloc(sizeof(float) * (size_t)fb->cin * BN);
    fb->dlogdet = malloc(sizeof(float) * (size_t)max_batch);
    fb->grads = malloc(sizeof(float) * sm->net.n_params);
    ok = fb->dh && fb->dh2 && fb->ds && fb->dt && fb->din && fb->dlogdet && fb->grads;
  }
  if (!ok) {
    flow_buf_free(fb);
    return sb_fail(err, SB_ENOMEM, "out of memory for the flow of %d samples", max_batch);
  }
  for (int k = 0; k < K; k++) flow_mask(k, N, fb->mask + (size_t)k * N);
  for (int k = 0; k < nws; k++) {
    int rc = nn_workspace_init(&fb->ws[k], &sm->net, max_batch, train, err);
    if (rc) {
      flow_buf_free(fb);
      return rc;
    }
  }
  return SB_OK;
}

/* Runs the conditioner of coupling k on h [B][N]; raw log-scales and shifts
 * land in sraw, shift [B][N]. */
static int conditioner(const model *sm, flow_buf *fb, nn_workspace *ws, int k, const float *h,
                       const float *cond, size_t cond_stride, const float *tsc, int B, float *sraw, float *shift) {
  const int N = fb->N, cin = fb->cin, nc = 2 * fb->W;
  const float *mk = fb->mask + (size_t)k * N;
  for (int b = 0; b < B; b++) {
    float *ib = fb->in + (size_t)b * cin * N;
    for (int n = 0; n < N; n++) ib[n] = mk[n] * h[(size_t)b * N + n], ib[N + n] = mk[n];
    memcpy(ib + 2 * (size_t)N, cond + (size_t)b * cond_stride, sizeof(float) * (size_t)nc * N);
    fb->scal[(size_t)b * fb->ns] = fb->K > 1 ? (float)k / (float)(fb->K - 1) : 0.0f;
    if (fb->ns > 1) fb->scal[(size_t)b * fb->ns + 1] = tsc ? tsc[b] : 0.0f;
  }
  int rc = nn_forward(&sm->net, ws, fb->in, fb->scal, B, fb->out);
  if (rc) return rc;
  for (int b = 0; b < B; b++) {
    memcpy(sraw + (size_t)b * N, fb->out + (size_t)b * 2 * N, sizeof(float) * (size_t)N);
    memcpy(shift + (size_t)b * N, fb->out + ((size_t)b * 2 + 1) * N, sizeof(float) * (size_t)N);
  }
  return SB_OK;
}

static void base_logq(const float *u, int B, int N, const float *ld, double *logq) {
  for (int b = 0; b < B; b++) {
    double q = 0;
    for (int n = 0; n < N; n++) q += (double)u[(size_t)b * N + n] * u[(size_t)b * N + n];
    logq[b] = -0.5 * q - 0.5 * N * LOG_2PI + ld[b];
  }
}

int flow_forward(const model *sm, flow_buf *fb, const float *x, const float *cond, size_t cond_stride,
                 const float *tsc, int B, double *logq) {
  if (B < 1 || B > fb->max_batch) SB_BUG_RETURN(SB_EINVAL);
  const int K = fb->K, N = fb->N;
  const size_t BN = (size_t)B * N;
  float *ld = fb->ld;
  memset(ld, 0, sizeof(float) * (size_t)B);
  fb->B = B;
  /* activations live at the stride of B, so h_k is h + k*B*N */
  memcpy(fb->h, x, sizeof(float) * BN);
  for (int k = 0; k < K; k++) {
    nn_workspace *ws = &fb->ws[fb->train ? k : 0];
    float *sr = fb->sraw + (size_t)k * BN, *sh = fb->shift + (size_t)k * BN;
    int rc = conditioner(sm, fb, ws, k, fb->h + (size_t)k * BN, cond, cond_stride, tsc, B, sr, sh);
    if (rc) return rc;
    nn_coupling_forward(fb->h + (size_t)(k + 1) * BN, ld, fb->h + (size_t)k * BN, sr, sh, fb->mask + (size_t)k * N,
                        (float)npe_settings_of(sm)->clamp, B, N);
  }
  if (logq) base_logq(fb->h + (size_t)K * BN, B, N, ld, logq);
  return SB_OK;
}

int flow_backward(const model *sm, flow_buf *fb, float scale, float *grads) {
  if (!fb->train || fb->B < 1) SB_BUG_RETURN(SB_EINVAL);
  const int K = fb->K, N = fb->N, B = fb->B, cin = fb->cin;
  const size_t BN = (size_t)B * N;
  /* d(-scale * log N(u)) / du = scale * u; d/d(logdet) = -scale */
  const float *u = fb->h + (size_t)K * BN;
  for (size_t i = 0; i < BN; i++) fb->dh[i] = scale * u[i];
  for (int b = 0; b < B; b++) fb->dlogdet[b] = -scale;
  for (int k = K - 1; k >= 0; k--) {
    const float *mk = fb->mask + (size_t)k * N, *hk = fb->h + (size_t)k * BN;
    memset(fb->dh2, 0, sizeof(float) * BN);
    memset(fb->ds, 0, sizeof(float) * BN);
    memset(fb->dt, 0, sizeof(float) * BN);
    nn_coupling_backward(fb->dh2, fb->ds, fb->dt, fb->dh, fb->dlogdet, hk, fb->sraw + (size_t)k * BN, mk,
                         (float)npe_settings_of(sm)->clamp, B, N);
    for (int b = 0; b < B; b++) {
      memcpy(fb->out + (size_t)b * 2 * N, fb->ds + (size_t)b * N, sizeof(float) * (size_t)N);
      memcpy(fb->out + ((size_t)b * 2 + 1) * N, fb->dt + (size_t)b * N, sizeof(float) * (size_t)N);
    }
    memset(fb->din, 0, sizeof(float) * (size_t)cin * BN);
    int rc = nn_backward(&sm->net, &fb->ws[k], fb->out, grads, fb->din);
    if (rc) return rc;
    /* the conditioner saw mask * h_k in its first channel */
    for (int b = 0; b < B; b++)
      for (int n = 0; n < N; n++) fb->dh2[(size_t)b * N + n] += mk[n] * fb->din[(size_t)b * cin * N + n];
    float *tmp = fb->dh;
    fb->dh = fb->dh2, fb->dh2 = tmp;
  }
  return SB_OK;
}

int flow_inverse(const model *sm, flow_buf *fb, const float *u, const float *cond, size_t cond_stride,
                 const float *tsc, int B, float *x, double *logq) {
  if (B < 1 || B > fb->max_batch) SB_BUG_RETURN(SB_EINVAL);
  const int K = fb->K, N = fb->N;
  const size_t BN = (size_t)B * N;
  float *ld = fb->ld;
  memset(ld, 0, sizeof(float) * (size_t)B);
  float *cur = fb->h, *nxt = fb->h + BN;
  memcpy(cur, u, sizeof(float) * BN);
  for (int k = K - 1; k >= 0; k--) {
    /* the kept nodes are the same before and after the coupling */
    int rc = conditioner(sm, fb, &fb->ws[0], k, cur, cond, cond_stride, tsc, B, fb->sraw, fb->shift);
    if (rc) return rc;
    nn_coupling_inverse(nxt, ld, cur, fb->sraw, fb->shift, fb->mask + (size_t)k * N, (float)npe_settings_of(sm)->clamp, B, N);
    float *t = cur;
    cur = nxt, nxt = t;
  }
  memcpy(x, cur, sizeof(float) * BN);
  if (logq) {
    /* ld holds -sum s (the inverse's log-det); log q(x) = log N(u) + sum s */
    for (int b = 0; b < B; b++) ld[b] = -ld[b];
    base_logq(u, B, N, ld, logq);
  }
  fb->B = 0; /* activations do not belong to a forward pass */
  return SB_OK;
}

typedef struct grad_ctx {
  model *sm;
  flow_buf *fb;
  const float *x, *cond, *tsc;
  int n_total;
} grad_ctx;

/* slice t with flow buffer t, in chunks of at most 64 */
static int grad_slice(void *arg, int t, int b0, int nb, float *grads, double *loss) {
  const grad_ctx *c = arg;
  flow_buf *fb = &c->fb[t];
  const int N = c->sm->N;
  const size_t cs = (size_t)2 * c->sm->W * N;
  enum { CH = 64 };
  const int step = fb->max_batch < CH ? fb->max_batch : CH;
  int rc = 0;
  for (int k = 0; k < nb && !rc; k += step) {
    int n = nb - k < step ? nb - k : step, g = b0 + k;
    double lq[CH];
    rc = flow_forward(c->sm, fb, c->x + (size_t)g * N, c->cond + (size_t)g * cs, cs, c->tsc ? c->tsc + g : NULL, n, lq);
    if (rc) break;
    for (int b = 0; b < n; b++) *loss -= lq[b] / ((double)N * c->n_total);
    rc = flow_backward(c->sm, fb, 1.0f / ((float)N * c->n_total), grads);
  }
  return rc;
}

int flow_grad_mt(model *sm, flow_buf *fb, int T, const float *x, const float *cond, const float *tsc, int B,
                 int n_total, double *loss, sb_error *err) {
  T = sb_threads(T, B);
  float *grads[SB_THREADS_MAX] = {NULL};
  for (int t = 1; t < T; t++) grads[t] = fb[t].grads;
  grad_ctx c = {sm, fb, x, cond, tsc, n_total};
  int rc = nn_grad_slices(&sm->net, T, B, grads, grad_slice, &c, loss);
  return rc ? SB_BUG(err, rc, "flow gradient failed") : SB_OK;
}
