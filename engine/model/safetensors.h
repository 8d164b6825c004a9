/* safetensors.h - read (mmap) and write safetensors files and sharded folders.
 *
 * Format: 8-byte little-endian header length N, N bytes of JSON mapping tensor
 * names to {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative
 * to the byte after the header) plus an optional "__metadata__" string map,
 * then the data. Opening validates everything before any tensor is used:
 * well-formed JSON, known dtype, every offset inside the file, no overlaps,
 * shape x dtype size == byte length. */
#ifndef R1D_ENGINE_MODEL_SAFETENSORS_H
#define R1D_ENGINE_MODEL_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "../../common/status.h"

typedef enum {
  R1D_DTYPE_F32 = 0,
  R1D_DTYPE_F16,
  R1D_DTYPE_BF16,
  R1D_DTYPE_F64,
  R1D_DTYPE_I64,
  R1D_DTYPE_I32,
  R1D_DTYPE_I16,
  R1D_DTYPE_I8,
  R1D_DTYPE_U8,
  R1D_DTYPE_BOOL,
} r1d_dtype;

#define R1D_TENSOR_MAX_DIMS 8

typedef struct r1d_tensor_view {
  const char *name;
  r1d_dtype dtype;
  int ndim;
  int64_t shape[R1D_TENSOR_MAX_DIMS];
  const void *data; /* points into the mmapped file */
  size_t nbytes;
} r1d_tensor_view;

size_t r1d_dtype_size(r1d_dtype dt);
const char *r1d_dtype_name(r1d_dtype dt); /* "F32", "BF16", ... */
int64_t r1d_tensor_numel(const r1d_tensor_view *t);

/* One mmapped file. */
typedef struct r1d_safetensors r1d_safetensors;
int r1d_safetensors_open(const char *path, r1d_safetensors **out,
                         r1d_error *err);
void r1d_safetensors_close(r1d_safetensors *st);
int r1d_safetensors_count(const r1d_safetensors *st);
const r1d_tensor_view *r1d_safetensors_at(const r1d_safetensors *st, int i);
const r1d_tensor_view *r1d_safetensors_find(const r1d_safetensors *st,
                                            const char *name);

/* A model folder: model.safetensors, or the shards listed by
 * model.safetensors.index.json ("weight_map": name -> file). */
typedef struct r1d_st_folder r1d_st_folder;
int r1d_st_folder_open(const char *dir, r1d_st_folder **out, r1d_error *err);
void r1d_st_folder_close(r1d_st_folder *f);
const r1d_tensor_view *r1d_st_folder_find(const r1d_st_folder *f,
                                          const char *name);
/* Name of the file holding a tensor (for error messages). */
const char *r1d_st_folder_file_of(const r1d_st_folder *f, const char *name);

/* Converts F32/F16/BF16 data to fp32 (numel elements). Other dtypes:
 * R1D_EUNSUPPORTED. */
int r1d_tensor_to_f32(const r1d_tensor_view *t, float *dst);

/* Tells the kernel the tensor's mapped pages are no longer needed (they are
 * re-read from the file if touched again). Loaders call it after converting a
 * tensor so that peak memory is one copy of the weights, not two. */
void r1d_tensor_release(const r1d_tensor_view *t);

/* fp32 <-> bf16 with round-to-nearest-even (NaN preserved). */
uint16_t r1d_f32_to_bf16(float f);
float r1d_bf16_to_f32(uint16_t h);
float r1d_f16_to_f32(uint16_t h);
uint16_t r1d_f32_to_f16(float f);

/* Writing: the caller lists tensors (name, dtype, shape, data); the writer
 * lays them out in the given order, 8-byte aligned header, and writes the
 * file atomically (temp name, fsync, rename). */
typedef struct r1d_tensor_out {
  const char *name;
  r1d_dtype dtype;
  int ndim;
  int64_t shape[R1D_TENSOR_MAX_DIMS];
  const void *data; /* numel * dtype size bytes */
} r1d_tensor_out;
int r1d_safetensors_write(const char *path, const r1d_tensor_out *tensors,
                          int n, r1d_error *err);

#endif
