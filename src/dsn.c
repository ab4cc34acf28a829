/* dsn: see dsn.h. */
#include "dsn.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "limits.h"

#define LINE_BUF 1024
#define TEXT_CUT 300 /* a reply or an address as quoted: both fit a line */

struct out {
	dsn_writer w;
	void *ctx;
	int err;
};

static void emit(struct out *o, const char *p, size_t n)
{
	if (!o->err && n && o->w(o->ctx, p, n) != 0)
		o->err = -1;
}

static void emitf(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void emitf(struct out *o, const char *fmt, ...)
{
	char line[LINE_BUF];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	if (n < 0) {
		o->err = -1;
		return;
	}
	emit(o, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

/* Printable ASCII only, cut: a reply cannot end a line or add one. */
static const char *neuter(char *buf, const char *s)
{
	size_t n = 0;

	for (; s && *s && n < TEXT_CUT; s++) {
		unsigned char c = (unsigned char)*s;

		buf[n++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	buf[n] = '\0';
	return buf;
}

/* RFC 5322 date in UTC, the names written here so no locale changes them
 * (the same form as maildir.c's Received: line). */
static void format_date(uint32_t sec, char *buf, size_t len)
{
	static const char days[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	time_t t = (time_t)sec;
	struct tm tm;

	if (!gmtime_r(&t, &tm) || tm.tm_wday < 0 || tm.tm_wday > 6 || tm.tm_mon < 0 || tm.tm_mon > 11) {
		snprintf(buf, len, "Thu, 1 Jan 1970 00:00:00 +0000");
		return;
	}
	snprintf(buf, len, "%s, %d %s %d %02d:%02d:%02d +0000", days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon],
		 tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static bool code_at(const char *r)
{
	return r && r[0] >= '2' && r[0] <= '5' && r[1] >= '0' && r[1] <= '9' && r[2] >= '0' && r[2] <= '9' &&
	       (r[3] == ' ' || r[3] == '-' || r[3] == '\0');
}

/* digits 1..max at *p, advancing. */
static size_t digits(const char *p, size_t max)
{
	size_t n = 0;

	while (n < max && p[n] >= '0' && p[n] <= '9')
		n++;
	return n;
}

void dsn_status(const char *reply, bool expired, char *out)
{
	if (expired) {
		memcpy(out, "4.4.7", 6);
		return;
	}
	if (!code_at(reply)) {
		memcpy(out, "4.4.1", 6); /* no answer from the next hop */
		return;
	}
	if (reply[3] == ' ' || reply[3] == '-') {
		/* RFC 3463: class "." subject (1-3 digits) "." detail (1-3 digits). */
		const char *p = reply + 4;
		size_t a, b;

		if (p[0] == reply[0] && p[1] == '.' && (a = digits(p + 2, 3)) > 0 && p[2 + a] == '.' &&
		    (b = digits(p + 3 + a, 3)) > 0 && (p[3 + a + b] == ' ' || p[3 + a + b] == '\0')) {
			memcpy(out, p, 3 + a + b);
			out[3 + a + b] = '\0';
			return;
		}
	}
	out[0] = reply[0];
	memcpy(out + 1, ".0.0", 5);
}

/* The headers of the stored message: up to the empty line that ends
 * them, at most DSN_HEADERS_MAX octets, ending at a line end. */
static size_t header_len(const char *m, size_t n)
{
	size_t cut = 0;

	if (n > DSN_HEADERS_MAX)
		n = DSN_HEADERS_MAX;
	for (size_t i = 0; i < n; i++) {
		if (m[i] != '\n')
			continue;
		if (i == cut) /* an empty line: the body starts */
			return cut;
		cut = i + 1;
	}
	return cut;
}

static bool contains(const char *h, size_t n, const char *s)
{
	size_t k = strlen(s);

	for (size_t i = 0; i + k <= n; i++)
		if (h[i] == s[0] && memcmp(h + i, s, k) == 0)
			return true;
	return false;
}

int dsn_write(const struct dsn_input *in, dsn_writer w, void *ctx)
{
	struct out o = { .w = w, .ctx = ctx };
	char boundary[96], date[40], arrival[40], status[16], a[TEXT_CUT + 1], r[TEXT_CUT + 1], mta[TEXT_CUT + 1];
	char host[TEXT_CUT + 1], to[TEXT_CUT + 1], id[TEXT_CUT + 1];
	size_t hlen = in->message ? header_len(in->message, in->message_len) : 0;
	bool delayed = true;

	if (!in->reporting_mta || !in->reporting_mta[0] || !in->id || !in->to || !in->rcpt || in->nrcpt == 0)
		return -1;
	for (unsigned i = 0; i < in->nrcpt; i++)
		delayed &= in->rcpt[i].action == DSN_DELAYED;
	neuter(host, in->reporting_mta);
	neuter(to, in->to);
	neuter(id, in->id);
	/* A boundary that none of the attached octets contains. */
	for (unsigned k = 0;; k++) {
		snprintf(boundary, sizeof boundary, "=_tarpitd_%.24s_%lu_%u", id, (unsigned long)in->now, k);
		if (!contains(in->message, hlen, boundary))
			break;
	}
	format_date(in->now, date, sizeof date);
	format_date(in->arrival, arrival, sizeof arrival);

	emitf(&o, "From: Mail Delivery System <MAILER-DAEMON@%s>\n", host);
	emitf(&o, "To: <%s>\n", to);
	emitf(&o, "Subject: %s\n", delayed ? "Delayed Mail (still being retried)" : "Undelivered Mail Returned to Sender");
	emitf(&o, "Date: %s\n", date);
	emitf(&o, "Message-ID: <%s.dsn.%lu@%s>\n", id, (unsigned long)in->now, host);
	/* RFC 3834: an automatic reply, never to be answered automatically. */
	emitf(&o, "Auto-Submitted: auto-replied\n");
	emitf(&o, "MIME-Version: 1.0\n");
	emitf(&o, "Content-Type: multipart/report; report-type=delivery-status;\n\tboundary=\"%s\"\n\n", boundary);
	emitf(&o, "This is a MIME-encapsulated message.\n\n");

	emitf(&o, "--%s\nContent-Type: text/plain; charset=us-ascii\nContent-Description: Notification\n\n", boundary);
	emitf(&o, "This is the mail system at host %s.\n\n", host);
	emitf(&o, "%s\n\n", delayed ? "Your message could not be delivered yet to the recipients below; it will be tried again."
			    : "Your message could not be delivered to the recipients below.");
	for (unsigned i = 0; i < in->nrcpt; i++) {
		const struct dsn_rcpt *x = &in->rcpt[i];

		emitf(&o, "<%s>: %s\n", neuter(a, x->addr),
		      x->reply && x->reply[0] ? neuter(r, x->reply) : "no answer from the next hop");
	}
	emitf(&o, "\n");

	emitf(&o, "--%s\nContent-Type: message/delivery-status\nContent-Description: Delivery report\n\n", boundary);
	emitf(&o, "Reporting-MTA: dns; %s\n", host);
	emitf(&o, "X-Tarpitd-Queue-ID: %s\n", id);
	emitf(&o, "Arrival-Date: %s\n", arrival);
	for (unsigned i = 0; i < in->nrcpt; i++) {
		const struct dsn_rcpt *x = &in->rcpt[i];

		dsn_status(x->reply, x->expired, status);
		emitf(&o, "\nFinal-Recipient: rfc822; %s\n", neuter(a, x->addr));
		emitf(&o, "Action: %s\n", x->action == DSN_DELAYED ? "delayed" : "failed");
		emitf(&o, "Status: %s\n", status);
		if (x->remote_mta && x->remote_mta[0])
			emitf(&o, "Remote-MTA: dns; %s\n", neuter(mta, x->remote_mta));
		if (code_at(x->reply))
			emitf(&o, "Diagnostic-Code: smtp; %s\n", neuter(r, x->reply));
		else
			emitf(&o, "Diagnostic-Code: X-tarpitd; %s\n",
			      x->expired ? "delivery time expired"
			      : x->reply && x->reply[0] ? neuter(r, x->reply) : "no answer from the next hop");
		emitf(&o, "Last-Attempt-Date: %s\n", date);
	}
	emitf(&o, "\n");

	emitf(&o, "--%s\nContent-Type: text/rfc822-headers\nContent-Description: Undelivered Message Headers\n\n",
	      boundary);
	emit(&o, in->message, hlen);
	emitf(&o, "\n--%s--\n", boundary);
	return o.err;
}
