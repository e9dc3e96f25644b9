#!/bin/sh
# Installs calico-vpp-driver where Felix runs it: copies the binary into DIR (the first
# argument; default /opt/calico-vpp/bin) and links calico-vpp-felix-proxy to it (the binary
# dispatches on its name). The entry point of the installer image (see the Dockerfile), run as
# an init container of calico-node; a copy is moved into place, so a running binary is never
# overwritten. CALICO_VPP_INSTALL_SOURCE names the binary to install (default: the image's).
set -eu

dest="${1:-/opt/calico-vpp/bin}"
src="${CALICO_VPP_INSTALL_SOURCE:-/usr/local/bin/calico-vpp-driver}"

mkdir -p "$dest"
tmp="$dest/.calico-vpp-driver.$$"
trap 'rm -f "$tmp"' EXIT
cp "$src" "$tmp"
chmod 0755 "$tmp"
mv -f "$tmp" "$dest/calico-vpp-driver"
ln -sfn calico-vpp-driver "$dest/calico-vpp-felix-proxy"
# Fails here, not in Felix, if the binary cannot run.
"$dest/calico-vpp-driver" --version
echo "installed $dest/calico-vpp-driver and $dest/calico-vpp-felix-proxy"
