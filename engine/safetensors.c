/* safetensors.c — read-only, mmap-backed access to Hugging Face safetensors checkpoints.
 *
 * For: opening one .safetensors file, or a model directory (model.safetensors, or the
 * shards named by model.safetensors.index.json), validating every header entry, and
 * looking tensors up by name.  Not for: writing files, converting dtypes (vlm__to_f32
 * does that), or dtypes other than F32/BF16/F16/I32/I64/U8.
 *
 * Format (huggingface/safetensors): a u64 little-endian header length N, N bytes of JSON
 * {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}},
 * then the data section; offsets are relative to its start, byte 8 + N of the file.
 *
 * Invariants once an open returns 0: every tensor's bytes lie inside its file's mapping,
 * nbytes == numel * dtype size, non-empty data is aligned to its dtype size, names are
 * unique across the set, and tensors[] is sorted by name (strcmp) so vlm_st_find is a
 * bsearch and vlm_st_at walks the tensors in name order.  Mappings, names and the tensor
 * array live until vlm_st_free.  Overlapping tensors and unused bytes in the data section
 * are accepted: they are harmless for a read-only reader.
 *
 * Thread: any.  A set is never written after open, so lookups may run concurrently.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "safetensors.h"

#define ST_INDEX_NAME "model.safetensors.index.json"
#define ST_SINGLE_NAME "model.safetensors"

/* One mapped file of a set. */
typedef struct st_file {
    char *path;       /* as opened, owned */
    const char *base; /* basename, points into path; tensors' .file point here */
    void *map;        /* read-only mapping of the whole file, NULL when unmapped */
    size_t size;      /* bytes in the file and in the mapping */
    char *names;      /* this file's tensor names, NUL-separated, owned */
} st_file;

struct vlm_st_set {
    st_file *files; /* (nfiles) */
    int64_t nfiles, files_cap;
    vlm_st_tensor *tensors; /* (ntensors), sorted by name once the open succeeds */
    int64_t ntensors, tensors_cap;
};

static const struct {
    const char *name;
    vlm_dtype dtype;
} st_dtypes[] = {
    {"F32", VLM_F32}, {"BF16", VLM_BF16}, {"F16", VLM_F16},
    {"I32", VLM_I32}, {"I64", VLM_I64},   {"U8", VLM_U8},
};

static const char *st_basename(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* strerror(e) with its first letter lowered, for our all-lowercase messages. */
static const char *st_strerror(int e, char *buf, size_t len) {
    snprintf(buf, len, "%s", strerror(e));
    if (buf[0] >= 'A' && buf[0] <= 'Z') buf[0] = (char)(buf[0] - 'A' + 'a');
    return buf;
}

/* "dir/name" in a new string, or NULL when out of memory. */
static char *st_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *s = malloc(a + b + 2);
    if (!s) return NULL;
    memcpy(s, dir, a);
    s[a] = '/';
    memcpy(s + a + 1, name, b + 1);
    return s;
}

/* Format dims as "[2, 3]" into buf (truncated to len). */
static const char *st_fmt_shape(char *buf, size_t len, const int64_t *dims, int ndim) {
    size_t n = (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < ndim && n < len; i++)
        n += (size_t)snprintf(buf + n, len - n, "%s%" PRId64, i ? ", " : "", dims[i]);
    if (n < len) snprintf(buf + n, len - n, "]");
    return buf;
}

/* Map path read-only.  Returns 0 with *map (NULL for an empty file) and *size, or
 * VLM_EIO with err naming the path. */
static int st_map(const char *path, void **map, size_t *size, char *err) {
    char eb[128];
    *map = NULL;
    *size = 0;
    /* O_NONBLOCK: a FIFO must not hang the open; it is rejected below. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return vlm__errf(err, VLM_EIO, "%s: cannot open: %s", path,
                         st_strerror(errno, eb, sizeof eb));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return vlm__errf(err, VLM_EIO, "%s: cannot stat: %s", path, st_strerror(e, eb, sizeof eb));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return vlm__errf(err, VLM_EIO, "%s: not a regular file", path);
    }
    if (st.st_size < 0 || (uint64_t)st.st_size > SIZE_MAX) {
        close(fd);
        return vlm__errf(err, VLM_EIO, "%s: file too large to map", path);
    }
    size_t n = (size_t)st.st_size;
    if (n > 0) { /* mmap of zero bytes fails with EINVAL; an empty file is left unmapped */
        void *p = mmap(NULL, n, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            int e = errno;
            close(fd);
            return vlm__errf(err, VLM_EIO, "%s: cannot mmap %zu bytes: %s", path, n,
                             st_strerror(e, eb, sizeof eb));
        }
        *map = p;
    }
    close(fd); /* the mapping keeps the file alive */
    *size = n;
    return 0;
}

static vlm_st_set *st_set_new(void) {
    return calloc(1, sizeof(vlm_st_set));
}

void vlm_st_free(vlm_st_set *set) {
    if (!set) return;
    for (int64_t i = 0; i < set->nfiles; i++) {
        st_file *f = &set->files[i];
        if (f->map) munmap(f->map, f->size);
        free(f->names);
        free(f->path);
    }
    free(set->files);
    free(set->tensors);
    free(set);
}

/* Validate the "__metadata__" entry: an object of strings (HF: HashMap<String, String>). */
static int st_check_metadata(const char *file, json_t *meta, char *err) {
    if (!json_is_object(meta))
        return vlm__errf(err, VLM_EFORMAT, "%s: __metadata__ is not an object", file);
    const char *k;
    json_t *v;
    json_object_foreach(meta, k, v) {
        if (!json_is_string(v))
            return vlm__errf(err, VLM_EFORMAT, "%s: __metadata__ key '%s' is not a string", file,
                             k);
    }
    return 0;
}

/* Fill t from one header entry.  data_base is the file offset of the data section and
 * data_len its size.  name must outlive the set.  Returns 0 or a code with err filled. */
static int st_parse_entry(const st_file *f, const char *name, json_t *v, size_t data_base,
                          size_t data_len, vlm_st_tensor *t, char *err) {
    const char *fn = f->base;
    char sb[160];
    if (!json_is_object(v))
        return vlm__errf(err, VLM_EFORMAT, "%s: tensor '%s': entry is not an object", fn, name);

    json_t *jd = json_object_get(v, "dtype");
    if (!json_is_string(jd))
        return vlm__errf(err, VLM_EFORMAT, "%s: tensor '%s': dtype is missing or not a string", fn,
                         name);
    const char *ds = json_string_value(jd);
    size_t di = 0, ndt = sizeof st_dtypes / sizeof st_dtypes[0];
    while (di < ndt && strcmp(st_dtypes[di].name, ds) != 0)
        di++;
    if (di == ndt)
        return vlm__errf(err, VLM_EUNSUPPORTED,
                         "%s: tensor '%s': dtype '%s' is not supported "
                         "(want F32, BF16, F16, I32, I64 or U8)",
                         fn, name, ds);
    vlm_dtype dtype = st_dtypes[di].dtype;
    size_t dsize = vlm__dtype_size(dtype);

    json_t *js = json_object_get(v, "shape");
    if (!json_is_array(js))
        return vlm__errf(err, VLM_EFORMAT, "%s: tensor '%s': shape is missing or not a list", fn,
                         name);
    size_t nd = json_array_size(js);
    if (nd > VLM_ST_MAX_DIMS)
        return vlm__errf(err, VLM_EFORMAT, "%s: tensor '%s': shape has %zu dims, more than %d", fn,
                         name, nd, VLM_ST_MAX_DIMS);
    int64_t numel = 1; /* a scalar, shape [], has one element */
    bool numel_overflow = false;
    for (size_t i = 0; i < nd; i++) {
        json_t *e = json_array_get(js, i);
        if (!json_is_integer(e) || json_integer_value(e) < 0)
            return vlm__errf(err, VLM_EFORMAT,
                             "%s: tensor '%s': shape entry %zu is not a non-negative integer", fn,
                             name, i);
        t->shape[i] = (int64_t)json_integer_value(e);
        if (__builtin_mul_overflow(numel, t->shape[i], &numel)) numel_overflow = true;
    }
    t->ndim = (int)nd;
    /* A zero dim makes the product 0 whatever overflowed before it. */
    for (int i = 0; i < t->ndim; i++)
        if (t->shape[i] == 0) numel = 0, numel_overflow = false;
    if (numel_overflow)
        return vlm__errf(err, VLM_EFORMAT, "%s: tensor '%s': shape %s has too many elements", fn,
                         name, st_fmt_shape(sb, sizeof sb, t->shape, t->ndim));

    json_t *jo = json_object_get(v, "data_offsets");
    json_t *jb = json_array_get(jo, 0), *je = json_array_get(jo, 1);
    if (!json_is_array(jo) || json_array_size(jo) != 2 || !json_is_integer(jb) ||
        !json_is_integer(je) || json_integer_value(jb) < 0 || json_integer_value(je) < 0)
        return vlm__errf(err, VLM_EFORMAT,
                         "%s: tensor '%s': data_offsets is not a list of 2 non-negative integers",
                         fn, name);
    uint64_t begin = (uint64_t)json_integer_value(jb), end = (uint64_t)json_integer_value(je);
    if (begin > end)
        return vlm__errf(err, VLM_EFORMAT,
                         "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64
                         "] begin after their end",
                         fn, name, begin, end);
    if (end > data_len)
        return vlm__errf(err, VLM_EFORMAT,
                         "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64
                         "] run past the end of the file (%zu bytes of data)",
                         fn, name, begin, end, data_len);
    size_t nbytes = (size_t)(end - begin);
    /* numel * dsize == nbytes without overflow: the division bounds numel first. */
    if ((uint64_t)numel > nbytes / dsize || (size_t)numel * dsize != nbytes)
        return vlm__errf(err, VLM_EFORMAT,
                         "%s: tensor '%s': %s shape %s (%" PRId64
                         " elements of %zu bytes) does not match data_offsets [%" PRIu64
                         ", %" PRIu64 "] (%zu bytes)",
                         fn, name, ds, st_fmt_shape(sb, sizeof sb, t->shape, t->ndim), numel, dsize,
                         begin, end, nbytes);
    size_t at = data_base + (size_t)begin; /* file offset; the mapping is page-aligned */
    if (nbytes > 0 && at % dsize != 0)
        return vlm__errf(err, VLM_EFORMAT,
                         "%s: tensor '%s': data at file offset %zu is not aligned to %zu bytes "
                         "for %s",
                         fn, name, at, dsize, ds);

    t->name = name;
    t->file = f->base;
    t->dtype = dtype;
    t->numel = numel;
    t->data = (const char *)f->map + at;
    t->nbytes = nbytes;
    return 0;
}

/* Parse an already mapped file's header and append its tensors to set.
 * Returns 0 or a code with err filled; on error set keeps what it owns for vlm_st_free. */
/* Tensors in file order: by where their data starts, empty ones first. */
static int st_cmp_data(const void *a, const void *b) {
    const vlm_st_tensor *x = a, *y = b;
    if (x->data != y->data) return (const char *)x->data < (const char *)y->data ? -1 : 1;
    return (x->nbytes > y->nbytes) - (x->nbytes < y->nbytes);
}

/* No two tensors share bytes: one would load as the other (the format also forbids
 * gaps; they are harmless to a reader and tolerated here). */
static int st_check_overlap(const st_file *f, vlm_st_tensor *t, int64_t n, char *err) {
    qsort(t, (size_t)n, sizeof *t, st_cmp_data);
    for (int64_t i = 1; i < n; i++)
        if ((const char *)t[i].data < (const char *)t[i - 1].data + t[i - 1].nbytes)
            return vlm__errf(err, VLM_EFORMAT, "%s: tensors '%s' and '%s': their data_offsets "
                             "overlap", f->base, t[i - 1].name, t[i].name);
    return 0;
}

static int st_parse_file(vlm_st_set *set, st_file *f, char *err) {
    const char *fn = f->base;
    if (f->size < 8)
        return vlm__errf(err, VLM_EFORMAT,
                         "%s: file is %zu bytes, too short for the 8-byte header length", fn,
                         f->size);
    const unsigned char *p = f->map;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | p[i]; /* little-endian on any host */
    if (hlen > f->size - 8)
        return vlm__errf(err, VLM_EFORMAT,
                         "%s: header length %" PRIu64 " runs past the end of the file (%zu bytes)",
                         fn, hlen, f->size);
    size_t data_base = 8 + (size_t)hlen, data_len = f->size - data_base;

    json_error_t je;
    json_t *hdr = json_loadb((const char *)p + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &je);
    if (!hdr)
        return vlm__errf(err, VLM_EFORMAT, "%s: header is not valid json: %s (at byte %lld)", fn,
                         je.text, (long long)je.position + 8);
    int rc = 0;
    if (!json_is_object(hdr)) {
        rc = vlm__errf(err, VLM_EFORMAT, "%s: header is not a json object", fn);
        goto out;
    }

    /* One allocation for the names, one growth of the tensor array. */
    const char *key;
    json_t *v;
    size_t names_len = 0;
    int64_t count = 0;
    json_object_foreach(hdr, key, v) {
        if (strcmp(key, "__metadata__") == 0) continue;
        names_len += strlen(key) + 1;
        count++;
    }
    f->names = malloc(names_len ? names_len : 1);
    if (!f->names) {
        rc =
            vlm__errf(err, VLM_ENOMEM, "%s: out of memory for %" PRId64 " tensor names", fn, count);
        goto out;
    }
    if (set->ntensors + count > set->tensors_cap) {
        int64_t cap = set->ntensors + count;
        vlm_st_tensor *nt = realloc(set->tensors, (size_t)cap * sizeof *nt);
        if (!nt) {
            rc = vlm__errf(err, VLM_ENOMEM, "%s: out of memory for %" PRId64 " tensors", fn, count);
            goto out;
        }
        set->tensors = nt;
        set->tensors_cap = cap;
    }

    char *np = f->names;
    json_object_foreach(hdr, key, v) {
        if (strcmp(key, "__metadata__") == 0) {
            if ((rc = st_check_metadata(fn, v, err)) != 0) goto out;
            continue;
        }
        size_t kl = strlen(key) + 1;
        memcpy(np, key, kl);
        vlm_st_tensor *t = &set->tensors[set->ntensors];
        memset(t, 0, sizeof *t);
        if ((rc = st_parse_entry(f, np, v, data_base, data_len, t, err)) != 0) goto out;
        np += kl;
        set->ntensors++;
    }
    rc = st_check_overlap(f, set->tensors + set->ntensors - count, count, err);
out:
    json_decref(hdr);
    return rc;
}

/* Map path and append its tensors to set.  Returns 0 or a code with err filled. */
static int st_add_file(vlm_st_set *set, const char *path, char *err) {
    if (set->nfiles == set->files_cap) {
        int64_t cap = set->files_cap ? set->files_cap * 2 : 4;
        st_file *nf = realloc(set->files, (size_t)cap * sizeof *nf);
        if (!nf) return vlm__errf(err, VLM_ENOMEM, "%s: out of memory", path);
        set->files = nf;
        set->files_cap = cap;
    }
    st_file *f = &set->files[set->nfiles];
    memset(f, 0, sizeof *f);
    if (!(f->path = strdup(path))) return vlm__errf(err, VLM_ENOMEM, "%s: out of memory", path);
    f->base = st_basename(f->path);
    set->nfiles++; /* owned by the set from here on, whatever happens next */
    int rc = st_map(path, &f->map, &f->size, err);
    if (rc) return rc;
    return st_parse_file(set, f, err);
}

static int st_cmp_tensor(const void *a, const void *b) {
    return strcmp(((const vlm_st_tensor *)a)->name, ((const vlm_st_tensor *)b)->name);
}

static int st_cmp_key(const void *key, const void *elem) {
    return strcmp((const char *)key, ((const vlm_st_tensor *)elem)->name);
}

/* Sort the tensors by name and reject a name seen twice (across shards, or within a file
 * through a key jansson cut at an embedded NUL). */
static int st_finish(vlm_st_set *set, char *err) {
    if (set->ntensors > 1)
        qsort(set->tensors, (size_t)set->ntensors, sizeof *set->tensors, st_cmp_tensor);
    for (int64_t i = 1; i < set->ntensors; i++) {
        const vlm_st_tensor *a = &set->tensors[i - 1], *b = &set->tensors[i];
        if (strcmp(a->name, b->name) != 0) continue;
        if (a->file == b->file)
            return vlm__errf(err, VLM_EFORMAT, "%s: tensor '%s' appears twice", a->file, a->name);
        return vlm__errf(err, VLM_EFORMAT, "tensor '%s' is in two files: %s and %s", a->name,
                         a->file, b->file);
    }
    return 0;
}

int vlm_st_open_file(const char *path, vlm_st_set **out, char *err) {
    if (!out) return vlm__errf(err, VLM_EINVAL, "vlm_st_open_file: out is NULL");
    *out = NULL;
    if (!path) return vlm__errf(err, VLM_EINVAL, "vlm_st_open_file: path is NULL");
    vlm_st_set *set = st_set_new();
    if (!set) return vlm__errf(err, VLM_ENOMEM, "%s: out of memory", path);
    int rc = st_add_file(set, path, err);
    if (!rc) rc = st_finish(set, err);
    if (rc) {
        vlm_st_free(set);
        return rc;
    }
    *out = set;
    return 0;
}

/* A shard name from the index must name a file inside the model directory. */
static bool st_plain_name(const char *s) {
    return *s && !strchr(s, '/') && strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

/* Open the shards the index at idx_path names, then check the index against them. */
static int st_open_index(const char *dir, const char *idx_path, vlm_st_set **out, char *err) {
    const char *ib = ST_INDEX_NAME;
    char eb[128];
    void *map;
    size_t size;
    int rc = st_map(idx_path, &map, &size, err);
    if (rc) return rc;
    json_error_t je;
    json_t *root = json_loadb(map ? (const char *)map : "", size, JSON_REJECT_DUPLICATES, &je);
    if (map) munmap(map, size);
    if (!root)
        return vlm__errf(err, VLM_EFORMAT, "%s: not valid json: %s (line %d, column %d)", ib,
                         je.text, je.line, je.column);

    vlm_st_set *set = NULL;
    const char **shards = NULL; /* (nshards) distinct names, into root */
    const char **first = NULL;  /* (nshards) the first tensor naming each, into root */
    size_t nshards = 0;
    json_t *wm = json_object_get(root, "weight_map");
    if (!json_is_object(root) || !json_is_object(wm)) {
        rc = vlm__errf(err, VLM_EFORMAT, "%s: weight_map is missing or not an object", ib);
        goto out;
    }
    size_t nmap = json_object_size(wm);
    if (nmap == 0) {
        rc = vlm__errf(err, VLM_EFORMAT, "%s: weight_map names no tensors", ib);
        goto out;
    }
    shards = malloc(nmap * sizeof *shards);
    first = malloc(nmap * sizeof *first);
    if (!shards || !first) {
        rc = vlm__errf(err, VLM_ENOMEM, "%s: out of memory", ib);
        goto out;
    }
    const char *key;
    json_t *v;
    json_object_foreach(wm, key, v) {
        if (!json_is_string(v)) {
            rc =
                vlm__errf(err, VLM_EFORMAT, "%s: tensor '%s': shard name is not a string", ib, key);
            goto out;
        }
        const char *s = json_string_value(v);
        if (!st_plain_name(s)) {
            rc = vlm__errf(err, VLM_EFORMAT,
                           "%s: tensor '%s': shard name '%s' is not a plain file name", ib, key, s);
            goto out;
        }
        /* Linear: checkpoints have a few dozen shards at most. */
        size_t i = 0;
        while (i < nshards && strcmp(shards[i], s) != 0)
            i++;
        if (i == nshards) {
            shards[nshards] = s;
            first[nshards++] = key;
        }
    }

    if (!(set = st_set_new())) {
        rc = vlm__errf(err, VLM_ENOMEM, "%s: out of memory", ib);
        goto out;
    }
    for (size_t i = 0; i < nshards; i++) {
        char *path = st_join(dir, shards[i]);
        if (!path) {
            rc = vlm__errf(err, VLM_ENOMEM, "%s: out of memory", ib);
            goto out;
        }
        struct stat st;
        if (stat(path, &st) != 0) {
            int e = errno;
            if (e == ENOENT)
                rc = vlm__errf(err, VLM_ENOTFOUND,
                               "%s: shard '%s' (of tensor '%s') is missing from %s", ib, shards[i],
                               first[i], dir);
            else
                rc = vlm__errf(err, VLM_EIO, "%s: cannot stat: %s", path,
                               st_strerror(e, eb, sizeof eb));
            free(path);
            goto out;
        }
        rc = st_add_file(set, path, err);
        free(path);
        if (rc) goto out;
    }
    if ((rc = st_finish(set, err)) != 0) goto out;

    /* Every tensor the index names is in the shard it names.  Tensors a shard holds that
     * the index leaves out are kept, as transformers loads whole shards. */
    json_object_foreach(wm, key, v) {
        const char *s = json_string_value(v);
        const vlm_st_tensor *t = vlm_st_find(set, key);
        if (!t) {
            rc = vlm__errf(err, VLM_EFORMAT, "%s: tensor '%s' is not in its shard %s", ib, key, s);
            goto out;
        }
        if (strcmp(t->file, s) != 0) {
            rc = vlm__errf(err, VLM_EFORMAT, "%s: tensor '%s' is not in its shard %s but in %s", ib,
                           key, s, t->file);
            goto out;
        }
    }
out:
    free(shards);
    free(first);
    json_decref(root);
    if (rc) {
        vlm_st_free(set);
        return rc;
    }
    *out = set;
    return 0;
}

int vlm_st_open_dir(const char *dir, vlm_st_set **out, char *err) {
    if (!out) return vlm__errf(err, VLM_EINVAL, "vlm_st_open_dir: out is NULL");
    *out = NULL;
    if (!dir) return vlm__errf(err, VLM_EINVAL, "vlm_st_open_dir: dir is NULL");
    char eb[128];
    struct stat st;
    int rc;
    char *idx = st_join(dir, ST_INDEX_NAME);
    if (!idx) return vlm__errf(err, VLM_ENOMEM, "%s: out of memory", dir);
    if (stat(idx, &st) == 0) {
        rc = st_open_index(dir, idx, out, err);
        free(idx);
        return rc;
    }
    if (errno != ENOENT) {
        rc = vlm__errf(err, VLM_EIO, "%s: cannot stat: %s", idx, st_strerror(errno, eb, sizeof eb));
        free(idx);
        return rc;
    }
    free(idx);
    char *single = st_join(dir, ST_SINGLE_NAME);
    if (!single) return vlm__errf(err, VLM_ENOMEM, "%s: out of memory", dir);
    if (stat(single, &st) != 0) {
        int e = errno;
        free(single);
        if (e == ENOENT)
            return vlm__errf(err, VLM_ENOTFOUND, "%s: no %s or %s in the directory", dir,
                             ST_SINGLE_NAME, ST_INDEX_NAME);
        return vlm__errf(err, VLM_EIO, "%s/%s: cannot stat: %s", dir, ST_SINGLE_NAME,
                         st_strerror(e, eb, sizeof eb));
    }
    rc = vlm_st_open_file(single, out, err);
    free(single);
    return rc;
}

int64_t vlm_st_count(const vlm_st_set *set) {
    return set ? set->ntensors : 0;
}

/* The i-th tensor in name order, or NULL when i is out of range. */
const vlm_st_tensor *vlm_st_at(const vlm_st_set *set, int64_t i) {
    if (!set || i < 0 || i >= set->ntensors) return NULL;
    return &set->tensors[i];
}

const vlm_st_tensor *vlm_st_find(const vlm_st_set *set, const char *name) {
    if (!set || !name || set->ntensors == 0) return NULL;
    return bsearch(name, set->tensors, (size_t)set->ntensors, sizeof *set->tensors, st_cmp_key);
}
