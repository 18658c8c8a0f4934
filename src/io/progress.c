/* Progress line (see progress.h). */
#include "io/progress.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void progress_init_mode(Progress *p, FILE *fp, int64_t total, int tty, int width) {
    memset(p, 0, sizeof *p);
    p->fp = fp;
    p->total = total > 0 ? total : 0;
    p->tty = tty;
    p->width = width < 20 ? 20 : width > 1000 ? 1000 : width;
    p->t0 = -1;
}

void progress_init(Progress *p, FILE *fp, int64_t total) {
    int fd = fileno(fp);
    int tty = fd >= 0 && isatty(fd);
    int width = 80;
    const char *cols = getenv("COLUMNS");
    struct winsize ws;
    if (cols && atoi(cols) > 0) width = atoi(cols);
    else if (tty && ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) width = ws.ws_col;
    progress_init_mode(p, fp, total, tty, width);
}

static void duration(char *buf, size_t cap, double s) {
    if (!isfinite(s) || s < 0) snprintf(buf, cap, "?");
    else if (s < 60) snprintf(buf, cap, "%.0fs", s);
    else if (s < 3600) snprintf(buf, cap, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
    else if (s < 100 * 3600.0) snprintf(buf, cap, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
    else snprintf(buf, cap, "%.0fh", s / 3600);
}

/* Appends with snprintf semantics, never past cap. */
static void add(char *buf, size_t cap, size_t *len, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void add(char *buf, size_t cap, size_t *len, const char *fmt, ...) {
    if (*len + 1 >= cap) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *len, cap - *len, fmt, ap);
    va_end(ap);
    if (n > 0) *len = *len + (size_t)n < cap ? *len + (size_t)n : cap - 1;
}

size_t progress_format(const Progress *p, int64_t step, const ProgressItem *items, size_t n, double now, char *buf,
                       size_t cap) {
    if (!cap) return 0;
    size_t len = 0;
    buf[0] = 0;
    if (p->total) add(buf, cap, &len, "step %lld/%lld  %.1f%%", (long long)step, (long long)p->total, 100.0 * step / p->total);
    else add(buf, cap, &len, "step %lld", (long long)step);
    /* Rate from the first update, so a resumed run's ETA counts only its own steps. */
    int64_t done = step - p->first_step;
    double elapsed = p->t0 >= 0 ? now - p->t0 : 0;
    if (done > 0 && elapsed > 0) {
        double per = elapsed / (double)done;
        char t[32];
        if (per >= 1) add(buf, cap, &len, "  %.1f s/step", per);
        else add(buf, cap, &len, "  %.1f steps/s", 1 / per);
        if (p->total && step < p->total) {
            duration(t, sizeof t, per * (double)(p->total - step));
            add(buf, cap, &len, "  ETA %s", t);
        }
        duration(t, sizeof t, elapsed);
        add(buf, cap, &len, "  elapsed %s", t);
    }
    for (size_t i = 0; i < n; i++) add(buf, cap, &len, "  %s %.4g", items[i].name, items[i].value);
    return len;
}

void progress_update_at(Progress *p, int64_t step, const ProgressItem *items, size_t n, double now) {
    if (p->t0 < 0) {
        /* The first update marks the start; its step counts as already done. */
        p->t0 = now;
        p->first_step = step;
    }
    char line[1024];
    size_t len = progress_format(p, step, items, n, now, line, sizeof line);
    if (p->tty) {
        /* One column spare: writing the last column makes some terminals wrap. */
        size_t max = (size_t)p->width - 1;
        if (len > max) {
            /* Drop whole items ("  name value") rather than show half a number. */
            size_t cut = max;
            while (cut > 0 && !(line[cut] == ' ' && line[cut - 1] == ' ')) cut--;
            len = cut > 0 ? cut - 1 : max;
            while (len > 0 && ((unsigned char)line[len] & 0xC0) == 0x80) len--; /* keep UTF-8 whole */
        }
        fprintf(p->fp, "\r%.*s\x1b[K", (int)len, line);
        p->dirty = 1;
    } else {
        fprintf(p->fp, "%s\n", line);
    }
    fflush(p->fp);
}

void progress_update(Progress *p, int64_t step, const ProgressItem *items, size_t n) {
    progress_update_at(p, step, items, n, now_s());
}

void progress_finish(Progress *p) {
    if (p->tty && p->dirty) {
        fputc('\n', p->fp);
        fflush(p->fp);
    }
    p->dirty = 0;
}
