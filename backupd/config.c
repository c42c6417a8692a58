#include "config.h"

#include <errno.h>
#include <sodium.h>
#include <string.h>
#include <xxhash.h>

#include "../common/buf.h"

/* Offsets, docs/repository-format.md "config". */
#define OFF_MAC 64
#define OFF_SUM 96

void fv_config_encode(const struct fv_config *c, const struct fv_keys *k, uint8_t out[FV_CONFIG_SIZE])
{
	memset(out, 0, FV_CONFIG_SIZE);
	memcpy(out, FV_CONFIG_MAGIC, 8);
	fv_put_le32(out + 8, c->version);
	/* 12..15 flags = 0 */
	memcpy(out + 16, c->repo_id, 16);
	out[32] = (uint8_t)c->enc;
	out[33] = c->compression;
	out[34] = (uint8_t)c->zstd_level;
	fv_put_le32(out + 36, c->chunk.min);
	fv_put_le32(out + 40, c->chunk.avg);
	fv_put_le32(out + 44, c->chunk.max);
	fv_put_le32(out + 48, c->pack_size);
	fv_put_le64(out + 56, (uint64_t)c->created_ns);
	crypto_generichash(out + OFF_MAC, 32, out, OFF_MAC, k->mac, FV_KEY_LEN);
	fv_put_le64(out + OFF_SUM, XXH3_64bits(out, OFF_SUM));
}

int fv_config_decode(const uint8_t *p, size_t len, struct fv_config *c)
{
	memset(c, 0, sizeof *c);
	if (len < 12 || memcmp(p, FV_CONFIG_MAGIC, 8) != 0)
		return -EMEDIUMTYPE;
	c->version = fv_get_le32(p + 8);
	/* A newer version may have another layout: say so before anything else. */
	if (c->version > 1)
		return -EPROTONOSUPPORT;
	if (len != FV_CONFIG_SIZE)
		return -EUCLEAN;
	if (XXH3_64bits(p, OFF_SUM) != fv_get_le64(p + OFF_SUM))
		return -EUCLEAN;
	if (c->version != 1 || fv_get_le32(p + 12) != 0)
		return -EUCLEAN;
	memcpy(c->repo_id, p + 16, 16);
	c->enc = (enum fv_enc)p[32];
	c->compression = p[33];
	c->zstd_level = (int8_t)p[34];
	c->chunk.min = fv_get_le32(p + 36);
	c->chunk.avg = fv_get_le32(p + 40);
	c->chunk.max = fv_get_le32(p + 44);
	c->pack_size = fv_get_le32(p + 48);
	c->created_ns = (int64_t)fv_get_le64(p + 56);
	if (c->enc > FV_ENC_AESGCM || c->compression > 1 || fv_chunker_params_check(&c->chunk) < 0 ||
	    c->pack_size < (1u << 20) || c->pack_size > (1u << 30))
		return -EUCLEAN;
	return 0;
}

int fv_config_verify_mac(const uint8_t p[FV_CONFIG_SIZE], const struct fv_keys *k)
{
	uint8_t mac[32];
	crypto_generichash(mac, 32, p, OFF_MAC, k->mac, FV_KEY_LEN);
	return sodium_memcmp(mac, p + OFF_MAC, 32) == 0 ? 0 : -EUCLEAN;
}
