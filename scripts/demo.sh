#!/usr/bin/env bash
# Runs a container in a microVM: the README's first command ends here.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/make-test-image.sh .
set +e
fcvm podman run --name demo --env GREETING=hello,WHO=microvm localhost/bb -- sh -c 'echo "$GREETING from a $WHO: $(uname -r)"; exit 7'
code=$?
set -e
echo "demo: the container exited with code $code (expected 7)"
[ "$code" -eq 7 ]
