#!/usr/bin/env bash
# Imports busybox-based test images into the host's podman storage:
#   localhost/bb      CMD ["/bin/sh"]; /www/index.html for httpd
#   localhost/bb-cmd  CMD ["echo", "hello from the image CMD"]
#   localhost/bb-health  HEALTHCHECK test -f /tmp/ok, every 2 s, 2 retries
#   localhost/bb-web  CMD: httpd in the foreground on port 80, serving /www; EXPOSE 80
#   localhost/bb-git  bb plus the host's git and the libraries it links (volume tests)
set -euo pipefail
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/root/bin" "$work/root/www" "$work/root/tmp" "$work/root/etc"
cp /bin/busybox "$work/root/bin/busybox"
for a in $("$work/root/bin/busybox" --list); do [ "$a" = busybox ] || ln -sf busybox "$work/root/bin/$a"; done
echo '<h1>hello from fcvm</h1>' > "$work/root/www/index.html"
echo 'root:x:0:0:root:/:/bin/sh' > "$work/root/etc/passwd"
tar -C "$work/root" -cf "${1:-$work}/busybox-rootfs.tar" .
# Also kept in the checkout, for tests that import it as another user.
cp "${1:-$work}/busybox-rootfs.tar" "$(dirname "$0")/../busybox-rootfs.tar" 2>/dev/null || true
podman import --quiet --change 'CMD ["/bin/sh"]' "${1:-$work}/busybox-rootfs.tar" localhost/bb >/dev/null
podman import --quiet --change 'CMD ["echo", "hello from the image CMD"]' "${1:-$work}/busybox-rootfs.tar" localhost/bb-cmd >/dev/null
podman import --quiet --change 'CMD ["httpd", "-f", "-p", "80", "-h", "/www"]' --change 'EXPOSE 80' "${1:-$work}/busybox-rootfs.tar" localhost/bb-web >/dev/null
# An image with a HEALTHCHECK that passes once /tmp/ok exists (podman build runs no container here).
printf 'FROM localhost/bb\nHEALTHCHECK --interval=2s --timeout=5s --retries=2 CMD test -f /tmp/ok\n' > "$work/Containerfile"
podman build --quiet --format docker --tag localhost/bb-health --file "$work/Containerfile" "$work" >/dev/null
# git from the host's Debian package, with its libraries: the guest is Debian too.
if command -v git >/dev/null; then
  g="$work/git"
  mkdir -p "$g/usr/bin"
  cp -a "$work/root/." "$g/"
  cp "$(command -v git)" "$g/usr/bin/git"
  for lib in $(ldd "$(command -v git)" | grep -o '/[^ ]*'); do
    mkdir -p "$g$(dirname "$lib")"
    cp -L "$lib" "$g$lib"
  done
  tar -C "$g" -cf "$work/git.tar" .
  podman import --quiet --change 'CMD ["/bin/sh"]' "$work/git.tar" localhost/bb-git >/dev/null
fi
echo "make-test-image: localhost/bb, localhost/bb-cmd, localhost/bb-health, localhost/bb-web and localhost/bb-git imported"
