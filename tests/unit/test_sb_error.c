/* test_sb_error.c: error messages, and programming errors named by file and line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "nn/nn_model.h"
#include "util/sb_error.h"

static int misuse(void) { SB_BUG_RETURN(SB_EINVAL); }

static void test_bug_names_file_and_line(void **state) {
  (void)state;
  sb_error err = {0};
  int rc = misuse();
  assert_int_equal(SB_BUG(&err, rc, "the thing failed"), SB_EINVAL);
  assert_non_null(strstr(err.msg, "the thing failed: programming error at tests/unit/test_sb_error.c:12"));
  /* without a note: the caller's place */
  assert_int_equal(SB_BUG(&err, SB_EINVAL, "x"), SB_EINVAL);
  assert_non_null(strstr(err.msg, "tests/unit/test_sb_error.c:"));
  /* a misused nn call says where */
  nn_model m;
  nn_resnet_config rc1 = {.dims = 1, .h = 1, .w = 8, .cin = 1, .cout = 1, .width = 8, .blocks = 1, .groups = 2,
                          .n_scalars = 0, .emb_dim = 4};
  assert_int_equal(nn_resnet_init(&m, &rc1, &err), 0);
  nn_workspace ws;
  assert_int_equal(nn_workspace_init(&ws, &m, 2, 0, &err), 0);
  float x[8 * 4] = {0}, out[8 * 4];
  rc = nn_forward(&m, &ws, x, NULL, 3, out); /* more than max_batch */
  SB_BUG(&err, rc, "forward");
  assert_non_null(strstr(err.msg, "core/nn/nn_model.c:"));
  nn_workspace_free(&ws);
  nn_model_free(&m);
}

static void test_fail_and_wrap(void **state) {
  (void)state;
  sb_error err = {0};
  assert_int_equal(sb_fail(&err, SB_ERANGE, "value %d", 3), SB_ERANGE);
  sb_wrap(&err, "config");
  assert_string_equal(err.msg, "config: value 3");
  assert_string_equal(sb_strerror(SB_ECANCEL), "ECANCEL");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bug_names_file_and_line),
      cmocka_unit_test(test_fail_and_wrap),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
