/* mbedTLS 2.28 configuration for the static firmware builds, used only
 * when the mbedTLS 3.6 source is not at hand and firmware/build.sh falls
 * back to Debian's 2.28 source package (TLS 1.2 only). The default is
 * firmware/mbedtls_config.h, for 3.6.
 *
 * Replaces mbedtls/config.h through MBEDTLS_CONFIG_FILE, for the library
 * and for the daemon alike: the two must agree, since the option set
 * changes the layout of the structures the daemon allocates.
 *
 * What tarpitd needs and nothing more, to stay within the flash budget of
 * small routers: a TLS 1.2 server (STARTTLS) with ECDHE key exchange and
 * AEAD suites only (ChaCha20-Poly1305 first, then AES-GCM), RSA and ECDSA
 * certificates in PEM, the curves X25519, P-256 and P-384, a CTR-DRBG, and
 * PBKDF2-HMAC-SHA256 for the users file, session tickets (RFC 5077). No
 * client, no DTLS, no PSA, no session cache, no renegotiation, no threading (the daemon has
 * one thread). tls.c filters its suite and curve lists against what is
 * compiled in, so trimming here never breaks the build, only the offer.
 */
#ifndef TARPITD_MBEDTLS228_CONFIG_H
#define TARPITD_MBEDTLS228_CONFIG_H

/* System support */
#define MBEDTLS_HAVE_ASM
#define MBEDTLS_HAVE_TIME
#define MBEDTLS_FS_IO

/* Ciphers and modes: the AEAD suites need nothing else. */
#define MBEDTLS_AES_C
#define MBEDTLS_GCM_C
#define MBEDTLS_CHACHA20_C
#define MBEDTLS_POLY1305_C
#define MBEDTLS_CHACHAPOLY_C
#define MBEDTLS_CIPHER_C
/* The 4 KiB of AES tables go to .rodata instead of being built in RAM at
 * first use, and only one of four rotations is kept: flash is the tighter
 * budget, and AES is the second choice after ChaCha20 anyway. */
#define MBEDTLS_AES_ROM_TABLES
#define MBEDTLS_AES_FEWER_TABLES

/* Hashes: SHA-256 (PRF, PBKDF2), SHA-384 for the AES-256-GCM suites and
 * for ECDSA/RSA signatures over P-384 certificates; SHA-1 only because
 * client hellos still list it among signature algorithms and old
 * certificates carry it. */
#define MBEDTLS_MD_C
#define MBEDTLS_SHA1_C
#define MBEDTLS_SHA256_C
#define MBEDTLS_SHA512_C
#define MBEDTLS_SHA256_SMALLER

/* Random numbers: tls.c and auth.c add getrandom() themselves. */
#define MBEDTLS_ENTROPY_C
#define MBEDTLS_CTR_DRBG_C

/* Public keys */
#define MBEDTLS_BIGNUM_C
#define MBEDTLS_RSA_C
#define MBEDTLS_PKCS1_V15
#define MBEDTLS_ECP_C
#define MBEDTLS_ECDH_C
#define MBEDTLS_ECDSA_C
#define MBEDTLS_ECP_DP_SECP256R1_ENABLED
#define MBEDTLS_ECP_DP_SECP384R1_ENABLED
#define MBEDTLS_ECP_DP_CURVE25519_ENABLED
#define MBEDTLS_ECP_NIST_OPTIM
/* A smaller comb table for the fixed base point: less RAM per curve and
 * less code, at some cost in signing speed (a handful of handshakes a
 * minute on a mail tarpit). */
#define MBEDTLS_ECP_WINDOW_SIZE 4
#define MBEDTLS_ECP_FIXED_POINT_OPTIM 0
#define MBEDTLS_PK_C
#define MBEDTLS_PK_PARSE_C
#define MBEDTLS_PKCS5_C
#define MBEDTLS_ASN1_PARSE_C
#define MBEDTLS_ASN1_WRITE_C
#define MBEDTLS_OID_C
#define MBEDTLS_BASE64_C
#define MBEDTLS_PEM_PARSE_C
#define MBEDTLS_X509_USE_C
#define MBEDTLS_X509_CRT_PARSE_C

/* TLS: a 1.2 server only */
#define MBEDTLS_SSL_TLS_C
#define MBEDTLS_SSL_SRV_C
#define MBEDTLS_SSL_PROTO_TLS1_2
#define MBEDTLS_KEY_EXCHANGE_ECDHE_ECDSA_ENABLED
#define MBEDTLS_KEY_EXCHANGE_ECDHE_RSA_ENABLED
#define MBEDTLS_SSL_EXTENDED_MASTER_SECRET
/* Tickets (RFC 5077): a resumed handshake skips the certificate's
 * signature; the key lives in RAM (tls.c), no per-session cache. */
#define MBEDTLS_SSL_SESSION_TICKETS
#define MBEDTLS_SSL_TICKET_C
/* A fallback SCSV from a client is answered properly. */
#define MBEDTLS_SSL_FALLBACK_SCSV
/* Error texts make "check" and the log say what is wrong with a
 * certificate or key; they cost about 10 KiB. */
#define MBEDTLS_ERROR_C

#include "mbedtls/check_config.h"

#endif
