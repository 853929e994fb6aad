/* test_auth: bearer tokens. The constant-time comparison (right answers for equal tokens,
 * tokens differing in the first or last byte, prefixes, longer and empty ones, the longest
 * token; and a timing check: the time of a comparison does not depend on where the tokens differ
 * or on their lengths, where an early-exit memcmp differs by a factor of ~100), the
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

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median time of one comparison of each candidate against s, the candidates measured in turns
 * so that a change of machine load hits all of them alike. */
#define ROUNDS 15
static void time_compare(const siam_auth_secret *s, const char *const *given, const size_t *glen,
                         int n, double *median_ns, int reps) {
    double t[8][ROUNDS];
    volatile int sink = 0;
    for (int r = 0; r < ROUNDS; r++)
        for (int c = 0; c < n; c++) {
            double t0 = now_ns();
            for (int i = 0; i < reps; i++)
                sink += siam_auth_secret_equal(s, given[c], glen[c]);
            t[c][r] = (now_ns() - t0) / reps;
        }
    for (int c = 0; c < n; c++) {
        qsort(t[c], ROUNDS, sizeof t[c][0], cmp_double);
        median_ns[c] = t[c][ROUNDS / 2];
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

    /* ---- timing: no early exit, lengths folded in ---- */
    {
        char tok32[33], first[33], last[33], shorter[33];
        memcpy(tok32, "0123456789abcdefghijklmnopqrstuv", 33);
        memcpy(first, tok32, 33);
        memcpy(last, tok32, 33);
        memcpy(shorter, tok32, 33);
        first[0] = 'X';
        last[31] = 'X';
        siam_auth_secret_set(&s, tok32, 32);
        const char *given[] = {tok32, first, last, shorter, "x"};
        size_t glen[] = {32, 32, 32, 16, 1};
        double med[5];
        time_compare(&s, given, glen, 5, med, 2000);
        double lo = med[0], hi = med[0];
        for (int c = 1; c < 5; c++) {
            lo = med[c] < lo ? med[c] : lo;
            hi = med[c] > hi ? med[c] : hi;
        }
        printf("compare, 32-byte token: equal %.0f ns, first byte differs %.0f ns, last byte "
               "differs %.0f ns, 16 bytes %.0f ns, 1 byte %.0f ns\n",
               med[0], med[1], med[2], med[3], med[4]);
        CHECK(hi < 2.0 * lo, "comparison time depends on the input: %.0f..%.0f ns", lo, hi);
        /* and on the secret's length: a 1-byte and a 4096-byte secret take the same time */
        siam_auth_secret small, big;
        memset(buf, 'k', SIAM_AUTH_TOKEN_MAX);
        siam_auth_secret_set(&small, "k", 1);
        siam_auth_secret_set(&big, buf, SIAM_AUTH_TOKEN_MAX);
        const char *g1[] = {"z"};
        size_t l1[] = {1};
        double m_small, m_big;
        time_compare(&small, g1, l1, 1, &m_small, 2000);
        time_compare(&big, g1, l1, 1, &m_big, 2000);
        printf("compare against a 1-byte secret %.0f ns, a 4096-byte secret %.0f ns\n", m_small,
               m_big);
        CHECK(m_big < 2.0 * m_small && m_small < 2.0 * m_big,
              "time depends on the secret's length: %.0f vs %.0f ns", m_small, m_big);
        siam_auth_secret_clear(&small);
        siam_auth_secret_clear(&big);
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
