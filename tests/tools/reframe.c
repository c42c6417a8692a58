/* reframe: make a frame's checksum match its payload again, so that damage
 * written into the payload gets past the frame check (accidental damage)
 * and must be caught by what comes after it: the seal (deliberate damage).
 *
 *   reframe PACK OFFSET
 *
 * OFFSET is the frame's offset in the pack file: [u32 n][n bytes][u64
 * checksum], the checksum being XXH3-64 of the payload seeded with n
 * (docs/repository-format.md, "Packs"). Exit: 0, 1 on an I/O error or a
 * frame that does not fit in the file, 2 on usage. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

int main(int argc, char **argv)
{
	char *end;
	if (argc != 3) {
		fprintf(stderr, "usage: reframe PACK OFFSET\n");
		return 2;
	}
	errno = 0;
	unsigned long long off = strtoull(argv[2], &end, 10);
	if (errno || *end || !*argv[2]) {
		fprintf(stderr, "reframe: bad offset '%s'\n", argv[2]);
		return 2;
	}
	int fd = open(argv[1], O_RDWR);
	if (fd < 0) {
		fprintf(stderr, "reframe: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	uint8_t b[8];
	int rc = 1;
	uint8_t *p = NULL;
	if (pread(fd, b, 4, (off_t)off) != 4)
		goto out;
	uint32_t n = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
	p = malloc(n ? n : 1);
	if (!p || pread(fd, p, n, (off_t)off + 4) != (ssize_t)n)
		goto out;
	uint64_t sum = XXH3_64bits_withSeed(p, n, n);
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(sum >> (8 * i));
	if (pwrite(fd, b, 8, (off_t)(off + 4 + n)) == 8)
		rc = 0;
out:
	if (rc)
		fprintf(stderr, "reframe: %s: no frame of that size at offset %llu\n", argv[1], off);
	free(p);
	close(fd);
	return rc;
}
