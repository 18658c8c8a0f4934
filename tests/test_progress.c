/* io/progress: the tty line (redrawn, cut at item boundaries to the
 * width) and plain lines for logs; rate and ETA from an explicit clock. */
#include <stdlib.h>

#include "io/progress.h"
#include "check.h"

static char *capture(FILE *fp) {
    fflush(fp);
    long n = ftell(fp);
    rewind(fp);
    char *buf = calloc(1, (size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, fp) != (size_t)n) buf[0] = 0;
    return buf;
}

static void test_format(void) {
    Progress p;
    progress_init_mode(&p, stdout, 1000, 0, 80);
    char buf[256];
    ProgressItem items[] = {{"reward", 0.53219}, {"kl", 0.0012}};
    p.t0 = 0;
    p.first_step = 100; /* resumed at step 100 */
    progress_format(&p, 120, items, 2, 64.0, buf, sizeof buf);
    CHECK_STREQ(buf, "step 120/1000  12.0%  3.2 s/step  ETA 46m56s  elapsed 1m04s  reward 0.5322  kl 0.0012");
    progress_init_mode(&p, stdout, 0, 0, 80);
    p.t0 = 0;
    progress_format(&p, 50, NULL, 0, 10.0, buf, sizeof buf);
    CHECK_STREQ(buf, "step 50  5.0 steps/s  elapsed 10s");
    /* A tiny buffer truncates safely. */
    CHECK(progress_format(&p, 50, items, 2, 10.0, buf, 8) == 7);
    CHECK_STREQ(buf, "step 50");
}

static void test_tty(void) {
    FILE *fp = tmpfile();
    Progress p;
    progress_init_mode(&p, fp, 10, 1, 40);
    ProgressItem items[] = {{"reward", 0.5}, {"accuracy", 0.25}, {"kl", 0.001}};
    progress_update_at(&p, 1, items, 3, 0.0);
    progress_update_at(&p, 2, items, 3, 2.0);
    progress_finish(&p);
    char *out = capture(fp);
    /* Two redraws, each cut before an item that does not fit in 39 columns. */
    CHECK_STREQ(out ? out : "", "\rstep 1/10  10.0%  reward 0.5\x1b[K"
                                "\rstep 2/10  20.0%  2.0 s/step  ETA 16s\x1b[K\n");
    CHECK(out && strchr(out, '\r') == out);
    free(out);
    fclose(fp);
}

static void test_plain(void) {
    FILE *fp = tmpfile();
    Progress p;
    progress_init_mode(&p, fp, 3, 0, 40);
    ProgressItem items[] = {{"loss", 1.5}};
    progress_update_at(&p, 1, items, 1, 0.0);
    progress_update_at(&p, 3, items, 1, 1.0);
    progress_finish(&p);
    char *out = capture(fp);
    CHECK_STREQ(out ? out : "", "step 1/3  33.3%  loss 1.5\nstep 3/3  100.0%  2.0 steps/s  elapsed 1s  loss 1.5\n");
    free(out);
    fclose(fp);
}

int main(void) {
    test_format();
    test_tty();
    test_plain();
    return check_summary("test_progress");
}
