/* test_nn_ckpt.c: checkpoints round-trip bit-exactly with metadata; damaged or
 * mismatched files fail with a clear message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nn/nn_ckpt.h"
#include "nn/nn_model.h"
#include "nn/nn_optim.h"
#include "testutil.h"

static nn_resnet_config cfg1 = {.dims = 1, .w = 10, .cin = 3, .cout = 1, .width = 8, .blocks = 2,
                                .groups = 4, .n_scalars = 1, .emb_dim = 4};

static void path_of(char *buf, size_t n, const char *name) {
  snprintf(buf, n, "%s/%s", tu_tmpdir(), name);
}

static void test_roundtrip(void **state) {
  (void)state;
  nn_model m, m2;
  sb_error err = {0};
  char p[512];
  path_of(p, sizeof p, "nn_ckpt_rt.safetensors");
  assert_int_equal(nn_resnet_init(&m, &cfg1, &err), 0);
  nn_model_init_params(&m, 42);
  m.step = 17;
  const char *keys[] = {"system", "normalization"}, *vals[] = {"l96-sakov", "mean=0 std=1"};
  assert_int_equal(nn_ckpt_save(&m, 0, p, 2, keys, vals, &err), 0);
  st_file meta;
  assert_int_equal(nn_ckpt_load(p, &m2, &meta, &err), 0);
  assert_int_equal(m2.n_params, m.n_params);
  assert_memory_equal(m2.params, m.params, m.n_params * sizeof(float));
  assert_memory_equal(&m2.rc, &m.rc, sizeof m.rc);
  assert_int_equal(m2.step, 17);
  assert_string_equal(st_get_meta(&meta, "system"), "l96-sakov");
  assert_string_equal(st_get_meta(&meta, "nn.arch"), "resnet");
  st_free(&meta);
  nn_model_free(&m2);
  /* EMA weights are saved when asked, and are refused when absent */
  assert_int_equal(nn_ckpt_save(&m, 1, p, 0, NULL, NULL, &err), SB_EINVAL);
  nn_ema_update(&m, 0.5f);
  m.ema[0] += 1.0f;
  assert_int_equal(nn_ckpt_save(&m, 1, p, 0, NULL, NULL, &err), 0);
  assert_int_equal(nn_ckpt_load(p, &m2, NULL, &err), 0);
  assert_memory_equal(m2.params, m.ema, m.n_params * sizeof(float));
  nn_model_free(&m2);
  nn_model_free(&m);
  /* U-Net: config (widths list included) and every tensor round-trip */
  nn_unet_config uc = {.dims = 2, .h = 8, .w = 4, .cin = 2, .cout = 1, .levels = 3,
                       .widths = {4, 8, 12}, .blocks = 2, .mid = 1, .groups = 4, .n_scalars = 2,
                       .emb_dim = 6};
  assert_int_equal(nn_unet_init(&m, &uc, &err), 0);
  nn_model_init_params(&m, 3);
  assert_int_equal(nn_ckpt_save(&m, 0, p, 0, NULL, NULL, &err), 0);
  assert_int_equal(nn_ckpt_load(p, &m2, &meta, &err), 0);
  assert_string_equal(st_get_meta(&meta, "nn.arch"), "unet");
  st_free(&meta);
  assert_int_equal(m2.kind, NN_UNET);
  assert_memory_equal(&m2.uc, &m.uc, sizeof m.uc);
  assert_int_equal(m2.n_params, m.n_params);
  assert_memory_equal(m2.params, m.params, m.n_params * sizeof(float));
  nn_model_free(&m2);
  nn_model_free(&m);
  /* MLP too */
  nn_mlp_config mc = {.in = 4, .out = 2, .hidden = 5, .layers = 2, .act = NN_ACT_TANH};
  assert_int_equal(nn_mlp_init(&m, &mc, &err), 0);
  nn_model_init_params(&m, 1);
  assert_int_equal(nn_ckpt_save(&m, 0, p, 0, NULL, NULL, &err), 0);
  assert_int_equal(nn_ckpt_load(p, &m2, NULL, &err), 0);
  assert_int_equal(m2.kind, NN_MLP);
  assert_int_equal(m2.mc.act, NN_ACT_TANH);
  assert_memory_equal(m2.params, m.params, m.n_params * sizeof(float));
  nn_model_free(&m2);
  nn_model_free(&m);
}

static unsigned char *slurp(const char *p, size_t *n) {
  FILE *f = fopen(p, "rb");
  assert_non_null(f);
  fseek(f, 0, SEEK_END);
  *n = (size_t)ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *b = malloc(*n);
  assert_int_equal(fread(b, 1, *n, f), *n);
  fclose(f);
  return b;
}

static void spit(const char *p, const unsigned char *b, size_t n) {
  FILE *f = fopen(p, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(b, 1, n, f), n);
  fclose(f);
}

static void test_damaged(void **state) {
  (void)state;
  nn_model m, m2;
  sb_error err = {0};
  char p[512], q[512];
  path_of(p, sizeof p, "nn_ckpt_ok.safetensors");
  path_of(q, sizeof q, "nn_ckpt_bad.safetensors");
  assert_int_equal(nn_resnet_init(&m, &cfg1, &err), 0);
  nn_model_init_params(&m, 3);
  assert_int_equal(nn_ckpt_save(&m, 0, p, 0, NULL, NULL, &err), 0);
  size_t n;
  unsigned char *b = slurp(p, &n);

  /* truncated data */
  spit(q, b, n - 100);
  memset(&err, 0, sizeof err);
  assert_int_equal(nn_ckpt_load(q, &m2, NULL, &err), SB_EFORMAT);
  print_message("  truncated: %s\n", err.msg);
  assert_non_null(strstr(err.msg, "truncated"));
  assert_non_null(strstr(err.msg, "nn_ckpt_bad"));

  /* bad header: garbage JSON */
  unsigned char *c = malloc(n);
  memcpy(c, b, n);
  c[8] = 'X';
  spit(q, c, n);
  memset(&err, 0, sizeof err);
  assert_int_equal(nn_ckpt_load(q, &m2, NULL, &err), SB_EFORMAT);
  print_message("  bad header: %s\n", err.msg);
  assert_non_null(strstr(err.msg, "header"));

  /* header length beyond the file */
  memcpy(c, b, n);
  c[5] = 0x7f;
  spit(q, c, n);
  assert_int_equal(nn_ckpt_load(q, &m2, NULL, &err), SB_EFORMAT);

  /* wrong shape: a model file whose config says width 8 but a tensor is [8,8,2] */
  st_file f;
  assert_int_equal(st_read(p, &f, &err), 0);
  st_file g;
  st_init(&g);
  for (int i = 0; i < f.n_meta; i++) st_set_meta(&g, f.meta_keys[i], f.meta_vals[i], &err);
  for (int i = 0; i < f.n_tensors; i++) {
    st_tensor *t = &f.tensors[i];
    int64_t shape[ST_MAX_DIMS];
    memcpy(shape, t->shape, sizeof shape);
    if (!strcmp(t->name, "blocks.1.conv1.weight")) shape[2] = 2; /* fewer bytes, consistent file */
    assert_int_equal(st_add(&g, t->name, t->dtype, t->ndim, shape, t->data, &err), 0);
  }
  assert_int_equal(st_write(&g, q, &err), 0);
  st_free(&g);
  memset(&err, 0, sizeof err);
  assert_int_equal(nn_ckpt_load(q, &m2, NULL, &err), SB_EFORMAT);
  print_message("  wrong shape: %s\n", err.msg);
  assert_non_null(strstr(err.msg, "blocks.1.conv1.weight"));
  assert_non_null(strstr(err.msg, "shape"));

  /* a safetensors file that is not an nn checkpoint */
  st_init(&g);
  float v = 1.0f;
  st_add(&g, "w", ST_F32, 1, (int64_t[]){1}, &v, &err);
  assert_int_equal(st_write(&g, q, &err), 0);
  st_free(&g);
  assert_int_equal(nn_ckpt_load(q, &m2, NULL, &err), SB_EFORMAT);
  assert_non_null(strstr(err.msg, "not an sbida nn checkpoint"));

  /* unsupported format version */
  st_init(&g);
  for (int i = 0; i < f.n_meta; i++)
    st_set_meta(&g, f.meta_keys[i], strcmp(f.meta_keys[i], "nn.format") ? f.meta_vals[i] : "99", &err);
  assert_int_equal(st_write(&g, q, &err), 0);
  st_free(&g);
  assert_int_equal(nn_ckpt_load(q, &m2, NULL, &err), SB_ENOTSUP);
  st_free(&f);

  /* missing file */
  assert_int_equal(nn_ckpt_load("/nonexistent/x.safetensors", &m2, NULL, &err) < 0, 1);
  free(b), free(c);
  nn_model_free(&m);
}

/* A damaged file whose config claims a huge network (width 1000, 16 blocks:
 * about 96 million parameters, 770 MB for parameters and gradients) but
 * holds the tensors of a small one: refused from the tensors present before
 * anything is allocated. The load runs in a child so its peak resident
 * memory can be read alone (getrusage of the children). */
static void test_huge_config_refused_before_allocating(void **state) {
  (void)state;
  nn_model m, m2;
  sb_error err = {0};
  char p[512], q[512];
  path_of(p, sizeof p, "nn_ckpt_small.safetensors");
  path_of(q, sizeof q, "nn_ckpt_huge_cfg.safetensors");
  assert_int_equal(nn_resnet_init(&m, &cfg1, &err), 0);
  nn_model_init_params(&m, 3);
  assert_int_equal(nn_ckpt_save(&m, 0, p, 0, NULL, NULL, &err), 0);
  nn_model_free(&m);
  st_file f, g;
  assert_int_equal(st_read(p, &f, &err), 0);
  st_init(&g);
  for (int i = 0; i < f.n_meta; i++)
    st_set_meta(&g, f.meta_keys[i],
                strcmp(f.meta_keys[i], "nn.config") ? f.meta_vals[i]
                                                    : "dims=1 h=1 w=10 cin=3 cout=1 width=1000 blocks=16 groups=4 "
                                                      "n_scalars=1 emb_dim=4",
                &err);
  for (int i = 0; i < f.n_tensors; i++) {
    st_tensor *t = &f.tensors[i];
    assert_int_equal(st_add(&g, t->name, t->dtype, t->ndim, t->shape, t->data, &err), 0);
  }
  assert_int_equal(st_write(&g, q, &err), 0);
  st_free(&g);
  st_free(&f);
  int fd[2];
  assert_int_equal(pipe(fd), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    sb_error e2 = {0};
    int rc = nn_ckpt_load(q, &m2, NULL, &e2);
    if (!rc) nn_model_free(&m2);
    char msg[600];
    snprintf(msg, sizeof msg, "%d %s", rc, e2.msg);
    if (write(fd[1], msg, strlen(msg) + 1) < 0) _exit(3);
    _exit(0);
  }
  close(fd[1]);
  char msg[600] = "";
  ssize_t got = read(fd[0], msg, sizeof msg - 1);
  close(fd[0]);
  int status;
  waitpid(pid, &status, 0);
  assert_true(got > 0);
  struct rusage ru;
  getrusage(RUSAGE_CHILDREN, &ru);
  print_message("  huge config: %s (child peak %ld MB)\n", msg, ru.ru_maxrss / 1024);
  assert_int_equal(atoi(msg), SB_EFORMAT);
  assert_non_null(strstr(msg, "in_conv.weight"));
  assert_true(ru.ru_maxrss < 300 * 1024); /* KB: far below the 770 MB the config asks for */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_roundtrip),
      cmocka_unit_test(test_damaged),
      cmocka_unit_test(test_huge_config_refused_before_allocating),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
