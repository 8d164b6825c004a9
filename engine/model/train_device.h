/* train_device.h - the training step on any backend of the ops table
 * (kernels/backend.h): forward, backward and AdamW of the trainable model of
 * train.h, with its parameters, gradients and optimizer state in the
 * backend's memory. On CUDA: fp32 master weights, gradients and moments,
 * and a bf16 copy of every matrix that the forward's GEMMs read (AdamW
 * refreshes it); the backward reads the fp32 masters.
 *
 * It mirrors train.c/backward.c op for op (same order, same saved
 * activations), so on the CPU backend it computes what the host trainer
 * computes (tests/engine/test_train_device.c holds the two together, and a
 * CUDA backend to the CPU where one is present). Differences from the host
 * trainer: the logits' gradient is one [n, V] buffer (no chunking; device
 * memory is the budget), and the gradient norm is summed in the backend's
 * sum_squares order (so a clipped step differs in the last bits).
 *
 * The device trainer copies the host model's parameters at creation; the
 * host model is not updated (r1d_dtrain_download_params brings them back,
 * e.g. for a checkpoint). */
#ifndef R1D_ENGINE_MODEL_TRAIN_DEVICE_H
#define R1D_ENGINE_MODEL_TRAIN_DEVICE_H

#include <stddef.h>
#include <stdint.h>

#include "../../common/status.h"
#include "../../kernels/backend.h"
#include "train.h"

typedef struct r1d_dtrain r1d_dtrain;

/* Uploads tm's parameters to `be` and sizes the activations for up to
 * max_tokens tokens per forward. tm must outlive the trainer (its tensor
 * table is the layout). R1D_ENOMEM names the bytes asked for. */
int r1d_dtrain_create(const r1d_backend *be, const r1d_train_model *tm,
                      int max_tokens, r1d_dtrain **out, r1d_error *err);
void r1d_dtrain_free(r1d_dtrain *d);

/* Bytes of backend memory held: parameters, gradients, moments, weight
 * copies and activations. */
size_t r1d_dtrain_bytes(const r1d_dtrain *d);

/* Zeroes the gradients (a new step). */
void r1d_dtrain_zero_grad(r1d_dtrain *d);

/* Forward and backward of n tokens in n_docs packed documents (lengths
 * doc_lens, summing to n; each attends only to itself), ids and targets host
 * arrays (target -1: ignored). Parameter gradients ACCUMULATE, scaled by
 * grad_scale (1 for one micro-batch, 1/k for k accumulated). *loss (host)
 * gets the mean cross-entropy over the counted targets; it waits for the
 * backend. Validates like r1d_train_forward_docs. */
int r1d_dtrain_forward_backward(r1d_dtrain *d, const int32_t *ids,
                                const int32_t *targets, int n,
                                const int *doc_lens, int n_docs,
                                float grad_scale, float *loss, r1d_error *err);

/* The forward alone: *loss (host) is the mean cross-entropy over the counted
 * targets (an eval). Gradients are untouched. */
int r1d_dtrain_forward_loss(r1d_dtrain *d, const int32_t *ids,
                            const int32_t *targets, int n, const int *doc_lens,
                            int n_docs, float *loss, r1d_error *err);

/* The global L2 norm of all gradients (waits for the backend). */
int r1d_dtrain_grad_norm(r1d_dtrain *d, double *norm, r1d_error *err);
/* *norm gets the norm; when it is above max_norm the gradients are scaled
 * by max_norm / (norm + 1e-6), as rl/optim.c's r1d_optim_clip_grad_norm.
 * R1D_ERANGE (gradients untouched) when the norm is not finite. */
int r1d_dtrain_clip_grad_norm(r1d_dtrain *d, double max_norm, double *norm,
                              r1d_error *err);

/* One AdamW step of every tensor (weight decay on the tensors
 * r1d_optim_default_decay selects); s->step is the new step count. */
int r1d_dtrain_adamw(r1d_dtrain *d, const r1d_adamw_step *s, r1d_error *err);

/* Backend -> host copies in train.h's flat layout (tm->n_floats floats). */
int r1d_dtrain_download_params(r1d_dtrain *d, float *host, r1d_error *err);
int r1d_dtrain_download_grads(r1d_dtrain *d, float *host, r1d_error *err);
/* AdamW's moments m and v, each tm->n_floats floats in the flat layout
 * (checkpoints and resume). */
int r1d_dtrain_download_moments(r1d_dtrain *d, float *m, float *v,
                                r1d_error *err);
int r1d_dtrain_upload_moments(r1d_dtrain *d, const float *m, const float *v,
                              r1d_error *err);

#endif
