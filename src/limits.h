/* limits: every compile-time limit of tarpitd, in one place, as dropbear's
 * default_options.h keeps them.
 *
 * Promises: each limit here says what it bounds and why it has that value;
 * the modules take their limits from here and define none of their own
 * (buffers derived from these stay beside their code). Changing a value
 * changes memory use or what is accepted, never correctness: every limit
 * is checked where input meets it.
 *
 * The name shadows <limits.h> only for #include "limits.h"; the unit tests
 * and fuzzers add src/ with -iquote, never -I, so <limits.h> stays the
 * system's everywhere.
 */
#ifndef TARPITD_LIMITS_H
#define TARPITD_LIMITS_H

#include <limits.h>

/* configuration, files, protocol */

/* Paths in the INI file and the spool: Linux's own PATH_MAX where the C
 * library has none (musl and glibc have it; the fallback is Linux's). */
#ifndef PATH_MAX
#define PATH_MAX 4096
#endif

/* -- the INI file (config, admin) -- */
#define CONF_MAX_BINDINGS 16   /* ip:port per connector; a router listens on few */
#define CONF_MAX_RANGES 64     /* RemoteIPRanges per connector; Exchange's lists are short */
#define CONF_NAME_MAX 64       /* connector name with NUL: quoted in stats lines and commands */
#define CONF_TEXT_MAX 256      /* hostname, fqdn, banner with NUL: a DNS name is at most 255 */
#define CONF_MAX_CONNECTORS 64 /* connectors per file: each costs a struct connector_conf */
#define CONF_FIELD_MAX 8192    /* room for any value conf_field_format writes (64 ranges) */
#define CONF_BAN_WORDS 16      /* argv words of ban_command, the command included */
#define CONF_BAN_MAX 512       /* octets of all ban_command words, each NUL-terminated */
/* The other ranges of INI values are in the key table (config.c's
 * conf_keys), beside their keys, and in docs/config.md. */
/* The maxima of the settings a session counter is compared with: each
 * counter in struct smtp_session is checked against these at compile time
 * (smtp_session.c), and the unit tests check that the key table allows no
 * more than these (host-tests/unit/test_seams.c), so neither can widen a
 * range past what its counter can count. */
#define CONF_AUTH_FAILURES_MAX 1000u        /* max_auth_failures */
#define CONF_PROTOCOL_ERRORS_MAX 1000000u   /* max_protocol_errors */
#define CONF_UNKNOWN_RCPTS_MAX 1000000u     /* max_unknown_recipients */
#define CONF_RCPTS_PER_MESSAGE_MAX 1000u    /* max_recipients_per_message */
#define MSG_SIZE_MIN 1024u     /* max_message_size: 1 KB, the floor docs/config.md gives */
/* max_message_size: Exchange's own ceiling is 2 GB; a larger message
 * could not be counted in a 32-bit router's off_t without LFS anyway. */
#define MSG_SIZE_MAX (2u * 1024u * 1024u * 1024u)
#define ADMIN_INI_MAX (1024 * 1024)         /* `set`: an INI file larger than this is not ours */
#define ADMIN_STATS_MAX (4 * 1024 * 1024)   /* `stats`: ditto for the server's answer */
#define ADMIN_STATS_TIMEOUT_MS 5000         /* `stats`: a server that says nothing for 5 s is stuck */
#define ADMIN_MAX_FIELDS 64    /* `show --fields`: more than there are fields */
#define ADMIN_MAX_EDITS 32     /* `set` KEY=VALUE pairs in one call: more than there are keys */

/* -- the users file (users, passwd) and AUTH -- */
#define AUTH_USER_MAX 64       /* user name octets: SPEC §6 */
#define AUTH_PASS_MAX 256      /* password octets: longer adds no strength, only PBKDF2 input */
#define USERS_SALT_MIN 8       /* salt octets accepted: shorter makes precomputed tables cheap */
#define USERS_SALT_MAX 64      /* salt octets accepted: room in each table entry */
#define USERS_ITER_MIN 1000u   /* PBKDF2 iterations accepted: fewer is no protection */
#define USERS_ITER_MAX 10000000u /* ditto: 10 s of PBKDF2 for the client here, minutes on a 24Kc */
/* PBKDF2 rounds in one slice (verify.c), between which the loop serves
 * everyone else: about 6 ms on a 580 MHz 24Kc (40,000 rounds/s), 0.25 ms
 * on a PC — a bound on how long an AUTH holds the loop, while the loop's
 * own cost between slices (one epoll_wait) stays under 1 % of a slice. */
#define AUTH_SLICE_ROUNDS 256u
/* Passwords checked at once, each in a verifier of about 400 octets (its
 * HMAC context set up once at start). More AUTHs wait in a queue, in
 * order; the running ones share the slices in turn. */
#define AUTH_VERIFIERS 4
/* A router's users file holds a handful of accounts; the cap bounds the
 * table (about 180 octets an entry) whatever the file says. */
#define USERS_MAX 10000u
/* name(64) + ":$pbkdf2-sha256$" + 8 digits + '$' + base64 of 64 + '$' +
 * base64 of 32 is 222 octets; anything much longer is not an entry. */
#define USERS_LINE_MAX 512
#define USERS_FILE_MAX (16u * 1024 * 1024) /* 10,000 entries of 512 octets fit thrice */

/* -- addresses and the recipient file (address, recipients) -- */
#define ADDR_LOCAL_MAX 64      /* local part octets: RFC 5321 §4.5.3.1.1 */
#define ADDR_DOMAIN_MAX 255    /* domain octets: RFC 5321 §4.5.3.1.2 */
#define ADDRESS_MAX 256        /* longest path, brackets included: RFC 5321 §4.5.3.1.3 */
#define ADDR_TEXT_MAX 46       /* an IP address as text: "ffff:...:255.255.255.255" is 45 */
#define RCPT_LINE_MAX 1024     /* a recipient file line: an address and a mailbox fit thrice */
#define RCPT_MAILBOX_MAX 255   /* a mailbox name: one path component (NAME_MAX) */
/* Keeps arena offsets and slot counts comfortably inside uint32_t and
 * size_t on 32-bit targets. */
#define RCPT_FILE_MAX (256u * 1024u * 1024u)
/* 1.3 GB of slots: a bound that keeps the size arithmetic exact on
 * 32-bit targets; far beyond any router's memory anyway. */
#define RCPT_SLOTS_MAX (1u << 26)

/* -- the Maildir writer (maildir) -- */
#define QUEUE_ID_MAX 24        /* queue id: 8+5+8 hex digits (sec, usec, seq), NUL, slack */
/* A Maildir name is "<sec>.M<usec>P<pid>Q<seq>.<host>": at most 41 octets
 * before the host, so capping the escaped host keeps it under NAME_MAX. */
#define MAILDIR_HOST_MAX 128
#define MAILDIR_SENDER_MAX 256 /* Return-Path: the reverse path (ADDRESS_MAX) */
#define MAILDIR_HELO_MAX 255   /* Received: the HELO name as given, cut */
#define MAILDIR_FQDN_MAX 255   /* Received: our name (a DNS name) */
#define MAILDIR_IP_MAX 63      /* Received: the peer's address as text */
#define MAILDIR_PROTO_MAX 15   /* Received: "ESMTPSA" and kin */
#define MAILDIR_RCPT_MAX 320   /* Received: "for <first recipient>": 64 + 1 + 255 octets */
#define MAILDIR_DATE_MAX 32    /* Received: an RFC 5322 date */

/* -- the SMTP session (smtp_session, smtp_input) -- */
#define SMTP_LINE_MAX 512      /* command line, CRLF included: RFC 5321 §4.5.3.1.4 */
#define SMTP_HELO_MAX 255      /* HELO/EHLO argument: a DNS name is at most 255 */
/* An AUTH command or response, CRLF included: SPEC §7 asks at least 1024,
 * room for base64 of a 256-octet password with a 64-octet user name. */
#define AUTH_LINE_MAX 1024

/* -- replies and the log (smtp_reply, log) -- */
#define REPLY_MAX 600          /* longest rendered reply (EHLO with a 255-octet fqdn) */
#define LOG_LINE_MAX 1024      /* one log line; longer lines are cut, never split */
#define LOG_ECHO_MAX 60        /* octets of a faulty value quoted back in a message */
#define LOG_ECHO_BUF (LOG_ECHO_MAX + 8) /* log_echo's buffer: the octets, "..." and NUL */

/* -- the loop and its timers (timer_wheel, loop_epoll) -- */
#define TW_TICK_MS 16u         /* timer resolution: SMTP's timers are seconds */
#define TW_SLOTS 1024u         /* one turn = 16.384 s; must be a power of two */
#define LOOP_BATCH 256         /* epoll events per wait: one call serves many, in 3 KiB */


/* -- transport, listeners, control (conn, listen, control) -- */

/* Distinct bindings over all connectors: the listener table is static. */
#define MAX_LISTENERS 64
/* Connections accepted per readiness of one listener, so one busy
 * listener cannot hold the loop. */
#define ACCEPT_BATCH 64
/* Lingering close: how long the last reply gets to reach the client
 * while its further input is discarded. */
#define LINGER_MS 2000
/* Housekeeping period: recipient file check, accept resume. */
#define TICK_MS 1000
/* A TLS handshake must finish within this. */
#define HANDSHAKE_MS 30000
/* Control clients served at once; when all are taken, the one that has
 * waited longest gives its place to a new one. */
#define CONTROL_CLIENTS 4
/* A control client that sends no request, or reads none of its answer,
 * for this long is closed (SPEC §9: each request within 1 s). */
#define CONTROL_DEADLINE_MS 1000
#define CONTROL_REQ_MAX 64      /* one request line ("forgive ADDR") */
#define CONTROL_LINE_MAX 1024   /* one answer line: the longest stats line fits */
#define CONTROL_LINES_PER_EVENT 32 /* answer lines sent per readiness: no client holds the loop */
/* Ban commands the privileged helper runs at once; more fail (counted). */
#define PRIV_CHILDREN 8
/* Replies queued per connection; then the transport stops reading
 * (back-pressure). 16 covers a full pipelined group and its 421. */
#define OUTQ_MAX 16
/* Shared read buffer: message data is filtered in pieces of this. */
#define READ_BUF 16384
/* A TLS read during message data: no larger than the line buffer
 * (SMTP_LINE_MAX), so what follows the end of data fits there. */
#define TLS_READ_CHUNK SMTP_LINE_MAX

/* Descriptors the daemon may hold beside its sessions' (each session: its
 * socket and, in DATA, its message file), counted at their bound so a
 * reload can never need more: stdin, stdout, stderr (3); the syslog
 * socket; the loop (epoll); the signal pipe (2); the accept reserve; the
 * spool and its tmp/ (2); the control socket and its clients; every
 * listener the table can hold (a reload may add bindings up to it); and 2
 * held for a moment (a delivery's mailbox and new/ directories, a file
 * read at reload, musl's posix_spawn pipe). The daemon needs
 * 2 x max_connections + FD_RESERVED (docs/config.md, "Descriptor needs");
 * the init script computes the same number from the INI. */
#define FD_RESERVED (3 + 1 + 1 + 2 + 1 + 2 + 1 + CONTROL_CLIENTS + MAX_LISTENERS + 2)

/* -- forwarding (smtp_client, queue) -- */
/* A reply line from a next hop, CRLF included: RFC 5321 §4.5.3.1.5 says
 * 512; a longer one is a protocol failure, never a split line. */
#define CLIENT_LINE_MAX 512
/* Lines of one multi-line reply: an EHLO lists a dozen keywords; a server
 * that streams continuation lines for ever is broken. */
#define CLIENT_REPLY_LINES_MAX 64
/* The reply text kept for the log and the envelope: the lines joined by a
 * space, cut here (the enhanced code and the reason come first). */
#define CLIENT_TEXT_MAX 200
/* Commands written at once: MAIL and a few RCPTs of a pipelined group,
 * or the longest single command (AUTH PLAIN with a 64-octet user and a
 * 256-octet password is 446 octets); a larger group goes in batches. */
#define CLIENT_OUT_MAX 2048
/* Waits of the client (RFC 5321 §4.5.3.2, the minimum values it asks a
 * client to allow): greeting 5 min, MAIL and RCPT 5 min, DATA's 354
 * 2 min, each piece of the body 3 min, the reply to the final dot 10 min.
 * EHLO, STARTTLS, AUTH and RSET are given the 5 minutes of a command; QUIT
 * only 10 s, since nothing depends on its answer. The connect is not in
 * the RFC: 30 s, then the next hop counts as down. */
#define CLIENT_CONNECT_MS 30000u
#define CLIENT_GREETING_MS 300000u
#define CLIENT_COMMAND_MS 300000u
#define CLIENT_DATA_INIT_MS 120000u
#define CLIENT_DATA_BLOCK_MS 180000u
#define CLIENT_DATA_TERM_MS 600000u
#define CLIENT_QUIT_MS 10000u
/* The forwarding queue. An envelope file is read whole into a buffer of
 * this size; queue_add() refuses an envelope that could outgrow it when
 * every recipient's reply text is at its longest, so every envelope the
 * queue wrote can be read back. 64 KiB holds 200 recipients of 64 octets
 * with room for their replies. */
#define QUEUE_ENV_MAX 65536u
/* Recipients of one queued message: what one message can have. */
#define QUEUE_RCPTS_MAX CONF_RCPTS_PER_MESSAGE_MAX
/* A recipient's last reply as stored (before %-escaping). */
#define QUEUE_REPLY_MAX 160
/* Directory entries a recovery step looks at, so 10,000 queued messages
 * are recovered in many short steps between other work. */
#define QUEUE_RECOVER_STEP 64
/* [relay] sections per file, and parallel sessions per next hop (and of
 * all of them together: the outbound table, allocated at start). */
#define CONF_MAX_RELAYS 16
#define RELAY_CONNS_MAX 64
#define RELAY_CONNS_TOTAL 128
/* A relay's domains as written, each NUL-terminated (about 40 domains). */
#define RELAY_DOMAINS_MAX 1024
/* Next hops whose queued entries the queue keeps apart (queue.c's
 * groups: the scheduler passes over a hop that is down or busy in one
 * look); the entries of any further ones share one more group and are
 * looked at one by one. At most 255; 16 octets each. */
#define QUEUE_HOP_GROUPS RELAY_HOPS_MAX
/* max_queued: 1..this many entries (44 octets each: 4.4 MB at most). */
#define QUEUE_MAX_QUEUED 100000u
/* The forwarded recipients of one transaction, kept per slot beside the
 * envelope (relay index octet + address + NUL each): about 30 of 64
 * octets. A RCPT that does not fit is answered 452 4.5.3 (RFC 5321
 * §4.5.3.1.10: the client sends the rest in another transaction), so the
 * slot never grows. Only written when a recipient is forwarded: a slot
 * that never forwards never touches these pages. */
#define SESSION_FWD_MAX 2048
/* The outbound transport (relay_session.c), per session: what one read
 * takes from the next hop (a few reply lines; the rest stays in the
 * socket), the piece of the message file read at once, and the pieces
 * sent per loop event, so a large message takes turns with the other
 * sessions (16 x 4 KiB: a few milliseconds of a router's loop). */
#define RELAY_READ_BUF 1024
#define RELAY_BODY_CHUNK 4096
#define RELAY_BODY_SLICE 16
/* An outbound session whose message is done and whose next hop has
 * nothing more due stays open this long for the next one (Postfix's
 * smtp_connection_cache_time_limit, 2 s by default): under a steady
 * stream of mail, committed one message at a time, each would otherwise
 * cost the next hop a connect, EHLO (and TLS) and QUIT. Short, so an idle
 * session holds one of the hop's max_connections and two descriptors
 * only briefly, and ends well before a next hop's own idle timeout
 * (Postfix's smtpd_timeout is 300 s). */
#define RELAY_IDLE_MS 2000u
/* Next hops whose state (down time, sessions, counters) is kept by name:
 * the configured ones and, until their sessions end, those a reload
 * removed. */
#define RELAY_HOPS_MAX (2 * CONF_MAX_RELAYS)
/* The original headers attached to a DSN: the rest is cut (RFC 3464 asks
 * only for the headers, and a DSN must not become a large message). */
#define DSN_HEADERS_MAX 16384u

/* The TLS client (tls_client.h): CA profiles — one per [relay] with a
 * ca_file, plus profile 0 that verifies nothing; the longest tls_name
 * (a DNS name, and mbedTLS's MBEDTLS_SSL_MAX_HOST_NAME_LEN); one
 * tlsc_error() line with its NUL, short enough for a log line and a
 * queue entry's last reply (QUEUE_REPLY_MAX). */
#define TLSC_PROFILES_MAX (CONF_MAX_RELAYS + 1)
#define TLSC_NAME_MAX 255
#define TLSC_ERR_MAX 128

#endif
