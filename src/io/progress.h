/* A live progress line for long runs. On a terminal: one line redrawn in
 * place ("\r", cleared to the end), cut to the terminal width. Elsewhere
 * (a log file, a pipe): a full plain line per update, so logs stay
 * greppable. Example:
 *   step 120/1000  12.0%  3.2 s/step  ETA 46m56s  reward 0.532  kl 0.0012 */
#ifndef R1C_IO_PROGRESS_H
#define R1C_IO_PROGRESS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct ProgressItem {
    const char *name;
    double value;
} ProgressItem;

typedef struct Progress {
    FILE *fp;
    int tty;       /* redraw in place */
    int width;     /* columns available on a tty */
    int64_t total; /* last step (0 if unknown) */
    int64_t first_step;
    double t0;     /* time of the first update */
    int dirty;     /* a tty line is showing and needs a newline before other output */
} Progress;

/* Detects whether fp is a terminal and its width (COLUMNS, then ioctl, then 80). */
void progress_init(Progress *p, FILE *fp, int64_t total);
/* The same with the mode and width given (tests, or forcing plain lines). */
void progress_init_mode(Progress *p, FILE *fp, int64_t total, int tty, int width);
/* Shows step (1-based count of finished steps) and the items. */
void progress_update(Progress *p, int64_t step, const ProgressItem *items, size_t n);
/* Same with an explicit clock (seconds), for tests. */
void progress_update_at(Progress *p, int64_t step, const ProgressItem *items, size_t n, double now);
/* Ends a tty line with a newline so later output starts clean. */
void progress_finish(Progress *p);
/* Formats the line into buf (no newline), cut to cap - 1 bytes; for tests. */
size_t progress_format(const Progress *p, int64_t step, const ProgressItem *items, size_t n, double now, char *buf,
                       size_t cap);

#endif
