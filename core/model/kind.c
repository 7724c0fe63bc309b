/* kind.c: helpers the kinds share (see kind.h). */
#include "model/kind.h"

#include <stdlib.h>
#include <string.h>

int kind_batch_alloc(kind_batch *b, int n, size_t in_per, size_t scal_per, size_t target_per, sb_error *err) {
  b->in = malloc(sizeof(float) * (size_t)n * in_per);
  b->scal = malloc(sizeof(float) * (size_t)n * (scal_per ? scal_per : 1));
  b->target = malloc(sizeof(float) * (size_t)n * target_per);
  if (b->in && b->scal && b->target) return SB_OK;
  kind_batch_free(b);
  return sb_fail(err, SB_ENOMEM, "out of memory for a batch of %d", n);
}

void kind_batch_free(kind_batch *b) {
  free(b->in);
  free(b->scal);
  free(b->target);
  memset(b, 0, sizeof *b);
}
