/* train_dist.c: the MPI calls of data-parallel training (see train_dist.h),
 * and their fallback when this build has no MPI (SB_HAVE_MPI undefined). */
#include "train/train_dist.h"

#include <limits.h>
#include <stdlib.h>

#ifdef SB_HAVE_MPI
#include <mpi.h>
#endif

uint64_t train_dist_hash(uint64_t h, const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
  return h;
}

/* 1 when a launcher (mpirun, srun) started this process; *size is the job
 * size it announces, 0 when it does not say (PMIx alone) */
static int launched(int *size) {
  const char *names[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"};
  *size = 0;
  for (int i = 0; i < 2; i++) {
    const char *v = getenv(names[i]);
    if (v && atoi(v) > 0) return *size = atoi(v), 1;
  }
  return getenv("PMIX_RANK") != NULL;
}

static int alone(const train_dist *d) { return !d || d->size <= 1; }

#ifdef SB_HAVE_MPI

int train_dist_available(void) { return 1; }

static int mpi_fail(sb_error *err, int code, const char *what) {
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(code, msg, &len) != MPI_SUCCESS) len = 0;
  msg[len] = 0;
  return sb_fail(err, SB_EIO, "%s failed: %s", what, len ? msg : "unknown MPI error");
}

int train_dist_init(train_dist *d, sb_error *err) {
  *d = (train_dist){.rank = 0, .size = 1};
  int n;
  if (!launched(&n)) return SB_OK;
  int provided = 0, rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
  if (rc != MPI_SUCCESS) return sb_fail(err, SB_EIO, "MPI_Init_thread failed (code %d)", rc);
  d->mpi = 1;
  /* errors come back as codes, so each becomes a message (and main aborts the job) */
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  if ((rc = MPI_Comm_rank(MPI_COMM_WORLD, &d->rank)) != MPI_SUCCESS) return mpi_fail(err, rc, "MPI_Comm_rank");
  if ((rc = MPI_Comm_size(MPI_COMM_WORLD, &d->size)) != MPI_SUCCESS) return mpi_fail(err, rc, "MPI_Comm_size");
  return SB_OK;
}

void train_dist_finalize(train_dist *d) {
  if (d->mpi) MPI_Finalize();
  d->mpi = 0;
}

void train_dist_abort(const train_dist *d, int code) {
  if (d->mpi && d->size > 1) MPI_Abort(MPI_COMM_WORLD, code);
}

/* one collective per piece of at most INT_MAX / 2 elements (MPI counts are ints) */
enum { PIECE = INT_MAX / 2 };

int train_dist_sum_f32(const train_dist *d, float *x, size_t n, sb_error *err) {
  if (alone(d)) return SB_OK;
  for (size_t i = 0; i < n; i += PIECE) {
    int c = n - i < PIECE ? (int)(n - i) : PIECE;
    int rc = MPI_Allreduce(MPI_IN_PLACE, x + i, c, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) return mpi_fail(err, rc, "MPI_Allreduce of the gradients");
  }
  return SB_OK;
}

int train_dist_sum_f64(const train_dist *d, double *x, size_t n, sb_error *err) {
  if (alone(d)) return SB_OK;
  for (size_t i = 0; i < n; i += PIECE) {
    int c = n - i < PIECE ? (int)(n - i) : PIECE;
    int rc = MPI_Allreduce(MPI_IN_PLACE, x + i, c, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) return mpi_fail(err, rc, "MPI_Allreduce");
  }
  return SB_OK;
}

int train_dist_bcast(const train_dist *d, void *buf, size_t bytes, int root, sb_error *err) {
  if (alone(d)) return SB_OK;
  for (size_t i = 0; i < bytes; i += PIECE) {
    int c = bytes - i < PIECE ? (int)(bytes - i) : PIECE;
    int rc = MPI_Bcast((char *)buf + i, c, MPI_BYTE, root, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) return mpi_fail(err, rc, "MPI_Bcast");
  }
  return SB_OK;
}

int train_dist_same(const train_dist *d, uint64_t h, int *same, sb_error *err) {
  *same = 1;
  if (alone(d)) return SB_OK;
  uint64_t lo = h, hi = h;
  int rc = MPI_Allreduce(MPI_IN_PLACE, &lo, 1, MPI_UINT64_T, MPI_MIN, MPI_COMM_WORLD);
  if (rc == MPI_SUCCESS) rc = MPI_Allreduce(MPI_IN_PLACE, &hi, 1, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD);
  if (rc != MPI_SUCCESS) return mpi_fail(err, rc, "MPI_Allreduce of the weights' fingerprints");
  *same = lo == hi;
  return SB_OK;
}

#else /* no MPI in this build: every process is alone */

int train_dist_available(void) { return 0; }

int train_dist_init(train_dist *d, sb_error *err) {
  *d = (train_dist){.rank = 0, .size = 1};
  int n;
  if (launched(&n) && n > 1)
    return sb_fail(err, SB_ENOTSUP, "started by mpirun as one of %d processes, but this sbida was built without MPI "
                   "(install libopenmpi-dev, `make deps`, and rebuild); each process would train alone", n);
  return SB_OK;
}

void train_dist_finalize(train_dist *d) { (void)d; }
void train_dist_abort(const train_dist *d, int code) { (void)d, (void)code; }

int train_dist_sum_f32(const train_dist *d, float *x, size_t n, sb_error *err) {
  (void)x, (void)n;
  return alone(d) ? SB_OK : sb_fail(err, SB_ENOTSUP, "no MPI in this build");
}
int train_dist_sum_f64(const train_dist *d, double *x, size_t n, sb_error *err) {
  (void)x, (void)n;
  return alone(d) ? SB_OK : sb_fail(err, SB_ENOTSUP, "no MPI in this build");
}
int train_dist_bcast(const train_dist *d, void *buf, size_t bytes, int root, sb_error *err) {
  (void)buf, (void)bytes, (void)root;
  return alone(d) ? SB_OK : sb_fail(err, SB_ENOTSUP, "no MPI in this build");
}
int train_dist_same(const train_dist *d, uint64_t h, int *same, sb_error *err) {
  (void)h;
  *same = 1;
  return alone(d) ? SB_OK : sb_fail(err, SB_ENOTSUP, "no MPI in this build");
}

#endif
