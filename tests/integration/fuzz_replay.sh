#!/usr/bin/env bash
# Replays the committed fuzz corpus through the tree and snapshot decoders
# (untrusted input for restore) and the transport's frame decoder (untrusted
# bytes from the network): no crash, no sanitizer report, and every input
# that decodes re-encodes to the same bytes. tests/fuzz/README.md tells how to
# fuzz for longer with libFuzzer.
set -euo pipefail
: "${FV_BUILD:?}" "${FV_SRC:?}"
# fsreq: fabvault-exportd's request decoder, on a small tree (every reply well-formed).
for t in tree snapshot frame fsreq; do
	"$FV_BUILD/tests/fuzz_$t" "$FV_SRC/tests/fuzz/corpus/$t"
done
