/* siam_x509: PEM blocks, base64, and the few fields of a DER X.509 certificate that explain a TLS
 * failure in words. Untrusted input: every read is checked against the bytes that are there. */
#include "siam_x509.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <zlib.h>

#define PEM_FILE_MAX (1u << 20) /* a CA bundle is a few hundred KiB at most */

/* ---- DER ---------------------------------------------------------------------------------- */

typedef struct {
    const uint8_t *p;
    size_t n;
} der_t;

/* One tag-length-value from d (single-byte tags, definite lengths up to 4 bytes); advances d. */
static int der_read(der_t *d, uint8_t *tag, der_t *val) {
    if (d->n < 2 || (d->p[0] & 0x1f) == 0x1f)
        return -1;
    size_t len = d->p[1], hdr = 2;
    if (len >= 0x80) {
        size_t k = len & 0x7f;
        if (k == 0 || k > 4 || d->n < 2 + k)
            return -1;
        len = 0;
        for (size_t i = 0; i < k; i++)
            len = (len << 8) | d->p[2 + i];
        hdr += k;
    }
    if (len > d->n - hdr)
        return -1;
    *tag = d->p[0];
    val->p = d->p + hdr;
    val->n = len;
    d->p += hdr + len;
    d->n -= hdr + len;
    return 0;
}

static int der_expect(der_t *d, uint8_t tag, der_t *val) {
    uint8_t t;
    return der_read(d, &t, val) || t != tag ? -1 : 0;
}

static int der_peek(const der_t *d) {
    return d->n ? d->p[0] : -1;
}

static int oid_is(der_t oid, const uint8_t *bytes, size_t n) {
    return oid.n == n && memcmp(oid.p, bytes, n) == 0;
}

/* ---- text --------------------------------------------------------------------------------- */

static void append(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void append(char *buf, size_t size, const char *fmt, ...) {
    size_t used = strlen(buf);
    if (used + 1 >= size)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + used, size - used, fmt, ap);
    va_end(ap);
}

/* Appends a string value of a certificate as printable ASCII ('?' for anything else: the bytes
 * come from the peer and end up in logs and terminals). */
static void append_value(char *buf, size_t size, uint8_t tag, der_t v) {
    size_t step = tag == 0x1e ? 2 : tag == 0x1c ? 4 : 1; /* BMPString, UniversalString */
    char tmp[SIAM_X509_TEXT_MAX];
    size_t k = 0;
    for (size_t i = 0; i + step <= v.n && k + 1 < sizeof tmp; i += step) {
        uint32_t c = 0;
        for (size_t b = 0; b < step; b++)
            c = (c << 8) | v.p[i + b];
        tmp[k++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    tmp[k] = '\0';
    append(buf, size, "%s", tmp);
}

/* A Name (the content of its SEQUENCE) as "C=DE, O=siam, CN=localhost". */
static int format_name(der_t name, char *out, size_t size) {
    static const struct {
        uint8_t oid[9];
        size_t n;
        const char *label;
    } attrs[] = {
        {{0x55, 0x04, 0x03}, 3, "CN"},
        {{0x55, 0x04, 0x06}, 3, "C"},
        {{0x55, 0x04, 0x07}, 3, "L"},
        {{0x55, 0x04, 0x08}, 3, "ST"},
        {{0x55, 0x04, 0x0a}, 3, "O"},
        {{0x55, 0x04, 0x0b}, 3, "OU"},
        {{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01}, 9, "emailAddress"},
    };
    out[0] = '\0';
    while (name.n) {
        der_t rdn;
        if (der_expect(&name, 0x31, &rdn))
            return -1;
        while (rdn.n) {
            der_t atv, oid, val;
            uint8_t vtag;
            if (der_expect(&rdn, 0x30, &atv) || der_expect(&atv, 0x06, &oid) ||
                der_read(&atv, &vtag, &val))
                return -1;
            const char *label = NULL;
            for (size_t i = 0; i < sizeof attrs / sizeof attrs[0]; i++)
                if (oid_is(oid, attrs[i].oid, attrs[i].n))
                    label = attrs[i].label;
            if (!label)
                continue; /* rarely seen attributes add nothing to a message */
            append(out, size, "%s%s=", out[0] ? ", " : "", label);
            append_value(out, size, vtag, val);
        }
    }
    return 0;
}

static int digits(const uint8_t *s, int n) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* Days since 1970-01-01 of a civil date (proleptic Gregorian). */
static int64_t days_from_civil(int64_t y, int m, int d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* UTCTime YYMMDDHHMMSSZ or GeneralizedTime YYYYMMDDHHMMSSZ (the forms DER allows). */
static int parse_time(uint8_t tag, der_t v, int64_t *out) {
    const uint8_t *s = v.p;
    int year, i;
    if (tag == 0x17 && v.n == 13) {
        year = digits(s, 2);
        year += year < 50 ? 2000 : 1900;
        i = 2;
    } else if (tag == 0x18 && v.n == 15) {
        year = digits(s, 4);
        i = 4;
    } else {
        return -1;
    }
    int mon = digits(s + i, 2), day = digits(s + i + 2, 2), h = digits(s + i + 4, 2),
        min = digits(s + i + 6, 2), sec = digits(s + i + 8, 2);
    if (year < 0 || mon < 1 || mon > 12 || day < 1 || day > 31 || h < 0 || h > 23 || min < 0 ||
        min > 59 || sec < 0 || sec > 60 || s[v.n - 1] != 'Z')
        return -1;
    *out = days_from_civil(year, mon, day) * 86400 + h * 3600 + min * 60 + sec;
    return 0;
}

void siam_x509_format_time(int64_t t, char *buf, size_t n) {
    time_t tt = (time_t)t;
    struct tm tm;
    if (!gmtime_r(&tt, &tm) || !strftime(buf, n, "%Y-%m-%d %H:%M:%S UTC", &tm))
        snprintf(buf, n, "%lld (seconds since 1970)", (long long)t);
}

/* subjectAltName: GeneralNames as "DNS:a, IP:1.2.3.4". */
static int format_alt_names(der_t ext, char *out, size_t size) {
    der_t names;
    if (der_expect(&ext, 0x30, &names))
        return -1;
    while (names.n) {
        uint8_t tag;
        der_t v;
        if (der_read(&names, &tag, &v))
            return -1;
        const char *sep = out[0] ? ", " : "";
        if (tag == 0x82) { /* dNSName */
            append(out, size, "%sDNS:", sep);
            append_value(out, size, 0x16, v);
        } else if (tag == 0x87 && (v.n == 4 || v.n == 16)) { /* iPAddress */
            char ip[INET6_ADDRSTRLEN];
            if (inet_ntop(v.n == 4 ? AF_INET : AF_INET6, v.p, ip, sizeof ip))
                append(out, size, "%sIP:%s", sep, ip);
        } else if (tag == 0x81) { /* rfc822Name */
            append(out, size, "%semail:", sep);
            append_value(out, size, 0x16, v);
        } else if (tag == 0x86) { /* uniformResourceIdentifier */
            append(out, size, "%sURI:", sep);
            append_value(out, size, 0x16, v);
        }
    }
    return 0;
}

static int parse_extensions(der_t exts, siam_x509_cert *out) {
    static const uint8_t san[] = {0x55, 0x1d, 0x11}, basic[] = {0x55, 0x1d, 0x13};
    der_t seq;
    if (der_expect(&exts, 0x30, &seq))
        return -1;
    while (seq.n) {
        der_t ext, oid, value;
        if (der_expect(&seq, 0x30, &ext) || der_expect(&ext, 0x06, &oid))
            return -1;
        if (der_peek(&ext) == 0x01) { /* critical */
            der_t crit;
            if (der_expect(&ext, 0x01, &crit))
                return -1;
        }
        if (der_expect(&ext, 0x04, &value))
            return -1;
        if (oid_is(oid, san, sizeof san)) {
            if (format_alt_names(value, out->names, sizeof out->names))
                return -1;
        } else if (oid_is(oid, basic, sizeof basic)) {
            der_t bc, ca;
            if (der_expect(&value, 0x30, &bc))
                return -1;
            if (der_peek(&bc) == 0x01 && der_expect(&bc, 0x01, &ca) == 0 && ca.n == 1)
                out->is_ca = ca.p[0] != 0;
        }
    }
    return 0;
}

int siam_x509_parse_der(const uint8_t *der, size_t len, siam_x509_cert *out, siam_error *err) {
    memset(out, 0, sizeof *out);
    der_t all = {der, len}, cert, tbs, x, issuer, validity, subject;
    uint8_t tag;
    const char *what = "the outer SEQUENCE";
    if (der_expect(&all, 0x30, &cert) || all.n != 0)
        goto bad;
    what = "tbsCertificate";
    if (der_expect(&cert, 0x30, &tbs))
        goto bad;
    if (der_peek(&tbs) == 0xa0 && der_read(&tbs, &tag, &x))
        goto bad;
    what = "the serial number or signature algorithm";
    if (der_expect(&tbs, 0x02, &x) || der_expect(&tbs, 0x30, &x))
        goto bad;
    what = "the issuer";
    if (der_expect(&tbs, 0x30, &issuer) || format_name(issuer, out->issuer, sizeof out->issuer))
        goto bad;
    what = "the validity";
    if (der_expect(&tbs, 0x30, &validity) || der_read(&validity, &tag, &x) ||
        parse_time(tag, x, &out->not_before) || der_read(&validity, &tag, &x) ||
        parse_time(tag, x, &out->not_after))
        goto bad;
    what = "the subject";
    if (der_expect(&tbs, 0x30, &subject) || format_name(subject, out->subject, sizeof out->subject))
        goto bad;
    what = "the public key";
    if (der_expect(&tbs, 0x30, &x))
        goto bad;
    what = "the extensions";
    while (tbs.n) {
        if (der_read(&tbs, &tag, &x))
            goto bad;
        if (tag == 0xa3 && parse_extensions(x, out))
            goto bad;
    }
    out->issuer_crc = (uint32_t)crc32(0L, issuer.p, (uInt)issuer.n);
    out->issuer_len = issuer.n;
    out->subject_crc = (uint32_t)crc32(0L, subject.p, (uInt)subject.n);
    out->subject_len = subject.n;
    return SIAM_OK;
bad:
    return siam_error_set(err, SIAM_ERR_FORMAT,
                          "not a valid X.509 certificate (cannot read %s; damaged or truncated)",
                          what);
}

int siam_x509_issued_by_name(const siam_x509_cert *cert, const siam_x509_cert *ca) {
    return cert->issuer_len == ca->subject_len && cert->issuer_crc == ca->subject_crc;
}

/* ---- base64 and PEM ------------------------------------------------------------------------ */

long siam_base64_decode(const char *text, size_t len, uint8_t *out, size_t out_size) {
    uint32_t acc = 0;
    int bits = 0, pad = 0;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        int v;
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
            continue;
        if (c == '=') {
            if (++pad > 2)
                return -1;
            continue;
        }
        if (pad)
            return -1; /* data after the padding */
        if (c >= 'A' && c <= 'Z')
            v = c - 'A';
        else if (c >= 'a' && c <= 'z')
            v = c - 'a' + 26;
        else if (c >= '0' && c <= '9')
            v = c - '0' + 52;
        else if (c == '+')
            v = 62;
        else if (c == '/')
            v = 63;
        else
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o >= out_size)
                return -1;
            out[o++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    return (long)o;
}

typedef struct {
    char label[48];
    const char *body; /* between the BEGIN and END lines */
    size_t body_len;
    int encrypted; /* legacy "Proc-Type: 4,ENCRYPTED" header */
} pem_block;

/* The next PEM block at or after *pos. 1 found (and *pos moves past it), 0 none left, -1 a
 * BEGIN line without its END line (label filled). */
static int pem_next(const char **pos, pem_block *b) {
    static const char begin[] = "-----BEGIN ";
    const char *s = strstr(*pos, begin);
    if (!s)
        return 0;
    s += sizeof begin - 1;
    const char *dash = strstr(s, "-----");
    const char *eol = strchr(s, '\n');
    size_t n = dash ? (size_t)(dash - s) : 0;
    if (!dash || (eol && eol < dash) || n == 0 || n >= sizeof b->label) {
        snprintf(b->label, sizeof b->label, "%s", "?");
        return -1;
    }
    memcpy(b->label, s, n);
    b->label[n] = '\0';
    const char *body = dash + 5;
    char end[80];
    snprintf(end, sizeof end, "-----END %s-----", b->label);
    const char *e = strstr(body, end);
    if (!e)
        return -1;
    b->body = body;
    b->body_len = (size_t)(e - body);
    b->encrypted = 0;
    /* legacy PEM headers ("Proc-Type: 4,ENCRYPTED", "DEK-Info: ...") precede the base64 and
     * end at a blank line; base64 has no ':' */
    const char *colon = memchr(body, ':', (size_t)(e - body));
    if (colon) {
        const char *enc = strstr(body, "ENCRYPTED");
        b->encrypted = enc && enc < e;
        const char *blank = strstr(colon, "\n\n");
        const char *blank_crlf = strstr(colon, "\r\n\r\n");
        if (!blank || blank > e || (blank_crlf && blank_crlf < blank))
            blank = blank_crlf;
        if (blank && blank < e) {
            b->body_len = (size_t)(e - blank);
            b->body = blank;
        }
    }
    *pos = e + strlen(end);
    return 1;
}

/* The DER bytes of a block (malloc'd), or NULL when its base64 is damaged. */
static uint8_t *pem_decode(const pem_block *b, size_t *len) {
    size_t cap = b->body_len / 4 * 3 + 3;
    uint8_t *der = malloc(cap ? cap : 1);
    if (!der)
        return NULL;
    long n = siam_base64_decode(b->body, b->body_len, der, cap);
    if (n <= 0) {
        free(der);
        return NULL;
    }
    *len = (size_t)n;
    return der;
}

int siam_x509_parse_pem(const char *pem, int index, siam_x509_cert *out, siam_error *err) {
    const char *pos = pem;
    pem_block b;
    int i = 0, r;
    while ((r = pem_next(&pos, &b)) == 1) {
        if (strcmp(b.label, "CERTIFICATE") != 0 || i++ < index)
            continue;
        size_t len = 0;
        uint8_t *der = pem_decode(&b, &len);
        if (!der)
            return siam_error_set(err, SIAM_ERR_FORMAT, "certificate %d: damaged base64",
                                  index + 1);
        int rc = siam_x509_parse_der(der, len, out, err);
        free(der);
        return rc;
    }
    return siam_error_set(err, SIAM_ERR_FORMAT, "no certificate %d in the PEM text", index + 1);
}

static int is_key_label(const char *label) {
    return strcmp(label, "PRIVATE KEY") == 0 || strcmp(label, "RSA PRIVATE KEY") == 0 ||
           strcmp(label, "EC PRIVATE KEY") == 0;
}

/* Checks the blocks of a file's text for `kind`. */
static int check_pem(const char *flag, const char *path, const char *text, size_t size,
                     siam_pem_kind kind, siam_error *err) {
    const char *pos = text;
    pem_block b;
    int certs = 0, keys = 0, r;
    if (memchr(text, '\0', size)) {
        char how[300];
        snprintf(how, sizeof how, "openssl %s -inform der -in %s -out %s.pem",
                 kind == SIAM_PEM_PRIVATE_KEY ? "pkey" : "x509", path, path);
        return siam_error_set(err, SIAM_ERR_FORMAT,
                              "%s %s is not a PEM file: it is binary; if it is DER, convert it: %s",
                              flag, path, how);
    }
    if (!strstr(text, "-----BEGIN "))
        return siam_error_set(err, SIAM_ERR_FORMAT,
                              "%s %s is not a PEM file (no '-----BEGIN ...-----' line)", flag,
                              path);
    while ((r = pem_next(&pos, &b)) == 1) {
        int block = certs + keys + 1;
        if (strcmp(b.label, "CERTIFICATE") == 0) {
            if (kind == SIAM_PEM_PRIVATE_KEY)
                return siam_error_set(
                    err, SIAM_ERR_FORMAT,
                    "%s %s holds a CERTIFICATE, not a private key (are --tls-cert "
                    "and --tls-key swapped?)",
                    flag, path);
            size_t len = 0;
            uint8_t *der = pem_decode(&b, &len);
            siam_x509_cert c;
            siam_error e = {0};
            if (!der)
                return siam_error_set(
                    err, SIAM_ERR_FORMAT,
                    "%s %s: certificate %d is damaged (its base64 does not decode)", flag, path,
                    block);
            int rc = siam_x509_parse_der(der, len, &c, &e);
            free(der);
            if (rc)
                return siam_error_set(err, SIAM_ERR_FORMAT, "%s %s: certificate %d is %s", flag,
                                      path, block, e.msg);
            certs++;
        } else if (strcmp(b.label, "ENCRYPTED PRIVATE KEY") == 0 ||
                   (is_key_label(b.label) && b.encrypted)) {
            return siam_error_set(
                err, SIAM_ERR_FORMAT,
                "%s %s holds a private key encrypted with a passphrase; gRPC needs "
                "it unencrypted: openssl pkey -in %s -out KEY.pem (and keep "
                "KEY.pem readable by this user only)",
                flag, path, path);
        } else if (is_key_label(b.label)) {
            if (kind == SIAM_PEM_CERTIFICATES)
                return siam_error_set(
                    err, SIAM_ERR_FORMAT,
                    "%s %s holds a PRIVATE KEY%s; give the key with --tls-key and "
                    "keep it out of certificate files",
                    flag, path,
                    strcmp(flag, "--tls-cert") == 0 ? " (are --tls-cert and --tls-key swapped?)"
                                                    : "");
            size_t len = 0;
            uint8_t *der = pem_decode(&b, &len);
            der_t d = {der, len}, seq;
            int ok = der && der_expect(&d, 0x30, &seq) == 0 && d.n == 0;
            free(der);
            if (!ok)
                return siam_error_set(err, SIAM_ERR_FORMAT,
                                      "%s %s: the private key is damaged (not base64 DER)", flag,
                                      path);
            keys++;
        } else if (strcmp(b.label, "CERTIFICATE REQUEST") == 0 ||
                   strcmp(b.label, "NEW CERTIFICATE REQUEST") == 0) {
            return siam_error_set(err, SIAM_ERR_FORMAT,
                                  "%s %s is a certificate signing request, not a certificate: sign "
                                  "it with the CA (openssl x509 -req -in %s -CA ca.pem -CAkey "
                                  "ca.key ...)",
                                  flag, path, path);
        } else if (strcmp(b.label, "EC PARAMETERS") != 0) {
            return siam_error_set(err, SIAM_ERR_FORMAT, "%s %s holds a '%s' block, expected %s",
                                  flag, path, b.label,
                                  kind == SIAM_PEM_PRIVATE_KEY ? "a PRIVATE KEY" : "CERTIFICATE");
        }
    }
    if (r < 0 && strcmp(b.label, "?") == 0)
        return siam_error_set(err, SIAM_ERR_FORMAT,
                              "%s %s has a malformed '-----BEGIN ...-----' line", flag, path);
    if (r < 0)
        return siam_error_set(err, SIAM_ERR_FORMAT,
                              "%s %s is truncated: '-----BEGIN %s-----' without its '-----END "
                              "%s-----' line",
                              flag, path, b.label, b.label);
    if (kind == SIAM_PEM_CERTIFICATES && certs == 0)
        return siam_error_set(err, SIAM_ERR_FORMAT, "%s %s holds no CERTIFICATE block", flag, path);
    if (kind == SIAM_PEM_PRIVATE_KEY && keys != 1)
        return siam_error_set(err, SIAM_ERR_FORMAT, "%s %s holds %d private keys, expected one",
                              flag, path, keys);
    return SIAM_OK;
}

int siam_pem_load(const char *flag, const char *path, siam_pem_kind kind, char **pem, char *warning,
                  size_t warning_size, siam_error *err) {
    *pem = NULL;
    if (warning && warning_size)
        warning[0] = '\0';
    struct stat sb;
    if (stat(path, &sb) != 0) {
        int e = errno;
        if (e == ENOENT || e == ENOTDIR)
            return siam_error_set(err, SIAM_ERR_IO, "%s %s: no such file", flag, path);
        return siam_error_set(err, SIAM_ERR_IO, "%s %s: %s", flag, path, strerror(e));
    }
    if (S_ISDIR(sb.st_mode))
        return siam_error_set(err, SIAM_ERR_IO, "%s %s is a directory, expected a PEM file", flag,
                              path);
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        if (e == EACCES)
            return siam_error_set(err, SIAM_ERR_IO,
                                  "%s %s: permission denied (make it readable by the user this "
                                  "program runs as)",
                                  flag, path);
        return siam_error_set(err, SIAM_ERR_IO, "%s %s: %s", flag, path, strerror(e));
    }
    char *text = malloc(PEM_FILE_MAX + 1);
    if (!text) {
        fclose(f);
        return siam_error_set(err, SIAM_ERR_NOMEM, "out of memory");
    }
    size_t n = fread(text, 1, PEM_FILE_MAX + 1, f);
    int read_error = ferror(f);
    fclose(f);
    int rc = SIAM_OK;
    if (read_error)
        rc = siam_error_set(err, SIAM_ERR_IO, "%s %s: read error", flag, path);
    else if (n > PEM_FILE_MAX)
        rc = siam_error_set(err, SIAM_ERR_FORMAT, "%s %s is larger than %u bytes: not a PEM file",
                            flag, path, PEM_FILE_MAX);
    else {
        text[n] = '\0';
        size_t k = 0;
        while (k < n && strchr(" \t\r\n", text[k]))
            k++;
        if (k == n)
            rc = siam_error_set(err, SIAM_ERR_FORMAT, "%s %s is empty, expected %s in PEM", flag,
                                path,
                                kind == SIAM_PEM_PRIVATE_KEY ? "a private key" : "certificates");
        else
            rc = check_pem(flag, path, text, n, kind, err);
    }
    if (rc) {
        memset(text, 0, n < PEM_FILE_MAX ? n : PEM_FILE_MAX);
        free(text);
        return rc;
    }
    if (kind == SIAM_PEM_PRIVATE_KEY && (sb.st_mode & 077) && warning && warning_size)
        snprintf(warning, warning_size,
                 "%s %s is open to group or others (mode %04o): chmod 600 %s (accepted; a private "
                 "key should be readable by its owner only)",
                 flag, path, (unsigned)(sb.st_mode & 07777), path);
    *pem = text;
    return SIAM_OK;
}
