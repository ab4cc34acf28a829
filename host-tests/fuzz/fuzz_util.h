/* Shared helpers of the libFuzzer targets in this directory.
 *
 * The file parsers read a path, so each target keeps one temporary file
 * per process, rewritten for every input and removed at exit. A check that
 * fails aborts, which libFuzzer reports as a crash with its input saved.
 */
#ifndef TARPITD_FUZZ_UTIL_H
#define TARPITD_FUZZ_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The harnesses' own loops and checks are not what is being fuzzed: left
 * uninstrumented they cost no time and add no misleading coverage. */
#define NOCOV __attribute__((no_sanitize("coverage")))

#define FUZZ_CHECK(cond)                                                               \
	do {                                                                           \
		if (!(cond)) {                                                         \
			fprintf(stderr, "%s:%d: invariant violated: %s\n", __FILE__,   \
				__LINE__, #cond);                                      \
			abort();                                                       \
		}                                                                      \
	} while (0)

static char fuzz_tmp_path[256];

NOCOV static inline void fuzz_tmp_cleanup(void)
{
	if (fuzz_tmp_path[0])
		unlink(fuzz_tmp_path);
}

/* /dev/shm keeps the per-input rewrite off the disk where it exists. */
NOCOV static inline const char *fuzz_tmp_dir(void)
{
	struct stat st;
	const char *t = getenv("TMPDIR");

	if (stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) && access("/dev/shm", W_OK) == 0)
		return "/dev/shm";
	return t && *t ? t : "/tmp";
}

/* The one temporary path of this process, named after the target. */
NOCOV static inline const char *fuzz_tmp_file(const char *target)
{
	if (!fuzz_tmp_path[0]) {
		snprintf(fuzz_tmp_path, sizeof fuzz_tmp_path, "%s/tarpitd-fuzz-%s-%ld", fuzz_tmp_dir(),
			 target, (long)getpid());
		atexit(fuzz_tmp_cleanup);
	}
	return fuzz_tmp_path;
}

/* Writes data to path with the given mode (fchmod: the file may exist
 * from the previous input with another mode). Aborts on failure: a
 * harness that cannot write its input tests nothing. */
NOCOV static inline void fuzz_write_file(const char *path, const uint8_t *data, size_t size, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	size_t off = 0;

	if (fd < 0) {
		fprintf(stderr, "open %s: %s\n", path, strerror(errno));
		abort();
	}
	if (fchmod(fd, mode) != 0) {
		fprintf(stderr, "fchmod %s: %s\n", path, strerror(errno));
		abort();
	}
	while (off < size) {
		ssize_t n = write(fd, data + off, size - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			fprintf(stderr, "write %s: %s\n", path, strerror(errno));
			abort();
		}
		off += (size_t)n;
	}
	close(fd);
}

/* Error text of the loaders: NUL-terminated within len, and every line
 * "PATH:..." (a line cut by the buffer end may be shorter). */
NOCOV static inline void fuzz_check_errors(const char *err, size_t len, const char *path)
{
	size_t plen = strlen(path);
	const char *p = err, *end = memchr(err, 0, len);

	FUZZ_CHECK(end != NULL);
	FUZZ_CHECK(end > err); /* a failure says why */
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t l = nl ? (size_t)(nl - p) : (size_t)(end - p);
		bool last = nl == NULL;

		if (!(last && end == err + len - 1 && l <= plen)) {
			FUZZ_CHECK(l > plen && memcmp(p, path, plen) == 0 && p[plen] == ':');
		}
		p += l + (nl ? 1 : 0);
	}
}

/* A NUL-terminated copy in a block of exactly size + 1 octets, so a read
 * past the terminator is caught by ASan. */
NOCOV static inline char *fuzz_cstr(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (!s)
		abort();
	memcpy(s, data, size);
	s[size] = 0;
	return s;
}

#endif
