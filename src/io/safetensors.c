/* safetensors reader/writer (see safetensors.h). Every number in the
 * header is range-checked before use; arithmetic on sizes is overflow
 * checked, so a hostile file yields an error, never a bad access. */
#include "io/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/file.h"
#include "base/json.h"

#define ST_MAX_HEADER (100u << 20) /* the reference implementation's limit */

static const char *DTYPE_NAMES[ST_DTYPE_COUNT] = {"F32", "F16", "BF16", "F64", "I64",
                                                   "I32", "I16", "I8",   "U8",  "BOOL"};
static const size_t DTYPE_SIZES[ST_DTYPE_COUNT] = {4, 2, 2, 8, 8, 4, 2, 1, 1, 1};

const char *st_dtype_name(StDtype d) { return d < ST_DTYPE_COUNT ? DTYPE_NAMES[d] : "?"; }
size_t st_dtype_size(StDtype d) { return d < ST_DTYPE_COUNT ? DTYPE_SIZES[d] : 0; }

float st_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t st_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

float st_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu, u;
    if (exp == 0) {
        if (mant == 0) u = sign;
        else { /* subnormal: normalise */
            int e = -1;
            do { e++; mant <<= 1; } while (!(mant & 0x400u));
            u = sign | ((uint32_t)(127 - 15 - e) << 23) | ((mant & 0x3ffu) << 13);
        }
    } else if (exp == 31) u = sign | 0x7f800000u | (mant << 13);
    else u = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static int cmp_tensor(const void *a, const void *b) {
    return strcmp(((const StTensor *)a)->name, ((const StTensor *)b)->name);
}

/* by (begin, end), as the reference implementation sorts: a zero-size
 * tensor sorts before a non-empty one at the same offset */
static int cmp_by_offset(const void *a, const void *b) {
    const StTensor *x = *(const StTensor *const *)a, *y = *(const StTensor *const *)b;
    if (x->data != y->data) return x->data < y->data ? -1 : 1;
    return x->nbytes < y->nbytes ? -1 : x->nbytes > y->nbytes;
}

static void st_free_parsed(StFile *f) {
    for (int i = 0; i < f->n_tensors; i++) free(f->tensors[i].name);
    free(f->tensors);
    for (int i = 0; i < f->n_meta; i++) {
        free(f->meta_keys[i]);
        free(f->meta_vals[i]);
    }
    free(f->meta_keys);
    free(f->meta_vals);
    f->tensors = NULL;
    f->meta_keys = f->meta_vals = NULL;
    f->n_tensors = f->n_meta = 0;
}

static int parse_dtype(const char *s, StDtype *out) {
    for (int i = 0; i < ST_DTYPE_COUNT; i++)
        if (!strcmp(s, DTYPE_NAMES[i])) { *out = (StDtype)i; return 0; }
    return -1;
}

static int parse_entry(StFile *f, StTensor *t, const char *name, json_t *v, const uint8_t *data,
                       uint64_t data_len, const char *what, Err *err) {
    if (!json_is_object(v)) return err_set(err, "%s: tensor '%s': header entry is not an object", what, name);
    const char *key;
    json_t *val;
    json_object_foreach(v, key, val) {
        if (strcmp(key, "dtype") && strcmp(key, "shape") && strcmp(key, "data_offsets"))
            return err_set(err, "%s: tensor '%s': unexpected key '%s'", what, name, key);
    }
    json_t *jd = json_object_get(v, "dtype"), *js = json_object_get(v, "shape"),
           *jo = json_object_get(v, "data_offsets");
    if (!json_is_string(jd)) return err_set(err, "%s: tensor '%s': missing or non-string dtype", what, name);
    if (parse_dtype(json_string_value(jd), &t->dtype) != 0)
        return err_set(err, "%s: tensor '%s': unknown dtype '%s'", what, name, json_string_value(jd));
    if (!json_is_array(js)) return err_set(err, "%s: tensor '%s': missing or non-array shape", what, name);
    size_t nd = json_array_size(js);
    if (nd > ST_MAX_DIMS) return err_set(err, "%s: tensor '%s': %zu dimensions (max %d)", what, name, nd, ST_MAX_DIMS);
    t->ndim = (int)nd;
    uint64_t numel = 1;
    for (size_t i = 0; i < nd; i++) {
        json_t *d = json_array_get(js, i);
        if (!json_is_integer(d) || json_integer_value(d) < 0)
            return err_set(err, "%s: tensor '%s': shape[%zu] is not a non-negative integer", what, name, i);
        uint64_t dim = (uint64_t)json_integer_value(d);
        t->shape[i] = (int64_t)dim;
        if (dim && numel > (UINT64_MAX / 16) / dim)
            return err_set(err, "%s: tensor '%s': shape overflows", what, name);
        numel *= dim;
    }
    t->numel = (int64_t)numel;
    if (!json_is_array(jo) || json_array_size(jo) != 2 || !json_is_integer(json_array_get(jo, 0)) ||
        !json_is_integer(json_array_get(jo, 1)))
        return err_set(err, "%s: tensor '%s': data_offsets must be [begin, end]", what, name);
    json_int_t b = json_integer_value(json_array_get(jo, 0)), e = json_integer_value(json_array_get(jo, 1));
    if (b < 0 || e < b || (uint64_t)e > data_len)
        return err_set(err, "%s: tensor '%s': data_offsets [%lld, %lld] outside the %llu data bytes", what, name,
                       (long long)b, (long long)e, (unsigned long long)data_len);
    uint64_t nbytes = numel * DTYPE_SIZES[t->dtype];
    if ((uint64_t)(e - b) != nbytes)
        return err_set(err, "%s: tensor '%s': %s shape needs %llu bytes but data_offsets span %lld", what, name,
                       DTYPE_NAMES[t->dtype], (unsigned long long)nbytes, (long long)(e - b));
    t->nbytes = (size_t)nbytes;
    t->data = data + b;
    (void)f;
    return 0;
}

int st_open_buffer(StFile *f, const uint8_t *buf, size_t len, const char *what, Err *err) {
    memset(f, 0, sizeof *f);
    if (len < 8) return err_set(err, "%s: file is %zu bytes, too short for a safetensors header", what, len);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | buf[i];
    if (hlen > ST_MAX_HEADER) return err_set(err, "%s: header length %llu exceeds the 100 MiB limit", what, (unsigned long long)hlen);
    if (hlen > len - 8)
        return err_set(err, "%s: header length %llu goes beyond the end of the file (%zu bytes)", what,
                       (unsigned long long)hlen, len);
    if (hlen < 2 || buf[8] != '{') return err_set(err, "%s: header does not start with '{'", what);
    const uint8_t *data = buf + 8 + hlen;
    uint64_t data_len = len - 8 - hlen;
    char hwhat[600];
    snprintf(hwhat, sizeof hwhat, "%s: header", what);
    json_t *root = json_load_buf((const char *)buf + 8, (size_t)hlen, hwhat, err);
    if (!root) return -1;
    if (!json_is_object(root)) {
        json_decref(root);
        return err_set(err, "%s: header is not a JSON object", what);
    }
    size_t n = json_object_size(root);
    f->tensors = calloc(n ? n : 1, sizeof *f->tensors);
    if (!f->tensors) {
        json_decref(root);
        return err_set(err, "%s: out of memory", what);
    }
    const char *key;
    json_t *v;
    int rc = 0;
    json_object_foreach(root, key, v) {
        if (!strcmp(key, "__metadata__")) {
            if (!json_is_object(v)) { rc = err_set(err, "%s: __metadata__ is not an object", what); break; }
            size_t nm = json_object_size(v);
            f->meta_keys = calloc(nm ? nm : 1, sizeof(char *));
            f->meta_vals = calloc(nm ? nm : 1, sizeof(char *));
            const char *mk;
            json_t *mv;
            json_object_foreach(v, mk, mv) {
                if (!json_is_string(mv)) { rc = err_set(err, "%s: __metadata__ '%s' is not a string", what, mk); break; }
                f->meta_keys[f->n_meta] = strdup(mk);
                f->meta_vals[f->n_meta] = strdup(json_string_value(mv));
                f->n_meta++;
            }
            if (rc) break;
            continue;
        }
        if (!key[0]) { rc = err_set(err, "%s: empty tensor name", what); break; }
        StTensor *t = &f->tensors[f->n_tensors];
        if (parse_entry(f, t, key, v, data, data_len, what, err) != 0) { rc = -1; break; }
        t->name = strdup(key);
        f->n_tensors++;
    }
    json_decref(root);
    if (rc) {
        st_free_parsed(f);
        return -1;
    }
    /* The tensors must tile [0, data_len) exactly. */
    const StTensor **by_off = malloc((f->n_tensors ? f->n_tensors : 1) * sizeof *by_off);
    for (int i = 0; i < f->n_tensors; i++) by_off[i] = &f->tensors[i];
    qsort(by_off, f->n_tensors, sizeof *by_off, cmp_by_offset);
    const uint8_t *expect = data;
    for (int i = 0; i < f->n_tensors; i++) {
        const StTensor *t = by_off[i];
        if (t->data != expect) {
            rc = err_set(err, "%s: tensor '%s' %s at data offset %td (expected %td)", what, t->name,
                         t->data < expect ? "overlaps the previous tensor" : "leaves a gap", t->data - data,
                         expect - data);
            break;
        }
        expect += t->nbytes;
    }
    if (!rc && (uint64_t)(expect - data) != data_len)
        rc = err_set(err, "%s: %llu trailing bytes after the last tensor", what,
                     (unsigned long long)(data_len - (uint64_t)(expect - data)));
    free(by_off);
    if (rc) {
        st_free_parsed(f);
        return -1;
    }
    qsort(f->tensors, f->n_tensors, sizeof *f->tensors, cmp_tensor);
    return 0;
}

int st_open(StFile *f, const char *path, Err *err) {
    memset(f, 0, sizeof *f);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return err_set(err, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return err_set(err, "%s: not a regular file", path);
    }
    size_t len = (size_t)st.st_size;
    uint8_t *map = NULL;
    if (len) {
        map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            close(fd);
            return err_set(err, "%s: mmap failed: %s", path, strerror(errno));
        }
    }
    close(fd);
    if (st_open_buffer(f, map ? map : (const uint8_t *)"", len, path, err) != 0) {
        if (map) munmap(map, len);
        return -1;
    }
    f->map = map;
    f->map_len = len;
    f->path = strdup(path);
    return 0;
}

void st_close(StFile *f) {
    st_free_parsed(f);
    if (f->map) munmap(f->map, f->map_len);
    free(f->path);
    memset(f, 0, sizeof *f);
}

const StTensor *st_find(const StFile *f, const char *name) {
    StTensor key = {.name = (char *)name};
    return bsearch(&key, f->tensors, f->n_tensors, sizeof *f->tensors, cmp_tensor);
}

const char *st_meta(const StFile *f, const char *key) {
    for (int i = 0; i < f->n_meta; i++)
        if (!strcmp(f->meta_keys[i], key)) return f->meta_vals[i];
    return NULL;
}

int st_tensor_to_f32(const StTensor *t, float *out, const char *what, Err *err) {
    size_t n = (size_t)t->numel;
    switch (t->dtype) {
    case ST_DTYPE_F32:
        memcpy(out, t->data, n * 4);
        return 0;
    case ST_DTYPE_BF16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, t->data + 2 * i, 2);
            out[i] = st_bf16_to_f32(h);
        }
        return 0;
    case ST_DTYPE_F16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, t->data + 2 * i, 2);
            out[i] = st_f16_to_f32(h);
        }
        return 0;
    default:
        return err_set(err, "%s: tensor '%s' has dtype %s; expected F32, BF16 or F16", what, t->name,
                       DTYPE_NAMES[t->dtype]);
    }
}

/* ---- writer ---- */

static int cmp_write(const void *a, const void *b) {
    return strcmp((*(const StWriteTensor *const *)a)->name, (*(const StWriteTensor *const *)b)->name);
}

int st_write(const char *path, const StWriteTensor *ts, int n, const char *const *meta_keys,
             const char *const *meta_vals, int n_meta, Err *err) {
    const StWriteTensor **order = malloc((n ? n : 1) * sizeof *order);
    if (!order) return err_set(err, "%s: out of memory", path);
    for (int i = 0; i < n; i++) order[i] = &ts[i];
    qsort(order, n, sizeof *order, cmp_write);
    for (int i = 1; i < n; i++)
        if (!strcmp(order[i]->name, order[i - 1]->name)) {
            err_set(err, "%s: duplicate tensor name '%s'", path, order[i]->name);
            free(order);
            return -1;
        }
    /* Header: the JSON is built by hand so key order is ours (sorted). */
    json_t *root = json_object();
    if (n_meta > 0) {
        json_t *m = json_object();
        for (int i = 0; i < n_meta; i++)
            if (json_object_set_new(m, meta_keys[i], json_string(meta_vals[i])) != 0) { /* not UTF-8 */
                err_set(err, "%s: __metadata__ '%s' cannot be written (key and value must be UTF-8)", path,
                        meta_keys[i]);
                json_decref(m), json_decref(root), free(order);
                return -1;
            }
        json_object_set_new(root, "__metadata__", m);
    }
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        const StWriteTensor *t = order[i];
        json_t *e = json_object(), *shape = json_array();
        uint64_t numel = 1;
        for (int d = 0; d < t->ndim; d++) {
            json_array_append_new(shape, json_integer(t->shape[d]));
            numel *= (uint64_t)t->shape[d];
        }
        uint64_t nb = numel * DTYPE_SIZES[t->dtype];
        json_object_set_new(e, "dtype", json_string(DTYPE_NAMES[t->dtype]));
        json_object_set_new(e, "shape", shape);
        json_t *offs = json_array();
        json_array_append_new(offs, json_integer((json_int_t)off));
        json_array_append_new(offs, json_integer((json_int_t)(off + nb)));
        json_object_set_new(e, "data_offsets", offs);
        /* names the reader would refuse; set_new fails on invalid UTF-8
         * (and always takes e) */
        int bad = !t->name[0] || !strcmp(t->name, "__metadata__");
        if (bad) json_decref(e);
        if (bad || json_object_set_new(root, t->name, e) != 0) {
            err_set(err, "%s: tensor name '%s' cannot be written (empty, reserved or not UTF-8)", path, t->name);
            json_decref(root), free(order);
            return -1;
        }
        off += nb;
    }
    char *hdr = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(root);
    if (!hdr) {
        free(order);
        return err_set(err, "%s: cannot encode header", path);
    }
    size_t hl = strlen(hdr), padded = (hl + 7) & ~(size_t)7;
    uint8_t lenbuf[8];
    for (int i = 0; i < 8; i++) lenbuf[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    AtomicFile af;
    int rc = atomic_open(&af, path, err);
    if (!rc) rc = atomic_write(&af, lenbuf, 8, err);
    if (!rc) rc = atomic_write(&af, hdr, hl, err);
    for (size_t i = hl; !rc && i < padded; i++) rc = atomic_write(&af, " ", 1, err);
    for (int i = 0; !rc && i < n; i++) {
        const StWriteTensor *t = order[i];
        uint64_t numel = 1;
        for (int d = 0; d < t->ndim; d++) numel *= (uint64_t)t->shape[d];
        rc = atomic_write(&af, t->data, numel * DTYPE_SIZES[t->dtype], err);
    }
    free(hdr);
    free(order);
    if (rc) {
        atomic_abort(&af);
        return -1;
    }
    return atomic_commit(&af, err);
}

/* ---- sharded checkpoints ---- */

static int cmp_index(const void *a, const void *b) {
    return strcmp((*(const StTensor *const *)a)->name, (*(const StTensor *const *)b)->name);
}

static int add_file(StCheckpoint *c, const char *path, Err *err) {
    StFile *nf = realloc(c->files, (c->n_files + 1) * sizeof *nf);
    if (!nf) return err_set(err, "%s: out of memory", path);
    c->files = nf;
    if (st_open(&c->files[c->n_files], path, err) != 0) return -1;
    c->n_files++;
    return 0;
}

int st_checkpoint_open(StCheckpoint *c, const char *dir, Err *err) {
    memset(c, 0, sizeof *c);
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    json_t *idx = NULL;
    if (access(path, F_OK) == 0) {
        idx = json_load_path(path, err);
        if (!idx) return -1;
        json_t *wm = json_object_get(idx, "weight_map");
        if (!json_is_object(wm)) {
            json_decref(idx);
            return err_set(err, "%s: missing object 'weight_map'", path);
        }
        /* open each distinct shard once, in order of first appearance */
        const char *name;
        json_t *v;
        char **shards = NULL;
        int ns = 0, rc = 0;
        json_object_foreach(wm, name, v) {
            if (!json_is_string(v)) { rc = err_set(err, "%s: weight_map['%s'] is not a string", path, name); break; }
            const char *sf = json_string_value(v);
            if (strchr(sf, '/') || !strcmp(sf, "..") || !sf[0]) {
                rc = err_set(err, "%s: weight_map['%s']: shard name '%s' must be a plain file name", path, name, sf);
                break;
            }
            int found = 0;
            for (int i = 0; i < ns; i++) if (!strcmp(shards[i], sf)) found = 1;
            if (!found) {
                shards = realloc(shards, (ns + 1) * sizeof *shards);
                shards[ns++] = strdup(sf);
            }
        }
        for (int i = 0; !rc && i < ns; i++) {
            char sp[4096];
            snprintf(sp, sizeof sp, "%s/%s", dir, shards[i]);
            rc = add_file(c, sp, err);
        }
        /* every tensor the index names must be in the shard it names */
        if (!rc) json_object_foreach(wm, name, v) {
            const char *sf = json_string_value(v);
            int fi = -1;
            for (int i = 0; i < ns; i++) if (!strcmp(shards[i], sf)) fi = i;
            if (fi < 0 || !st_find(&c->files[fi], name)) {
                rc = err_set(err, "%s: tensor '%s' is not in shard %s", path, name, sf);
                break;
            }
        }
        for (int i = 0; i < ns; i++) free(shards[i]);
        free(shards);
        json_decref(idx);
        if (rc) {
            st_checkpoint_close(c);
            return -1;
        }
    } else {
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        if (access(path, F_OK) != 0)
            return err_set(err, "%s: no model.safetensors or model.safetensors.index.json", dir);
        if (add_file(c, path, err) != 0) {
            st_checkpoint_close(c); /* frees c->files */
            return -1;
        }
    }
    int total = 0;
    for (int i = 0; i < c->n_files; i++) total += c->files[i].n_tensors;
    c->index = malloc((total ? total : 1) * sizeof *c->index);
    for (int i = 0; i < c->n_files; i++)
        for (int j = 0; j < c->files[i].n_tensors; j++) c->index[c->n_index++] = &c->files[i].tensors[j];
    qsort(c->index, c->n_index, sizeof *c->index, cmp_index);
    for (int i = 1; i < c->n_index; i++)
        if (!strcmp(c->index[i]->name, c->index[i - 1]->name)) {
            err_set(err, "%s: tensor '%s' appears in more than one shard", dir, c->index[i]->name);
            st_checkpoint_close(c);
            return -1;
        }
    return 0;
}

void st_checkpoint_close(StCheckpoint *c) {
    for (int i = 0; i < c->n_files; i++) st_close(&c->files[i]);
    free(c->files);
    free(c->index);
    memset(c, 0, sizeof *c);
}

const StTensor *st_checkpoint_find(const StCheckpoint *c, const char *name) {
    StTensor key = {.name = (char *)name};
    const StTensor *kp = &key;
    const StTensor **r = bsearch(&kp, c->index, c->n_index, sizeof *c->index, cmp_index);
    return r ? *r : NULL;
}
