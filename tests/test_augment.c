/* test_augment: the mirror and the shift against a pixel-by-pixel definition written here, the
 * draws (reproducible from the seed, about half mirrored, shifts covering -2..2 uniformly), and
 * the parser's names and refusals. */
#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "siam_augment.h"

enum { R = 5, C = 7, CH = 2 };

/* out(r, c) = in(r - dy, mirror(c - dx)), 0 outside */
static float expected(const float *in, int r, int c, int ch, int flip, int dx, int dy) {
    int sr = r - dy, sc = c - dx;
    if (sr < 0 || sr >= R || sc < 0 || sc >= C)
        return 0.0f;
    if (flip)
        sc = C - 1 - sc;
    return in[(sr * C + sc) * CH + ch];
}

static void test_image(void) {
    float in[R * C * CH], img[R * C * CH], tmp[R * C * CH];
    for (int i = 0; i < R * C * CH; i++)
        in[i] = (float)(i + 1);
    for (int flip = 0; flip <= 1; flip++)
        for (int dy = -3; dy <= 3; dy++)
            for (int dx = -8; dx <= 8; dx++) {
                memcpy(img, in, sizeof in);
                siam_augment_image(img, R, C, CH, flip, dx, dy, tmp);
                int bad = 0;
                for (int r = 0; r < R; r++)
                    for (int c = 0; c < C; c++)
                        for (int ch = 0; ch < CH; ch++)
                            bad +=
                                img[(r * C + c) * CH + ch] != expected(in, r, c, ch, flip, dx, dy);
                CHECK(bad == 0, "flip %d dx %d dy %d: %d pixels differ", flip, dx, dy, bad);
            }
    memcpy(img, in, sizeof in);
    siam_augment_image(img, R, C, CH, 1, 0, 0, tmp);
    siam_augment_image(img, R, C, CH, 1, 0, 0, tmp);
    CHECK(memcmp(img, in, sizeof in) == 0, "mirroring twice is the identity");
}

static void test_batch(void) {
    enum { N = 4000, S = 28 };
    float *x = malloc(sizeof(float) * N * S * S), *y = malloc(sizeof(float) * N * S * S);
    float tmp[S * S];
    /* a marker pixel per image: where it lands tells the draw */
    memset(x, 0, sizeof(float) * N * S * S);
    for (int i = 0; i < N; i++)
        x[(size_t)i * S * S + 10 * S + 5] = 1.0f;
    memcpy(y, x, sizeof(float) * N * S * S);
    siam_augment a;
    siam_error err = {0};
    CHECK(siam_augment_parse(&a, "flip-shift", &err) == SIAM_OK && a.flip && a.shift == 2,
          "flip-shift");
    siam_rng r1, r2;
    siam_rng_seed(&r1, 7);
    siam_rng_seed(&r2, 7);
    CHECK(siam_augment_batch(&a, x, N, S, S, 1, &r1, tmp, &err) == SIAM_OK, "%s", err.msg);
    CHECK(siam_augment_batch(&a, y, N, S, S, 1, &r2, tmp, &err) == SIAM_OK, "%s", err.msg);
    CHECK(memcmp(x, y, sizeof(float) * N * S * S) == 0, "same seed, same batch");
    int mirrored = 0, count[5][5] = {{0}};
    for (int i = 0; i < N; i++) {
        int found = -1;
        for (int p = 0; p < S * S; p++)
            if (x[(size_t)i * S * S + p] == 1.0f)
                found = p;
        CHECK(found >= 0, "image %d lost its marker", i);
        if (found < 0)
            continue;
        int r = found / S, c = found % S, dy = r - 10;
        /* unmirrored: c = 5 + dx; mirrored: c = 22 + dx (dx in -2..2, so the two never meet) */
        int flip = c >= 15, dx = flip ? c - 22 : c - 5;
        mirrored += flip;
        CHECK(dx >= -2 && dx <= 2 && dy >= -2 && dy <= 2, "image %d: dx %d dy %d", i, dx, dy);
        if (dx >= -2 && dx <= 2 && dy >= -2 && dy <= 2)
            count[dy + 2][dx + 2]++;
    }
    CHECK(mirrored > N * 45 / 100 && mirrored < N * 55 / 100, "%d of %d mirrored", mirrored, N);
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 5; j++) /* expected N / 25 = 160 each */
            CHECK(count[i][j] > 100 && count[i][j] < 230, "shift (%d, %d) drawn %d times", j - 2,
                  i - 2, count[i][j]);
    memcpy(y, x, sizeof(float) * N * S * S);
    CHECK(siam_augment_parse(&a, "none", &err) == SIAM_OK && siam_augment_is_none(&a), "none");
    CHECK(siam_augment_batch(&a, x, N, S, S, 1, &r1, tmp, &err) == SIAM_OK &&
              memcmp(x, y, sizeof(float) * N * S * S) == 0,
          "none changes nothing");
    a.shift = SIAM_AUGMENT_MAX_SHIFT + 1;
    CHECK(siam_augment_batch(&a, x, N, S, S, 1, &r1, tmp, &err) == SIAM_ERR_ARG &&
              strstr(err.msg, "shift 9"),
          "too large a shift refused: '%s'", err.msg);
    a.shift = 0;
    CHECK(siam_augment_batch(&a, x, N, 0, S, 1, &r1, tmp, &err) == SIAM_ERR_ARG, "empty images");
    free(x);
    free(y);
}

static void test_parse(void) {
    siam_augment a = {0};
    siam_error err = {0};
    CHECK(siam_augment_parse(&a, "flip", &err) == SIAM_OK && a.flip && !a.shift, "flip");
    CHECK(siam_augment_parse(&a, "shift", &err) == SIAM_OK && !a.flip && a.shift == 2, "shift");
    CHECK(siam_augment_parse(&a, "rotate", &err) == SIAM_ERR_ARG && strstr(err.msg, "'rotate'") &&
              strstr(err.msg, siam_augment_choices()),
          "unknown: '%s'", err.msg);
    CHECK(siam_augment_parse(&a, NULL, &err) == SIAM_ERR_ARG, "NULL");
}

int main(void) {
    test_image();
    test_batch();
    test_parse();
    return tu_finish();
}
