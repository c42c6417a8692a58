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

#define FUZZ_CHECK(cond)                                                                                    \
	do {                                                                                                \
		if (!(cond)) {                                                                              \
			fprintf(stderr, "fuzz_tree: %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
			abort();                                                                            \
		}                                                                                           \
	} while (0)

static bool node_eq(const struct fv_node *a, const struct fv_node *b)
{
	if (strcmp(a->name, b->name) || a->type != b->type || a->flags != b->flags || a->mode != b->mode ||
	    a->uid != b->uid || a->gid != b->gid || a->nlink != b->nlink || a->mtime_ns != b->mtime_ns ||
	    a->ctime_ns != b->ctime_ns || a->size != b->size || a->rdev != b->rdev || a->hlink != b->hlink ||
	    a->nxattrs != b->nxattrs || a->nchunks != b->nchunks || memcmp(a->subtree, b->subtree, FV_ID_LEN))
		return false;
	if ((a->target == NULL) != (b->target == NULL) || (a->target && strcmp(a->target, b->target)))
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
#include "driver.h"
#endif
