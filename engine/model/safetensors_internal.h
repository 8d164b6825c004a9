/* safetensors_internal.h - what the safetensors files share: the layout of
 * one opened file (the folder code reads a shard's path) and the dtype name
 * lookup the header parser uses. Private to engine/model/safetensors*.c and
 * dtype.c; everyone else uses safetensors.h. */
#ifndef R1D_ENGINE_MODEL_SAFETENSORS_INTERNAL_H
#define R1D_ENGINE_MODEL_SAFETENSORS_INTERNAL_H

#include "safetensors.h"

struct r1d_safetensors {
  char *path;
  const unsigned char *map; /* whole file, PROT_READ */
  size_t map_len;
  int n;
  r1d_tensor_view *tensors; /* file order of the header (jansson order) */
  int *by_name;             /* indices into tensors, sorted by name */
};

/* dtype.c: the dtype called s ("F32", "BF16", ...) into *dt; 0 if unknown. */
int r1d_dtype_from_name(const char *s, r1d_dtype *dt);

#endif
