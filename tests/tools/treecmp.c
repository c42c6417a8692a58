/* treecmp: compare two directory trees the way a restore must reproduce them.
 *
 *   treecmp [-v] [--no-owner] [--atime] [--no-atime] A B
 *
 * Walks A and B in parallel without following symlinks and prints one line
 * per difference, paths relative to the roots ("." is the root itself):
 * entries present on one side only, type, permission bits (& 07777), owner
 * (unless --no-owner), size (not for directories, whose st_size depends on
 * the filesystem), mtime to the nanosecond (symlinks and directories too),
 * symlink targets, file contents, device numbers, xattrs (every namespace
 * llistxattr shows) and hardlink groups (the partition of non-directory
 * paths by inode must be the same on both sides). atime is compared only
 * with --atime: restores do not keep it and reading a tree changes it;
 * --no-atime is accepted for scripts that want to say so explicitly.
 * With -v, also prints the allocated bytes of each regular file on both
 * sides (sparse layout is reported, never compared).
 *
 * Exit: 0 equal, 1 differences, 2 usage or I/O error (I/O errors are
 * printed and the walk goes on). Names may hold any byte but '/' and NUL:
 * control bytes, backslash and invalid UTF-8 are printed as C escapes.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#define BLOCK (1u << 20)

struct side {
	const char *root;
	struct link *links; /* non-directories with st_nlink > 1 */
	size_t nlinks, caplinks;
};

struct link {
	char *rel; /* path relative to the root */
	dev_t dev;
	ino_t ino;
	const char *rep; /* smallest path of the same inode (points into links) */
};

static struct {
	bool owner, atime, verbose;
	int io_errors;
	long diffs;
	uint8_t *buf_a, *buf_b;
} g = {.owner = true};

/* Length of the UTF-8 sequence that lead byte c starts; 0 if c cannot lead. */
static size_t utf8_len(unsigned char c)
{
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c < 0xe0)
		return 2;
	if ((c & 0xf0) == 0xe0)
		return 3;
	if (c >= 0xf0 && c < 0xf5)
		return 4;
	return 0;
}

/* Print s with C escapes for control bytes, backslash, quote and invalid
 * UTF-8; valid UTF-8 sequences pass through so names stay readable. */
static void put_escaped(FILE *f, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	while (*p) {
		unsigned char c = *p;
		size_t n = utf8_len(c);
		bool valid = n > 0;
		for (size_t i = 1; valid && i < n; i++)
			valid = (p[i] & 0xc0) == 0x80;
		if (!valid || c < 0x20 || c == 0x7f || c == '\\' || c == '"') {
			switch (c) {
			case '\n':
				fputs("\\n", f);
				break;
			case '\t':
				fputs("\\t", f);
				break;
			case '\\':
				fputs("\\\\", f);
				break;
			case '"':
				fputs("\\\"", f);
				break;
			default:
				fprintf(f, "\\x%02x", c);
			}
			p++;
			continue;
		}
		fwrite(p, 1, n, f);
		p += n;
	}
}

/* Start a difference line: "<what>: <path>"; the caller ends it with
 * ": <detail>\n" or "\n". */
static void diff_begin(const char *what, const char *rel)
{
	g.diffs++;
	printf("%s: ", what);
	put_escaped(stdout, rel);
}

static void io_error(const char *root, const char *rel, const char *op, int err)
{
	g.io_errors++;
	fflush(stdout);
	fprintf(stderr, "treecmp: %s ", op);
	put_escaped(stderr, root);
	putc('/', stderr);
	put_escaped(stderr, rel);
	fprintf(stderr, ": %s\n", strerror(err));
}

/* p, or exit 2 when an allocation returned NULL. */
static void *must(void *p)
{
	if (!p) {
		perror("treecmp");
		exit(2);
	}
	return p;
}

static char *join(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	char *s = must(malloc(la + 1 + lb + 1));
	memcpy(s, a, la);
	s[la] = '/';
	memcpy(s + la + 1, b, lb + 1);
	return s;
}

/* "root/rel" (rel "." is the root itself). */
static char *full(const struct side *s, const char *rel)
{
	return join(s->root, rel);
}

static const char *type_name(mode_t m)
{
	switch (m & S_IFMT) {
	case S_IFREG:
		return "file";
	case S_IFDIR:
		return "directory";
	case S_IFLNK:
		return "symlink";
	case S_IFCHR:
		return "char device";
	case S_IFBLK:
		return "block device";
	case S_IFIFO:
		return "fifo";
	case S_IFSOCK:
		return "socket";
	}
	return "unknown";
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted entry names of directory path (without "." and ".."), or NULL on
 * error (reported). */
static char **list_dir(const struct side *s, const char *rel, size_t *n)
{
	char *path = full(s, rel);
	DIR *d = opendir(path);
	char **names = NULL;
	size_t cap = 0;
	*n = 0;
	if (!d) {
		io_error(s->root, rel, "opendir", errno);
		free(path);
		return NULL;
	}
	for (;;) {
		errno = 0;
		struct dirent *de = readdir(d);
		if (!de) {
			if (errno)
				io_error(s->root, rel, "readdir", errno);
			break;
		}
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (*n == cap) {
			cap = cap ? cap * 2 : 32;
			names = must(realloc(names, cap * sizeof *names));
		}
		names[(*n)++] = must(strdup(de->d_name));
	}
	closedir(d);
	free(path);
	if (*n)
		qsort(names, *n, sizeof *names, cmp_names);
	else if (!names)
		names = must(malloc(sizeof *names));
	return names;
}

static void free_names(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

static void note_link(struct side *s, const char *rel, const struct stat *st)
{
	if (S_ISDIR(st->st_mode) || st->st_nlink < 2)
		return;
	if (s->nlinks == s->caplinks) {
		s->caplinks = s->caplinks ? s->caplinks * 2 : 64;
		s->links = must(realloc(s->links, s->caplinks * sizeof *s->links));
	}
	s->links[s->nlinks++] = (struct link){.rel = must(strdup(rel)), .dev = st->st_dev, .ino = st->st_ino};
}

static void cmp_times(const char *what, const char *rel, const struct timespec *a, const struct timespec *b)
{
	if (a->tv_sec == b->tv_sec && a->tv_nsec == b->tv_nsec)
		return;
	diff_begin(what, rel);
	printf(": %lld.%09ld vs %lld.%09ld\n", (long long)a->tv_sec, a->tv_nsec, (long long)b->tv_sec,
	       b->tv_nsec);
}

static void cmp_link_target(const struct side *sa, const struct side *sb, const char *rel)
{
	char ta[PATH_MAX + 1], tb[PATH_MAX + 1];
	char *pa = full(sa, rel), *pb = full(sb, rel);
	ssize_t la = readlink(pa, ta, PATH_MAX), lb = readlink(pb, tb, PATH_MAX);
	if (la < 0)
		io_error(sa->root, rel, "readlink", errno);
	if (lb < 0)
		io_error(sb->root, rel, "readlink", errno);
	if (la >= 0 && lb >= 0) {
		ta[la] = tb[lb] = '\0';
		if (la != lb || memcmp(ta, tb, (size_t)la) != 0) {
			diff_begin("target differs", rel);
			fputs(": \"", stdout);
			put_escaped(stdout, ta);
			fputs("\" vs \"", stdout);
			put_escaped(stdout, tb);
			fputs("\"\n", stdout);
		}
	}
	free(pa);
	free(pb);
}

/* Where both sides have a hole at off, return the end of the shorter hole
 * (both read as zeros up to there); else off. */
static off_t skip_common_hole(int fa, int fb, off_t off, off_t size)
{
	off_t da = lseek(fa, off, SEEK_DATA), db = lseek(fb, off, SEEK_DATA);
	if (da < 0)
		da = errno == ENXIO ? size : off;
	if (db < 0)
		db = errno == ENXIO ? size : off;
	off_t next = da < db ? da : db;
	return next > off ? next : off;
}

static void cmp_content(const struct side *sa, const struct side *sb, const char *rel, off_t size)
{
	char *pa = full(sa, rel), *pb = full(sb, rel);
	int fa = open(pa, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	int fb = open(pb, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fa < 0)
		io_error(sa->root, rel, "open", errno);
	if (fb < 0)
		io_error(sb->root, rel, "open", errno);
	for (off_t off = 0; fa >= 0 && fb >= 0 && off < size;) {
		off = skip_common_hole(fa, fb, off, size);
		if (off >= size)
			break;
		size_t want = size - off < (off_t)BLOCK ? (size_t)(size - off) : BLOCK;
		ssize_t ra = pread(fa, g.buf_a, want, off), rb = pread(fb, g.buf_b, want, off);
		if (ra < 0 || rb < 0) {
			if (ra < 0)
				io_error(sa->root, rel, "read", errno);
			else
				io_error(sb->root, rel, "read", errno);
			break;
		}
		size_t n = (size_t)(ra < rb ? ra : rb);
		if (memcmp(g.buf_a, g.buf_b, n) != 0 || ra != rb || n == 0) {
			size_t i = 0;
			while (i < n && g.buf_a[i] == g.buf_b[i])
				i++;
			diff_begin("content differs", rel);
			printf(": first difference at byte %lld\n", (long long)(off + (off_t)i));
			break;
		}
		off += (off_t)n;
	}
	if (fa >= 0)
		close(fa);
	if (fb >= 0)
		close(fb);
	free(pa);
	free(pb);
}

/* The xattr names of path, as one buffer of NUL-terminated names sorted into
 * names[] (caller frees both). Returns the count, or -1 (reported). */
static ssize_t xattr_names(const struct side *s, const char *rel, const char *path, char **bufp,
			   char ***namesp)
{
	ssize_t len;
	char *buf = NULL;
	*bufp = NULL;
	*namesp = NULL;
	for (;;) {
		len = llistxattr(path, NULL, 0);
		if (len < 0) {
			if (errno == ENOTSUP)
				return 0;
			io_error(s->root, rel, "llistxattr", errno);
			return -1;
		}
		buf = must(realloc(buf, (size_t)len + 1));
		ssize_t got = llistxattr(path, buf, (size_t)len);
		if (got >= 0) {
			len = got;
			break;
		}
		if (errno != ERANGE) { /* ERANGE: an xattr was added meanwhile; retry */
			io_error(s->root, rel, "llistxattr", errno);
			free(buf);
			return -1;
		}
	}
	size_t n = 0;
	for (ssize_t i = 0; i < len; i += (ssize_t)strlen(buf + i) + 1)
		n++;
	char **names = must(malloc((n + 1) * sizeof *names));
	n = 0;
	for (ssize_t i = 0; i < len; i += (ssize_t)strlen(buf + i) + 1)
		names[n++] = buf + i;
	qsort(names, n, sizeof *names, cmp_names);
	*bufp = buf;
	*namesp = names;
	return (ssize_t)n;
}

/* Value of xattr name of path (caller frees); NULL on error (reported). */
static char *xattr_value(const struct side *s, const char *rel, const char *path, const char *name,
			 ssize_t *len)
{
	char *v = NULL;
	for (;;) {
		*len = lgetxattr(path, name, NULL, 0);
		if (*len < 0)
			break;
		v = must(realloc(v, (size_t)*len + 1));
		ssize_t got = lgetxattr(path, name, v, (size_t)*len);
		if (got >= 0) {
			*len = got;
			return v;
		}
		if (errno != ERANGE)
			break;
	}
	io_error(s->root, rel, "lgetxattr", errno);
	free(v);
	return NULL;
}

static void cmp_xattrs(const struct side *sa, const struct side *sb, const char *rel)
{
	char *pa = full(sa, rel), *pb = full(sb, rel);
	char *bufa, *bufb, **na, **nb;
	ssize_t ca = xattr_names(sa, rel, pa, &bufa, &na), cb = xattr_names(sb, rel, pb, &bufb, &nb);
	ssize_t i = 0, j = 0;
	while (ca >= 0 && cb >= 0 && (i < ca || j < cb)) {
		int c = i == ca ? 1 : j == cb ? -1 : strcmp(na[i], nb[j]);
		if (c != 0) {
			diff_begin("xattr differs", rel);
			fputs(": ", stdout);
			put_escaped(stdout, c < 0 ? na[i++] : nb[j++]);
			printf(": only in %c\n", c < 0 ? 'A' : 'B');
		} else {
			ssize_t la, lb;
			char *va = xattr_value(sa, rel, pa, na[i], &la);
			char *vb = xattr_value(sb, rel, pb, nb[j], &lb);
			if (va && vb && (la != lb || memcmp(va, vb, (size_t)la) != 0)) {
				diff_begin("xattr differs", rel);
				fputs(": ", stdout);
				put_escaped(stdout, na[i]);
				printf(": values differ (%zd vs %zd bytes)\n", la, lb);
			}
			free(va);
			free(vb);
			i++;
			j++;
		}
	}
	free(bufa);
	free(bufb);
	free(na);
	free(nb);
	free(pa);
	free(pb);
}

static void cmp_entry(struct side *sa, struct side *sb, const char *rel);

static void cmp_dir(struct side *sa, struct side *sb, const char *rel)
{
	size_t na, nb, i = 0, j = 0;
	char **la = list_dir(sa, rel, &na), **lb = list_dir(sb, rel, &nb);
	if (!la || !lb)
		goto out;
	while (i < na || j < nb) {
		int c = i == na ? 1 : j == nb ? -1 : strcmp(la[i], lb[j]);
		const char *name = c <= 0 ? la[i] : lb[j];
		char *child = strcmp(rel, ".") == 0 ? must(strdup(name)) : join(rel, name);
		if (c != 0) {
			diff_begin(c < 0 ? "only in A" : "only in B", child);
			putchar('\n');
		} else {
			cmp_entry(sa, sb, child);
		}
		free(child);
		if (c <= 0)
			i++;
		if (c >= 0)
			j++;
	}
out:
	if (la)
		free_names(la, na);
	if (lb)
		free_names(lb, nb);
}

static void cmp_entry(struct side *sa, struct side *sb, const char *rel)
{
	struct stat a, b;
	char *pa = full(sa, rel), *pb = full(sb, rel);
	int ra = lstat(pa, &a), ea = errno;
	int rb = lstat(pb, &b), eb = errno;
	free(pa);
	free(pb);
	if (ra < 0 || rb < 0) {
		if (ra < 0)
			io_error(sa->root, rel, "lstat", ea);
		if (rb < 0)
			io_error(sb->root, rel, "lstat", eb);
		return;
	}
	if ((a.st_mode & S_IFMT) != (b.st_mode & S_IFMT)) {
		diff_begin("type differs", rel);
		printf(": %s vs %s\n", type_name(a.st_mode), type_name(b.st_mode));
		return;
	}
	if ((a.st_mode & 07777) != (b.st_mode & 07777)) {
		diff_begin("mode differs", rel);
		printf(": %04o vs %04o\n", (unsigned)(a.st_mode & 07777), (unsigned)(b.st_mode & 07777));
	}
	if (g.owner && a.st_uid != b.st_uid) {
		diff_begin("uid differs", rel);
		printf(": %u vs %u\n", (unsigned)a.st_uid, (unsigned)b.st_uid);
	}
	if (g.owner && a.st_gid != b.st_gid) {
		diff_begin("gid differs", rel);
		printf(": %u vs %u\n", (unsigned)a.st_gid, (unsigned)b.st_gid);
	}
	if (!S_ISDIR(a.st_mode) && a.st_size != b.st_size) {
		diff_begin("size differs", rel);
		printf(": %lld vs %lld\n", (long long)a.st_size, (long long)b.st_size);
	}
	cmp_times("mtime differs", rel, &a.st_mtim, &b.st_mtim);
	if (g.atime && !S_ISLNK(a.st_mode))
		cmp_times("atime differs", rel, &a.st_atim, &b.st_atim);
	if ((S_ISCHR(a.st_mode) || S_ISBLK(a.st_mode)) && a.st_rdev != b.st_rdev) {
		diff_begin("rdev differs", rel);
		printf(": %u:%u vs %u:%u\n", major(a.st_rdev), minor(a.st_rdev), major(b.st_rdev),
		       minor(b.st_rdev));
	}
	note_link(sa, rel, &a);
	note_link(sb, rel, &b);
	cmp_xattrs(sa, sb, rel);
	if (S_ISLNK(a.st_mode))
		cmp_link_target(sa, sb, rel);
	if (S_ISREG(a.st_mode)) {
		if (g.verbose) {
			printf("blocks: ");
			put_escaped(stdout, rel);
			printf(": %lld vs %lld bytes allocated\n", (long long)a.st_blocks * 512,
			       (long long)b.st_blocks * 512);
		}
		if (a.st_size == b.st_size)
			cmp_content(sa, sb, rel, a.st_size);
	}
	if (S_ISDIR(a.st_mode))
		cmp_dir(sa, sb, rel);
}

static int cmp_link_inode(const void *x, const void *y)
{
	const struct link *a = x, *b = y;
	if (a->dev != b->dev)
		return a->dev < b->dev ? -1 : 1;
	if (a->ino != b->ino)
		return a->ino < b->ino ? -1 : 1;
	return strcmp(a->rel, b->rel);
}

static int cmp_link_path(const void *x, const void *y)
{
	return strcmp(((const struct link *)x)->rel, ((const struct link *)y)->rel);
}

/* Give each link the smallest path of its inode, then sort by path. */
static void link_reps(struct side *s)
{
	if (!s->nlinks)
		return;
	qsort(s->links, s->nlinks, sizeof *s->links, cmp_link_inode);
	for (size_t i = 0; i < s->nlinks; i++) {
		bool same = i > 0 && s->links[i].dev == s->links[i - 1].dev &&
			    s->links[i].ino == s->links[i - 1].ino;
		s->links[i].rep = same ? s->links[i - 1].rep : s->links[i].rel;
	}
	qsort(s->links, s->nlinks, sizeof *s->links, cmp_link_path);
}

static const struct link *find_link(const struct side *s, const char *rel)
{
	struct link key = {.rel = (char *)rel};
	return s->nlinks ? bsearch(&key, s->links, s->nlinks, sizeof key, cmp_link_path) : NULL;
}

/* The smallest path sharing rel's inode (rel itself when not linked). */
static const char *rep_of(const struct side *s, const char *rel)
{
	const struct link *l = find_link(s, rel);
	return l ? l->rep : rel;
}

static void print_group(const struct side *s, const char *rel)
{
	const char *rep = rep_of(s, rel);
	if (!find_link(s, rel)) {
		fputs("not linked", stdout);
	} else if (strcmp(rel, rep) == 0) {
		fputs("first name of its link group", stdout);
	} else {
		fputs("linked to \"", stdout);
		put_escaped(stdout, rep);
		putchar('"');
	}
}

/* Two sides have the same partition of paths by inode exactly when every
 * path has the same smallest fellow link on both sides. Links are recorded
 * only for paths present on both sides (the others were reported already),
 * so judging every recorded path of A, then those only B recorded, covers
 * each path once. */
static void cmp_hardlinks(struct side *sa, struct side *sb)
{
	link_reps(sa);
	link_reps(sb);
	for (int pass = 0; pass < 2; pass++) {
		const struct side *s = pass ? sb : sa;
		for (size_t i = 0; i < s->nlinks; i++) {
			const char *rel = s->links[i].rel;
			if (pass && find_link(sa, rel))
				continue;
			if (strcmp(rep_of(sa, rel), rep_of(sb, rel)) == 0)
				continue;
			diff_begin("hardlinks differ", rel);
			fputs(": A: ", stdout);
			print_group(sa, rel);
			fputs(", B: ", stdout);
			print_group(sb, rel);
			putchar('\n');
		}
	}
}

static void side_free(struct side *s)
{
	for (size_t i = 0; i < s->nlinks; i++)
		free(s->links[i].rel);
	free(s->links);
}

static void usage(void)
{
	fputs("usage: treecmp [-v] [--no-owner] [--atime|--no-atime] A B\n", stderr);
	exit(2);
}

int main(int argc, char **argv)
{
	const char *roots[2];
	int nroots = 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--no-owner") == 0)
			g.owner = false;
		else if (strcmp(argv[i], "--no-atime") == 0)
			g.atime = false;
		else if (strcmp(argv[i], "--atime") == 0)
			g.atime = true;
		else if (strcmp(argv[i], "-v") == 0 || strcmp(argv[i], "--verbose") == 0)
			g.verbose = true;
		else if (strcmp(argv[i], "--help") == 0 || (argv[i][0] == '-' && argv[i][1]))
			usage();
		else if (nroots < 2)
			roots[nroots++] = argv[i];
		else
			usage();
	}
	if (nroots != 2)
		usage();
	struct side sa = {.root = roots[0]}, sb = {.root = roots[1]};
	struct stat st;
	for (int i = 0; i < 2; i++) {
		if (lstat(roots[i], &st) < 0) {
			fprintf(stderr, "treecmp: %s: %s\n", roots[i], strerror(errno));
			return 2;
		}
	}
	g.buf_a = must(malloc(BLOCK));
	g.buf_b = must(malloc(BLOCK));
	cmp_entry(&sa, &sb, ".");
	cmp_hardlinks(&sa, &sb);
	side_free(&sa);
	side_free(&sb);
	free(g.buf_a);
	free(g.buf_b);
	fflush(stdout);
	if (g.io_errors)
		return 2;
	return g.diffs ? 1 : 0;
}
