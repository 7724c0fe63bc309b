/* nn_mlp.c: multilayer perceptron in -> [linear -> act] x layers -> linear -> out,
 * for flow conditioners and ratio classifiers. Tensors are named like a
 * PyTorch nn.Sequential: net.0 (linear), net.1 (act), net.2 (linear), ... */
#include <stdio.h>
#include <string.h>

#include "nn/nn_internal.h"
#include "nn/nn_layers.h"

enum { M_X, M_D1, M_D2, M_Z = 4 };
#define M_H(i) (M_Z + NN_MAX_BLOCKS + (i))

int nn__mlp_build(nn_model *m) {
  const nn_mlp_config *c = &m->mc;
  char name[NN_NAME_MAX];
  int bad = 0;
  for (int l = 0; l <= c->layers; l++) {
    int in = l == 0 ? c->in : c->hidden, out = l == c->layers ? c->out : c->hidden;
    snprintf(name, sizeof name, "net.%d.weight", 2 * l);
    bad |= nn__add_tensor(m, name, 2, (int64_t[]){out, in}, NN_INIT_UNIFORM, in) < 0;
    snprintf(name, sizeof name, "net.%d.bias", 2 * l);
    bad |= nn__add_tensor(m, name, 1, (int64_t[]){out}, NN_INIT_UNIFORM, in) < 0;
  }
  return bad ? -1 : 0;
}

int nn__mlp_ws(nn_workspace *ws, const nn_model *m, size_t *used) {
  const nn_mlp_config *c = &m->mc;
  size_t Bm = ws->max_batch, wmax = c->hidden;
  if ((size_t)c->in > wmax) wmax = c->in;
  if ((size_t)c->out > wmax) wmax = c->out;
  ws->act[M_X] = nn__carve(ws, used, Bm * c->in);
  ws->act[M_D1] = nn__carve(ws, used, ws->train * Bm * wmax);
  ws->act[M_D2] = nn__carve(ws, used, ws->train * Bm * wmax);
  for (int l = 0; l < c->layers; l++) {
    int fresh = ws->train || l < 2; /* inference ping-pongs two buffers */
    ws->act[M_Z + l] = fresh ? nn__carve(ws, used, Bm * c->hidden) : ws->act[M_Z + l % 2];
    ws->act[M_H(l)] = fresh ? nn__carve(ws, used, Bm * c->hidden) : ws->act[M_H(l % 2)];
  }
  return 0;
}

static void act_fwd(int act, float *out, const float *x, size_t n) {
  if (act == NN_ACT_TANH)
    nn_tanh_forward(out, x, n);
  else if (act == NN_ACT_RELU)
    nn_relu_forward(out, x, n);
  else
    nn_silu_forward(out, x, n);
}

static void act_bwd(int act, float *dx, const float *dout, const float *x, size_t n) {
  if (act == NN_ACT_TANH)
    nn_tanh_backward(dx, dout, x, n);
  else if (act == NN_ACT_RELU)
    nn_relu_backward(dx, dout, x, n);
  else
    nn_silu_backward(dx, dout, x, n);
}

int nn__mlp_forward(const nn_model *m, nn_workspace *ws, const float *x, int B, float *out) {
  const nn_mlp_config *c = &m->mc;
  float **a = ws->act;
  memcpy(a[M_X], x, sizeof(float) * B * c->in);
  const float *in = a[M_X];
  for (int l = 0; l < c->layers; l++) {
    nn_linear_forward(a[M_Z + l], in, NN_P(m, 2 * l), NN_P(m, 2 * l + 1), B,
                      l ? c->hidden : c->in, c->hidden);
    act_fwd(c->act, a[M_H(l)], a[M_Z + l], (size_t)B * c->hidden);
    in = a[M_H(l)];
  }
  int L = c->layers;
  nn_linear_forward(out, in, NN_P(m, 2 * L), NN_P(m, 2 * L + 1), B, c->hidden, c->out);
  return SB_OK;
}

int nn__mlp_backward(const nn_model *m, nn_workspace *ws, const float *dout, float *g,
                     float *dx) {
  const nn_mlp_config *c = &m->mc;
  int B = ws->B, L = c->layers, Hd = c->hidden;
  float **a = ws->act, *dh = a[M_D1], *dz = a[M_D2];
  memset(dh, 0, sizeof(float) * B * Hd);
  nn_linear_backward(dh, NN_G(g, m, 2 * L), NN_G(g, m, 2 * L + 1), dout, a[M_H(L - 1)],
                     NN_P(m, 2 * L), B, Hd, c->out);
  for (int l = L - 1; l >= 0; l--) {
    memset(dz, 0, sizeof(float) * B * Hd);
    act_bwd(c->act, dz, dh, a[M_Z + l], (size_t)B * Hd);
    int in = l ? Hd : c->in;
    float *din = l ? dh : dx;
    if (l) memset(dh, 0, sizeof(float) * B * Hd);
    nn_linear_backward(din, NN_G(g, m, 2 * l), NN_G(g, m, 2 * l + 1), dz,
                       l ? a[M_H(l - 1)] : a[M_X], NN_P(m, 2 * l), B, in, Hd);
  }
  return SB_OK;
}
