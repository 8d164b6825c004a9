/* placeholder while its owner writes it. */
#include "bpe_train.h"
typedef int bpe_train_placeholder;
