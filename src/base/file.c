/* File helpers (see file.h). */
#include "base/file.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int file_read_all(const char *path, char **buf, size_t *len, size_t max_bytes, Err *err) {
    *buf = NULL;
    *len = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp) return err_set(err, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(fp);
        return err_set(err, "%s: not a regular file", path);
    }
    size_t n = (size_t)st.st_size;
    if (max_bytes && n > max_bytes) {
        fclose(fp);
        return err_set(err, "%s: file is %zu bytes, more than the limit of %zu", path, n, max_bytes);
    }
    char *b = malloc(n + 1);
    if (!b) {
        fclose(fp);
        return err_set(err, "%s: out of memory reading %zu bytes", path, n);
    }
    if (n && fread(b, 1, n, fp) != n) {
        free(b);
        fclose(fp);
        return err_set(err, "%s: read failed", path);
    }
    fclose(fp);
    b[n] = 0;
    *buf = b;
    *len = n;
    return 0;
}

int atomic_open(AtomicFile *af, const char *path, Err *err) {
    memset(af, 0, sizeof *af);
    if (strlen(path) + 32 >= sizeof af->path) return err_set(err, "%s: path too long", path);
    snprintf(af->path, sizeof af->path, "%s", path);
    snprintf(af->tmp_path, sizeof af->tmp_path, "%s.tmp.%ld", path, (long)getpid());
    af->fp = fopen(af->tmp_path, "wb");
    if (!af->fp) return err_set(err, "%s: cannot create: %s", af->tmp_path, strerror(errno));
    return 0;
}

int atomic_write(AtomicFile *af, const void *data, size_t len, Err *err) {
    if (len && fwrite(data, 1, len, af->fp) != len)
        return err_set(err, "%s: write failed: %s", af->tmp_path, strerror(errno));
    return 0;
}

static void dir_of(const char *path, char *out, size_t cap) {
    snprintf(out, cap, "%s", path);
    char *slash = strrchr(out, '/');
    if (!slash) snprintf(out, cap, ".");
    else if (slash == out) out[1] = 0;
    else *slash = 0;
}

int atomic_commit(AtomicFile *af, Err *err) {
    if (fflush(af->fp) != 0 || fsync(fileno(af->fp)) != 0) {
        int e = errno;
        atomic_abort(af);
        return err_set(err, "%s: flush failed: %s", af->path, strerror(e));
    }
    if (fclose(af->fp) != 0) {
        af->fp = NULL;
        unlink(af->tmp_path);
        return err_set(err, "%s: close failed", af->path);
    }
    af->fp = NULL;
    if (rename(af->tmp_path, af->path) != 0) {
        int e = errno;
        unlink(af->tmp_path);
        return err_set(err, "%s: rename failed: %s", af->path, strerror(e));
    }
    char dir[4096];
    dir_of(af->path, dir, sizeof dir);
    return dir_sync(dir, err);
}

void atomic_abort(AtomicFile *af) {
    if (af->fp) fclose(af->fp);
    af->fp = NULL;
    if (af->tmp_path[0]) unlink(af->tmp_path);
}

int file_write_atomic(const char *path, const void *data, size_t len, Err *err) {
    AtomicFile af;
    if (atomic_open(&af, path, err) != 0) return -1;
    if (atomic_write(&af, data, len, err) != 0) {
        atomic_abort(&af);
        return -1;
    }
    return atomic_commit(&af, err);
}

int file_copy_atomic(const char *src, const char *dst, Err *err) {
    char *buf;
    size_t len;
    if (file_read_all(src, &buf, &len, 0, err) != 0) return -1;
    int rc = file_write_atomic(dst, buf, len, err);
    free(buf);
    return rc;
}

int dir_make(const char *path, Err *err) {
    char buf[4096];
    if (strlen(path) >= sizeof buf) return err_set(err, "%s: path too long", path);
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return err_set(err, "%s: cannot create directory: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST)
        return err_set(err, "%s: cannot create directory: %s", buf, strerror(errno));
    return 0;
}

int dir_sync(const char *path, Err *err) {
    int fd = open(path, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return err_set(err, "%s: cannot open directory: %s", path, strerror(errno));
    int rc = fsync(fd);
    close(fd);
    if (rc != 0) return err_set(err, "%s: fsync failed: %s", path, strerror(errno));
    return 0;
}
