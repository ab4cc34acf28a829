/* gen: configuration generations, the connectors' run-time counters,
 * reload and the recipient-file watch.
 *
 * Promises: a generation is one loaded configuration, reference-counted:
 * each session holds the one it started on, so a reload (SIGHUP) never
 * changes a session in progress, and a failed reload changes nothing. A
 * connector's counters survive reloads by name. The recipient file is
 * re-read when its mtime changes (a bad file is not retried until it
 * changes again). Allocates only at start and on reload.
 */
#ifndef TARPITD_GEN_H
#define TARPITD_GEN_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "server.h"

/* What survives a reload for one connector name: its counters (with its
 * connection count), shared by old and new sessions. */
struct connector_rt {
	struct stats st;
	struct connector_rt *next;
	char name[CONF_NAME_MAX];
};

struct gen;

struct connector {
	const struct connector_conf *cf;
	struct connector_rt *rt;
	struct gen *gen;
};

struct gen {
	struct connector *connectors;
	unsigned n;
	uint32_t refs;
	struct config cfg; /* last: the others stay in MIPS16's short reach */
};

/* Takes ownership of cfg (also on failure). */
struct gen *gen_new(struct config *cfg);
void gen_unref(struct gen *g);
/* Makes g the configuration new sessions start on. */
void gen_use(struct gen *g);
/* SIGHUP: the INI, the recipient file and the users file again. */
void gen_reload(void);
/* Every tick: reloads the recipient file if it changed. */
void gen_check_recipients(void);
/* Frees the connectors' counters (at exit). */
void gen_free_all(void);
/* Logs each line of a multi-line error text on its own. */
void log_lines(char *err);

/* Counts an event for the server and for connector cn, if there is one. */
void stat_add(const struct connector *cn, size_t off);
#define STAT(c, field) stat_add((c)->connector, offsetof(struct stats, field))

#endif
