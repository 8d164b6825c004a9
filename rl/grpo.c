/* grpo.c - GRPO's advantages, per-token objective and its gradient with
 * respect to each token's logprob (grpo.h has the formulas). Sums run in
 * double; a group of one or a batch whose rewards are all equal gives
 * advantage 0, never a division by zero. */
#include "grpo.h"

#include <math.h>
#include <string.h>

/* TRL adds this to the std before dividing. */
#define GRPO_STD_EPS 1e-4

void r1d_grpo_config_default(r1d_grpo_config *c) {
  c->group_size = 8;
  c->scale_rewards = R1D_GRPO_SCALE_GROUP;
  c->loss_type = R1D_GRPO_LOSS_DAPO;
  c->eps_low = 0.2;
  c->eps_high = 0.2;
  c->beta = 0.0;
  c->max_completion_len = 256;
}

int r1d_grpo_config_check(const r1d_grpo_config *c, r1d_error *err) {
  if (c->group_size < 2 || c->group_size > 64)
    return r1d_fail(err, R1D_EINVAL,
                    "num_generations must be 2..64 (got %d): a group of one "
                    "has no baseline",
                    c->group_size);
  if ((int)c->scale_rewards < 0 || c->scale_rewards > R1D_GRPO_SCALE_NONE)
    return r1d_fail(err, R1D_EINVAL, "scale_rewards is not a known mode");
  if ((int)c->loss_type < 0 || c->loss_type > R1D_GRPO_LOSS_DR_GRPO)
    return r1d_fail(err, R1D_EINVAL, "loss_type is not a known reduction");
  if (!(c->eps_low >= 0 && c->eps_low < 1))
    return r1d_fail(err, R1D_EINVAL, "epsilon_low must be in [0, 1) (got %g)",
                    c->eps_low);
  if (!(c->eps_high >= 0 && c->eps_high <= 10))
    return r1d_fail(err, R1D_EINVAL, "epsilon_high must be in [0, 10] (got %g)",
                    c->eps_high);
  if (!(c->beta >= 0 && c->beta <= 100))
    return r1d_fail(err, R1D_EINVAL, "beta must be in [0, 100] (got %g)",
                    c->beta);
  if (c->max_completion_len < 1 || c->max_completion_len > 1 << 20)
    return r1d_fail(err, R1D_EINVAL,
                    "max_completion_length must be 1..1048576 (got %d)",
                    c->max_completion_len);
  return R1D_OK;
}

static const char *const scale_names[] = {"group", "batch", "none"};
static const char *const loss_names[] = {"grpo", "dapo", "dr_grpo"};

const char *r1d_grpo_scale_name(r1d_grpo_scale s) {
  return (unsigned)s < 3 ? scale_names[s] : "?";
}

int r1d_grpo_scale_parse(const char *name) {
  for (int i = 0; i < 3; i++)
    if (!strcmp(name, scale_names[i])) return i;
  return -1;
}

const char *r1d_grpo_loss_name(r1d_grpo_loss_type t) {
  return (unsigned)t < 3 ? loss_names[t] : "?";
}

int r1d_grpo_loss_parse(const char *name) {
  for (int i = 0; i < 3; i++)
    if (!strcmp(name, loss_names[i])) return i;
  return -1;
}

/* Unbiased standard deviation of x[0..n) (0 for n < 2), as torch.std. */
static double std_unbiased(const double *x, int n) {
  if (n < 2) return 0.0;
  double mean = 0;
  for (int i = 0; i < n; i++)
    mean += x[i];
  mean /= n;
  double ss = 0;
  for (int i = 0; i < n; i++)
    ss += (x[i] - mean) * (x[i] - mean);
  return sqrt(ss / (n - 1));
}

void r1d_grpo_advantages(const r1d_grpo_config *c, const double *rewards,
                         int n_groups, double *adv, int *n_flat) {
  int G = c->group_size, flat = 0;
  double batch_std = c->scale_rewards == R1D_GRPO_SCALE_BATCH
                         ? std_unbiased(rewards, n_groups * G)
                         : 0.0;
  for (int g = 0; g < n_groups; g++) {
    const double *r = rewards + (size_t)g * G;
    double mean = 0;
    int equal = 1;
    for (int i = 0; i < G; i++) {
      mean += r[i];
      equal &= r[i] == r[0];
    }
    mean /= G;
    flat += equal;
    double scale = 1.0;
    if (c->scale_rewards == R1D_GRPO_SCALE_GROUP)
      scale = 1.0 / (std_unbiased(r, G) + GRPO_STD_EPS);
    else if (c->scale_rewards == R1D_GRPO_SCALE_BATCH)
      scale = 1.0 / (batch_std + GRPO_STD_EPS);
    for (int i = 0; i < G; i++)
      /* an all-equal group is exactly 0, whatever rounding the mean had */
      adv[(size_t)g * G + i] = equal ? 0.0 : (r[i] - mean) * scale;
  }
  if (n_flat) *n_flat = flat;
}

double r1d_grpo_token_weight(const r1d_grpo_config *c, int n_tokens, int n_seqs,
                             long total_tokens) {
  if (n_tokens <= 0 || n_seqs <= 0 || total_tokens <= 0) return 0.0;
  switch (c->loss_type) {
  case R1D_GRPO_LOSS_GRPO: return 1.0 / ((double)n_seqs * n_tokens);
  case R1D_GRPO_LOSS_DAPO: return 1.0 / (double)total_tokens;
  case R1D_GRPO_LOSS_DR_GRPO:
    return 1.0 / ((double)n_seqs * c->max_completion_len);
  }
  return 0.0;
}

void r1d_grpo_sequence(const r1d_grpo_config *c, double advantage, double w,
                       int n, const float *lp, const float *lp_old,
                       const float *lp_ref, float *dlp, r1d_grpo_stats *st) {
  double lo = 1.0 - c->eps_low, hi = 1.0 + c->eps_high, A = advantage;
  for (int t = 0; t < n; t++) {
    double cur = lp[t];
    double ratio = lp_old ? exp(cur - (double)lp_old[t]) : 1.0;
    double clipped = ratio < lo ? lo : ratio > hi ? hi : ratio;
    double unclip = ratio * A, clip = clipped * A;
    /* min(unclip, clip): the unclipped branch carries the gradient when it
     * is the smaller one (ties: both branches agree, torch splits the
     * gradient between them and clamp passes it, so all of it flows) */
    double surrogate = unclip <= clip ? unclip : clip;
    double d = unclip <= clip ? -A * ratio : 0.0;
    double l = -surrogate;
    if (c->beta > 0) {
      double diff = (double)lp_ref[t] - cur, e = exp(diff);
      double kl = e - diff - 1.0;
      l += c->beta * kl;
      d += c->beta * (1.0 - e);
      st->kl_sum += kl;
    }
    if (!isfinite(l) || !isfinite(d)) {
      st->nonfinite += 1;
      d = 0; /* the caller stops the step; keep the gradient finite */
    }
    st->loss += w * l;
    st->ratio_sum += ratio;
    st->clipped_low += ratio < lo && A < 0;
    st->clipped_high += ratio > hi && A > 0;
    dlp[t] = (float)(w * d);
  }
  st->tokens += n;
}

/* Reads obj[key] as a number (integer or real) into *out when present. */
static int get_number(const json_t *obj, const char *key, double *out,
                      int *present, r1d_error *err) {
  json_t *v = json_object_get(obj, key);
  *present = v != NULL;
  if (!v) return R1D_OK;
  if (!json_is_number(v))
    return r1d_fail(err, R1D_EINVAL, "%s must be a number", key);
  *out = json_number_value(v);
  return R1D_OK;
}

static int get_int(const json_t *obj, const char *key, int *out,
                   r1d_error *err) {
  json_t *v = json_object_get(obj, key);
  if (!v) return R1D_OK;
  if (!json_is_integer(v) || json_integer_value(v) < 0 ||
      json_integer_value(v) > 1 << 24)
    return r1d_fail(err, R1D_EINVAL,
                    "%s must be a non-negative integer (at most 16777216)",
                    key);
  *out = (int)json_integer_value(v);
  return R1D_OK;
}

int r1d_grpo_config_from_json(const json_t *obj, r1d_grpo_config *c,
                              r1d_error *err) {
  if (!json_is_object(obj))
    return r1d_fail(err, R1D_EINVAL, "config must be a JSON object");
  int rc, present;
  if ((rc = get_int(obj, "num_generations", &c->group_size, err)) ||
      (rc = get_int(obj, "max_completion_length", &c->max_completion_len, err)))
    return rc;
  json_t *s = json_object_get(obj, "scale_rewards");
  if (s) {
    int v = json_is_string(s) ? r1d_grpo_scale_parse(json_string_value(s))
            : json_is_boolean(s)
                ? (json_is_true(s) ? R1D_GRPO_SCALE_GROUP : R1D_GRPO_SCALE_NONE)
                : -1;
    if (v < 0)
      return r1d_fail(err, R1D_EINVAL,
                      "scale_rewards must be \"group\", \"batch\" or \"none\"");
    c->scale_rewards = (r1d_grpo_scale)v;
  }
  json_t *lt = json_object_get(obj, "loss_type");
  if (lt) {
    int v =
        json_is_string(lt) ? r1d_grpo_loss_parse(json_string_value(lt)) : -1;
    if (v < 0)
      return r1d_fail(err, R1D_EINVAL,
                      "loss_type must be \"grpo\", \"dapo\" or \"dr_grpo\"");
    c->loss_type = (r1d_grpo_loss_type)v;
  }
  double eps = 0;
  if ((rc = get_number(obj, "epsilon", &eps, &present, err))) return rc;
  if (present) c->eps_low = c->eps_high = eps;
  if ((rc = get_number(obj, "epsilon_low", &c->eps_low, &present, err)) ||
      (rc = get_number(obj, "epsilon_high", &c->eps_high, &present, err)) ||
      (rc = get_number(obj, "beta", &c->beta, &present, err)))
    return rc;
  return r1d_grpo_config_check(c, err);
}
