/* fuzz_tree: fv_tree_decode on arbitrary bytes. A tree blob is untrusted
 * input for restore, so the decoder must never crash, over-read or
 * over-allocate, and what it accepts must be what the encoder writes: when
 * decoding succeeds, re-encoding must succeed and give back the very same
 * bytes (the format is canonical, so a tree's id is stable), and those
 * bytes must decode to an equal tree.
 *
 * libFuzzer:  clang -fsanitize=fuzzer,address,undefined -DFV_LIBFUZZER \
 *               tests/fuzz/fuzz_tree.c backupd/tree.c common/buf.c
 * Without libFuzzer (CI with gcc), the same file builds into a program that
 * runs the files, or the files in the directories, given as arguments.
 */
#include "../../backupd/tree.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                                  \
	do {                                                                              \
		if (!(cond)) {                                                            \
			fprintf(stderr, "fuzz_tree: %s:%d: check failed: %s\n", __FILE__, \
				__LINE__, #cond);                                         \
			abort();                                                          \
		}                                                                         \
	} while (0)

static bool node_eq(const struct fv_node *a, const struct fv_node *b)
{
	if (strcmp(a->name, b->name) || a->type != b->type || a->flags != b->flags ||
	    a->mode != b->mode || a->uid != b->uid || a->gid != b->gid || a->nlink != b->nlink ||
	    a->mtime_ns != b->mtime_ns || a->ctime_ns != b->ctime_ns || a->size != b->size ||
	    a->rdev != b->rdev || a->hlink != b->hlink || a->nxattrs != b->nxattrs ||
	    a->nchunks != b->nchunks || memcmp(a->subtree, b->subtree, FV_ID_LEN))
		return false;
	if ((a->target == NULL) != (b->target == NULL) ||
	    (a->target && strcmp(a->target, b->target)))
		return false;
	for (uint32_t i = 0; i < a->nxattrs; i++) {
		const struct fv_xattr *x = &a->xattrs[i], *y = &b->xattrs[i];
		if (strcmp(x->name, y->name) || x->value_len != y->value_len ||
		    (x->value_len && memcmp(x->value, y->value, x->value_len)))
			return false;
	}
	for (uint32_t i = 0; i < a->nchunks; i++)
		if (a->chunks[i].off != b->chunks[i].off || a->chunks[i].len != b->chunks[i].len ||
		    memcmp(a->chunks[i].id, b->chunks[i].id, FV_ID_LEN))
			return false;
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fv_tree t, back;
	struct fv_buf b = {0};
	int rc = fv_tree_decode(data, size, &t);
	if (rc < 0) {
		/* Inputs are small: running out of memory would mean a count
		 * was trusted before it was checked. */
		FUZZ_CHECK(rc == -EBADMSG);
		FUZZ_CHECK(t.n == 0 && t.nodes == NULL);
		return 0;
	}
	for (uint32_t i = 0; i < t.n; i++) {
		const struct fv_node *n = &t.nodes[i];
		FUZZ_CHECK(fv_tree_name_valid(n->name, strlen(n->name)));
		FUZZ_CHECK(fv_tree_find(&t, n->name) == n);
	}
	FUZZ_CHECK(fv_tree_encode(&t, &b) == 0);
	FUZZ_CHECK(b.len == size && memcmp(b.data, data, size) == 0);
	FUZZ_CHECK(fv_tree_decode(b.data, b.len, &back) == 0);
	FUZZ_CHECK(back.n == t.n);
	for (uint32_t i = 0; i < t.n; i++)
		FUZZ_CHECK(node_eq(&t.nodes[i], &back.nodes[i]));
	fv_tree_free(&back);
	fv_tree_free(&t);
	fv_buf_free(&b);
	return 0;
}

#ifndef FV_LIBFUZZER
#include <dirent.h>

static int run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		perror(path);
		return -1;
	}
	struct fv_buf b = {0};
	uint8_t tmp[65536];
	size_t n;
	while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
		fv_buf_put(&b, tmp, n);
	int err = ferror(f) || !fv_buf_ok(&b);
	fclose(f);
	if (err) {
		fprintf(stderr, "%s: cannot read\n", path);
		fv_buf_free(&b);
		return -1;
	}
	/* An exact-size copy, so that ASan catches any over-read. */
	uint8_t *p = malloc(b.len ? b.len : 1);
	FUZZ_CHECK(p != NULL);
	if (b.len)
		memcpy(p, b.data, b.len);
	LLVMFuzzerTestOneInput(p, b.len);
	free(p);
	fv_buf_free(&b);
	return 0;
}

/* Run each file argument, or each file in a directory argument (one level). */
int main(int argc, char **argv)
{
	int ran = 0, failed = 0;
	if (argc < 2) {
		fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
		return 2;
	}
	for (int i = 1; i < argc; i++) {
		DIR *d = opendir(argv[i]);
		if (!d) {
			failed += run_file(argv[i]) < 0;
			ran++;
			continue;
		}
		struct dirent *e;
		while ((e = readdir(d))) {
			if (e->d_name[0] == '.')
				continue;
			char path[4096];
			snprintf(path, sizeof path, "%s/%s", argv[i], e->d_name);
			failed += run_file(path) < 0;
			ran++;
		}
		closedir(d);
	}
	printf("fuzz_tree: %d inputs run, %d unreadable\n", ran, failed);
	return failed ? 1 : 0;
}
#endif
