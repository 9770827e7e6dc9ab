/* refs.h — reading a fixture's manifest.json and its raw reference arrays (ref/NAME.bin),
 * and printing comparisons, for `commentary check`.
 *
 * A reference array is raw little-endian C-order data whose dtype and shape come from
 * manifest.arrays[name].  Comparisons print one line each:
 *     name                      max_abs_err  tolerance  PASS|FAIL
 * and count failures in the caller's refs struct.
 */
#ifndef COMMENTARY_REFS_H
#define COMMENTARY_REFS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct ref_array {
    char dtype[16];
    int ndim;
    int64_t shape[6];
    int64_t numel;
    void *data; /* malloc'd; float, int64, int32 or uint8 as dtype says */
} ref_array;

typedef struct refs {
    char dir[1024];
    json_t *manifest;
    int n_checked, n_failed;
} refs;

int refs_open(refs *r, const char *dir, char *err);
void refs_close(refs *r);
bool refs_has(refs *r, const char *name);
/* Load an array; returns false (and prints why) when it is absent or unreadable. */
bool refs_load(refs *r, const char *name, ref_array *out);
void ref_free(ref_array *a);

/* Compare n floats with the reference array (converted to double); prints one line. */
bool refs_cmp_f32(refs *r, const char *label, const float *ours, const ref_array *ref,
                  int64_t offset, int64_t n, double tol);
/* Compare n integers exactly. */
bool refs_cmp_i64(refs *r, const char *label, const int64_t *ours, const ref_array *ref,
                  int64_t offset, int64_t n);
/* Print a check line for a result computed elsewhere. */
void refs_report(refs *r, const char *label, double err, double tol, bool ok);
/* Reference element i as int64 / double whatever the dtype. */
int64_t ref_i64(const ref_array *a, int64_t i);
double ref_f64(const ref_array *a, int64_t i);

#endif
