/* refs.c — fixture manifests and reference arrays for `commentary check` (see refs.h). */
#include "refs.h"

#include <math.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int refs_open(refs *r, const char *dir, char *err) {
    memset(r, 0, sizeof *r);
    snprintf(r->dir, sizeof r->dir, "%s", dir);
    char path[1200];
    snprintf(path, sizeof path, "%s/manifest.json", dir);
    json_error_t je;
    r->manifest = json_load_file(path, 0, &je);
    if (!r->manifest) {
        snprintf(err, 256, "%.160s: %.80s (line %d)", path, je.text, je.line);
        return -1;
    }
    if (!json_is_object(json_object_get(r->manifest, "arrays"))) {
        snprintf(err, 256, "%.200s: no 'arrays' object", path);
        json_decref(r->manifest);
        r->manifest = NULL;
        return -1;
    }
    return 0;
}

void refs_close(refs *r) {
    json_decref(r->manifest);
    r->manifest = NULL;
}

static json_t *entry(refs *r, const char *name) {
    return json_object_get(json_object_get(r->manifest, "arrays"), name);
}

bool refs_has(refs *r, const char *name) {
    json_t *e = entry(r, name);
    if (!e) return false;
    char path[1400];
    snprintf(path, sizeof path, "%s/ref/%s", r->dir,
             json_string_value(json_object_get(e, "file")) ? json_string_value(json_object_get(e, "file")) : "");
    FILE *f = fopen(path, "rb");
    if (f) fclose(f);
    return f != NULL;
}

static size_t dtype_size(const char *dt) {
    if (!strcmp(dt, "float32") || !strcmp(dt, "int32")) return 4;
    if (!strcmp(dt, "int64")) return 8;
    if (!strcmp(dt, "uint8")) return 1;
    return 0;
}

/* An array the manifest lists that cannot be read: a failed check, not a skipped one. */
static bool load_failed(refs *r, const char *name, const char *why) {
    r->n_checked++;
    r->n_failed++;
    printf("%-40s %12s %10s  FAIL (%s)\n", name, "-", "-", why);
    fflush(stdout);
    return false;
}

bool refs_load(refs *r, const char *name, ref_array *out) {
    memset(out, 0, sizeof *out);
    json_t *e = entry(r, name);
    if (!e) return false;
    const char *file = json_string_value(json_object_get(e, "file"));
    const char *dt = json_string_value(json_object_get(e, "dtype"));
    json_t *shape = json_object_get(e, "shape");
    if (!file || !dt || !json_is_array(shape) || json_array_size(shape) > 6 || !dtype_size(dt))
        return load_failed(r, name, "manifest entry malformed");
    snprintf(out->dtype, sizeof out->dtype, "%s", dt);
    out->ndim = (int)json_array_size(shape);
    out->numel = 1;
    for (int i = 0; i < out->ndim; i++) {
        json_t *d = json_array_get(shape, (size_t)i);
        out->shape[i] = json_is_integer(d) ? json_integer_value(d) : -1;
        /* a shape no reference file could have (and numel * size must not overflow) */
        if (out->shape[i] < 0 || (out->shape[i] > 0 && out->numel > ((int64_t)1 << 40) / out->shape[i]))
            return load_failed(r, name, "manifest shape malformed");
        out->numel *= out->shape[i];
    }
    char path[1400], why[1600];
    snprintf(path, sizeof path, "%s/ref/%s", r->dir, file);
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(why, sizeof why, "%s: cannot open: %s", path, strerror(errno));
        return load_failed(r, name, why);
    }
    size_t bytes = (size_t)out->numel * dtype_size(dt);
    out->data = malloc(bytes ? bytes : 1);
    size_t got = out->data ? fread(out->data, 1, bytes, f) : 0;
    bool more = fgetc(f) != EOF;
    fclose(f);
    if (got != bytes || more) {
        snprintf(why, sizeof why, "%s: %s bytes, want %zu for its shape", path,
                 more ? "more" : got < bytes ? "fewer" : "other", bytes);
        ref_free(out);
        return load_failed(r, name, why);
    }
    return true;
}

void ref_free(ref_array *a) {
    free(a->data);
    a->data = NULL;
}

int64_t ref_i64(const ref_array *a, int64_t i) {
    if (!strcmp(a->dtype, "int64")) return ((const int64_t *)a->data)[i];
    if (!strcmp(a->dtype, "int32")) return ((const int32_t *)a->data)[i];
    if (!strcmp(a->dtype, "uint8")) return ((const uint8_t *)a->data)[i];
    return (int64_t)((const float *)a->data)[i];
}

double ref_f64(const ref_array *a, int64_t i) {
    if (!strcmp(a->dtype, "float32")) return ((const float *)a->data)[i];
    return (double)ref_i64(a, i);
}

void refs_report(refs *r, const char *label, double err, double tol, bool ok) {
    r->n_checked++;
    if (!ok) r->n_failed++;
    printf("%-40s %12.3e %10.1e  %s\n", label, err, tol, ok ? "PASS" : "FAIL");
    fflush(stdout);
}

bool refs_cmp_f32(refs *r, const char *label, const float *ours, const ref_array *ref,
                  int64_t offset, int64_t n, double tol) {
    double maxerr = 0.0;
    bool ok = offset + n <= ref->numel;
    for (int64_t i = 0; ok && i < n; i++) {
        double e = fabs((double)ours[i] - ref_f64(ref, offset + i));
        if (!(e <= maxerr)) maxerr = isnan(e) ? INFINITY : e;
    }
    ok = ok && maxerr <= tol;
    refs_report(r, label, maxerr, tol, ok);
    return ok;
}

bool refs_cmp_i64(refs *r, const char *label, const int64_t *ours, const ref_array *ref,
                  int64_t offset, int64_t n) {
    int64_t bad = 0, first = -1;
    bool ok = offset + n <= ref->numel;
    for (int64_t i = 0; ok && i < n; i++)
        if (ours[i] != ref_i64(ref, offset + i)) {
            if (first < 0) first = i;
            bad++;
        }
    ok = ok && bad == 0;
    refs_report(r, label, (double)bad, 0, ok);
    if (first >= 0)
        printf("    first mismatch at %lld: %lld, want %lld\n", (long long)first,
               (long long)ours[first], (long long)ref_i64(ref, offset + first));
    return ok;
}
