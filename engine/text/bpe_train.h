/* engine/text/bpe_train.h - placeholder while its owner writes it. */
#ifndef R1D_ENGINE_TEXT_BPE_TRAIN_H
#define R1D_ENGINE_TEXT_BPE_TRAIN_H
#endif
