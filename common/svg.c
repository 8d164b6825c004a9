/* placeholder while its owner writes it. */
#include "svg.h"
typedef int svg_placeholder;
