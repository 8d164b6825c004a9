/* rl/eval.h - placeholder while its owner writes it. */
#ifndef R1D_RL_EVAL_H
#define R1D_RL_EVAL_H
#endif
