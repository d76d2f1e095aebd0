#!/bin/sh
# Run by the shell provisioner: proves environment_vars arrive intact
# (spaces and a quote) and that earlier provisioners' files are there.
set -e
test -f /data/payload.txt
printf '%s|%s\n' "$GREETING" "$SOURCE" > /data/env.txt
echo "kiln-e2e: check.sh ran for $SOURCE"
