#!/bin/sh
# Build (or find in the cache) the pinned control-plane binaries and print their directory.
# `build.sh pin` regenerates the go.mod/go.sum files after a change to versions.env.
set -eu
cd "$(dirname "$0")/../.."
exec python3 -m seedsvc_devcluster.build "$@"
