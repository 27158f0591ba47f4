#!/usr/bin/env bash
# Builds the agentd container image with buildah, FROM scratch: no base image is pulled.
#
#   deploy/container/build-image.sh BUILD_DIR IMAGE[:TAG]
#   deploy/container/build-image.sh build localhost/agentd:0.1.0
#
# The root filesystem holds exactly:
#   /usr/local/bin/agentd, /usr/local/bin/agentctl   from BUILD_DIR/bin (debug info stripped)
#   every shared library `ldd` lists for them, at the path ldd resolved, plus the dynamic loader
#   /etc/passwd, /etc/group       root and the unprivileged user agentd (uid/gid 10001)
#   /etc/nsswitch.conf             files, then DNS (glibc's built-in modules)
#   /etc/ssl/certs/ca-certificates.crt   the host's CA bundle, for HTTPS model backends
#   /etc/agentd/agentd.yaml        the default config (deploy/container/agentd.yaml)
#   /etc/agentd/tls/               empty: mount point for TLS material
#   /data                          the data dir volume, owned by agentd
#   /tmp                           mode 1777 (Kubernetes mounts an emptyDir here)
#
# Environment:
#   AGENTD_BUILDAH_GLOBAL_OPTS  options put before every buildah command
#                               (default: --storage-driver vfs; tests add --root/--runroot)
#   AGENTD_IMAGE_STRIP          1 (default) strips debug info from the binaries; 0 keeps it
#
# Exit codes: 0 built, 1 build failed, 2 usage error (bad arguments, missing input or tool).
set -euo pipefail

usage() {
  echo "usage: $(basename "$0") BUILD_DIR IMAGE[:TAG]   (e.g. build localhost/agentd:0.1.0)" >&2
  exit 2
}
die() { echo "build-image: error: $*" >&2; exit "${2:-1}"; }

[ "$#" -eq 2 ] || usage
build_dir=$1
image=$2
[ -n "$image" ] || usage
script_dir=$(cd "$(dirname "$0")" && pwd)
read -r -a buildah_opts <<<"${AGENTD_BUILDAH_GLOBAL_OPTS:---storage-driver vfs}"
strip_binaries=${AGENTD_IMAGE_STRIP:-1}

command -v buildah >/dev/null || die "buildah not found (Debian package buildah; scripts/setup.sh installs it)" 2
command -v ldd >/dev/null || die "ldd not found (package libc-bin)" 2
for bin in agentd agentctl; do
  [ -x "$build_dir/bin/$bin" ] || die "$build_dir/bin/$bin not found: build it first (cmake --build $build_dir --target agentd agentctl)" 2
done
ca_bundle=/etc/ssl/certs/ca-certificates.crt
[ -s "$ca_bundle" ] || die "$ca_bundle not found (package ca-certificates)" 2

context=$(mktemp -d "${TMPDIR:-/tmp}/agentd-image.XXXXXX")
trap 'rm -rf "$context"' EXIT
rootfs=$context/rootfs
mkdir -p "$rootfs/usr/local/bin" "$rootfs/etc/agentd/tls" "$rootfs/etc/ssl/certs" "$context/data"
install -d -m 1777 "$rootfs/tmp"

# Binaries.
for bin in agentd agentctl; do
  install -m 0755 "$build_dir/bin/$bin" "$rootfs/usr/local/bin/$bin"
  if [ "$strip_binaries" = 1 ] && command -v strip >/dev/null; then
    strip --strip-debug "$rootfs/usr/local/bin/$bin"
  fi
done

# Shared libraries: the union of what ldd resolves for both binaries, copied (symlinks
# dereferenced) to the same path, so the loader finds them in its default directories. A
# library ldd cannot find is an error rather than an image that fails at start.
libs_file=$context/libs
for bin in agentd agentctl; do
  ldd_out=$(ldd "$build_dir/bin/$bin") || die "ldd $build_dir/bin/$bin failed (not a dynamic executable?)"
  if grep -q 'not found' <<<"$ldd_out"; then
    die "$bin: shared libraries not found: $(grep 'not found' <<<"$ldd_out" | tr -s ' \t' ' ' | tr '\n' ';')"
  fi
  # "libfoo.so.1 => /lib/.../libfoo.so.1 (0x...)" and the loader line "/lib64/ld-linux-x86-64.so.2 (0x...)".
  awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$ldd_out" >>"$libs_file"
done
lib_count=0
while read -r lib; do
  mkdir -p "$rootfs$(dirname "$lib")"
  cp -L "$lib" "$rootfs$lib"
  lib_count=$((lib_count + 1))
done < <(sort -u "$libs_file")

# Users, name service, certificates, config.
cat >"$rootfs/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
agentd:x:10001:10001:agentd:/data:/sbin/nologin
EOF
cat >"$rootfs/etc/group" <<'EOF'
root:x:0:
agentd:x:10001:
EOF
printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$rootfs/etc/nsswitch.conf"
cp -L "$ca_bundle" "$rootfs/etc/ssl/certs/ca-certificates.crt"
install -m 0644 "$script_dir/agentd.yaml" "$rootfs/etc/agentd/agentd.yaml"
chmod 0700 "$context/data"
cp "$script_dir/Containerfile" "$context/Containerfile"

version=unknown
if [ -f "$build_dir/CMakeCache.txt" ]; then
  version=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$build_dir/CMakeCache.txt")
fi

echo "build-image: $lib_count shared libraries, rootfs $(du -sh "$rootfs" | cut -f1), version $version"
buildah "${buildah_opts[@]}" bud --isolation chroot --quiet \
  --label "org.opencontainers.image.title=agentd" \
  --label "org.opencontainers.image.description=agentd: a stateful agent runtime server" \
  --label "org.opencontainers.image.version=$version" \
  -f "$context/Containerfile" -t "$image" "$context" >/dev/null \
  || die "buildah bud failed for $image"
echo "build-image: built $image"
