/* flow.c: the npe coupling stack (see flow.h). */
#include "kinds/npe/flow.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn_layers.h"
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
  const int K = sm->couplings, N = sm->N;
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
                        (float)sm->clamp, B, N);
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
                         (float)sm->clamp, B, N);
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
    nn_coupling_inverse(nxt, ld, cur, fb->sraw, fb->shift, fb->mask + (size_t)k * N, (float)sm->clamp, B, N);
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

typedef struct grad_job {
  model *sm;
  flow_buf *fb;
  const float *x, *cond, *tsc;
  int b0, B, n_total;
  float *grads;
  double loss;
  int rc;
} grad_job;

/* task t: slice t of the batch with flow buffer t */
static void grad_worker(void *ctx, int t, int w) {
  (void)w;
  grad_job *j = (grad_job *)ctx + t;
  const int N = j->sm->N;
  const size_t cs = (size_t)2 * j->sm->W * N;
  j->loss = 0;
  j->rc = 0;
  enum { CH = 64 };
  const int step = j->fb->max_batch < CH ? j->fb->max_batch : CH;
  for (int b0 = 0; b0 < j->B && !j->rc; b0 += step) {
    int nb = j->B - b0 < step ? j->B - b0 : step, g = j->b0 + b0;
    double lq[CH];
    j->rc = flow_forward(j->sm, j->fb, j->x + (size_t)g * N, j->cond + (size_t)g * cs, cs, j->tsc ? j->tsc + g : NULL,
                         nb, lq);
    if (j->rc) break;
    for (int b = 0; b < nb; b++) j->loss -= lq[b] / ((double)N * j->n_total);
    j->rc = flow_backward(j->sm, j->fb, 1.0f / ((float)N * j->n_total), j->grads);
  }
}

int flow_grad_mt(model *sm, flow_buf *fb, int T, const float *x, const float *cond, const float *tsc, int B,
                 double *loss, sb_error *err) {
  T = sb_threads(T, B);
  nn_model *m = &sm->net;
  grad_job jobs[SB_THREADS_MAX];
  int per = (B + T - 1) / T;
  for (int t = 0; t < T; t++) {
    int b0 = t * per, nb = B - b0 < per ? B - b0 : per;
    if (nb < 0) nb = 0;
    if (t > 0) memset(fb[t].grads, 0, sizeof(float) * m->n_params);
    jobs[t] = (grad_job){sm, &fb[t], x, cond, tsc, b0, nb, B, t ? fb[t].grads : m->grads, 0, 0};
  }
  int blas = openblas_get_num_threads();
  if (T > 1) openblas_set_num_threads(1);
  sb_parallel_for(T, T, grad_worker, jobs);
  if (T > 1) openblas_set_num_threads(blas);
  double l = 0;
  for (int t = 0; t < T; t++) {
    if (jobs[t].rc) return SB_BUG(err, jobs[t].rc, "flow gradient failed");
    l += jobs[t].loss;
    if (t > 0)
      for (size_t i = 0; i < m->n_params; i++) m->grads[i] += fb[t].grads[i];
  }
  *loss = l;
  return SB_OK;
}
