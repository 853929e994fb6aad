/* fuzz_x509: the certificate reader a client runs on what a TLS server sends it (the diagnosis
 * of a refused handshake parses the peer's certificate) and on the PEM files it is given. The
 * input is parsed as DER, and as PEM text (NUL-terminated copy), and the first block as base64.
 *
 * Invariants: a parse either fails with a message or fills every text field NUL-terminated
 * within its buffer; the validity dates format; issued_by_name of a certificate by itself agrees
 * with its own subject/issuer summaries.
 *
 * Seeds (tests/fuzz/corpus/fuzz_x509, made once with openssl): an EC CA and a server certificate
 * with DNS and IP alternative names as DER, and the two as a PEM chain. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "siam_x509.h"

static void check_cert(const siam_x509_cert *c) {
    FUZZ_CHECK(memchr(c->subject, 0, sizeof c->subject) != NULL, "subject not terminated");
    FUZZ_CHECK(memchr(c->issuer, 0, sizeof c->issuer) != NULL, "issuer not terminated");
    FUZZ_CHECK(memchr(c->names, 0, sizeof c->names) != NULL, "names not terminated");
    char t[64];
    siam_x509_format_time(c->not_before, t, sizeof t);
    FUZZ_CHECK(memchr(t, 0, sizeof t) != NULL, "time not terminated");
    siam_x509_format_time(c->not_after, t, sizeof t);
    int self = siam_x509_issued_by_name(c, c);
    int same = c->subject_len == c->issuer_len && c->subject_crc == c->issuer_crc;
    FUZZ_CHECK(self == same, "issued_by_name(c, c) = %d, subject/issuer summaries equal = %d", self,
               same);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    fuzz_quiet_logs();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    siam_x509_cert c;
    siam_error err = {0};
    if (siam_x509_parse_der(data, size, &c, &err) == SIAM_OK)
        check_cert(&c);
    else
        FUZZ_CHECK(err.msg[0] != '\0', "DER refused without a message");

    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    for (int i = 0; i < 2; i++) {
        siam_error e = {0};
        if (siam_x509_parse_pem(text, i, &c, &e) == SIAM_OK)
            check_cert(&c);
        else
            FUZZ_CHECK(e.msg[0] != '\0', "PEM block %d refused without a message", i);
    }
    uint8_t out[4096];
    long n = siam_base64_decode(text, size, out, sizeof out);
    FUZZ_CHECK(n >= -1 && n <= (long)sizeof out, "base64 returned %ld", n);
    free(text);
    return 0;
}
