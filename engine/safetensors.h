/* safetensors.h — read-only access to Hugging Face safetensors checkpoints.
 *
 * Opens a model directory's `model.safetensors`, or the shards listed by
 * `model.safetensors.index.json`, mmaps each file, and validates every header entry
 * (dtype, shape, offsets inside the file, no overlap past the end) before any tensor is
 * handed out.  Errors name the file and the tensor.  Tensors point into the mapping:
 * they live as long as the set.  Not for: writing files, or dtypes other than
 * F32/BF16/F16/I32/I64/U8.
 */
#ifndef VLM_SAFETENSORS_H
#define VLM_SAFETENSORS_H

#include <stdint.h>

#include "vlm_util.h"

#define VLM_ST_MAX_DIMS 8

typedef struct vlm_st_tensor {
    const char *name;     /* tensor name as in the header */
    const char *file;     /* basename of the file it lives in, for messages */
    vlm_dtype dtype;
    int ndim;
    int64_t shape[VLM_ST_MAX_DIMS];
    int64_t numel;
    const void *data;     /* into the read-only mapping */
    size_t nbytes;
} vlm_st_tensor;

typedef struct vlm_st_set vlm_st_set;

/* Open one .safetensors file. Returns 0, or a negative code with err filled. */
int vlm_st_open_file(const char *path, vlm_st_set **out, char *err);

/* Open a model directory: model.safetensors, or the sharded index and its shards.
 * A tensor named in two shards, or a shard the index names that is missing, is an error. */
int vlm_st_open_dir(const char *dir, vlm_st_set **out, char *err);

void vlm_st_free(vlm_st_set *set); /* NULL is a no-op */

int64_t vlm_st_count(const vlm_st_set *set);
const vlm_st_tensor *vlm_st_at(const vlm_st_set *set, int64_t i);
const vlm_st_tensor *vlm_st_find(const vlm_st_set *set, const char *name); /* NULL if absent */

#endif
