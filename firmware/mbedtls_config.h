/* mbedTLS 3.6 LTS configuration for the static firmware builds (make
 * firmware), the default; firmware/mbedtls-2.28_config.h is the fallback
 * when only Debian's 2.28 source is at hand.
 *
 * Replaces include/mbedtls/mbedtls_config.h through MBEDTLS_CONFIG_FILE,
 * for the library and for the daemon alike: the two must agree, since the
 * option set changes the layout of the structures the daemon allocates.
 * build_info.h adds what these options imply (the PSA_WANT_* set) and
 * check_config.h, so neither is included here.
 *
 * What tarpitd needs and nothing more, to stay within the flash budget of
 * small routers: a TLS 1.2 and TLS 1.3 server (STARTTLS) with ECDHE key
 * exchange and AEAD suites only (ChaCha20-Poly1305 first, then AES-GCM),
 * TLS 1.3 resumption with a PSK and ECDHE, session tickets for both
 * versions, RSA (PKCS#1 v1.5 for TLS 1.2, PSS for 1.3) and ECDSA
 * certificates in PEM, the groups X25519, P-256 and P-384, a CTR-DRBG, and
 * PBKDF2-HMAC-SHA256 for the users file. No client, no DTLS, no session
 * cache, no renegotiation, no early data, no PSA key storage, no threading
 * (the daemon has one thread). tls.c filters its suite list against what
 * is compiled in, so trimming here never breaks the build, only the offer.
 */
#ifndef TARPITD_MBEDTLS_CONFIG_H
#define TARPITD_MBEDTLS_CONFIG_H

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

/* Hashes: SHA-256 (PRF, HKDF, PBKDF2), SHA-384 for the AES-256-GCM suites
 * and for signatures over P-384 certificates; SHA-1 only because client
 * hellos still list it among signature algorithms and old certificates
 * carry it. HKDF is TLS 1.3's key schedule. */
#define MBEDTLS_MD_C
#define MBEDTLS_SHA1_C
#define MBEDTLS_SHA224_C
#define MBEDTLS_SHA256_C
#define MBEDTLS_SHA384_C
#define MBEDTLS_SHA512_C
#define MBEDTLS_SHA256_SMALLER
#define MBEDTLS_SHA512_SMALLER
#define MBEDTLS_HKDF_C

/* Random numbers: the platform source is getrandom() (PSA seeds itself
 * from it too); tls.c and passwd.c add getrandom() themselves as well
 * (random.c). */
#define MBEDTLS_ENTROPY_C
#define MBEDTLS_CTR_DRBG_C

/* Public keys */
#define MBEDTLS_BIGNUM_C
#define MBEDTLS_RSA_C
#define MBEDTLS_PKCS1_V15
#define MBEDTLS_PKCS1_V21
#define MBEDTLS_ECP_C
#define MBEDTLS_ECDH_C
#define MBEDTLS_ECDSA_C
#define MBEDTLS_ECP_DP_SECP256R1_ENABLED
#define MBEDTLS_ECP_DP_SECP384R1_ENABLED
#define MBEDTLS_ECP_DP_CURVE25519_ENABLED
#define MBEDTLS_ECP_NIST_OPTIM
/* A smaller comb table for the fixed base point: less RAM per curve and
 * less code, at some cost in signing speed (a handful of handshakes a
 * minute on a mail tarpit, fewer still with tickets). */
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

/* PSA crypto: TLS 1.3 runs on it in 3.6. Keys are volatile only (no
 * storage on flash), and tarpitd never hands PSA a buffer another party
 * could change under it. */
#define MBEDTLS_PSA_CRYPTO_C
#define MBEDTLS_PSA_ASSUME_EXCLUSIVE_BUFFERS

/* TLS: a 1.2 and 1.3 server, and the client that forwards to a next hop
 * (SPEC §10: STARTTLS to it, the certificate verified against ca_file,
 * tls_name sent as SNI and checked) */
#define MBEDTLS_SSL_TLS_C
#define MBEDTLS_SSL_SRV_C
#define MBEDTLS_SSL_CLI_C
#define MBEDTLS_SSL_SERVER_NAME_INDICATION
#define MBEDTLS_SSL_PROTO_TLS1_2
#define MBEDTLS_SSL_PROTO_TLS1_3
#define MBEDTLS_KEY_EXCHANGE_ECDHE_ECDSA_ENABLED
#define MBEDTLS_KEY_EXCHANGE_ECDHE_RSA_ENABLED
#define MBEDTLS_SSL_EXTENDED_MASTER_SECRET
/* TLS 1.3: a full handshake is ECDHE; a resumed one PSK with ECDHE (tls.c
 * allows nothing else, so resumption keeps forward secrecy). The current
 * 1.3 code needs the peer-certificate option even with no client
 * certificates. Compatibility mode: the middlebox-friendly dummy
 * ChangeCipherSpec that OpenSSL and most clients expect. */
#define MBEDTLS_SSL_TLS1_3_KEY_EXCHANGE_MODE_EPHEMERAL_ENABLED
#define MBEDTLS_SSL_TLS1_3_KEY_EXCHANGE_MODE_PSK_EPHEMERAL_ENABLED
#define MBEDTLS_SSL_TLS1_3_COMPATIBILITY_MODE
#define MBEDTLS_SSL_KEEP_PEER_CERTIFICATE
/* Tickets (RFC 5077 and TLS 1.3): a resumed handshake skips the
 * certificate's signature; the key lives in RAM (tls.c). */
#define MBEDTLS_SSL_SESSION_TICKETS
#define MBEDTLS_SSL_TICKET_C
/* Record buffers: see docs/benchmarks.md, "TLS". A client may send
 * records of 16 KiB (the maximum, and what OpenSSL sends with DATA), so
 * the input buffer keeps that size. The output buffer only has to hold
 * our largest record, and handshake messages are not split across
 * records: the Certificate message (the chain) must fit. */
#define MBEDTLS_SSL_IN_CONTENT_LEN 16384
#define MBEDTLS_SSL_OUT_CONTENT_LEN 16384

/* Error texts make "check" and the log say what is wrong with a
 * certificate or key; they cost about 10 KiB. */
#define MBEDTLS_ERROR_C

#endif
