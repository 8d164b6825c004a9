/* common/svg.h - placeholder while its owner writes it. */
#ifndef R1D_COMMON_SVG_H
#define R1D_COMMON_SVG_H
#endif
