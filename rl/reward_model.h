/* rl/reward_model.h - placeholder while its owner writes it. */
#ifndef R1D_RL_REWARD_MODEL_H
#define R1D_RL_REWARD_MODEL_H
#endif
