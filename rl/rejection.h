/* rl/rejection.h - placeholder while its owner writes it. */
#ifndef R1D_RL_REJECTION_H
#define R1D_RL_REJECTION_H
#endif
