/* siam_x509: PEM files and a summary of X.509 certificates (names, issuer, validity, alternative
 * names), to refuse unusable TLS files before gRPC loads them and to explain in words why a TLS
 * handshake failed. It reads DER; it verifies no signature (gRPC and its TLS library do that).
 * Every parser here is bounded by its input and takes untrusted bytes (a peer's certificate). */
#ifndef SIAM_X509_H
#define SIAM_X509_H

#include <stddef.h>
#include <stdint.h>

#include "siam_error.h"

#define SIAM_X509_TEXT_MAX 256

typedef struct {
    char subject[SIAM_X509_TEXT_MAX]; /* "CN=localhost" or "O=siam, CN=worker 1" */
    char issuer[SIAM_X509_TEXT_MAX];
    char names[SIAM_X509_TEXT_MAX]; /* subjectAltName: "DNS:localhost, IP:127.0.0.1"; "" if none */
    int64_t not_before, not_after;  /* seconds since 1970-01-01 UTC */
    /* the DER encodings of subject and issuer, summarised to compare names exactly */
    uint32_t subject_crc, issuer_crc;
    size_t subject_len, issuer_len;
    int is_ca; /* basicConstraints cA is true */
} siam_x509_cert;

/* Parses one DER certificate. SIAM_ERR_FORMAT when it is not one (message says where). */
int siam_x509_parse_der(const uint8_t *der, size_t len, siam_x509_cert *out, siam_error *err);

/* The index-th (from 0) CERTIFICATE block of PEM text. SIAM_ERR_FORMAT when there is no such
 * block or it is not a certificate. */
int siam_x509_parse_pem(const char *pem, int index, siam_x509_cert *out, siam_error *err);

/* 1 when cert was issued under the name of ca (the issuer name of cert is ca's subject name). */
int siam_x509_issued_by_name(const siam_x509_cert *cert, const siam_x509_cert *ca);

/* "2026-11-24 00:24:49 UTC". */
void siam_x509_format_time(int64_t t, char *buf, size_t n);

/* What a PEM file must hold. */
typedef enum {
    SIAM_PEM_CERTIFICATES, /* one or more CERTIFICATE blocks, each a well-formed certificate */
    SIAM_PEM_PRIVATE_KEY,  /* one unencrypted PRIVATE KEY (PKCS#8, RSA or EC) block */
} siam_pem_kind;

/* Reads a PEM file for TLS: it must exist, be readable, not be empty, be PEM (not DER), and hold
 * what `kind` says. *pem gets the whole file, NUL-terminated (malloc'd; free it). Errors name
 * `flag` ("--tls-cert") and the path, say what is wrong and how to fix it. A private key file
 * that group or others may read is accepted; *warning (may be NULL) then says so, otherwise it
 * is set to "". */
int siam_pem_load(const char *flag, const char *path, siam_pem_kind kind, char **pem, char *warning,
                  size_t warning_size, siam_error *err);

/* Decodes base64 (RFC 4648, whitespace ignored, '=' padding) into out (room for out_size bytes);
 * returns the number of bytes, or -1 when the text is not base64 or does not fit. */
long siam_base64_decode(const char *text, size_t len, uint8_t *out, size_t out_size);

#endif
