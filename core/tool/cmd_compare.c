/* cmd_compare.c: `sbida compare a.json b.json ...`: side-by-side markdown
 * table of evaluation results (sbida eval --json). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tool/cmd.h"
#include "util/cli.h"
#include <jansson.h>

static void compare_usage(FILE *f) {
  fprintf(f,
          "usage: sbida compare RESULT.json [RESULT.json ...]\n\n"
          "Prints a markdown table with one column per `sbida eval --json` result and one row per\n"
          "metric, and notes when the results were not computed on the same test set.\n\n"
          "  --help   this text\n");
}

static void cell_num(json_t *j, const char *key, const char *fmt) {
  json_t *v = json_object_get(j, key);
  if (json_is_number(v)) {
    printf(" ");
    printf(fmt, json_number_value(v));
    printf(" |");
  } else {
    printf(" - |");
  }
}

static double coverage_at(json_t *j, double level) {
  json_t *c = json_object_get(j, "coverage");
  json_t *lv = json_object_get(c, "levels"), *ob = json_object_get(c, "observed");
  for (size_t i = 0; i < json_array_size(lv); i++)
    if (fabs(json_number_value(json_array_get(lv, i)) - level) < 1e-9) return json_number_value(json_array_get(ob, i));
  return NAN;
}

int cmd_compare(int argc, char **argv) {
  const cli_flag flags[] = {{NULL, 0, NULL, 0, 0, NULL}};
  int first, rc0 = cli_parse(argc, argv, "sbida compare", flags, compare_usage, 1 << 20, &first);
  if (rc0) return rc0 < 0 ? 0 : rc0;
  if (first >= argc) {
    compare_usage(stderr);
    return 2;
  }
  argv += first - 1; /* the files are argv[1..n] below */
  argc -= first - 1;
  int n = argc - 1;
  json_t *res[256];
  if (n > 256) {
    fprintf(stderr, "sbida compare: at most 256 files\n");
    return 2;
  }
  for (int i = 0; i < n; i++) {
    json_error_t je;
    res[i] = json_load_file(argv[i + 1], 0, &je);
    if (!res[i] || !json_is_object(res[i]) || !json_is_number(json_object_get(res[i], "rmse"))) {
      fprintf(stderr, "sbida compare: %s is not an sbida eval result%s%s\n", argv[i + 1], res[i] ? "" : ": ",
              res[i] ? "" : je.text);
      for (int k = 0; k <= i; k++) json_decref(res[k]);
      return res[i] ? 2 : 1;
    }
  }
  printf("| metric |");
  for (int i = 0; i < n; i++) printf(" %s |", json_string_value(json_object_get(res[i], "estimator")));
  printf("\n|---|");
  for (int i = 0; i < n; i++) printf("---:|");
  printf("\n| file |");
  for (int i = 0; i < n; i++) printf(" %s |", argv[i + 1]);
  printf("\n| kind |");
  for (int i = 0; i < n; i++) printf(" %s |", json_string_value(json_object_get(res[i], "kind")));
  printf("\n");
  struct { const char *label, *key, *fmt; } rows[] = {
      {"RMSE", "rmse", "%.4f"},
      {"spread", "spread", "%.4f"},
      {"spread / skill", "spread_skill", "%.3f"},
      {"CRPS", "crps", "%.4f"},
      {"rank uniformity p", "rank_uniformity_p", "%.3g"},
      {"seconds", "seconds", "%.2f"},
      {"samples / s", "samples_per_second", "%.0f"},
  };
  for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
    printf("| %s |", rows[r].label);
    for (int i = 0; i < n; i++) cell_num(res[i], rows[r].key, rows[r].fmt);
    printf("\n");
    if (r == 3) {
      printf("| coverage max abs error |");
      for (int i = 0; i < n; i++)
        printf(" %.3f |", json_number_value(json_object_get(json_object_get(res[i], "coverage"), "max_abs_error")));
      double lv[3] = {0.5, 0.9, 0.95};
      for (int k = 0; k < 3; k++) {
        printf("\n| coverage at %.2f |", lv[k]);
        for (int i = 0; i < n; i++) printf(" %.3f |", coverage_at(res[i], lv[k]));
      }
      printf("\n");
    }
  }
  printf("| test set |");
  for (int i = 0; i < n; i++) {
    json_t *j = res[i];
    json_t *sd = json_object_get(j, "noise_std");
    char sds[32];
    if (json_is_number(sd)) snprintf(sds, sizeof sds, "%g", json_number_value(sd));
    else snprintf(sds, sizeof sds, "per-obs");
    printf(" %s N=%lld W=%lld %s sd=%s, %lld cases x %lld samples, seed %lld |",
           json_string_value(json_object_get(j, "preset")), json_integer_value(json_object_get(j, "N")),
           json_integer_value(json_object_get(j, "window")),
           json_string_value(json_object_get(json_object_get(j, "operator"), "type")), sds,
           json_integer_value(json_object_get(j, "cases")), json_integer_value(json_object_get(j, "samples")),
           json_integer_value(json_object_get(j, "seed")));
  }
  printf("\n");
  /* same test set? (estimator-independent fields) */
  const char *keys[] = {"preset", "N", "operator", "noise_std", "window", "time_index", "time_range", "cases", "seed"};
  int differ = 0;
  for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
    for (int i = 1; i < n; i++)
      if (!json_equal(json_object_get(res[0], keys[k]), json_object_get(res[i], keys[k])) &&
          (json_object_get(res[0], keys[k]) || json_object_get(res[i], keys[k]))) {
        printf("%s%s", differ ? ", " : "\nnote: the results come from different test sets (differ in: ", keys[k]);
        differ = 1;
        break;
      }
  if (differ) printf("); compare them with care\n");
  for (int i = 0; i < n; i++) json_decref(res[i]);
  return 0;
}
