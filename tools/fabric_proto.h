/* fabric_proto: the requests `fabvault fabric serve` answers (for `fabric
 * ping`, `fabric bench` and the transport tests), on top of the transport.
 * Request ctl: u8 op, then op-specific fields, little-endian.
 *   FV_FAB_ECHO  (1): any bytes; reply ctl = the request, no bulk.
 *   FV_FAB_FILL  (2): u32 size, u64 seed; reply ctl = the request, bulk =
 *                     size bytes of fv_fab_pattern(seed) (verifiable).
 *   FV_FAB_SINK  (3): u32 size; reply bulk = size bytes, contents
 *                     unspecified (bandwidth: no fill cost on the server).
 *   FV_FAB_SLOW  (4): u32 milliseconds; reply after that delay (tests).
 * Unknown ops get an empty reply ctl.
 */
#ifndef FV_FABRIC_PROTO_H
#define FV_FABRIC_PROTO_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

enum { FV_FAB_ECHO = 1, FV_FAB_FILL = 2, FV_FAB_SINK = 3, FV_FAB_SLOW = 4 };

/* Deterministic bytes for seed: xorshift64* words, little-endian. */
static inline void fv_fab_pattern(uint64_t seed, uint8_t *p, size_t n)
{
	uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		x ^= x >> 12;
		x ^= x << 25;
		x ^= x >> 27;
		uint64_t v = x * 0x2545F4914F6CDD1Dull;
		for (int b = 0; b < 8; b++)
			p[i + (size_t)b] = (uint8_t)(v >> (8 * b));
	}
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	uint64_t v = x * 0x2545F4914F6CDD1Dull;
	for (unsigned b = 0; b < 8 && i + b < n; b++)
		p[i + b] = (uint8_t)(v >> (8 * b));
}

#endif
