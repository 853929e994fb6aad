/* siam_schedule: the learning rate as a function of the fractional epoch (formulas in the
 * header), the checks and the parsers of its settings. */
#include "siam_schedule.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* pi to double precision (M_PI is not in C11's <math.h>) */
#define SCHEDULE_PI 3.14159265358979323846

static const char *const k_names[] = {"constant", "step", "cosine"};
#define N_NAMES (sizeof k_names / sizeof k_names[0])

siam_schedule siam_schedule_default(double lr, double epochs) {
    siam_schedule s;
    memset(&s, 0, sizeof s);
    s.kind = SIAM_SCHEDULE_CONSTANT;
    s.lr = lr;
    s.epochs = epochs;
    s.drop_factor = 0.1;
    return s;
}

int siam_schedule_is_constant(const siam_schedule *s) {
    return s->kind == SIAM_SCHEDULE_CONSTANT && !(s->warmup_epochs > 0);
}

double siam_schedule_lr(const siam_schedule *s, double t) {
    double lr = s->lr;
    switch (s->kind) {
    case SIAM_SCHEDULE_CONSTANT:
        break;
    case SIAM_SCHEDULE_STEP:
        /* one multiplication per drop passed, rather than pow(): a rate exactly factor^k lr */
        for (int i = 0; i < s->n_drops && t >= s->drop_epochs[i]; i++)
            lr *= s->drop_factor;
        break;
    case SIAM_SCHEDULE_COSINE: {
        double f = s->epochs > 0 ? t / s->epochs : 1.0;
        f = f < 0 ? 0 : f > 1 ? 1 : f;
        lr = s->floor + (s->lr - s->floor) * 0.5 * (1.0 + cos(SCHEDULE_PI * f));
        break;
    }
    }
    if (s->warmup_epochs > 0 && t < s->warmup_epochs)
        lr *= (t > 0 ? t : 0) / s->warmup_epochs;
    return lr;
}

double siam_schedule_epoch_at(uint64_t step, uint64_t steps_per_epoch) {
    return steps_per_epoch ? ((double)step + 0.5) / (double)steps_per_epoch : 0.0;
}

double siam_schedule_progress(double t, double epochs) {
    if (isnan(t) || isnan(epochs) || epochs <= 0 || t <= 0) /* NaN first: > on NaN traps */
        return 0.0;
    double p = t / epochs;
    return p < 1.0 ? p : 1.0;
}

int siam_schedule_check(const siam_schedule *s, siam_error *err) {
    if ((int)s->kind < 0 || (size_t)s->kind >= N_NAMES)
        return siam_error_set(err, SIAM_ERR_ARG, "learning-rate schedule %d is none of %s",
                              (int)s->kind, siam_schedule_choices());
    if (!isfinite(s->lr) || !(s->lr > 0))
        return siam_error_set(err, SIAM_ERR_ARG, "learning rate %g: need a finite value > 0",
                              s->lr);
    if (!isfinite(s->epochs) || !(s->epochs > 0))
        return siam_error_set(err, SIAM_ERR_ARG, "training length of %g epochs: need > 0",
                              s->epochs);
    if (s->n_drops < 0 || s->n_drops > SIAM_SCHEDULE_MAX_DROPS)
        return siam_error_set(err, SIAM_ERR_ARG, "%d drop epochs: at most %d", s->n_drops,
                              SIAM_SCHEDULE_MAX_DROPS);
    if (s->kind == SIAM_SCHEDULE_STEP) {
        if (s->n_drops == 0)
            return siam_error_set(err, SIAM_ERR_ARG,
                                  "the step schedule needs at least one drop epoch");
        for (int i = 0; i < s->n_drops; i++) {
            double e = s->drop_epochs[i];
            if (!isfinite(e) || !(e > 0) || !(e < s->epochs))
                return siam_error_set(err, SIAM_ERR_ARG,
                                      "drop epoch %g: need 0 < epoch < %g (the training's "
                                      "length), or the drop never happens",
                                      e, s->epochs);
            if (i > 0 && !(e > s->drop_epochs[i - 1]))
                return siam_error_set(err, SIAM_ERR_ARG,
                                      "drop epochs %g then %g: need them strictly ascending",
                                      s->drop_epochs[i - 1], e);
        }
        if (!isfinite(s->drop_factor) || !(s->drop_factor > 0) || s->drop_factor > 1)
            return siam_error_set(err, SIAM_ERR_ARG, "drop factor %g: need 0 < factor <= 1",
                                  s->drop_factor);
    }
    if (s->kind == SIAM_SCHEDULE_COSINE &&
        (!isfinite(s->floor) || s->floor < 0 || !(s->floor < s->lr)))
        return siam_error_set(err, SIAM_ERR_ARG,
                              "cosine floor %g: need 0 <= floor < the learning rate %g", s->floor,
                              s->lr);
    if (!isfinite(s->warmup_epochs) || s->warmup_epochs < 0 || !(s->warmup_epochs < s->epochs))
        return siam_error_set(err, SIAM_ERR_ARG,
                              "warm-up of %g epochs: need 0 <= warm-up < %g (the training's "
                              "length)",
                              s->warmup_epochs, s->epochs);
    return SIAM_OK;
}

int siam_schedule_parse(siam_schedule_kind *kind, const char *name, siam_error *err) {
    for (size_t i = 0; name && i < N_NAMES; i++)
        if (strcmp(name, k_names[i]) == 0) {
            *kind = (siam_schedule_kind)i;
            return SIAM_OK;
        }
    return siam_error_set(err, SIAM_ERR_ARG,
                          "unknown learning-rate schedule '%s': choose one of %s",
                          name ? name : "(null)", siam_schedule_choices());
}

const char *siam_schedule_name(siam_schedule_kind kind) {
    return (int)kind >= 0 && (size_t)kind < N_NAMES ? k_names[kind] : "invalid";
}

const char *siam_schedule_choices(void) {
    return "constant, step, cosine";
}

int siam_schedule_parse_drops(siam_schedule *s, const char *list, siam_error *err) {
    double drops[SIAM_SCHEDULE_MAX_DROPS];
    int n = 0;
    const char *p = list ? list : "";
    while (*p == ' ')
        p++;
    while (*p) {
        if (n == SIAM_SCHEDULE_MAX_DROPS)
            return siam_error_set(err, SIAM_ERR_ARG, "drop epochs '%s': at most %d", list,
                                  SIAM_SCHEDULE_MAX_DROPS);
        char *end;
        double e = strtod(p, &end);
        while (end != p && *end == ' ')
            end++;
        if (end == p || (*end != ',' && *end != '\0'))
            return siam_error_set(err, SIAM_ERR_ARG,
                                  "drop epochs '%s': item %d is not a number (expected E1[,E2...], "
                                  "e.g. 15 or 10,15)",
                                  list, n + 1);
        if (!isfinite(e) || !(e > 0))
            return siam_error_set(err, SIAM_ERR_ARG,
                                  "drop epochs '%s': item %d is %g, need a finite epoch > 0", list,
                                  n + 1, e);
        if (n > 0 && !(e > drops[n - 1]))
            return siam_error_set(err, SIAM_ERR_ARG,
                                  "drop epochs '%s': %g after %g, need them strictly ascending",
                                  list, e, drops[n - 1]);
        drops[n++] = e;
        p = end;
        if (*p == ',') {
            p++;
            while (*p == ' ')
                p++;
            if (!*p)
                return siam_error_set(err, SIAM_ERR_ARG,
                                      "drop epochs '%s': nothing after the last comma", list);
        }
    }
    memcpy(s->drop_epochs, drops, (size_t)n * sizeof drops[0]);
    s->n_drops = n;
    return SIAM_OK;
}
