/* backward.c - the training backward of the Qwen2/Llama model (train.h), in
 * the style of llm.c's train_gpt2.c: the forward's ops undone one by one in
 * reverse order, each by its kernel in kernels/cpu/cpu_backward.h, with the
 * shapes in the comments. H = hidden, Q = heads*head_dim, K = kv_heads*
 * head_dim, I = intermediate, V = vocab, n = tokens.
 *
 * Every kernel ADDS into its gradient outputs. Parameter gradients therefore
 * accumulate across calls (the caller zeroes them per step); activation
 * gradients live in the plan's scratch and are zeroed here right before the
 * kernel that accumulates into them. The residual stream's gradient dx is
 * one buffer that flows down through the layers: each residual branch's
 * backward adds its share of dL/dx into it, which is the y = a + b rule. */
#include <math.h>
#include <string.h>

#include "../../kernels/cpu/cpu_backward.h"
#include "train.h"

static void zero(float *p, size_t n) {
  memset(p, 0, n * sizeof(float));
}

/* dlogits -> dh (the gradient of h_final [n, H], zeroed here first) and the
 * lm head's gradient, R1D_TRAIN_LOGIT_CHUNK rows at a time so that only one
 * [chunk, V] block of logit gradients exists. Each chunk's cross-entropy
 * normalises by its own count c_chunk, so it is handed grad_scale *
 * c_chunk / c_total to give every counted row grad_scale / c_total.
 * With dlp (GRPO), row i's loss gradient is dlp[i] d(logprob_i)/d(logits)
 * = dlp[i] (onehot - softmax): the cross-entropy of that row alone with
 * grad_scale -dlp[i]. */
static void logits_backward(const r1d_train_model *tm, r1d_train_plan *p,
                            float grad_scale, const float *dlp) {
  const r1d_config *c = &tm->cfg;
  int n = p->n, hid = c->hidden_size, vocab = c->vocab_size;
  zero(p->dh, (size_t)n * hid);
  for (int r0 = 0; r0 < n; r0 += R1D_TRAIN_LOGIT_CHUNK) {
    int rows = n - r0 < R1D_TRAIN_LOGIT_CHUNK ? n - r0 : R1D_TRAIN_LOGIT_CHUNK;
    int counted = 0;
    for (int i = 0; i < rows; i++)
      counted += p->targets[r0 + i] >= 0 && (!dlp || dlp[r0 + i] != 0);
    if (!counted) continue; /* ignored rows have no gradient */
    float chunk_loss;       /* unused: the forward reported the loss */
    zero(p->dlogits, (size_t)rows * vocab);
    if (dlp) {
      for (int i = 0; i < rows; i++) {
        int r = r0 + i;
        if (p->targets[r] < 0 || dlp[r] == 0) continue;
        r1d_cpu_cross_entropy(NULL, 1, vocab, p->logits + (size_t)r * vocab,
                              p->targets + r, -dlp[r], &chunk_loss,
                              p->target_logprob + r,
                              p->dlogits + (size_t)i * vocab);
      }
    } else {
      /* dlogits [rows, V] = scale * (softmax(logits) - onehot(target)) */
      r1d_cpu_cross_entropy(
          NULL, rows, vocab, p->logits + (size_t)r0 * vocab, p->targets + r0,
          (float)((double)grad_scale * counted / p->n_counted), &chunk_loss,
          p->target_logprob + r0, p->dlogits);
    }
    /* logits = h_final [rows, H] @ Wlm[V, H]^T:
     *   dh += dlogits @ Wlm ; dWlm += dlogits^T @ h_final (tied: dembed) */
    r1d_cpu_linear_backward(NULL, rows, vocab, hid,
                            p->h_final + (size_t)r0 * hid, tm->param.lm_head,
                            p->dlogits, p->dh + (size_t)r0 * hid,
                            tm->grad.lm_head, NULL);
  }
}

/* One decoder layer in reverse. On entry p->dx [n, H] holds dL/dx_out (the
 * layer's output); on return dL/dx_in (its input). */
static void layer_backward(const r1d_train_model *tm,
                           const r1d_layer_weights *w, r1d_layer_weights *g,
                           const r1d_train_layer_acts *a, r1d_train_plan *p) {
  const r1d_config *c = &tm->cfg;
  int n = p->n, hid = c->hidden_size, hd = c->head_dim;
  int inter = c->intermediate_size;
  int qdim = c->num_heads * hd, kvdim = c->num_kv_heads * hd;
  float eps = c->rms_norm_eps;

  /* ---- MLP block: x_out = x_mid + act @ Wd^T ---- */
  /* act [n, I] -> x_out [n, H]: dact = dx @ Wd, dWd += dx^T @ act */
  zero(p->dact, (size_t)n * inter);
  r1d_cpu_linear_backward(NULL, n, hid, inter, a->act, w->down_w, p->dx,
                          p->dact, g->down_w, NULL);
  /* act = silu(gate) * up, all [n, I] */
  zero(p->dgate, (size_t)n * inter);
  zero(p->dup, (size_t)n * inter);
  r1d_cpu_swiglu_backward(NULL, (size_t)n * inter, a->gate, a->up, p->dact,
                          p->dgate, p->dup);
  /* gate, up [n, I] = h_ffn [n, H] @ Wg^T, Wu^T: dh = dgate Wg + dup Wu */
  zero(p->dh, (size_t)n * hid);
  r1d_cpu_linear_backward(NULL, n, inter, hid, a->h_ffn, w->gate_w, p->dgate,
                          p->dh, g->gate_w, NULL);
  r1d_cpu_linear_backward(NULL, n, inter, hid, a->h_ffn, w->up_w, p->dup, p->dh,
                          g->up_w, NULL);
  /* h_ffn = rmsnorm(x_mid) [n, H]: dx (already dL/dx_out, the residual
   * path) += the norm branch's dL/dx_mid */
  r1d_cpu_rmsnorm_backward(NULL, n, hid, a->x_mid, w->ffn_norm, eps, p->dh,
                           p->dx, g->ffn_norm);

  /* ---- attention block: x_mid = x_in + att @ Wo^T ---- */
  /* att [n, Q] -> [n, H]: datt = dx @ Wo, dWo += dx^T @ att */
  zero(p->datt, (size_t)n * qdim);
  r1d_cpu_linear_backward(NULL, n, hid, qdim, a->att, w->o_w, p->dx, p->datt,
                          g->o_w, NULL);
  /* att = causal GQA attention(q [n, Q], k, v [n, K]) */
  zero(p->dq, (size_t)n * qdim);
  zero(p->dk, (size_t)n * kvdim);
  zero(p->dv, (size_t)n * kvdim);
  for (int d = 0; d < p->n_docs; d++) { /* per document, as the forward */
    int s0 = p->doc_off[d], len = p->doc_off[d + 1] - s0;
    size_t qo = (size_t)s0 * qdim, ko = (size_t)s0 * kvdim;
    r1d_cpu_attention_backward(NULL, len, 0, c->num_heads, c->num_kv_heads, hd,
                               a->q + qo, a->k + ko, a->v + ko, p->datt + qo,
                               p->dq + qo, p->dk + ko, p->dv + ko);
  }
  /* q, k were rotated in place: gradients before rope. datt is free again
   * and takes dq before the rotation. */
  zero(p->datt, (size_t)n * qdim);
  r1d_cpu_rope_backward(NULL, n, c->num_heads, hd, p->pos, tm->inv_freq, p->dq,
                        p->datt);
  zero(p->dk_rot, (size_t)n * kvdim);
  r1d_cpu_rope_backward(NULL, n, c->num_kv_heads, hd, p->pos, tm->inv_freq,
                        p->dk, p->dk_rot);
  /* q [n, Q], k, v [n, K] = h_attn [n, H] @ W^T + b: dh = sum dproj W */
  zero(p->dh, (size_t)n * hid);
  r1d_cpu_linear_backward(NULL, n, qdim, hid, a->h_attn, w->q_w, p->datt, p->dh,
                          g->q_w, g->q_b);
  r1d_cpu_linear_backward(NULL, n, kvdim, hid, a->h_attn, w->k_w, p->dk_rot,
                          p->dh, g->k_w, g->k_b);
  r1d_cpu_linear_backward(NULL, n, kvdim, hid, a->h_attn, w->v_w, p->dv, p->dh,
                          g->v_w, g->v_b);
  /* h_attn = rmsnorm(x_in) [n, H]: dx += the norm branch's dL/dx_in */
  r1d_cpu_rmsnorm_backward(NULL, n, hid, a->x_in, w->attn_norm, eps, p->dh,
                           p->dx, g->attn_norm);
}

static int backward(r1d_train_model *tm, r1d_train_plan *plan, float grad_scale,
                    const float *dlp, r1d_error *err) {
  if (!tm || !plan || plan->tm != tm)
    return r1d_fail(err, R1D_EINVAL,
                    "train backward: the plan was made for another model");
  if (plan->n <= 0)
    return r1d_fail(err, R1D_ESTATE,
                    "train backward: no forward to differentiate (call "
                    "r1d_train_forward first)");
  if (!isfinite(grad_scale))
    return r1d_fail(err, R1D_EINVAL,
                    "train backward: grad_scale is not finite");
  const r1d_config *c = &tm->cfg;
  int n = plan->n, hid = c->hidden_size;

  /* loss -> dh = dL/dh_final [n, H], dWlm */
  logits_backward(tm, plan, grad_scale, dlp);
  /* h_final = rmsnorm(x_final): dx = dL/dx_final [n, H], dfinal_norm */
  zero(plan->dx, (size_t)n * hid);
  r1d_cpu_rmsnorm_backward(NULL, n, hid, plan->x_final, tm->param.final_norm,
                           c->rms_norm_eps, plan->dh, plan->dx,
                           tm->grad.final_norm);
  for (int l = c->num_layers - 1; l >= 0; l--) {
    /* recomputation: rebuild the layer's activations first; its output
     * lands in dh, free between layers (each layer zeroes it before use) */
    if (plan->recompute) r1d_train_layer_recompute(tm, plan, l, plan->dh);
    layer_backward(tm, &tm->param.layers[l], &tm->grad.layers[l],
                   &plan->layers[l], plan);
  }
  /* x_in of layer 0 = embed[ids]: dembed[ids[i]] += dx[i] (tied: the head's
   * share is already in the same tensor) */
  r1d_cpu_embedding_backward(NULL, n, plan->ids, hid, plan->dx, tm->grad.embed);
  return R1D_OK;
}

int r1d_train_backward(r1d_train_model *tm, r1d_train_plan *plan,
                       float grad_scale, r1d_error *err) {
  return backward(tm, plan, grad_scale, NULL, err);
}

int r1d_train_backward_weighted(r1d_train_model *tm, r1d_train_plan *plan,
                                const float *dlp, r1d_error *err) {
  if (!dlp)
    return r1d_fail(err, R1D_EINVAL, "train backward: no logprob gradients");
  if (plan && plan->n > 0)
    for (int i = 0; i < plan->n; i++)
      if (!isfinite(dlp[i]))
        return r1d_fail(err, R1D_EINVAL,
                        "train backward: the logprob gradient of token %d is "
                        "not finite",
                        i);
  return backward(tm, plan, 1.0f, dlp, err);
}
