#include "smtp_reply.h"

#include <stdio.h>
#include <string.h>

struct reply_def {
	unsigned short code;
	const char *text; /* after the code: enhanced code and words */
};

/* Texts are free (SPEC §7), codes are not: keep texts short, they cross
 * the wire once per reply on a slow uplink. */
static const struct reply_def defs[R__COUNT] = {
	[R_NONE] = {0, ""},
	/* Greeting, HELO and queued end in a value of the reply context. */
	[R_GREETING] = {220, ""},
	[R_EHLO] = {250, NULL},
	[R_HELO] = {250, ""},
	[R_421_FULL] = {421, "4.3.2 Service busy, try again later"},
	[R_421_SOURCE] = {421, "4.7.0 Too many connections from your address"},
	[R_421_NOMATCH] = {421, "4.3.2 No service for your address"},
	[R_421_SHUTDOWN] = {421, "4.3.2 Service shutting down"},
	[R_421_TIMEOUT] = {421, "4.4.2 Timeout, closing connection"},
	[R_421_ERRORS] = {421, "4.7.0 Too many errors, closing connection"},
	[R_421_UNKNOWN] = {421, "4.7.0 Too many unknown recipients, closing connection"},
	[R_501_HELO] = {501, "5.5.4 Syntax: EHLO/HELO domain"},
	[R_501_ARGS] = {501, "5.5.4 Invalid arguments"},
	[R_250_MAIL] = {250, "2.1.0 Sender OK"},
	[R_503_SEQ_HELO] = {503, "5.5.1 Send EHLO or HELO first"},
	[R_503_SEQ_NESTED] = {503, "5.5.1 Sender already specified"},
	[R_503_SEQ_MAIL] = {503, "5.5.1 Need MAIL command first"},
	[R_501_SENDER] = {501, "5.1.7 Bad sender address syntax"},
	[R_501_RCPT] = {501, "5.1.3 Bad recipient address syntax"},
	[R_552_SIZE] = {552, "5.3.4 Message size exceeds fixed limit"},
	[R_555_PARAM] = {555, "5.5.4 Unsupported parameter"},
	[R_250_RCPT] = {250, "2.1.5 Recipient OK"},
	[R_550_UNKNOWN] = {550, "5.1.1 User unknown"},
	[R_550_RELAY] = {550, "5.7.1 Relaying denied"},
	[R_452_RCPTS] = {452, "4.5.3 Too many recipients"},
	[R_554_NORCPT] = {554, "5.5.1 No valid recipients"},
	[R_354] = {354, "End data with <CR><LF>.<CR><LF>"},
	[R_250_QUEUED] = {250, "2.0.0 Ok: queued as "},
	[R_552_TOOBIG] = {552, "5.3.4 Message size exceeds fixed limit"},
	[R_550_BAREEOL] = {550, "5.5.2 Bare CR or LF in message data"},
	[R_452_STORAGE] = {452, "4.3.1 Insufficient system storage"},
	[R_452_QUEUE] = {452, "4.3.1 Forwarding queue full, try again later"},
	[R_250_OK] = {250, "2.0.0 OK"},
	[R_252_VRFY] = {252, "2.5.2 Cannot VRFY user, but will accept message"},
	[R_502_EXPN] = {502, "5.5.1 EXPN not available"},
	[R_214_HELP] = {214, "2.0.0 See RFC 5321"},
	[R_221_BYE] = {221, "2.0.0 Bye"},
	[R_500_UNKNOWN] = {500, "5.5.1 Command unrecognized"},
	[R_500_TOOLONG] = {500, "5.5.2 Line too long"},
	[R_500_BADCHAR] = {500, "5.5.2 Invalid character in command"},
	[R_502_BDAT] = {502, "5.5.1 CHUNKING not offered"},
	[R_502_HTTP] = {502, "5.5.1 This is an SMTP server"},
	[R_502_AUTH] = {502, "5.5.1 AUTH not available"},
	[R_454_TLS] = {454, "4.7.0 TLS not available"},
	[R_554_PIPE] = {554, "5.5.0 Data sent before the 354 reply"},
	[R_554_EARLY] = {554, "5.5.1 You talked before my greeting"},
	[R_220_TLS] = {220, "2.0.0 Ready to start TLS"},
	[R_503_TLS] = {503, "5.5.1 STARTTLS not possible now"},
	[R_501_TLS] = {501, "5.5.4 Syntax: STARTTLS"},
	[R_530_TLS] = {530, "5.7.0 Must issue a STARTTLS command first"},
	[R_334_EMPTY] = {334, ""},
	[R_334_USER] = {334, "VXNlcm5hbWU6"},
	[R_334_PASS] = {334, "UGFzc3dvcmQ6"},
	[R_235_AUTH] = {235, "2.7.0 Authentication successful"},
	[R_535_AUTH] = {535, "5.7.8 Authentication credentials invalid"},
	[R_538_AUTH] = {538, "5.7.11 Encryption required for requested authentication mechanism"},
	[R_504_AUTH] = {504, "5.5.4 Unrecognized authentication type"},
	[R_503_AUTH] = {503, "5.5.1 AUTH not possible now"},
	[R_501_AUTH_B64] = {501, "5.5.2 Cannot decode response"},
	[R_501_AUTH_CANCEL] = {501, "5.7.0 Authentication cancelled"},
	[R_500_AUTH_LONG] = {500, "5.5.6 Authentication exchange line is too long"},
	[R_421_AUTH] = {421, "4.7.0 Too many authentication failures, closing connection"},
};

int reply_code(enum reply_id id)
{
	return (unsigned)id < R__COUNT ? defs[id].code : 0;
}

bool reply_is_protocol_error(enum reply_id id)
{
	int code = reply_code(id);

	return (code >= 500 && code <= 504) || code == 555;
}

size_t reply_render(enum reply_id id, const struct reply_ctx *ctx, char *buf, size_t len)
{
	const char *tail = "";
	int n;

	if ((unsigned)id >= R__COUNT || id == R_NONE)
		return 0;
	if (id == R_EHLO)
		n = snprintf(buf, len,
			     "250-%s Hello [%s]\r\n"
			     "250-SIZE %llu\r\n"
			     "%s"
			     "250-8BITMIME\r\n"
			     "%s%s"
			     "250 ENHANCEDSTATUSCODES\r\n",
			     ctx->fqdn, ctx->peer_ip, (unsigned long long)ctx->max_size,
			     ctx->pipelining ? "250-PIPELINING\r\n" : "",
			     ctx->starttls ? "250-STARTTLS\r\n" : "",
			     ctx->auth ? "250-AUTH PLAIN LOGIN\r\n" : "");
	else {
		/* The three replies that end in a value from the context. */
		if (id == R_GREETING)
			tail = ctx->banner;
		else if (id == R_HELO)
			tail = ctx->fqdn;
		else if (id == R_250_QUEUED)
			tail = ctx->queue_id;
		n = snprintf(buf, len, "%u %s%s\r\n", defs[id].code, defs[id].text, tail);
	}
	return n > 0 && (size_t)n < len ? (size_t)n : 0;
}
