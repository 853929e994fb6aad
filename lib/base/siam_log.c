/* siam_log: timestamped level-filtered lines on stderr; progress bar or periodic lines. */
#include "siam_log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

int siam_log_threshold = SIAM_LOG_INFO;

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static const char *const level_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};
static int bar_on_screen; /* a progress bar occupies the current terminal line */

void siam_log_write(int level, const char *component, const char *fmt, ...) {
    struct timespec ts;
    struct tm tm;
    char stamp[32];
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    if (level < 0 || level > SIAM_LOG_ERROR)
        level = SIAM_LOG_ERROR;
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&log_lock);
    if (bar_on_screen) {
        fputc('\n', stderr);
        bar_on_screen = 0;
    }
    fprintf(stderr, "%s.%03ldZ %-5s %s: ", stamp, ts.tv_nsec / 1000000, level_names[level],
            component);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    fflush(stderr);
    pthread_mutex_unlock(&log_lock);
    va_end(ap);
}

/* ---- rate-limited lines ---- */

typedef struct {
    int used;
    int level; /* of its newest line: the level of a flushed summary */
    char component[SIAM_LOG_LIMIT_KIND_MAX], kind[SIAM_LOG_LIMIT_KIND_MAX];
    double window_start;
    unsigned printed;              /* lines written in the current window */
    unsigned long long suppressed; /* lines counted, not written, since the window opened */
} limit_slot;

/* Guards the limiter's table and rule; taken before log_lock, never inside it. */
static pthread_mutex_t limit_lock = PTHREAD_MUTEX_INITIALIZER;
static limit_slot limit_slots[SIAM_LOG_LIMIT_KINDS];
static int limit_burst = SIAM_LOG_LIMIT_BURST;
static double limit_interval = SIAM_LOG_LIMIT_INTERVAL;
static double (*limit_clock)(void) = siam_now;

/* The slot of (component, kind), claimed if new; the last slot holds every kind the table has no
 * room for. Called with limit_lock. */
static limit_slot *limit_find(const char *component, const char *kind) {
    const size_t n = SIAM_LOG_LIMIT_KIND_MAX - 1; /* stored copies are cut to this */
    for (int i = 0; i < SIAM_LOG_LIMIT_KINDS - 1; i++) {
        limit_slot *k = &limit_slots[i];
        if (!k->used) {
            k->used = 1;
            snprintf(k->component, sizeof k->component, "%s", component);
            snprintf(k->kind, sizeof k->kind, "%s", kind);
            return k;
        }
        if (strncmp(k->kind, kind, n) == 0 && strncmp(k->component, component, n) == 0)
            return k;
    }
    limit_slot *other = &limit_slots[SIAM_LOG_LIMIT_KINDS - 1];
    if (!other->used) {
        other->used = 1;
        snprintf(other->component, sizeof other->component, "%s", component);
        snprintf(other->kind, sizeof other->kind, "%s", "other kinds");
    }
    return other;
}

void siam_log_limited(int level, const char *component, const char *kind, const char *fmt, ...) {
    if (level < siam_log_threshold)
        return;
    if (!component)
        component = "?";
    if (!kind)
        kind = "";
    unsigned long long reported = 0;
    double span = 0.0;
    pthread_mutex_lock(&limit_lock);
    double now = limit_clock();
    limit_slot *k = limit_find(component, kind);
    k->level = level;
    if (k->printed == 0 || now - k->window_start >= limit_interval) {
        /* a new window: this line opens it and reports what the previous one suppressed */
        reported = k->suppressed;
        span = now - k->window_start;
        k->window_start = now;
        k->printed = 1;
        k->suppressed = 0;
    } else if (k->printed < (unsigned)limit_burst) {
        k->printed++;
    } else {
        k->suppressed++;
        pthread_mutex_unlock(&limit_lock);
        return; /* counted only: a suppressed line costs no formatting */
    }
    pthread_mutex_unlock(&limit_lock);

    char msg[SIAM_LOG_LIMIT_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (reported)
        siam_log_write(level, component, "%s (suppressed %llu similar messages in the last %.1f s)",
                       msg, reported, span);
    else
        siam_log_write(level, component, "%s", msg);
}

void siam_log_limited_flush(void) {
    pthread_mutex_lock(&limit_lock);
    double now = limit_clock();
    for (int i = 0; i < SIAM_LOG_LIMIT_KINDS; i++) {
        limit_slot *k = &limit_slots[i];
        /* written under limit_lock (the order is limit_lock, then log_lock): at shutdown */
        if (k->used && k->suppressed && k->level >= siam_log_threshold)
            siam_log_write(k->level, k->component,
                           "%s (suppressed %llu similar messages in the last %.1f s)", k->kind,
                           k->suppressed, now - k->window_start);
        k->printed = 0;
        k->suppressed = 0;
    }
    pthread_mutex_unlock(&limit_lock);
}

int siam_log_limit_configure(int burst, double interval, double (*clock)(void), siam_error *err) {
    if (burst < 1 || !(interval > 0.0))
        return siam_error_set(err, SIAM_ERR_ARG,
                              "log rate limit: %d line(s) per %g s; need at least 1 line and an "
                              "interval above 0",
                              burst, interval);
    pthread_mutex_lock(&limit_lock);
    limit_burst = burst;
    limit_interval = interval;
    limit_clock = clock ? clock : siam_now;
    memset(limit_slots, 0, sizeof limit_slots);
    pthread_mutex_unlock(&limit_lock);
    return SIAM_OK;
}

int siam_log_parse_level(const char *name, int *level, siam_error *err) {
    static const char *const names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++) {
        if (strcmp(name, names[i]) == 0) {
            *level = i;
            return SIAM_OK;
        }
    }
    return siam_error_set(err, SIAM_ERR_ARG,
                          "unknown log level '%s' (use debug, info, warn, error)", name);
}

void siam_log_set_level(int level) {
    siam_log_threshold = level;
}

double siam_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

double siam_peak_rss_mb(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0.0;
    return (double)ru.ru_maxrss / 1024.0; /* Linux reports KiB */
}

static void format_duration(char *buf, size_t cap, double s) {
    if (s < 0 || s > 1e7) {
        snprintf(buf, cap, "--:--");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, cap, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, cap, "%02ld:%02ld", t / 60, t % 60);
}

void siam_progress_begin(siam_progress *p, const char *label, uint64_t total_steps) {
    memset(p, 0, sizeof *p);
    p->label = label;
    p->total = total_steps;
    p->start = p->last_print = siam_now();
    p->interval = 10.0;
    p->tty = isatty(STDERR_FILENO);
}

static void draw(siam_progress *p, uint64_t steps, uint64_t pairs, double loss, int final) {
    double now = siam_now(), el = now - p->start;
    double rate = el > 0 ? (double)pairs / el : 0.0;
    double eta =
        steps > 0 && p->total > steps ? el * (double)(p->total - steps) / (double)steps : 0.0;
    char e[32], r[32];
    format_duration(e, sizeof e, el);
    format_duration(r, sizeof r, eta);
    double frac = p->total ? (double)steps / (double)p->total : 1.0;
    pthread_mutex_lock(&log_lock);
    if (p->tty) {
        char bar[31];
        int fill = (int)(frac * 30.0 + 0.5);
        for (int i = 0; i < 30; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[30] = 0;
        fprintf(stderr, "\r%s [%s] %3.0f%% %llu/%llu steps  %.0f pairs/s  loss %.4f  %s<%s ",
                p->label, bar, frac * 100.0, (unsigned long long)steps,
                (unsigned long long)p->total, rate, loss, e, r);
        bar_on_screen = !final;
        if (final)
            fputc('\n', stderr);
    } else {
        fprintf(stderr, "%s: step %llu/%llu (%.0f%%) pairs/s=%.0f loss=%.4f elapsed=%s eta=%s\n",
                p->label, (unsigned long long)steps, (unsigned long long)p->total, frac * 100.0,
                rate, loss, e, r);
    }
    fflush(stderr);
    pthread_mutex_unlock(&log_lock);
    p->last_print = now;
    p->lines++;
}

void siam_progress_update(siam_progress *p, uint64_t steps_done, uint64_t pairs_done, double loss) {
    double now = siam_now();
    /* plain lines: the first after 2 s (an early rate and ETA), then every interval */
    double every = p->tty ? 0.2 : p->lines ? p->interval : 2.0;
    if (now - p->last_print >= every)
        draw(p, steps_done, pairs_done, loss, 0);
}

void siam_progress_end(siam_progress *p, uint64_t steps_done, uint64_t pairs_done, double loss) {
    draw(p, steps_done, pairs_done, loss, 1);
}
