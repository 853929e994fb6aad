/* test_pgm: PGM reading (P5, P2, comments, maxval scaling, 16-bit samples) against values
 * computed here, the atomic writer's round trip, and refusal of every kind of bad file with a
 * message naming it: another size, truncation at every length, samples above maxval, trailing
 * data, other Netpbm kinds, missing files and directories. */
#include "test_util.h"

#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "siam_pgm.h"
#include "siam_rng.h"

#define W 28
#define H 28
#define N (W * H)

static char tmp_dir[64];

static const char *tmp_path(char *buf, size_t size, const char *name) {
    snprintf(buf, size, "%s/%s", tmp_dir, name);
    return buf;
}

static void write_bytes(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
    fclose(f);
}

/* an ASCII P2 of the given values with comments everywhere a header allows them */
static size_t make_p2(char *buf, size_t cap, const unsigned *v, int w, int h, unsigned maxval) {
    size_t len = (size_t)snprintf(buf, cap, "P2\n# made by test_pgm\n%d # width\n %d\n#c\n%u\n", w,
                                  h, maxval);
    for (int i = 0; i < w * h; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%u%s", v[i], (i + 1) % 17 ? " " : "\n");
    return len;
}

static size_t make_p5(uint8_t *buf, const unsigned *v, int w, int h, unsigned maxval) {
    size_t len = (size_t)sprintf((char *)buf, "P5 %d %d %u\n", w, h, maxval);
    for (int i = 0; i < w * h; i++) {
        if (maxval > 255)
            buf[len++] = (uint8_t)(v[i] >> 8);
        buf[len++] = (uint8_t)v[i];
    }
    return len;
}

static uint8_t ref_scale(unsigned v, unsigned maxval) {
    return (uint8_t)floor((double)v * 255.0 / maxval + 0.5);
}

static void test_round_trip_and_scaling(void) {
    char path[128];
    uint8_t px[N], back[N];
    unsigned v[N];
    siam_rng r;
    siam_rng_seed(&r, 7);
    siam_error err = {0};
    for (int i = 0; i < N; i++)
        px[i] = (uint8_t)siam_rng_below(&r, 256);
    tmp_path(path, sizeof path, "a.pgm");
    CHECK(siam_pgm_write(path, px, W, H, &err) == SIAM_OK, "%s", err.msg);
    memset(back, 0xAB, sizeof back);
    CHECK(siam_pgm_read(path, W, H, back, &err) == SIAM_OK, "%s", err.msg);
    CHECK(memcmp(px, back, N) == 0, "P5 round trip");

    static char text[N * 8 + 256];
    static uint8_t bin[2 * N + 64];
    const unsigned maxvals[] = {255, 15, 1, 1000, 65535};
    for (size_t m = 0; m < sizeof maxvals / sizeof *maxvals; m++) {
        unsigned mv = maxvals[m];
        for (int i = 0; i < N; i++)
            v[i] = (unsigned)siam_rng_below(&r, mv + 1);
        v[0] = 0;
        v[1] = mv;
        int bad2 = 0, bad5 = 0;
        size_t len = make_p2(text, sizeof text, v, W, H, mv);
        tmp_path(path, sizeof path, "t.pgm");
        write_bytes(path, text, len);
        CHECK(siam_pgm_read(path, W, H, back, &err) == SIAM_OK, "P2 maxval %u: %s", mv, err.msg);
        for (int i = 0; i < N; i++)
            bad2 += back[i] != ref_scale(v[i], mv);
        len = make_p5(bin, v, W, H, mv);
        write_bytes(path, bin, len);
        CHECK(siam_pgm_read(path, W, H, back, &err) == SIAM_OK, "P5 maxval %u: %s", mv, err.msg);
        for (int i = 0; i < N; i++)
            bad5 += back[i] != ref_scale(v[i], mv);
        CHECK(bad2 == 0 && bad5 == 0, "maxval %u: %d P2 and %d P5 pixels scaled wrongly", mv, bad2,
              bad5);
        CHECK(back[0] == 0 && back[1] == 255, "maxval %u maps 0..maxval onto 0..255", mv);
    }
    /* trailing whitespace is fine */
    for (int i = 0; i < N; i++)
        v[i] &= 0xff;
    size_t len = make_p5(bin, v, W, H, 255);
    bin[len++] = '\n';
    write_bytes(path, bin, len);
    CHECK(siam_pgm_read(path, W, H, back, &err) == SIAM_OK, "trailing newline: %s", err.msg);
}

/* expects code and every fragment in the message */
static void expect_refused(const char *name, const void *data, size_t len, int code,
                           const char *frag1, const char *frag2) {
    char path[128];
    uint8_t px[N];
    siam_error err = {0};
    tmp_path(path, sizeof path, name);
    write_bytes(path, data, len);
    int rc = siam_pgm_read(path, W, H, px, &err);
    CHECK(rc == code, "%s: code %d, expected %d (%s)", name, rc, code, err.msg);
    CHECK(strstr(err.msg, path) != NULL, "%s: message names the file: %s", name, err.msg);
    CHECK(!frag1 || strstr(err.msg, frag1), "%s: message has '%s': %s", name, frag1, err.msg);
    CHECK(!frag2 || strstr(err.msg, frag2), "%s: message has '%s': %s", name, frag2, err.msg);
}

static void test_refused(void) {
    static uint8_t bin[2 * N + 64];
    static char text[N * 8 + 256];
    unsigned v[W * (H + 1)]; /* room for the 28x29 case */
    for (int i = 0; i < W * (H + 1); i++)
        v[i] = (unsigned)(i % 256);
    size_t len = make_p5(bin, v, 27, 28, 255);
    expect_refused("w27.pgm", bin, len, SIAM_ERR_MISMATCH, "27x28", "expected 28x28");
    len = make_p2(text, sizeof text, v, 28, 29, 255);
    expect_refused("h29.pgm", text, len, SIAM_ERR_MISMATCH, "28x29", "expected 28x28");
    len = make_p5(bin, v, W, H, 255);
    expect_refused("trunc.pgm", bin, len - 10, SIAM_ERR_FORMAT, "truncated", "774 of 784");
    expect_refused("trail.pgm", bin, len + 3, SIAM_ERR_FORMAT, "trailing", NULL);
    expect_refused("hdr.pgm", "P5\n28 28\n", 9, SIAM_ERR_FORMAT, "truncated", "maxval");
    expect_refused("empty.pgm", "", 0, SIAM_ERR_FORMAT, "empty", NULL);
    expect_refused("png.pgm", "\x89PNG\r\n\x1a\n", 8, SIAM_ERR_FORMAT, "not a PGM", NULL);
    expect_refused("p6.pgm", "P6\n28 28\n255\n", 13, SIAM_ERR_FORMAT, "P6", NULL);
    expect_refused("word.pgm", "P5\n28 abc\n255\n", 14, SIAM_ERR_FORMAT, "height", NULL);
    expect_refused("max0.pgm", "P5\n28 28\n0\n", 11, SIAM_ERR_FORMAT, "maxval", NULL);
    expect_refused("max70k.pgm", "P5\n28 28\n70000\n", 15, SIAM_ERR_FORMAT, "maxval", NULL);
    expect_refused("w0.pgm", "P2 0 28 255\n", 12, SIAM_ERR_FORMAT, "width", NULL);
    len = make_p5(bin, v, W, H, 100); /* values up to 255 with maxval 100 */
    expect_refused("above.pgm", bin, len, SIAM_ERR_FORMAT, "above maxval 100", NULL);
    len = make_p2(text, sizeof text, v, W, H, 255);
    text[len - 4] = 'x';
    expect_refused("p2word.pgm", text, len, SIAM_ERR_FORMAT, "not a decimal number", NULL);
    len = make_p2(text, sizeof text, v, W, H, 255);
    expect_refused("p2trunc.pgm", text, len / 2, SIAM_ERR_FORMAT, "truncated", NULL);

    /* every prefix of a valid file is refused, never read past or crashed on */
    const char *kinds[] = {"P5", "P2"};
    for (int k = 0; k < 2; k++) {
        size_t full =
            k == 0 ? make_p5(bin, v, W, H, 255) : make_p2(text, sizeof text, v, W, H, 255);
        const void *src = k == 0 ? (const void *)bin : (const void *)text;
        int accepted = 0;
        char path[128];
        uint8_t px[N];
        siam_error err = {0};
        tmp_path(path, sizeof path, "prefix.pgm");
        for (size_t cut = 0; cut < full; cut += k == 0 ? 1 : 7) {
            write_bytes(path, src, cut);
            /* a P2 cut right after a complete last number is still a whole image */
            if (siam_pgm_read(path, W, H, px, &err) == SIAM_OK)
                accepted += k == 0 || cut < full - 4;
        }
        CHECK(accepted == 0, "%s: %d truncated prefixes accepted", kinds[k], accepted);
    }
    /* random corruption: refused or read, never a crash (the sanitizer build checks) */
    siam_rng r;
    siam_rng_seed(&r, 99);
    char path[128];
    tmp_path(path, sizeof path, "fuzz.pgm");
    for (int t = 0; t < 300; t++) {
        size_t full = make_p5(bin, v, W, H, t % 2 ? 255 : 65535);
        for (int j = 0; j < 4; j++)
            bin[siam_rng_below(&r, t % 3 ? 20 : full)] = (uint8_t)siam_rng_below(&r, 256);
        write_bytes(path, bin, full - siam_rng_below(&r, 3));
        uint8_t px[N];
        siam_error err = {0};
        int rc = siam_pgm_read(path, W, H, px, &err);
        CHECK(rc == SIAM_OK || err.msg[0], "a refusal always has a message");
    }

    /* no file, a directory */
    uint8_t px[N];
    siam_error err = {0};
    tmp_path(path, sizeof path, "missing.pgm");
    CHECK(siam_pgm_read(path, W, H, px, &err) == SIAM_ERR_IO, "missing file");
    CHECK(strstr(err.msg, path) && strstr(err.msg, "No such file"), "names it: %s", err.msg);
    CHECK(siam_pgm_read(tmp_dir, W, H, px, &err) == SIAM_ERR_IO, "a directory is refused");
    CHECK(strstr(err.msg, "not a regular file"), "says why: %s", err.msg);
}

static void test_writer(void) {
    char path[128];
    uint8_t px[N] = {0};
    siam_error err = {0};
    tmp_path(path, sizeof path, "no-such-dir/x.pgm");
    CHECK(siam_pgm_write(path, px, W, H, &err) == SIAM_ERR_IO, "unwritable path refused");
    CHECK(strstr(err.msg, "no-such-dir"), "names it: %s", err.msg);
    tmp_path(path, sizeof path, "w.pgm");
    CHECK(siam_pgm_write(path, px, W, H, &err) == SIAM_OK, "%s", err.msg);
    struct stat st;
    CHECK(stat(path, &st) == 0 && st.st_size == 13 + N, "P5 header + 784 bytes: %lld",
          (long long)st.st_size);
}

int main(void) {
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/test_pgm.XXXXXX");
    if (!mkdtemp(tmp_dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_round_trip_and_scaling();
    test_refused();
    test_writer();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmp_dir);
    return tu_finish();
}
