#!/bin/sh
# The "runtime" jaula's supervisor runs to restore a guest instead of starting it.
#
# jaula-helper shim runs `RUNTIME... run --detach --bundle . --pid-file ../init.pid
# --console-socket ../console.sock ID` in the guest's run directory. Every one of those options
# means the same to `runc restore`, so this wrapper turns `run` into `restore` and the very same
# supervisor restores the guest: it is the subreaper the restored init is reparented to, it gets
# the console's new pty master (runc receives it from CRIU's orphan-pts-master notification and
# sends it to the console socket), and it waits for the init and reports its exit as usual.
# In jaula this is one more shim mode (`--restore IMAGES`), not a script.
#
# Environment: JCRIU_RUNC (runc's argv prefix: "runc --root R --criu C"), JCRIU_IMAGES,
# JCRIU_WORK, JCRIU_RESTORE_OPTS (more runc restore options), and what netns-hook.sh reads.
[ "$1" = run ] && shift
# shellcheck disable=SC2086 # word splitting of the argv prefix and options is intended
exec $JCRIU_RUNC restore --image-path "$JCRIU_IMAGES" --work-path "$JCRIU_WORK" \
  --tcp-established --empty-ns network ${JCRIU_RESTORE_OPTS:-} "$@"
