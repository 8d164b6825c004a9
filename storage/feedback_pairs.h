/* storage/feedback_pairs.h - placeholder. */
#ifndef R1D_STORAGE_FEEDBACK_PAIRS_H
#define R1D_STORAGE_FEEDBACK_PAIRS_H
#endif
