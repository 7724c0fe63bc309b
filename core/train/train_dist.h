/* train_dist.h: training across processes (data parallel over MPI).
 *
 * train_dist.c is the only file of sbida that includes mpi.h. It is compiled
 * with MPI when the Makefile finds OpenMPI (SB_HAVE_MPI, `mpicc --showme`),
 * and without it otherwise; either way the functions below exist, and a
 * process that mpirun did not start never calls MPI at all: it is rank 0 of
 * 1 and every collective below is a no-op, so plain `sbida train` runs
 * exactly as a build without MPI.
 *
 * How train.c uses it (docs/training-mpi.md): every rank holds the same
 * simulation pool (each simulates the new trajectories whose stream index is
 * its rank modulo the job size and broadcasts them), draws the same global
 * batch, computes the gradient of its contiguous part of the batch, and the
 * parts are summed with train_dist_sum_f32 (an MPI_Allreduce); every rank
 * then takes the same optimizer step. Rank 0 alone validates, writes
 * checkpoints, the model file and progress. */
#ifndef SB_TRAIN_DIST_H
#define SB_TRAIN_DIST_H

#include <stddef.h>
#include <stdint.h>

#include "util/sb_error.h"

typedef struct train_dist {
  int rank, size;  /* this process and the job's size (0 and 1 when alone) */
  int mpi;         /* 1: MPI_Init was called (train_dist_finalize must follow) */
} train_dist;

/* 1 when this sbida was built with MPI. */
int train_dist_available(void);

/* Joins the job when mpirun (or another PMI launcher) started this process,
 * i.e. OMPI_COMM_WORLD_SIZE, PMIX_RANK or PMI_SIZE is set; otherwise *d is
 * rank 0 of 1 and MPI is not touched. Fails (SB_ENOTSUP) when a launcher
 * asks for more than one process and this build has no MPI: the processes
 * would each train alone and overwrite each other's files. */
int train_dist_init(train_dist *d, sb_error *err);
/* MPI_Finalize after a successful run (no-op when alone). */
void train_dist_finalize(train_dist *d);
/* Ends every process of the job with `code` (MPI_Abort): for main() after a
 * failure on one rank, which would leave the others waiting in a
 * collective. Returns only when alone. */
void train_dist_abort(const train_dist *d, int code);

/* x[0..n) = its sum over all ranks, on every rank (in place). */
int train_dist_sum_f32(const train_dist *d, float *x, size_t n, sb_error *err);
int train_dist_sum_f64(const train_dist *d, double *x, size_t n, sb_error *err);
/* buf[0..bytes) of rank `root` copied to every rank. */
int train_dist_bcast(const train_dist *d, void *buf, size_t bytes, int root, sb_error *err);
/* *same = 1 when every rank passed the same h. */
int train_dist_same(const train_dist *d, uint64_t h, int *same, sb_error *err);

/* FNV-1a of n bytes, continuing from h (start with TRAIN_DIST_HASH0): the
 * weights' fingerprint train_dist_same compares. */
#define TRAIN_DIST_HASH0 0xcbf29ce484222325ull
uint64_t train_dist_hash(uint64_t h, const void *p, size_t n);

#endif
