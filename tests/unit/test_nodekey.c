/* Unit tests for transport/nodekey: key files and authorized_peers
 * (docs/transport.md, "Key files"). */
#include "../../transport/nodekey.h"
#include "../harness.h"

#include <errno.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[] = "/tmp/fv-test-nodekey.XXXXXX";

static void put(const char *name, const char *text, mode_t mode)
{
	char p[256];
	snprintf(p, sizeof p, "%s/%s", dir, name);
	FILE *f = fopen(p, "w");
	fputs(text, f);
	fclose(f);
	chmod(p, mode);
}

FV_TEST(save_load)
{
	struct fv_tp_node_key k, l;
	struct fv_err e = {0};
	fv_tp_key_generate(&k);
	char sub[300], p[320];
	snprintf(sub, sizeof sub, "%s/etc", dir);
	FV_REQUIRE(fv_tp_key_save(&k, sub, "clu", 0, &e) == 0);
	snprintf(p, sizeof p, "%s/node.key", sub);
	struct stat st;
	FV_REQUIRE(stat(p, &st) == 0);
	FV_CHECK_EQ(st.st_mode & 0777, 0600);
	FV_REQUIRE(fv_tp_key_load(p, &l, &e) == 0);
	FV_CHECK(memcmp(k.sk, l.sk, 32) == 0 && memcmp(k.pk, l.pk, 32) == 0);
	/* never overwritten without force */
	FV_CHECK(fv_tp_key_save(&k, sub, "clu", 0, &e) == -EEXIST);
	FV_CHECK(strstr(e.msg, "--force") != NULL);
	/* node.pub is an authorized_peers line */
	struct fv_tp_peers peers = {0};
	snprintf(p, sizeof p, "%s/node.pub", sub);
	FV_REQUIRE(fv_tp_peers_load(p, &peers, &e) == 0);
	FV_CHECK_EQ(peers.n, 1);
	const struct fv_tp_peer *pe = fv_tp_peers_find(&peers, k.pk);
	FV_CHECK(pe && !strcmp(pe->name, "clu"));
	fv_tp_peers_free(&peers);
}

FV_TEST(key_refused)
{
	struct fv_tp_node_key k;
	struct fv_err e = {0};
	char p[256];
	put("open.key", "fabvault-node-key-1 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n", 0644);
	snprintf(p, sizeof p, "%s/open.key", dir);
	FV_CHECK(fv_tp_key_load(p, &k, &e) == -EPERM);
	FV_CHECK(strstr(e.msg, "chmod 600") != NULL);
	put("bad.key", "ssh-ed25519 AAAA\n", 0600);
	snprintf(p, sizeof p, "%s/bad.key", dir);
	FV_CHECK(fv_tp_key_load(p, &k, &e) == -EINVAL);
	put("short.key", "fabvault-node-key-1 AAAA\n", 0600);
	snprintf(p, sizeof p, "%s/short.key", dir);
	FV_CHECK(fv_tp_key_load(p, &k, &e) == -EINVAL);
	snprintf(p, sizeof p, "%s/missing.key", dir);
	FV_CHECK(fv_tp_key_load(p, &k, &e) == -ENOENT);
	FV_CHECK(strstr(e.msg, "gen-node") != NULL);
}

FV_TEST(peers_file)
{
	struct fv_tp_node_key a, b;
	fv_tp_key_generate(&a);
	fv_tp_key_generate(&b);
	char pa[96], pb[96], text[512], p[256];
	fv_tp_key_pubstr(a.pk, pa, sizeof pa);
	fv_tp_key_pubstr(b.pk, pb, sizeof pb);
	snprintf(text, sizeof text, "# peers\n\n%s clu\n   %s\n", pa, pb);
	put("peers", text, 0644);
	snprintf(p, sizeof p, "%s/peers", dir);
	struct fv_tp_peers peers = {0};
	struct fv_err e = {0};
	FV_REQUIRE(fv_tp_peers_load(p, &peers, &e) == 0);
	FV_CHECK_EQ(peers.n, 2);
	FV_CHECK(fv_tp_peers_find(&peers, b.pk) && !fv_tp_peers_find(&peers, b.sk));
	fv_tp_peers_free(&peers);
	/* a bad line fails the file and names the line */
	snprintf(text, sizeof text, "%s clu\nfvnode1:notbase64 x\n", pa);
	put("peers2", text, 0644);
	snprintf(p, sizeof p, "%s/peers2", dir);
	FV_CHECK(fv_tp_peers_load(p, &peers, &e) == -EINVAL);
	FV_CHECK(strstr(e.msg, "peers2:2:") != NULL);
	fv_tp_peers_free(&peers);
	char fp[17];
	fv_tp_key_fingerprint(a.pk, fp);
	FV_CHECK_EQ(strlen(fp), 16);
}

static void cleanup(void)
{
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
}

static void setup(void) __attribute__((constructor));
static void setup(void)
{
	if (sodium_init() < 0 || !mkdtemp(dir))
		abort();
	atexit(cleanup);
}

FV_TESTS(save_load, key_refused, peers_file)
