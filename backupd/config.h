/* config: the repository's `config` file, 104 bytes, fixed layout
 * (docs/repository-format.md, "config"). Its XXH3 checksum detects damage
 * without the key; its keyed MAC (checked once the key is unlocked) detects
 * tampering. Pure codec: no I/O.
 */
#ifndef FV_CONFIG_H
#define FV_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "chunker.h"
#include "crypto.h"

#define FV_CONFIG_SIZE 104
#define FV_CONFIG_MAGIC "FABVAULT"

struct fv_config {
	uint32_t version;
	uint8_t repo_id[16];
	enum fv_enc enc;
	uint8_t compression; /* 0 none, 1 zstd */
	int8_t zstd_level;
	struct fv_chunker_params chunk;
	uint32_t pack_size;
	int64_t created_ns;
};

/* Encode c into out[FV_CONFIG_SIZE], MAC'd with k->mac. */
void fv_config_encode(const struct fv_config *c, const struct fv_keys *k, uint8_t out[FV_CONFIG_SIZE]);

/* Decode without the key: -EMEDIUMTYPE (not a fabvault config: wrong size or
 * magic), -EPROTONOSUPPORT (version newer than FV_REPO_VERSION; *c->version
 * is still set), -EUCLEAN (checksum mismatch or invalid field). */
int fv_config_decode(const uint8_t *p, size_t len, struct fv_config *c);

/* Check the keyed MAC of an encoded config. Returns 0 or -EUCLEAN. */
int fv_config_verify_mac(const uint8_t p[FV_CONFIG_SIZE], const struct fv_keys *k);

#endif
