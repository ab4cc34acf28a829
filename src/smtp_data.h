/* smtp_data: the message-data filter between DATA's 354 and <CRLF>.<CRLF>.
 *
 * Promises: pure and incremental — feed it any split of the stream, down
 * to one octet at a time, and it finds the same end. Only CRLF ends a line
 * and only <CRLF>.<CRLF> ends the data (SPEC §7): "\n.\n", "\r.\r",
 * "\n.\r\n", "\r\n.\n", "\r\r\n.\r\r\n" are content. Output is the stored
 * form: CRLF -> LF, leading dot removed. A bare CR or LF is remembered
 * (the message must then be refused) but scanning goes on to the real end.
 * The state is 2 bytes, kept in the connection slot.
 */
#ifndef TARPITD_SMTP_DATA_H
#define TARPITD_SMTP_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct smtp_data {
	uint8_t state;
	bool bare_eol; /* a bare CR or LF was seen */
};

void smtp_data_init(struct smtp_data *d);
/* Scans in[0..len). Writes stored octets to out, which must not overlap
 * in and must hold len + 1 octets (a CR held back from the previous call
 * may come out now), and sets *out_len. Returns the
 * number of input octets consumed: len, or fewer when the end of data was
 * found (*done = true; the rest belongs to the next command). */
size_t smtp_data_feed(struct smtp_data *d, const char *in, size_t len, char *out,
		      size_t *out_len, bool *done);

#endif
