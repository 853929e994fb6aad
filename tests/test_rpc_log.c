/* test_rpc_log: gRPC's log lines as siam_rpc_log hands them to siam's log: a registered token is
 * replaced in every form (text, lower- and upper-case byte dumps), and so is the value of every
 * authorization header, registered or not, in the forms gRPC 1.51's traces print (the hpack
 * trace's "authorization: Bearer X", tcp's byte dump with its text column, api's "key=...
 * value=<hex> 'text'"); and a gRPC core other than the one built against keeps gRPC's lines out
 * of the log after one warning. siam's log (stderr) goes to a file that is then searched. */
#include "test_util.h"

#include <string.h>
#include <unistd.h>

#include <grpc/support/log.h>

#include "siam_log.h"
#include "siam_rpc.h"
#include "siam_rpc_internal.h"

#define REGISTERED "regSecretT0ken"
#define STRANGER   "unregisteredXYZ42"

/* "61 62 63" for "abc" (upper: "61 62 63" with A-F capitals). */
static void hex(const char *s, int upper, char *out, size_t n) {
    size_t o = 0;
    for (; *s && o + 4 < n; s++)
        o += (size_t)snprintf(out + o, n - o, upper ? "%s%02X" : "%s%02x", o ? " " : "",
                              (unsigned char)*s);
}

/* The whole of the file at path ("" when unreadable), malloc'd. */
static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    char *buf = calloc(1, 1 << 20);
    if (f && buf) {
        size_t n = fread(buf, 1, (1 << 20) - 1, f);
        buf[n] = '\0';
    }
    if (f)
        fclose(f);
    return buf;
}

int main(void) {
    char path[] = "/tmp/test_rpc_log.XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0, "mkstemp");
    if (fd < 0)
        return tu_finish();
    fflush(stderr);
    int saved = dup(2);
    dup2(fd, 2);

    siam_log_set_level(SIAM_LOG_DEBUG);
    siam_rpc_init();
    int slot = siam_rpc_secret_add(REGISTERED, strlen(REGISTERED));
    char reg_lo[256], reg_up[256], str_lo[256], bearer_lo[64], auth_lo[64];
    hex(REGISTERED, 0, reg_lo, sizeof reg_lo);
    hex(REGISTERED, 1, reg_up, sizeof reg_up);
    hex(STRANGER, 0, str_lo, sizeof str_lo);
    hex("Bearer ", 0, bearer_lo, sizeof bearer_lo);
    hex("authorization", 0, auth_lo, sizeof auth_lo);

    gpr_log(GPR_INFO, "marker-1 HTTP:1:HDR:SVR: authorization: Bearer %s", REGISTERED);
    gpr_log(GPR_INFO, "marker-2 WRITE DATA: 00 %s 00 | %s", reg_lo, reg_up);
    gpr_log(GPR_INFO, "marker-3 HTTP:1:HDR:SVR: authorization: Bearer %s", STRANGER);
    gpr_log(GPR_INFO, "marker-4 READ DATA: 40 0d %s 1d %s %s 00 'x@.authorization.Bearer %s...'",
            auth_lo, bearer_lo, str_lo, STRANGER);
    gpr_log(GPR_INFO, "marker-5 key=authorization value=%s %s 'Bearer %s'", bearer_lo, str_lo,
            STRANGER);
    gpr_log(GPR_INFO, "marker-6 AUTHORIZATION: %s", STRANGER);

    /* another core: one warning, then gRPC's lines stay out */
    CHECK(siam_rpc_log_capture("0.0.0-not-this-one") == 0, "another core refuses gRPC's lines");
    gpr_log(GPR_INFO, "marker-hidden");
    CHECK(siam_rpc_log_capture(siam_rpc_core_version()) == 1, "the core built against prints");
    gpr_log(GPR_INFO, "marker-shown-again");

    siam_rpc_secret_remove(slot);
    siam_rpc_shutdown();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    close(fd);

    char *log = slurp(path);
    unlink(path);
    CHECK(log != NULL, "out of memory");
    if (!log)
        return tu_finish();
    for (int i = 1; i <= 6; i++) {
        char m[32];
        snprintf(m, sizeof m, "marker-%d ", i);
        CHECK(strstr(log, m) != NULL, "gRPC's line %s reached the log", m);
    }
    CHECK(!strstr(log, REGISTERED) && !strstr(log, reg_lo) && !strstr(log, reg_up),
          "the registered token is in no form in the log");
    CHECK(!strstr(log, STRANGER) && !strstr(log, str_lo),
          "an unregistered authorization value is in no form in the log");
    CHECK(strstr(log, "marker-1 HTTP:1:HDR:SVR: authorization: Bearer [token]") != NULL,
          "the header line says where the token was");
    CHECK(!strstr(log, "marker-hidden"), "another core's lines are left out");
    CHECK(
        strstr(log, "gRPC core 0.0.0-not-this-one runs, but siam was built and checked against") !=
            NULL,
        "and a warning says why");
    CHECK(strstr(log, "marker-shown-again") != NULL, "the core built against prints again");
    if (tu_failures)
        fprintf(stderr, "---- the log:\n%s\n", log);
    free(log);
    return tu_finish();
}
