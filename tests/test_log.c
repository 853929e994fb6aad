/* test_log: the rate limiter of lib/base/siam_log with an injected clock: lines written per kind
 * and window, the suppressed count reported when the window opens again and at the flush,
 * components and kinds kept apart, the level threshold, the bounded table (kinds beyond it share
 * one slot), long kinds and lines, bad settings refused, and 8 threads logging at once (every
 * line either written or counted, exactly once). Lines are read back from stderr (a temp file). */
#include "test_util.h"

#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "siam_log.h"

static double fake_now;
static double fake_clock(void) {
    return fake_now;
}

/* ---- stderr captured into a temp file ---- */
static FILE *cap;
static int saved_fd = -1;

static void capture_begin(void) {
    fflush(stderr);
    cap = tmpfile();
    if (!cap) {
        perror("tmpfile");
        exit(1);
    }
    saved_fd = dup(STDERR_FILENO);
    dup2(fileno(cap), STDERR_FILENO);
}

/* The captured text (malloc'd, caller frees); stderr restored. */
static char *capture_end(void) {
    fflush(stderr);
    dup2(saved_fd, STDERR_FILENO);
    close(saved_fd);
    long n = ftell(cap);
    char *s = malloc((size_t)(n > 0 ? n : 0) + 1);
    if (!s)
        exit(1);
    rewind(cap);
    size_t got = n > 0 ? fread(s, 1, (size_t)n, cap) : 0;
    s[got] = '\0';
    fclose(cap);
    return s;
}

static int count(const char *text, const char *needle) {
    int c = 0;
    for (const char *p = strstr(text, needle); p; p = strstr(p + 1, needle))
        c++;
    return c;
}

static void test_windows(void) {
    siam_error err = {0};
    CHECK(siam_log_limit_configure(3, 10.0, fake_clock, &err) == SIAM_OK, "%s", err.msg);
    fake_now = 100.0;
    capture_begin();
    for (int i = 0; i < 10; i++)
        siam_log_limited(SIAM_LOG_WARN, "svc", "A", "alpha %d", i);
    for (int i = 0; i < 2; i++)
        siam_log_limited(SIAM_LOG_WARN, "svc", "B", "beta %d", i);
    /* the same kind string in another component is another kind */
    for (int i = 0; i < 4; i++)
        siam_log_limited(SIAM_LOG_WARN, "rpc", "A", "gamma %d", i);
    fake_now = 105.0; /* same window */
    for (int i = 0; i < 5; i++)
        siam_log_limited(SIAM_LOG_WARN, "svc", "A", "alpha late %d", i);
    char *t = capture_end();
    CHECK(count(t, "svc: alpha") == 3, "3 of 15 'A' lines in the window, got %d:\n%s",
          count(t, "svc: alpha"), t);
    CHECK(strstr(t, "alpha 0") && strstr(t, "alpha 2") && !strstr(t, "alpha 3"),
          "the first 3 are written:\n%s", t);
    CHECK(count(t, "svc: beta") == 2, "B is counted apart: %d", count(t, "svc: beta"));
    CHECK(count(t, "rpc: gamma") == 3, "rpc's A is counted apart: %d", count(t, "rpc: gamma"));
    CHECK(count(t, " WARN ") == 8, "8 lines in all, got %d", count(t, " WARN "));
    CHECK(!strstr(t, "suppressed"), "no summary inside the window:\n%s", t);
    free(t);

    fake_now = 110.5; /* the window closes at 110: the next line opens one and reports */
    capture_begin();
    for (int i = 0; i < 4; i++)
        siam_log_limited(SIAM_LOG_WARN, "svc", "A", "alpha again %d", i);
    t = capture_end();
    CHECK(count(t, "alpha again") == 3, "3 lines in the new window, got %d",
          count(t, "alpha again"));
    CHECK(strstr(t, "svc: alpha again 0 (suppressed 12 similar messages in the last 10.5 s)\n") !=
              NULL,
          "the first line reports 12 suppressed in 10.5 s:\n%s", t);
    CHECK(count(t, "suppressed") == 1, "one summary, got %d", count(t, "suppressed"));
    free(t);

    /* the flush reports what is pending (1 of A, 1 of rpc's A) and starts afresh */
    fake_now = 112.0;
    capture_begin();
    siam_log_limited_flush();
    siam_log_limited(SIAM_LOG_WARN, "svc", "A", "alpha after flush");
    siam_log_limited_flush(); /* nothing pending: writes nothing */
    t = capture_end();
    CHECK(strstr(t, "WARN  svc: A (suppressed 1 similar messages in the last 1.5 s)\n") != NULL,
          "flush reports svc's A:\n%s", t);
    CHECK(strstr(t, "WARN  rpc: A (suppressed 1 similar messages in the last 12.0 s)\n") != NULL,
          "flush reports rpc's A:\n%s", t);
    CHECK(strstr(t, "svc: alpha after flush\n") != NULL, "a line after the flush is written:\n%s",
          t);
    CHECK(count(t, " WARN ") == 3, "3 lines, got %d:\n%s", count(t, " WARN "), t);
    free(t);
}

static void test_threshold_and_levels(void) {
    siam_error err = {0};
    siam_log_limit_configure(2, 10.0, fake_clock, &err);
    fake_now = 0.0;
    siam_log_set_level(SIAM_LOG_WARN);
    capture_begin();
    for (int i = 0; i < 5; i++)
        siam_log_limited(SIAM_LOG_INFO, "c", "k", "quiet %d", i); /* dropped, not counted */
    siam_log_limited(SIAM_LOG_ERROR, "c", "k", "loud");
    siam_log_limited_flush();
    char *t = capture_end();
    siam_log_set_level(SIAM_LOG_INFO);
    CHECK(!strstr(t, "quiet"), "INFO below the threshold is not written:\n%s", t);
    CHECK(strstr(t, "ERROR c: loud\n") != NULL, "the ERROR line is written:\n%s", t);
    CHECK(!strstr(t, "suppressed"), "lines below the threshold are not counted:\n%s", t);
    free(t);

    CHECK(siam_log_limit_configure(0, 10.0, NULL, &err) == SIAM_ERR_ARG, "burst 0 refused");
    CHECK(strstr(err.msg, "at least 1 line") != NULL, "message: %s", err.msg);
    CHECK(siam_log_limit_configure(1, 0.0, NULL, &err) == SIAM_ERR_ARG, "interval 0 refused");
}

static void test_bounded_kinds(void) {
    siam_error err = {0};
    siam_log_limit_configure(1, 10.0, fake_clock, &err);
    fake_now = 0.0;
    capture_begin();
    /* 200 kinds, 3 lines each: 63 kinds get a slot of their own, the rest share the last */
    for (int k = 0; k < 200; k++)
        for (int i = 0; i < 3; i++)
            siam_log_limited(SIAM_LOG_WARN, "c", "", "kind-%03d line %d", k, i);
    char *t = capture_end();
    free(t);
    /* "" is one kind: the loop above used a single slot; now distinct kinds */
    capture_begin();
    char kind[32];
    for (int k = 0; k < 200; k++)
        for (int i = 0; i < 3; i++) {
            snprintf(kind, sizeof kind, "kind-%03d", k);
            siam_log_limited(SIAM_LOG_WARN, "d", kind, "%s line %d", kind, i);
        }
    t = capture_end();
    int lines = count(t, " WARN ");
    CHECK(lines == SIAM_LOG_LIMIT_KINDS - 2 + 1,
          "62 kinds with a slot of their own (the 63rd is the earlier \"\") + 1 shared: %d lines",
          lines);
    /* kind-062 opens the shared slot's window; the kinds after it find it used up */
    CHECK(strstr(t, "kind-061 line 0") && strstr(t, "kind-062 line 0") &&
              !strstr(t, "kind-063 line 0") && !strstr(t, "kind-199 line 0") &&
              !strstr(t, "kind-010 line 1"),
          "kinds beyond the table share one slot:\n%.400s", t);
    free(t);
    capture_begin();
    siam_log_limited_flush();
    t = capture_end();
    CHECK(strstr(t, "d: other kinds (suppressed 413 similar messages") != NULL,
          "the shared slot reports 138 x 3 - 1 = 413 suppressed:\n%.2000s", t);
    free(t);

    /* kinds longer than SIAM_LOG_LIMIT_KIND_MAX: told apart by their first 63 bytes; a long
     * line is cut, not overflowed */
    siam_log_limit_configure(1, 10.0, fake_clock, &err);
    char long_kind[200], long_msg[3000];
    memset(long_kind, 'k', sizeof long_kind - 1);
    long_kind[sizeof long_kind - 1] = '\0';
    memset(long_msg, 'm', sizeof long_msg - 1);
    long_msg[sizeof long_msg - 1] = '\0';
    capture_begin();
    siam_log_limited(SIAM_LOG_WARN, "c", long_kind, "%s", long_msg);
    long_kind[150] = 'x'; /* differs after byte 63: the same kind */
    siam_log_limited(SIAM_LOG_WARN, "c", long_kind, "second");
    t = capture_end();
    CHECK(count(t, " WARN ") == 1, "long kinds equal in 63 bytes are one kind: %d lines",
          count(t, " WARN "));
    CHECK(!strstr(t, "second"), "the second line is suppressed");
    size_t len = strlen(t);
    CHECK(len > SIAM_LOG_LIMIT_LINE_MAX - 1 && len < SIAM_LOG_LIMIT_LINE_MAX + 100,
          "the long line is cut at %d bytes: %zu", SIAM_LOG_LIMIT_LINE_MAX, len);
    free(t);
}

/* ---- threads ---- */
#define THREADS    8
#define PER_THREAD 20000

static void *hammer(void *arg) {
    long id = (long)(intptr_t)arg;
    for (int i = 0; i < PER_THREAD; i++) {
        siam_log_limited(SIAM_LOG_WARN, "t", "shared", "shared from %ld", id);
        if (i % 4 == 0)
            siam_log_limited(SIAM_LOG_WARN, "t", id % 2 ? "odd" : "even", "own from %ld", id);
    }
    return NULL;
}

static void test_threads(void) {
    siam_error err = {0};
    siam_log_limit_configure(5, 1000.0, fake_clock, &err);
    fake_now = 0.0;
    capture_begin();
    pthread_t th[THREADS];
    for (long i = 0; i < THREADS; i++)
        pthread_create(&th[i], NULL, hammer, (void *)(intptr_t)i);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    siam_log_limited_flush();
    char *t = capture_end();
    CHECK(count(t, "t: shared from") == 5, "5 shared lines from 8 threads, got %d",
          count(t, "t: shared from"));
    CHECK(count(t, "t: own from") == 10, "5 per odd/even kind, got %d", count(t, "t: own from"));
    char want[128];
    snprintf(want, sizeof want, "t: shared (suppressed %d similar", THREADS * PER_THREAD - 5);
    CHECK(strstr(t, want) != NULL, "every line counted once: '%s' in\n%s", want, t);
    snprintf(want, sizeof want, "t: odd (suppressed %d similar", THREADS / 2 * PER_THREAD / 4 - 5);
    CHECK(strstr(t, want) != NULL, "'%s' in\n%s", want, t);
    CHECK(count(t, "\n") == 5 + 10 + 3, "18 whole lines, got %d", count(t, "\n"));
    free(t);
}

int main(void) {
    test_windows();
    test_threshold_and_levels();
    test_bounded_kinds();
    test_threads();
    siam_log_limit_configure(SIAM_LOG_LIMIT_BURST, SIAM_LOG_LIMIT_INTERVAL, NULL, NULL);
    return tu_finish();
}
