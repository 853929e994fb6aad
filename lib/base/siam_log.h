/* siam_log: levelled logging to stderr and a progress display for long work. */
#ifndef SIAM_LOG_H
#define SIAM_LOG_H

#include <stdint.h>

#include "siam_error.h"

typedef enum {
    SIAM_LOG_DEBUG = 0,
    SIAM_LOG_INFO = 1,
    SIAM_LOG_WARN = 2,
    SIAM_LOG_ERROR = 3,
} siam_log_level;

extern int siam_log_threshold; /* messages below it are dropped before formatting */

/* Formats "2026-11-24T21:40:00.123Z INFO  component: message" to stderr (thread-safe). */
void siam_log_write(int level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define SIAM_LOG(level, component, ...)                                                            \
    do {                                                                                           \
        if ((level) >= siam_log_threshold)                                                         \
            siam_log_write((level), (component), __VA_ARGS__);                                     \
    } while (0)
#define LOG_DEBUG(c, ...) SIAM_LOG(SIAM_LOG_DEBUG, c, __VA_ARGS__)
#define LOG_INFO(c, ...)  SIAM_LOG(SIAM_LOG_INFO, c, __VA_ARGS__)
#define LOG_WARN(c, ...)  SIAM_LOG(SIAM_LOG_WARN, c, __VA_ARGS__)
#define LOG_ERROR(c, ...) SIAM_LOG(SIAM_LOG_ERROR, c, __VA_ARGS__)

/* ---- rate-limited lines, for what callers can trigger at will (bad requests, refusals) ----
 * Lines are grouped by kind: the component and a caller-given kind string (e.g. "Train
 * INVALID_ARGUMENT"), compared by content. Per kind, a window opens with its first line and lasts
 * `interval` seconds: its first `burst` lines are written, the rest only counted. The first line
 * of the kind after the window has closed opens the next window and ends with
 * " (suppressed K similar messages in the last S s)", S the time since the previous window
 * opened; siam_log_limited_flush writes the counts still pending (at shutdown). At most
 * SIAM_LOG_LIMIT_KINDS kinds are tracked: kinds beyond share one last slot, so a caller that
 * invents kinds cannot grow the table or escape the limit. Thread-safe; no allocation (a line is
 * formatted on the stack, cut at SIAM_LOG_LIMIT_LINE_MAX bytes). Lines below the level threshold
 * are dropped before they are counted. */
#define SIAM_LOG_LIMIT_KINDS 64
/* bytes of a kind (and of a component) that tell kinds apart */
#define SIAM_LOG_LIMIT_KIND_MAX 64
/* bytes of a rate-limited message */
#define SIAM_LOG_LIMIT_LINE_MAX 1024
/* the default rule: lines per kind and window, and the window in seconds */
#define SIAM_LOG_LIMIT_BURST    5
#define SIAM_LOG_LIMIT_INTERVAL 10.0

void siam_log_limited(int level, const char *component, const char *kind, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
#define LOG_WARN_LIMITED(c, kind, ...)                                                             \
    do {                                                                                           \
        if (SIAM_LOG_WARN >= siam_log_threshold)                                                   \
            siam_log_limited(SIAM_LOG_WARN, (c), (kind), __VA_ARGS__);                             \
    } while (0)

/* Writes one line per kind with suppressed lines still unreported ("<kind> (suppressed K similar
 * messages in the last S s)") and starts every kind afresh. */
void siam_log_limited_flush(void);

/* Sets the limiter's rule: burst lines (>= 1) per interval seconds (> 0), and its clock (seconds,
 * monotonic; NULL = siam_now). Forgets every kind. SIAM_ERR_ARG for a bad burst or interval.
 * For tests (an injected clock) and programs that want another rule. */
int siam_log_limit_configure(int burst, double interval, double (*clock)(void), siam_error *err);

/* "debug", "info", "warn", "error" to a level; SIAM_ERR_ARG otherwise. */
int siam_log_parse_level(const char *name, int *level, siam_error *err);
void siam_log_set_level(int level);

/* Seconds on a monotonic clock. */
double siam_now(void);

/* The process's peak resident set size so far (getrusage ru_maxrss, i.e. VmHWM), in MiB;
 * 0 if unknown. */
double siam_peak_rss_mb(void);

/* Progress of a run of `total` steps: a redrawn bar (steps, pairs/s, loss, ETA) when stderr is
 * a terminal, otherwise a plain line at most every `interval` seconds (and at the end). */
typedef struct {
    const char *label;
    uint64_t total;
    double start, last_print, interval;
    int tty;
    int drawn; /* a bar is on screen and needs a newline before other output */
    int lines; /* updates drawn so far */
} siam_progress;

void siam_progress_begin(siam_progress *p, const char *label, uint64_t total_steps);
void siam_progress_update(siam_progress *p, uint64_t steps_done, uint64_t pairs_done, double loss);
void siam_progress_end(siam_progress *p, uint64_t steps_done, uint64_t pairs_done, double loss);

#endif
