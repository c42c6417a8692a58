/* driver: replays inputs through LLVMFuzzerTestOneInput when a fuzz target
 * is built without libFuzzer (tests/integration/fuzz_replay.sh). Included
 * once, at the end of each fuzz_*.c, unless FV_LIBFUZZER is defined. It
 * uses the target's FUZZ_CHECK. */
#ifndef FV_FUZZ_DRIVER_H
#define FV_FUZZ_DRIVER_H
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
	printf("%s: %d inputs run, %d unreadable\n", argv[0], ran, failed);
	return failed ? 1 : 0;
}
#endif
