/* placeholder while its owner writes it. */
#include "eval.h"
typedef int eval_placeholder;
