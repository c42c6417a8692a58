/* frame: the wire frame of the transport (docs/transport.md, "Frame"):
 * the 48-byte header codec and the segment trailers (integrity checksum or
 * AEAD). Pure functions over caller memory; thread-safe.
 */
#ifndef FV_FRAME_H
#define FV_FRAME_H

#include <sodium.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FV_FRAME_HDR 48
#define FV_FRAME_TRAILER 16
#define FV_FRAME_MAX_CTL 65536u
#define FV_FRAME_MAX_BULK (64u << 20)
/* Largest control part: header, ctl, ctl trailer, bulk trailer. */
#define FV_FRAME_MAX_MSG (FV_FRAME_HDR + FV_FRAME_MAX_CTL + 2 * FV_FRAME_TRAILER)

enum fv_frame_type {
	FV_FT_HELLO = 1,
	FV_FT_WELCOME = 2,
	FV_FT_PROOF = 3,
	FV_FT_READY = 4,
	FV_FT_REQUEST = 5,
	FV_FT_REPLY = 6,
	FV_FT_PING = 7,
	FV_FT_PONG = 8,
	FV_FT_CLOSE = 9,
};

#define FV_FF_IDEMPOTENT 0x0001u

struct fv_frame_hdr {
	uint8_t type;
	uint16_t flags;
	uint64_t id;
	uint32_t ctl_len;
	uint32_t bulk_len;
	uint64_t bulk_addr;
	uint32_t bulk_rkey;
	uint64_t hsum; /* filled by fv_frame_encode, checked by fv_frame_decode */
};

/* Encode h into out[FV_FRAME_HDR] and set h->hsum. */
void fv_frame_encode(struct fv_frame_hdr *h, uint8_t out[FV_FRAME_HDR]);

/* Decode and check the header in p[0..FV_FRAME_HDR): magic, version, hsum,
 * type, flags, reserved bytes, length limits. Returns 0, or -EBADMSG with a
 * static reason in *why (for the log line that closes the link). */
int fv_frame_decode(const uint8_t *p, struct fv_frame_hdr *h, const char **why);

/* Bytes of the control part of a frame with header h (docs: "Frame"). */
size_t fv_frame_ctl_size(const struct fv_frame_hdr *h);

/* Check a whole control part msg[0..len) as received (header + trailers
 * present, nothing more): decodes the header into h. The fuzz target's
 * entry point. Returns 0 or -EBADMSG with *why. */
int fv_frame_parse(const uint8_t *msg, size_t len, struct fv_frame_hdr *h, const char **why);

/* Session crypto state of one direction of a link. */
enum fv_frame_mode { FV_MODE_INTEGRITY = 1, FV_MODE_ENCRYPT = 2 };
enum fv_frame_cipher { FV_CIPHER_NONE = 0, FV_CIPHER_CHACHA = 1, FV_CIPHER_AESGCM = 2 };

struct fv_frame_dir {
	int mode;         /* enum fv_frame_mode */
	int cipher;       /* enum fv_frame_cipher (encrypt mode) */
	uint8_t key[32];  /* direction key (encrypt mode) */
	uint64_t counter; /* next frame counter */
	/* AES-256-GCM through libsodium (small segments, where the CPU has
	 * AES-NI): the expanded key, made once rather than for every segment */
	crypto_aead_aes256gcm_state aes;
	bool sodium_aes;
	/* The cipher fetched once from OpenSSL's libcrypto (encrypt mode): it
	 * seals and opens segments of FV_FRAME_EVP_MIN bytes and more, 2-3x
	 * faster than libsodium here, and every AES-256-GCM segment where
	 * libsodium has no AES (aarch64). Same algorithm, same bytes on the
	 * wire. */
	struct evp_cipher_st *evp;
};

/* Segments of this many bytes and more go through libcrypto. */
#define FV_FRAME_EVP_MIN 8192u

/* Set d up for mode and cipher with key (and counter 0). d must be zeroed
 * or set up before (what it held is released). Returns 0, or -ENOMEM /
 * -ENOSYS when libcrypto cannot provide the cipher. */
int fv_frame_dir_init(struct fv_frame_dir *d, int mode, int cipher, const uint8_t key[32]);

/* Release what fv_frame_dir_init took and wipe the key; d may be zeroed. */
void fv_frame_dir_free(struct fv_frame_dir *d);

/* Whether this CPU has AES instructions (AES-NI and PCLMULQDQ on x86-64,
 * the ARMv8 AES and PMULL extensions on aarch64): a server prefers
 * AES-256-GCM then, ChaCha20-Poly1305 otherwise. */
bool fv_frame_aes_fast(void);

/* Protect segment seg (0 ctl, 1 bulk) of the frame whose encoded header is
 * hdr: integrity mode writes the checksum to trailer; encrypt mode encrypts
 * p[0..n) in place and writes the tag. The frame counter is d->counter; call
 * fv_frame_next(d) after the last segment of the frame. Returns 0, or
 * -ENOMEM when libcrypto could not get a context (p is then not to be sent). */
int fv_frame_seal(const struct fv_frame_dir *d, unsigned seg, const uint8_t hdr[FV_FRAME_HDR], uint8_t *p,
		  size_t n, uint8_t trailer[FV_FRAME_TRAILER]);
/* The same for frame counter ctr, d left as it is: d is only read, so
 * several threads may seal frames of one direction at once (each its own
 * counter; the frames must still leave in counter order). */
int fv_frame_seal_at(const struct fv_frame_dir *d, uint64_t ctr, unsigned seg,
		     const uint8_t hdr[FV_FRAME_HDR], uint8_t *p, size_t n,
		     uint8_t trailer[FV_FRAME_TRAILER]);

/* Verify (and in encrypt mode decrypt in place) one segment. Returns 0 or
 * -EBADMSG (checksum or authentication failure). */
int fv_frame_open(const struct fv_frame_dir *d, unsigned seg, const uint8_t hdr[FV_FRAME_HDR], uint8_t *p,
		  size_t n, const uint8_t trailer[FV_FRAME_TRAILER]);

static inline void fv_frame_next(struct fv_frame_dir *d)
{
	d->counter++;
}

#endif
