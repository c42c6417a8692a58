#include "cli.h"
#include "opts.h"

#include <stdarg.h>

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "../common/buf.h"
#include "../common/fsutil.h"

#include <json-c/json.h>

#define PASS_MAX 4096

int cli_exit_for(int code, bool during_open)
{
	switch (code) {
	case 0:
		return FV_EXIT_OK;
	case -ENOKEY:
	case -EKEYREJECTED:
		return FV_EXIT_PASS;
	case -EMEDIUMTYPE:
		return FV_EXIT_NOREPO;
	case -ENOENT:
	case -ENOTDIR:
		return during_open ? FV_EXIT_NOREPO : FV_EXIT_NOTFOUND;
	case -EPROTONOSUPPORT:
		return FV_EXIT_VERSION;
	case -EBUSY:
		return FV_EXIT_LOCKED;
	case -EUCLEAN:
	case -EBADMSG:
		return FV_EXIT_DAMAGED;
	case -ENOSPC:
	case -EDQUOT:
		return FV_EXIT_NOSPACE;
	case -EINVAL:
		return FV_EXIT_USAGE;
	default:
		return FV_EXIT_ERROR;
	}
}

int cli_fail(struct cli *c, const struct fv_err *e, bool during_open)
{
	cli_progress_done(c);
	fv_log(&c->log, LOG_ERR, "%s", e->msg[0] ? e->msg : strerror(-e->code));
	return cli_exit_for(e->code, during_open);
}

static int set_pass(struct cli *c, const char *p, size_t n)
{
	while (n && (p[n - 1] == '\n' || p[n - 1] == '\r'))
		n--;
	cli_forget_passphrase(c);
	c->pass = sodium_malloc(n + 1);
	if (!c->pass)
		return -ENOMEM;
	memcpy(c->pass, p, n);
	c->pass[n] = 0;
	c->passlen = n;
	return 0;
}

void cli_forget_passphrase(struct cli *c)
{
	if (c->pass)
		sodium_free(c->pass);
	c->pass = NULL;
	c->passlen = 0;
}

static int read_pass_file(struct cli *c, int dirfd, const char *path, const char *what)
{
	uint8_t *p = NULL;
	size_t n;
	int rc = fv_read_file(dirfd, path, PASS_MAX, &p, &n);
	if (rc < 0) {
		fv_log(&c->log, LOG_ERR, "cannot read passphrase from %s %s: %s", what, path, strerror(-rc));
		return FV_EXIT_PASS;
	}
	rc = set_pass(c, (char *)p, n);
	sodium_memzero(p, n);
	free(p);
	return rc < 0 ? FV_EXIT_ERROR : 0;
}

static int ask_tty(const char *prompt, char *buf, size_t cap)
{
	int fd = open("/dev/tty", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -ENOTTY;
	struct termios old, noecho;
	int rc = 0;
	if (tcgetattr(fd, &old) < 0) {
		close(fd);
		return -ENOTTY;
	}
	noecho = old;
	noecho.c_lflag &= ~(tcflag_t)ECHO;
	noecho.c_lflag |= ECHONL;
	if (write(fd, prompt, strlen(prompt)) < 0 || tcsetattr(fd, TCSAFLUSH, &noecho) < 0) {
		close(fd);
		return -EIO;
	}
	size_t n = 0;
	for (;;) {
		char ch;
		ssize_t r = read(fd, &ch, 1);
		if (r <= 0 || ch == '\n')
			break;
		if (n + 1 < cap)
			buf[n++] = ch;
	}
	buf[n] = 0;
	tcsetattr(fd, TCSAFLUSH, &old);
	close(fd);
	return rc;
}

int cli_get_passphrase(struct cli *c, bool confirm)
{
	const char *env = getenv("FABVAULT_PASSPHRASE");
	const char *cred = getenv("CREDENTIALS_DIRECTORY");
	if (c->passphrase_file)
		return read_pass_file(c, AT_FDCWD, c->passphrase_file, "file");
	if (env)
		return set_pass(c, env, strlen(env)) < 0 ? FV_EXIT_ERROR : 0;
	if (cred) {
		char path[4096];
		snprintf(path, sizeof path, "%s/fabvault-passphrase", cred);
		if (access(path, F_OK) == 0)
			return read_pass_file(c, AT_FDCWD, path, "systemd credential");
	}
	char *a = sodium_malloc(PASS_MAX), *b = sodium_malloc(PASS_MAX);
	int rc = FV_EXIT_ERROR;
	if (!a || !b)
		goto out;
	if (ask_tty("Passphrase: ", a, PASS_MAX) < 0) {
		fv_log(&c->log, LOG_ERR,
		       "a passphrase is needed: set FABVAULT_PASSPHRASE, use --passphrase-file FILE, provide the "
		       "systemd credential fabvault-passphrase, or run on a terminal");
		rc = FV_EXIT_PASS;
		goto out;
	}
	if (confirm) {
		if (ask_tty("Passphrase (again): ", b, PASS_MAX) < 0 || strcmp(a, b) != 0) {
			fv_log(&c->log, LOG_ERR, "the two passphrases differ; nothing was created");
			rc = FV_EXIT_PASS;
			goto out;
		}
	}
	rc = set_pass(c, a, strlen(a)) < 0 ? FV_EXIT_ERROR : 0;
out:
	if (a)
		sodium_free(a);
	if (b)
		sodium_free(b);
	return rc;
}

int cli_open_repo(struct cli *c, const char *path, unsigned flags, struct fv_repo **r)
{
	struct fv_err e = {0};
	int need = fv_repo_needs_passphrase(path, &e);
	if (need < 0)
		return cli_fail(c, &e, true);
	if (need && !c->pass) {
		int rc = cli_get_passphrase(c, false);
		if (rc)
			return rc;
	}
	if (need && c->passlen == 0) {
		fv_log(&c->log, LOG_ERR,
		       "the passphrase for %s is empty (is FABVAULT_PASSPHRASE set but empty?)", path);
		return FV_EXIT_PASS;
	}
	int rc = fv_repo_open(path, flags, c->pass, c->passlen, r, &e);
	if (rc < 0)
		return cli_fail(c, &e, true);
	char host[256];
	long pid;
	if (fv_repo_took_stale_lock(*r, host, &pid))
		fv_log(&c->log, LOG_WARNING,
		       "took over the stale lock of %s left by process %ld on %s (no longer running)", path,
		       pid, host);
	return 0;
}

const char *cli_size(uint64_t n, char buf[32])
{
	static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
	double v = (double)n;
	int u = 0;
	while (v >= 1024 && u < 5) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, 32, "%llu B", (unsigned long long)n);
	else
		snprintf(buf, 32, "%.1f %s", v, unit[u]);
	return buf;
}

const char *cli_time(int64_t ns, char buf[32])
{
	time_t t = (time_t)(ns / 1000000000);
	struct tm tm;
	strftime(buf, 32, "%Y-%m-%d %H:%M:%S", localtime_r(&t, &tm));
	return buf;
}

static int64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void cli_progress(struct cli *c, uint64_t files, uint64_t total_files, uint64_t bytes, uint64_t total_bytes,
		  const char *what)
{
	if (!c->tty || c->quiet)
		return;
	int64_t now = mono_ns();
	if (!c->prog_start_ns)
		c->prog_start_ns = now;
	double secs = (double)(now - c->prog_start_ns) / 1e9;
	double rate = secs > 0.2 ? (double)bytes / secs : 0;
	char b[32], tb[32], r[32], eta[32] = "";
	if (total_bytes && rate > 0 && bytes <= total_bytes) {
		uint64_t left = (uint64_t)((double)(total_bytes - bytes) / rate);
		snprintf(eta, sizeof eta, ", ETA %llu:%02llu", (unsigned long long)(left / 60),
			 (unsigned long long)(left % 60));
	}
	if (total_files)
		fprintf(stderr, "\r\033[K%s: %llu/%llu files, %s/%s, %s/s%s", what, (unsigned long long)files,
			(unsigned long long)total_files, cli_size(bytes, b), cli_size(total_bytes, tb),
			cli_size((uint64_t)rate, r), eta);
	else
		fprintf(stderr, "\r\033[K%s: %llu files, %s, %s/s", what, (unsigned long long)files,
			cli_size(bytes, b), cli_size((uint64_t)rate, r));
	c->prog_shown = true;
}

void cli_warn(void *ud, const char *path, int code, const char *msg)
{
	struct cli *c = ud;
	cli_progress_done(c);
	if (code)
		fv_log(&c->log, LOG_WARNING, "%s: %s: %s", path, msg, strerror(-code));
	else
		fv_log(&c->log, LOG_WARNING, "%s: %s", path, msg);
}

void cli_progress_done(struct cli *c)
{
	if (c->prog_shown)
		fputs("\r\033[K", stderr);
	c->prog_shown = false;
}

int cli_common_opt(struct cli *c, int opt, const char *cmd, const char *help)
{
	switch (opt) {
	case 'h':
		fputs(help, stdout);
		return FV_EXIT_OK;
	case 'q':
		c->quiet = true;
		return -1;
	case 'v':
		c->log.max_prio = LOG_DEBUG;
		return -1;
	case FV_OPT_JSON:
		c->json = true;
		return -1;
	case FV_OPT_PASSFILE:
		c->passphrase_file = optarg;
		return -1;
	default:
		fprintf(stderr, "Try 'fabvault %s --help'.\n", cmd);
		return FV_EXIT_USAGE;
	}
}

int cli_usage(struct cli *c, const char *cmd, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	fv_log(&c->log, LOG_ERR, "%s: %s", cmd, msg);
	fprintf(stderr, "Try 'fabvault %s --help'.\n", cmd);
	return FV_EXIT_USAGE;
}

/* Length of the valid UTF-8 sequence at p (1..4), or 0 if invalid. */
static size_t utf8_seq(const unsigned char *p)
{
	if (p[0] < 0x80)
		return 1;
	size_t n;
	uint32_t cp;
	if ((p[0] & 0xe0) == 0xc0) {
		n = 2;
		cp = p[0] & 0x1f;
	} else if ((p[0] & 0xf0) == 0xe0) {
		n = 3;
		cp = p[0] & 0x0f;
	} else if ((p[0] & 0xf8) == 0xf0) {
		n = 4;
		cp = p[0] & 0x07;
	} else {
		return 0;
	}
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	/* overlong forms, surrogates, beyond U+10FFFF */
	if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

struct json_object *cli_json_strval(const char *s, bool *valid)
{
	const unsigned char *p = (const unsigned char *)s;
	struct fv_buf b = {0};
	*valid = true;
	while (*p) {
		size_t n = utf8_seq(p);
		if (n) {
			fv_buf_put(&b, p, n);
			p += n;
		} else {
			fv_buf_put(&b, "\xef\xbf\xbd", 3);
			*valid = false;
			p++;
		}
	}
	if (*valid) {
		fv_buf_free(&b);
		return json_object_new_string(s);
	}
	struct json_object *o = json_object_new_string_len(b.data ? (const char *)b.data : "", (int)b.len);
	fv_buf_free(&b);
	return o;
}

void cli_json_str(struct json_object *o, const char *key, const char *s)
{
	bool valid;
	json_object_object_add(o, key, cli_json_strval(s, &valid));
	if (!valid) {
		size_t n = strlen(s);
		char *hex = malloc(2 * n + 1), k[128];
		if (!hex)
			return;
		fv_hex((const uint8_t *)s, n, hex);
		snprintf(k, sizeof k, "%s_hex", key);
		json_object_object_add(o, k, json_object_new_string(hex));
		free(hex);
	}
}
