/* siam_augment: mirror and shift, in place, per image. */
#include "siam_augment.h"

#include <string.h>

int siam_augment_parse(siam_augment *a, const char *name, siam_error *err) {
    static const struct {
        const char *name;
        int flip, shift;
    } kinds[] = {{"none", 0, 0}, {"flip", 1, 0}, {"shift", 0, 2}, {"flip-shift", 1, 2}};
    for (size_t i = 0; name && i < sizeof kinds / sizeof kinds[0]; i++)
        if (strcmp(name, kinds[i].name) == 0) {
            a->flip = kinds[i].flip;
            a->shift = kinds[i].shift;
            return SIAM_OK;
        }
    return siam_error_set(err, SIAM_ERR_ARG, "augmentation '%s' is not one of %s", name ? name : "",
                          siam_augment_choices());
}

const char *siam_augment_choices(void) {
    return "none|flip|shift|flip-shift";
}

int siam_augment_is_none(const siam_augment *a) {
    return !a->flip && a->shift == 0;
}

void siam_augment_image(float *img, int rows, int cols, int channels, int flip, int dx, int dy,
                        float *tmp) {
    const size_t row = (size_t)cols * (size_t)channels;
    memcpy(tmp, img, (size_t)rows * row * sizeof(float));
    for (int r = 0; r < rows; r++) {
        int sr = r - dy; /* the source row that lands on row r */
        float *dst = img + (size_t)r * row;
        if (sr < 0 || sr >= rows) {
            memset(dst, 0, row * sizeof(float));
            continue;
        }
        const float *src = tmp + (size_t)sr * row;
        for (int c = 0; c < cols; c++) {
            int sc = c - dx; /* in the shifted frame; the mirror is applied to the source */
            float *d = dst + (size_t)c * (size_t)channels;
            if (sc < 0 || sc >= cols) {
                memset(d, 0, (size_t)channels * sizeof(float));
                continue;
            }
            if (flip)
                sc = cols - 1 - sc;
            memcpy(d, src + (size_t)sc * (size_t)channels, (size_t)channels * sizeof(float));
        }
    }
}

int siam_augment_batch(const siam_augment *a, float *x, size_t n, int rows, int cols, int channels,
                       siam_rng *rng, float *tmp, siam_error *err) {
    if (a->shift < 0 || a->shift > SIAM_AUGMENT_MAX_SHIFT)
        return siam_error_set(err, SIAM_ERR_ARG, "augmentation shift %d: must be 0..%d", a->shift,
                              SIAM_AUGMENT_MAX_SHIFT);
    if (rows < 1 || cols < 1 || channels < 1)
        return siam_error_set(err, SIAM_ERR_ARG, "augmentation of %dx%dx%d images", rows, cols,
                              channels);
    if (siam_augment_is_none(a))
        return SIAM_OK;
    const size_t size = (size_t)rows * (size_t)cols * (size_t)channels;
    const uint64_t span = 2 * (uint64_t)a->shift + 1;
    for (size_t i = 0; i < n; i++) {
        int flip = a->flip ? (int)(siam_rng_u64(rng) >> 63) : 0;
        int dx = 0, dy = 0;
        if (a->shift) {
            dx = (int)siam_rng_below(rng, span) - a->shift;
            dy = (int)siam_rng_below(rng, span) - a->shift;
        }
        if (flip || dx || dy)
            siam_augment_image(x + i * size, rows, cols, channels, flip, dx, dy, tmp);
    }
    return SIAM_OK;
}
