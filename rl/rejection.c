/* placeholder while its owner writes it. */
#include "rejection.h"
typedef int rejection_placeholder;
