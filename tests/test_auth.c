/* test_auth: bearer tokens. The constant-time comparison (right answers for equal tokens,
 * tokens differing in the first or last byte, prefixes, longer and empty ones, the longest
 * token; and a timing check: the time of a comparison does not depend on where the tokens differ
 * or on their lengths, where an early-exit memcmp of the longest token would differ ~1000x), the
 * "Bearer <token>" check, and the token file: trimming, and the files that must be refused with
 * a message naming the file that never contains the token. */
#include "test_util.h"

#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "siam_auth.h"

static char tmpdir[] = "/tmp/test_auth.XXXXXX";

static const char *write_file(const char *name, const void *data, size_t len, int mode) {
    static char path[4][256];
    static int k;
    char *p = path[k++ % 4];
    snprintf(p, 256, "%s/%s", tmpdir, name);
    FILE *f = fopen(p, "wb");
    if (f) {
        fwrite(data, 1, len, f);
        fclose(f);
    }
    chmod(p, (mode_t)mode);
    return p;
}

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* Fastest time of one comparison of each candidate against s over ROUNDS rounds (other load
 * only ever adds time, so the minimum is what the code itself takes), the candidates measured in
 * turns so that a change of machine load hits all of them alike. */
#define ROUNDS 41
static void time_compare(const siam_auth_secret *s, const char *const *given, const size_t *glen,
                         int n, double *best_ns, int reps) {
    volatile int sink = 0;
    for (int c = 0; c < n; c++)
        best_ns[c] = 1e30;
    for (int r = 0; r < ROUNDS; r++)
        for (int c = 0; c < n; c++) {
            double t0 = now_ns();
            for (int i = 0; i < reps; i++)
                sink += siam_auth_secret_equal(s, given[c], glen[c]);
            double t = (now_ns() - t0) / reps;
            best_ns[c] = t < best_ns[c] ? t : best_ns[c];
        }
    (void)sink;
}

int main(void) {
    siam_auth_secret s;
    const char *tok = "s3cr3t-T0ken/with+base64=";
    size_t n = strlen(tok);
    char buf[SIAM_AUTH_TOKEN_MAX + 2];

    /* ---- comparison ---- */
    CHECK(siam_auth_secret_set(&s, tok, n) == SIAM_OK, "set");
    CHECK(siam_auth_secret_equal(&s, tok, n) == 1, "equal");
    memcpy(buf, tok, n);
    buf[0] ^= 1;
    CHECK(siam_auth_secret_equal(&s, buf, n) == 0, "first byte differs");
    buf[0] ^= 1;
    buf[n - 1] ^= 0x40;
    CHECK(siam_auth_secret_equal(&s, buf, n) == 0, "last byte differs");
    buf[n - 1] ^= 0x40;
    CHECK(siam_auth_secret_equal(&s, buf, n - 1) == 0, "a prefix");
    CHECK(siam_auth_secret_equal(&s, buf, 0) == 0, "empty");
    buf[n] = '\0';
    CHECK(siam_auth_secret_equal(&s, buf, n + 1) == 0, "the token plus a NUL byte");
    buf[n] = 'x';
    CHECK(siam_auth_secret_equal(&s, buf, n + 1) == 0, "the token plus a byte");
    memset(buf, 'a', sizeof buf);
    CHECK(siam_auth_secret_equal(&s, buf, SIAM_AUTH_TOKEN_MAX + 1) == 0, "longer than the max");
    CHECK(siam_auth_secret_set(&s, "", 0) == SIAM_ERR_ARG, "an empty token is refused");
    CHECK(siam_auth_secret_set(&s, buf, SIAM_AUTH_TOKEN_MAX + 1) == SIAM_ERR_ARG, "too long");
    CHECK(siam_auth_secret_set(&s, buf, SIAM_AUTH_TOKEN_MAX) == SIAM_OK, "the longest token");
    CHECK(siam_auth_secret_equal(&s, buf, SIAM_AUTH_TOKEN_MAX) == 1, "the longest token equal");
    buf[SIAM_AUTH_TOKEN_MAX - 1] = 'b';
    CHECK(siam_auth_secret_equal(&s, buf, SIAM_AUTH_TOKEN_MAX) == 0, "its last byte differs");
    siam_auth_secret_clear(&s);
    int zero = s.len == 0;
    for (size_t i = 0; i < sizeof s.bytes; i++)
        zero &= s.bytes[i] == 0;
    CHECK(zero, "clear wipes the secret");

    /* ---- timing: no early exit, lengths folded in. With the longest secret an early-exit
     * comparison would take ~1000 times longer for a difference in the last byte than in the
     * first; here every case takes the same time. ---- */
    {
        static char full[SIAM_AUTH_TOKEN_MAX], first[SIAM_AUTH_TOKEN_MAX],
            last[SIAM_AUTH_TOKEN_MAX];
        for (int i = 0; i < SIAM_AUTH_TOKEN_MAX; i++)
            full[i] = (char)('!' + i % 90);
        memcpy(first, full, sizeof full);
        memcpy(last, full, sizeof full);
        first[0] = ' ';
        last[SIAM_AUTH_TOKEN_MAX - 1] = ' ';
        siam_auth_secret_set(&s, full, SIAM_AUTH_TOKEN_MAX);
        const char *given[] = {full, first, last};
        size_t glen[] = {SIAM_AUTH_TOKEN_MAX, SIAM_AUTH_TOKEN_MAX, SIAM_AUTH_TOKEN_MAX};
        double best[3];
        time_compare(&s, given, glen, 3, best, 200);
        double lo = best[0], hi = best[0];
        for (int c = 1; c < 3; c++) {
            lo = best[c] < lo ? best[c] : lo;
            hi = best[c] > hi ? best[c] : hi;
        }
        printf("compare with a 4096-byte secret (fastest of %d rounds): equal %.0f ns, first "
               "byte differs %.0f ns, last byte differs %.0f ns\n",
               ROUNDS, best[0], best[1], best[2]);
        CHECK(hi < 1.5 * lo, "comparison time depends on where the input differs: %.0f..%.0f ns",
              lo, hi);
        /* nor on the secret's length: the same input against a 1-byte and a 4096-byte secret
         * (the time grows with the input's own length only: it is copied and wiped) */
        siam_auth_secret small;
        siam_auth_secret_set(&small, "k", 1);
        for (int k = 0; k < 2; k++) {
            const char *g1[] = {k ? full : "z"};
            size_t l1[] = {k ? (size_t)SIAM_AUTH_TOKEN_MAX : 1};
            double t_small, t_big;
            time_compare(&small, g1, l1, 1, &t_small, 200);
            time_compare(&s, g1, l1, 1, &t_big, 200);
            printf("compare a %zu-byte input with a 1-byte secret %.0f ns, with a 4096-byte "
                   "secret %.0f ns\n",
                   l1[0], t_small, t_big);
            CHECK(t_big < 1.5 * t_small && t_small < 1.5 * t_big,
                  "time depends on the secret's length: %.0f vs %.0f ns", t_small, t_big);
        }
        siam_auth_secret_clear(&small);
    }

    /* ---- Bearer ---- */
    siam_auth_secret_set(&s, tok, n);
    char v[128];
    snprintf(v, sizeof v, "Bearer %s", tok);
    CHECK(siam_auth_check_bearer(&s, v, strlen(v)) == SIAM_AUTH_OK, "Bearer");
    snprintf(v, sizeof v, "bEaReR %s", tok);
    CHECK(siam_auth_check_bearer(&s, v, strlen(v)) == SIAM_AUTH_OK, "scheme case-insensitive");
    CHECK(siam_auth_check_bearer(&s, NULL, 0) == SIAM_AUTH_MISSING, "none");
    CHECK(siam_auth_check_bearer(&s, "Bearer", 6) == SIAM_AUTH_MALFORMED, "no token");
    CHECK(siam_auth_check_bearer(&s, "Bearer ", 7) == SIAM_AUTH_MALFORMED, "empty token");
    snprintf(v, sizeof v, "Basic %s", tok);
    CHECK(siam_auth_check_bearer(&s, v, strlen(v)) == SIAM_AUTH_MALFORMED, "Basic");
    snprintf(v, sizeof v, "%s", tok);
    CHECK(siam_auth_check_bearer(&s, v, strlen(v)) == SIAM_AUTH_MALFORMED, "no scheme");
    CHECK(siam_auth_check_bearer(&s, "Bearer wrong", 12) == SIAM_AUTH_WRONG, "wrong");
    snprintf(v, sizeof v, "Bearer %s ", tok);
    CHECK(siam_auth_check_bearer(&s, v, strlen(v)) == SIAM_AUTH_WRONG, "trailing space");

    /* ---- the token file ---- */
    CHECK(mkdtemp(tmpdir) != NULL, "mkdtemp");
    char token[SIAM_AUTH_TOKEN_MAX + 64], warning[SIAM_ERROR_MSG_MAX];
    siam_error err = {0};
    const char *p = write_file("ok", " \t s3cr3t-T0ken \r\nsecond line\n", 30, 0600);
    CHECK(siam_auth_token_load("--auth-token-file", p, token, sizeof token, warning, sizeof warning,
                               &err) == SIAM_OK &&
              strcmp(token, "s3cr3t-T0ken") == 0 && warning[0] == '\0',
          "first line, trimmed: '%s' %s %s", token, err.msg, warning);
    p = write_file("noeol", "abc", 3, 0600);
    CHECK(siam_auth_token_load("--auth-token-file", p, token, sizeof token, warning, sizeof warning,
                               &err) == SIAM_OK &&
              strcmp(token, "abc") == 0,
          "no newline at the end: %s", err.msg);
    p = write_file("open", "abc\n", 4, 0644);
    CHECK(siam_auth_token_load("--auth-token-file", p, token, sizeof token, warning, sizeof warning,
                               &err) == SIAM_OK &&
              strstr(warning, "chmod 600") && strstr(warning, "0644") && strstr(warning, p) &&
              !strstr(warning, "abc"),
          "readable by others: accepted, warned: %s", warning);
    memset(buf, 'q', SIAM_AUTH_TOKEN_MAX);
    p = write_file("longest", buf, SIAM_AUTH_TOKEN_MAX, 0600);
    CHECK(siam_auth_token_load("--auth-token-file", p, token, sizeof token, NULL, 0, &err) ==
                  SIAM_OK &&
              strlen(token) == SIAM_AUTH_TOKEN_MAX,
          "the longest token: %s", err.msg);
    struct {
        const char *name, *text;
        size_t len;
        int code;
        const char *words;
    } bad[] = {
        {"empty", "", 0, SIAM_ERR_FORMAT, "the file is empty"},
        {"blankline", "\nsecret\n", 8, SIAM_ERR_FORMAT, "first line is empty"},
        {"spaces", "   \n", 4, SIAM_ERR_FORMAT, "first line is empty"},
        {"control", "secret\001token\n", 13, SIAM_ERR_FORMAT, "a control character at position 7"},
        {"escape", "secret\033[31m\n", 12, SIAM_ERR_FORMAT, "a control character"},
        {"inner-space", "secret token\n", 13, SIAM_ERR_FORMAT, "a space at position 7"},
        {"nonascii", "secret\xc3\xa9token\n", 14, SIAM_ERR_FORMAT, "a non-ASCII byte"},
        {"nul", "secret\0token\n", 13, SIAM_ERR_FORMAT, "a control character"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        p = write_file(bad[i].name, bad[i].text, bad[i].len, 0600);
        int rc = siam_auth_token_load("--auth-token-file", p, token, sizeof token, warning,
                                      sizeof warning, &err);
        CHECK(rc == bad[i].code && strstr(err.msg, bad[i].words) &&
                  strstr(err.msg, "--auth-token-file") && strstr(err.msg, p) &&
                  !strstr(err.msg, "secret") && !strstr(err.msg, "token\n"),
              "%s: expected '%s', got %d '%s'", bad[i].name, bad[i].words, rc, err.msg);
        CHECK(token[0] == '\0', "%s: nothing of the token is left in the buffer", bad[i].name);
    }
    buf[SIAM_AUTH_TOKEN_MAX] = 'q';
    p = write_file("toolong", buf, SIAM_AUTH_TOKEN_MAX + 1, 0600);
    CHECK(siam_auth_token_load("--auth-token-file", p, token, sizeof token, NULL, 0, &err) ==
                  SIAM_ERR_FORMAT &&
              strstr(err.msg, "longer than 4096"),
          "too long: %s", err.msg);
    CHECK(siam_auth_token_load("--auth-token-file", "/nonexistent/token", token, sizeof token, NULL,
                               0, &err) == SIAM_ERR_IO &&
              strstr(err.msg, "no such file") && strstr(err.msg, "/nonexistent/token"),
          "missing: %s", err.msg);
    CHECK(siam_auth_token_load("--auth-token-file", tmpdir, token, sizeof token, NULL, 0, &err) ==
                  SIAM_ERR_IO &&
              strstr(err.msg, "is a directory"),
          "directory: %s", err.msg);
    if (geteuid() != 0) { /* root reads anything */
        p = write_file("unreadable", "secret\n", 7, 0000);
        CHECK(siam_auth_token_load("--auth-token-file", p, token, sizeof token, NULL, 0, &err) ==
                      SIAM_ERR_IO &&
                  strstr(err.msg, "permission denied"),
              "unreadable: %s", err.msg);
    }
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    CHECK(system(cmd) == 0, "cleanup");
    siam_auth_secret_clear(&s);
    return tu_finish();
}
