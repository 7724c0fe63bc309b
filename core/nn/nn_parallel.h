/* nn_parallel.h: data parallelism over threads for one model.
 *
 * The batch is split into T contiguous slices, one per thread, each with its
 * own workspace (ws[0..T-1]). BLAS runs single-threaded inside the workers
 * (no oversubscription) and is restored afterwards. Gradients: thread 0
 * accumulates into m->grads, thread t > 0 into ws[t].grads (allocated here on
 * first use), summed into m->grads in thread order after the join, so results
 * are deterministic for a given T. The BLAS thread count is process-global:
 * do not run these from several threads at once (a server with its own
 * worker pool should call openblas_set_num_threads(1) once and give each
 * worker its own workspace for nn_forward / nn_backward instead). */
#ifndef SB_NN_PARALLEL_H
#define SB_NN_PARALLEL_H

#include "nn/nn_model.h"

/* Loss callback for samples [b0, b0+B) of an n_total batch: out (B, out_size)
 * is the network output; writes dout (B, out_size) = d(total loss)/d(out) and
 * returns this slice's contribution to the total loss. Called concurrently. */
typedef double (*nn_loss_fn)(void *ctx, int b0, int B, int n_total, const float *out,
                             float *dout);

/* The data-parallel gradient every trainer uses: B samples in T contiguous
 * slices of ceil(B/T) (slice t starts at t*ceil(B/T)), slice t run as
 * fn(ctx, t, b0, nb, grads_t, &loss_t) on the thread pool with BLAS single-
 * threaded; grads_0 is m->grads, grads_t (t > 0) is grads[t] (n_params
 * floats, zeroed here) and is added to m->grads in slice order after the
 * join; *loss is the sum of the slices' losses in slice order. So the result
 * is deterministic for a given T. Returns the first slice's nonzero code. */
typedef int (*nn_slice_fn)(void *ctx, int t, int b0, int nb, float *grads, double *loss);
int nn_grad_slices(nn_model *m, int T, int B, float *const *grads, nn_slice_fn fn, void *ctx, double *loss);

/* Forward + loss + backward of B samples on T threads; parameter gradients
 * ACCUMULATE into m->grads; dx (B, in) accumulates the input gradient or is NULL.
 * Needs ceil(B/T) <= ws[t].max_batch and train workspaces. */
int nn_grad_mt(nn_model *m, nn_workspace *ws, int T, const float *x, const float *scalars, int B,
               nn_loss_fn loss, void *ctx, float *dx, double *loss_out, sb_error *err);

/* Inference of any B on T threads (each thread chunks its slice by its ws->max_batch). */
int nn_infer_mt(const nn_model *m, nn_workspace *ws, int T, const float *x, const float *scalars,
                int B, float *out, sb_error *err);

#endif
