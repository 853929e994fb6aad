/* test_certs: certificates made once with openssl 3.0 for the unit tests (an EC P-256 CA,
 * "O=siam tests, CN=siam unit CA", valid 2026-11-25 to 2126-11-01, and a certificate for
 * "C=DE, O=siam, CN=localhost" with subjectAltName DNS:localhost, DNS:siam-server, IP:127.0.0.1,
 * IP:::1, signed by it, valid 2026-11-25 00:39:52 to 2081-08-28 00:39:52 UTC, and its key):
 *   openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key \
 *     -out ca.pem -days 36500 -subj "/O=siam tests/CN=siam unit CA"
 *   openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout leaf.key \
 *     -out leaf.csr -subj "/C=DE/O=siam/CN=localhost"
 *   openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out leaf.pem \
 *     -days 20000 -extfile leaf.ext   (subjectAltName=..., basicConstraints=CA:FALSE) */
#ifndef TEST_CERTS_H
#define TEST_CERTS_H

static const char CA_PEM[] = "-----BEGIN CERTIFICATE-----\n"
                             "MIIBrzCCAVWgAwIBAgIUSF3PAll/CGf7066KXUrEQJeS6vgwCgYIKoZIzj0EAwIw\n"
                             "LDETMBEGA1UECgwKc2lhbSB0ZXN0czEVMBMGA1UEAwwMc2lhbSB1bml0IENBMCAX\n"
                             "DTI2MTEyNTAwMzk1MloYDzIxMjYxMTAxMDAzOTUyWjAsMRMwEQYDVQQKDApzaWFt\n"
                             "IHRlc3RzMRUwEwYDVQQDDAxzaWFtIHVuaXQgQ0EwWTATBgcqhkjOPQIBBggqhkjO\n"
                             "PQMBBwNCAAQBrOJ+ODUzfg0U7C9a/78pa5QeVyYHnt29L6at0VbCNFwjNoGtETP0\n"
                             "CVOpLNXU3AHi2GnLMZMMuAhpD0kBB7mJo1MwUTAdBgNVHQ4EFgQUTzFM9iLiKiuJ\n"
                             "2vKHHHvX5G72PI4wHwYDVR0jBBgwFoAUTzFM9iLiKiuJ2vKHHHvX5G72PI4wDwYD\n"
                             "VR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNIADBFAiEAs2o/90wi3B+hhtso8sdw\n"
                             "MB8XGUoHh6Lb4BsyfGEwbjQCIFU40axdRI1c6Is7lW5KCg5wHJm4aoik8bAghvsB\n"
                             "n519\n"
                             "-----END CERTIFICATE-----\n";

static const char LEAF_PEM[] = "-----BEGIN CERTIFICATE-----\n"
                               "MIIB6jCCAZCgAwIBAgIUA75CeUW3fWvCvhkjfXU1ctHY/rkwCgYIKoZIzj0EAwIw\n"
                               "LDETMBEGA1UECgwKc2lhbSB0ZXN0czEVMBMGA1UEAwwMc2lhbSB1bml0IENBMCAX\n"
                               "DTI2MTEyNTAwMzk1MloYDzIwODEwODI4MDAzOTUyWjAwMQswCQYDVQQGEwJERTEN\n"
                               "MAsGA1UECgwEc2lhbTESMBAGA1UEAwwJbG9jYWxob3N0MFkwEwYHKoZIzj0CAQYI\n"
                               "KoZIzj0DAQcDQgAE4xOAFzYLMDqHxlDfjwtaC8altezZyHs+NzBMLa+GBnjXOgxu\n"
                               "aeHn+R/oxEruUwJCxPsE+mtwZAdIlo693wWGf6OBiTCBhjA5BgNVHREEMjAwggls\n"
                               "b2NhbGhvc3SCC3NpYW0tc2VydmVyhwR/AAABhxAAAAAAAAAAAAAAAAAAAAABMAkG\n"
                               "A1UdEwQCMAAwHQYDVR0OBBYEFKjjRyUqey3vlnIJo07Uih7b9eixMB8GA1UdIwQY\n"
                               "MBaAFE8xTPYi4ioridryhxx71+Ru9jyOMAoGCCqGSM49BAMCA0gAMEUCIQDRmgS0\n"
                               "QnsuUoV6nAkuD+aP02Yt/TOk8GN+gQc5Xf8VnwIgRNGEsOFOfMDvGP+7G2SZHF2G\n"
                               "65nkVZSO2kKDXaoUfao=\n"
                               "-----END CERTIFICATE-----\n";

static const char LEAF_KEY[] = "-----BEGIN PRIVATE KEY-----\n"
                               "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgdyUUZx3I0r3X2mMc\n"
                               "dCZvX5BqFPaOofwU1SSPRBVy+H2hRANCAATjE4AXNgswOofGUN+PC1oLxqW17NnI\n"
                               "ez43MEwtr4YGeNc6DG5p4ef5H+jESu5TAkLE+wT6a3BkB0iWjr3fBYZ/\n"
                               "-----END PRIVATE KEY-----\n";

/* an unrelated CA ("CN=unrelated unit CA", valid until 2126; its key was thrown away) */
static const char OTHER_CA_PEM[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBjjCCATWgAwIBAgIUUTeq++X7epCzqa1wLmNJJYSQb0gwCgYIKoZIzj0EAwIw\n"
    "HDEaMBgGA1UEAwwRdW5yZWxhdGVkIHVuaXQgQ0EwIBcNMjYxMTI1MDA0OTUyWhgP\n"
    "MjEyNjExMDEwMDQ5NTJaMBwxGjAYBgNVBAMMEXVucmVsYXRlZCB1bml0IENBMFkw\n"
    "EwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEyHQL9GyRKZHWwekbdL7V5qGCTMkZvHuY\n"
    "C2R82owx3otUyNxhtUXiWeUxROt5GQRnABorQPjxioD//2u0KxoYaaNTMFEwHQYD\n"
    "VR0OBBYEFPH3KaCFYg3fmYa6M3uMCXvicllRMB8GA1UdIwQYMBaAFPH3KaCFYg3f\n"
    "mYa6M3uMCXvicllRMA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDRwAwRAIg\n"
    "E1Rbz2FfpsoPqzFFNtv2EOZ7EHSh85w62CjDLtRGsv8CIDdmiQHFNdRAkpBL/fOw\n"
    "SZnlqJak21tgpj1q3veckw+r\n"
    "-----END CERTIFICATE-----\n";

#endif
