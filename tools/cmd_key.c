/* fabvault key gen-node, fabvault key show: the node key of the transport
 * (docs/transport.md, "Key files"). */
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../transport/tp.h"
#include "cli.h"
#include "opts.h"

enum { OPT_DIR = 0x200, OPT_NAME, OPT_FORCE };

static const char key_help[] =
	"Usage: fabvault key gen-node [--dir DIR] [--name NAME] [--force]\n"
	"       fabvault key show [--dir DIR] [--json]\n"
	"gen-node writes this node's transport key pair: DIR/node.key (mode 0600, the\n"
	"secret) and DIR/node.pub (one line, 'fvnode1:<base64> NAME'). Copy node.pub to\n"
	"the peer's DIR/authorized_peers. An existing key is never overwritten without\n"
	"--force (every peer would have to learn the new one). show prints the public\n"
	"key and its fingerprint.\n\n"
	"Options:\n"
	"      --dir DIR    key directory (default /etc/fabvault)\n"
	"      --name NAME  name written after the public key (default: the host name)\n"
	"      --force      replace an existing key\n"
	"      --json       machine-readable output\n"
	"  -h, --help       this help\n\n" FV_EXIT_CODES_HELP;

/* A key file that cannot be made or read is an error (exit 1), never a
 * usage error, whatever the code (-EINVAL: not a key file). */
static int key_fail(struct cli *c, const struct fv_err *e)
{
	cli_fail(c, e, false);
	return FV_EXIT_ERROR;
}

int cmd_key(struct cli *c, int argc, char **argv)
{
	static const struct option lo[] = {{"dir", required_argument, NULL, OPT_DIR},
					   {"name", required_argument, NULL, OPT_NAME},
					   {"force", no_argument, NULL, OPT_FORCE},
					   FV_COMMON_LONGOPTS};
	const char *dir = "/etc/fabvault", *name = NULL;
	int force = 0, opt;
	while ((opt = getopt_long(argc, argv, FV_COMMON_SHORTOPTS, lo, NULL)) != -1) {
		switch (opt) {
		case OPT_DIR:
			dir = optarg;
			break;
		case OPT_NAME:
			name = optarg;
			break;
		case OPT_FORCE:
			force = 1;
			break;
		default: {
			int rc = cli_common_opt(c, opt, "key", key_help);
			if (rc >= 0)
				return rc;
		}
		}
	}
	if (optind >= argc)
		return cli_usage(c, "key", "which one: gen-node or show?");
	const char *sub = argv[optind];
	if (optind + 1 != argc)
		return cli_usage(c, "key", "unexpected argument '%s'", argv[optind + 1]);
	struct fv_err e = {0};
	struct fv_tp_node_key k;
	char path[4096], pub[96], fp[17], host[256] = "";
	snprintf(path, sizeof path, "%s/node.key", dir);
	int rc;
	if (!strcmp(sub, "gen-node")) {
		if (!name) {
			gethostname(host, sizeof host - 1);
			name = host;
		}
		if (strpbrk(name, "\n\r"))
			return cli_usage(c, "key", "--name must be one line");
		rc = fv_tp_key_generate(&k);
		if (rc < 0) {
			fv_err_set(&e, rc,
				   "cannot generate a key: libsodium cannot start (no /dev/urandom?)");
			return key_fail(c, &e);
		}
		rc = fv_tp_key_save(&k, dir, name, force, &e);
		if (rc < 0)
			return key_fail(c, &e);
	} else if (!strcmp(sub, "show")) {
		rc = fv_tp_key_load(path, &k, &e);
		if (rc < 0)
			return key_fail(c, &e);
	} else {
		return cli_usage(c, "key", "unknown key command '%s' (gen-node or show)", sub);
	}
	fv_tp_key_pubstr(k.pk, pub, sizeof pub);
	fv_tp_key_fingerprint(k.pk, fp);
	if (c->json) {
		json_object *j = json_object_new_object();
		json_object_object_add(j, "public_key", json_object_new_string(pub));
		json_object_object_add(j, "fingerprint", json_object_new_string(fp));
		json_object_object_add(j, "key_file", json_object_new_string(path));
		puts(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN));
		json_object_put(j);
	} else {
		printf("%s\nfingerprint %s\n", pub, fp);
		if (!strcmp(sub, "gen-node") && !c->quiet)
			fprintf(stderr,
				"wrote %s and %s/node.pub; add node.pub to the peer's authorized_peers\n",
				path, dir);
	}
	return FV_EXIT_OK;
}
