/* placeholder while its owner writes it. */
#include "reward_model.h"
typedef int reward_model_placeholder;
