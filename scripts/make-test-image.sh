#!/usr/bin/env bash
# Imports busybox-based test images into the host's podman storage:
#   localhost/bb      CMD ["/bin/sh"]; /www/index.html for httpd
#   localhost/bb-cmd  CMD ["echo", "hello from the image CMD"]
set -euo pipefail
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/root/bin" "$work/root/www" "$work/root/tmp" "$work/root/etc"
cp /bin/busybox "$work/root/bin/busybox"
for a in $("$work/root/bin/busybox" --list); do [ "$a" = busybox ] || ln -sf busybox "$work/root/bin/$a"; done
echo '<h1>hello from fcvm</h1>' > "$work/root/www/index.html"
echo 'root:x:0:0:root:/:/bin/sh' > "$work/root/etc/passwd"
tar -C "$work/root" -cf "${1:-$work}/busybox-rootfs.tar" .
podman import --quiet --change 'CMD ["/bin/sh"]' "${1:-$work}/busybox-rootfs.tar" localhost/bb >/dev/null
podman import --quiet --change 'CMD ["echo", "hello from the image CMD"]' "${1:-$work}/busybox-rootfs.tar" localhost/bb-cmd >/dev/null
echo "make-test-image: localhost/bb and localhost/bb-cmd imported"
