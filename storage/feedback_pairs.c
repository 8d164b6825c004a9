/* placeholder */
#include "feedback_pairs.h"
typedef int feedback_pairs_placeholder;
