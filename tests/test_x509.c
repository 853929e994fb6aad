/* test_x509: the PEM/DER reader behind the TLS flags' checks and the explanations of TLS
 * failures. The certificates of test_certs.h (an EC CA and a localhost certificate with
 * alternative names, valid until 2081) are parsed field by field; base64 edge cases; every
 * truncation and thousands of corrupted copies of a certificate are refused without reading out
 * of bounds (run under ASan in the sanitizer build); siam_pem_load on the files people get wrong
 * (missing, empty, DER, a key as a certificate, a CSR, an encrypted key, truncated, damaged). */
#include "test_util.h"

#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "siam_rng.h"
#include "siam_x509.h"
#include "test_certs.h"

static char tmpdir[] = "/tmp/test_x509.XXXXXX";

static const char *write_file(const char *name, const void *data, size_t len, int mode) {
    static char path[8][256];
    static int k;
    char *p = path[k++ % 8];
    snprintf(p, 256, "%s/%s", tmpdir, name);
    FILE *f = fopen(p, "wb");
    if (f) {
        fwrite(data, 1, len, f);
        fclose(f);
    }
    chmod(p, (mode_t)mode);
    return p;
}

/* siam_pem_load's outcome for a file holding text; 0 or the error code, message in err. */
static int load_text(const char *name, const char *text, siam_pem_kind kind, siam_error *err,
                     char *warning, size_t wn) {
    const char *p = write_file(name, text, strlen(text), 0600);
    char *pem = NULL;
    int rc = siam_pem_load("--tls-x", p, kind, &pem, warning, wn, err);
    CHECK(rc != 0 || (pem && strcmp(pem, text) == 0), "%s: the file's text comes back", name);
    free(pem);
    return rc;
}

static uint8_t *leaf_der(size_t *len) {
    const char *b = strstr(LEAF_PEM, "-----\n") + 6;
    const char *e = strstr(b, "-----END");
    uint8_t *der = malloc(2048);
    long n = siam_base64_decode(b, (size_t)(e - b), der, 2048);
    *len = n > 0 ? (size_t)n : 0;
    return der;
}

int main(void) {
    siam_error err = {0};
    siam_x509_cert ca, leaf;

    /* ---- fields ---- */
    CHECK(siam_x509_parse_pem(CA_PEM, 0, &ca, &err) == SIAM_OK, "%s", err.msg);
    CHECK(strcmp(ca.subject, "O=siam tests, CN=siam unit CA") == 0, "CA subject '%s'", ca.subject);
    CHECK(strcmp(ca.issuer, ca.subject) == 0, "self-signed: issuer '%s'", ca.issuer);
    CHECK(ca.is_ca == 1, "CA:TRUE");
    CHECK(ca.names[0] == '\0', "no alternative names: '%s'", ca.names);
    CHECK(ca.not_before == 1795567192, "UTCTime notBefore %lld", (long long)ca.not_before);
    CHECK(ca.not_after == 4949167192LL, "GeneralizedTime notAfter (2126) %lld",
          (long long)ca.not_after);

    CHECK(siam_x509_parse_pem(LEAF_PEM, 0, &leaf, &err) == SIAM_OK, "%s", err.msg);
    CHECK(strcmp(leaf.subject, "C=DE, O=siam, CN=localhost") == 0, "leaf subject '%s'",
          leaf.subject);
    CHECK(strcmp(leaf.issuer, "O=siam tests, CN=siam unit CA") == 0, "leaf issuer '%s'",
          leaf.issuer);
    CHECK(strcmp(leaf.names, "DNS:localhost, DNS:siam-server, IP:127.0.0.1, IP:::1") == 0,
          "leaf names '%s'", leaf.names);
    CHECK(leaf.is_ca == 0, "CA:FALSE");
    CHECK(leaf.not_before == 1795567192 && leaf.not_after == 3523567192LL, "leaf %lld..%lld",
          (long long)leaf.not_before, (long long)leaf.not_after);
    CHECK(siam_x509_issued_by_name(&leaf, &ca) == 1, "leaf issued under the CA's name");
    CHECK(siam_x509_issued_by_name(&ca, &leaf) == 0, "the CA is not issued by the leaf");
    CHECK(siam_x509_issued_by_name(&ca, &ca) == 1, "a self-signed CA names itself");

    /* the second certificate of a chain file, and one past the end */
    char chain[4096];
    snprintf(chain, sizeof chain, "%s%s", LEAF_PEM, CA_PEM);
    siam_x509_cert second;
    CHECK(siam_x509_parse_pem(chain, 1, &second, &err) == SIAM_OK &&
              strcmp(second.subject, ca.subject) == 0,
          "second block: %s", err.msg);
    CHECK(siam_x509_parse_pem(chain, 2, &second, &err) == SIAM_ERR_FORMAT, "no third block");
    CHECK(siam_x509_parse_pem(LEAF_KEY, 0, &second, &err) == SIAM_ERR_FORMAT,
          "a key is no certificate");

    char t[64];
    siam_x509_format_time(0, t, sizeof t);
    CHECK(strcmp(t, "1970-01-01 00:00:00 UTC") == 0, "epoch: %s", t);
    siam_x509_format_time(leaf.not_after, t, sizeof t);
    CHECK(strcmp(t, "2081-08-28 00:39:52 UTC") == 0, "notAfter: %s", t);

    /* ---- base64 ---- */
    uint8_t out[64];
    CHECK(siam_base64_decode("Zm9v YmFy\n", 10, out, sizeof out) == 6 &&
              memcmp(out, "foobar", 6) == 0,
          "foobar with whitespace");
    CHECK(siam_base64_decode("Zm9vYg==", 8, out, sizeof out) == 4 && memcmp(out, "foob", 4) == 0,
          "padding ==");
    CHECK(siam_base64_decode("Zm9vYmE=", 8, out, sizeof out) == 5, "padding =");
    CHECK(siam_base64_decode("Zm9v!mFy", 8, out, sizeof out) == -1, "bad character");
    CHECK(siam_base64_decode("Zg==Zg==", 8, out, sizeof out) == -1, "data after padding");
    CHECK(siam_base64_decode("Zm9vYmFy", 8, out, 5) == -1, "does not fit");
    CHECK(siam_base64_decode("", 0, out, sizeof out) == 0, "empty");

    /* ---- untrusted DER: truncations and corruptions never read out of bounds ---- */
    size_t len = 0;
    uint8_t *der = leaf_der(&len);
    CHECK(len > 300, "leaf DER %zu bytes", len);
    CHECK(siam_x509_parse_der(der, len, &second, &err) == SIAM_OK, "%s", err.msg);
    int refused = 0;
    for (size_t n = 0; n < len; n++) {
        uint8_t *cut = malloc(n ? n : 1); /* exact size: ASan sees any overread */
        memcpy(cut, der, n);
        refused += siam_x509_parse_der(cut, n, &second, &err) == SIAM_ERR_FORMAT;
        free(cut);
    }
    CHECK(refused == (int)len, "all %zu truncations refused (%d)", len, refused);
    CHECK(siam_x509_parse_der(der, len, &second, &err) == SIAM_OK, "intact again");
    siam_rng rng;
    siam_rng_seed(&rng, 7);
    int parsed = 0, unprintable = 0;
    for (int i = 0; i < 5000; i++) {
        uint8_t *bad = malloc(len);
        memcpy(bad, der, len);
        int flips = 1 + (int)(siam_rng_u64(&rng) % 4);
        for (int f = 0; f < flips; f++)
            bad[siam_rng_u64(&rng) % len] = (uint8_t)siam_rng_u64(&rng);
        if (siam_x509_parse_der(bad, len, &second, &err) == SIAM_OK) {
            parsed++;
            for (const char *s = second.subject; *s; s++) /* printable, whatever the bytes */
                unprintable += *s < 0x20 || *s >= 0x7f;
        }
        free(bad);
    }
    CHECK(unprintable == 0, "%d unprintable bytes in subjects of corrupted certificates",
          unprintable);
    printf("corrupted certificates: %d of 5000 still parse (in fields that do not matter), none "
           "read out of bounds\n",
           parsed);
    free(der);

    /* ---- siam_pem_load: the files people get wrong ---- */
    CHECK(mkdtemp(tmpdir) != NULL, "mkdtemp");
    char warning[SIAM_ERROR_MSG_MAX];
    CHECK(load_text("ok.pem", chain, SIAM_PEM_CERTIFICATES, &err, NULL, 0) == SIAM_OK, "%s",
          err.msg);
    CHECK(load_text("ok.key", LEAF_KEY, SIAM_PEM_PRIVATE_KEY, &err, warning, sizeof warning) ==
                  SIAM_OK &&
              warning[0] == '\0',
          "%s / %s", err.msg, warning);
    {
        const char *p = write_file("open.key", LEAF_KEY, strlen(LEAF_KEY), 0644);
        char *pem = NULL;
        CHECK(siam_pem_load("--tls-key", p, SIAM_PEM_PRIVATE_KEY, &pem, warning, sizeof warning,
                            &err) == SIAM_OK &&
                  strstr(warning, "chmod 600") && strstr(warning, "0644"),
              "a key readable by others is accepted with a warning: %s", warning);
        free(pem);
        CHECK(siam_pem_load("--tls-cert", "/nonexistent/x.pem", SIAM_PEM_CERTIFICATES, &pem, NULL,
                            0, &err) == SIAM_ERR_IO &&
                  strstr(err.msg, "--tls-cert /nonexistent/x.pem: no such file"),
              "missing: %s", err.msg);
        CHECK(siam_pem_load("--tls-cert", tmpdir, SIAM_PEM_CERTIFICATES, &pem, NULL, 0, &err) ==
                      SIAM_ERR_IO &&
                  strstr(err.msg, "is a directory"),
              "directory: %s", err.msg);
        uint8_t dbytes[2048];
        size_t dl = 0;
        uint8_t *d = leaf_der(&dl);
        memcpy(dbytes, d, dl);
        free(d);
        p = write_file("leaf.der", dbytes, dl, 0600);
        CHECK(siam_pem_load("--tls-cert", p, SIAM_PEM_CERTIFICATES, &pem, NULL, 0, &err) ==
                      SIAM_ERR_FORMAT &&
                  strstr(err.msg, "binary") && strstr(err.msg, "openssl x509 -inform der"),
              "DER: %s", err.msg);
    }
    struct {
        const char *name, *text, *words;
        siam_pem_kind kind;
    } bad[] = {
        {"empty.pem", "", "is empty", SIAM_PEM_CERTIFICATES},
        {"blank.pem", " \n\n", "is empty", SIAM_PEM_CERTIFICATES},
        {"text.pem", "hello\n", "not a PEM file", SIAM_PEM_CERTIFICATES},
        {"key-as-cert.pem", LEAF_KEY, "holds a PRIVATE KEY", SIAM_PEM_CERTIFICATES},
        {"cert-as-key.pem", LEAF_PEM, "holds a CERTIFICATE, not a private key",
         SIAM_PEM_PRIVATE_KEY},
        {"csr.pem",
         "-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n",
         "signing request", SIAM_PEM_CERTIFICATES},
        {"enc.key",
         "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n",
         "passphrase", SIAM_PEM_PRIVATE_KEY},
        {"legacy-enc.key",
         "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: "
         "AES-128-CBC,00\n\nMIIB\n"
         "-----END RSA PRIVATE KEY-----\n",
         "passphrase", SIAM_PEM_PRIVATE_KEY},
        {"truncated.pem", "-----BEGIN CERTIFICATE-----\nMIIBrzCCAVWgAwIBAgIU\n", "truncated",
         SIAM_PEM_CERTIFICATES},
        {"damaged.pem", "-----BEGIN CERTIFICATE-----\nMII*rzCC\n-----END CERTIFICATE-----\n",
         "damaged", SIAM_PEM_CERTIFICATES},
        {"notcert.pem", "-----BEGIN CERTIFICATE-----\nMAMCAQE=\n-----END CERTIFICATE-----\n",
         "not a valid X.509 certificate", SIAM_PEM_CERTIFICATES},
        {"pubkey.pem", "-----BEGIN PUBLIC KEY-----\nMAMCAQE=\n-----END PUBLIC KEY-----\n",
         "'PUBLIC KEY' block", SIAM_PEM_CERTIFICATES},
        {"nokey.key",
         "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n",
         "holds 0 private keys", SIAM_PEM_PRIVATE_KEY},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = load_text(bad[i].name, bad[i].text, bad[i].kind, &err, NULL, 0);
        CHECK(rc == SIAM_ERR_FORMAT && strstr(err.msg, bad[i].words) &&
                  strstr(err.msg, "--tls-x") && strstr(err.msg, bad[i].name),
              "%s: expected '%s' naming the flag and file, got %d '%s'", bad[i].name, bad[i].words,
              rc, err.msg);
    }
    char twokeys[1024];
    snprintf(twokeys, sizeof twokeys, "%s%s", LEAF_KEY, LEAF_KEY);
    CHECK(load_text("two.key", twokeys, SIAM_PEM_PRIVATE_KEY, &err, NULL, 0) == SIAM_ERR_FORMAT &&
              strstr(err.msg, "holds 2 private keys"),
          "%s", err.msg);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    CHECK(system(cmd) == 0, "cleanup");
    return tu_finish();
}
