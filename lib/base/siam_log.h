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
