# shellcheck shell=bash
# base.sh: the busybox base images (tarballs cached in $LAB/base).
# Sourced by scripts/farm-lab; see the top of that file for the layout.

# ---------------------------------------------------------------- base images
# make_rootfs ARCH BUSYBOX_BINARY -> $LAB/base/busybox-ARCH.tar
make_rootfs() {
    local arch=$1 bb=$2 root d a
    elf_machine_is "$bb" "$arch" || die "$bb is not a $arch ELF binary"
    root=$(mktemp -d "$LAB/base/rootfs-$arch.XXXXXX")
    chmod 755 "$root"
    mkdir -p "$root"/{bin,etc,tmp,root,proc,sys,dev,var/tmp}
    chmod 1777 "$root/tmp" "$root/var/tmp"
    install -m 755 "$bb" "$root/bin/busybox"
    for a in "${APPLETS[@]}"; do ln -s busybox "$root/bin/$a"; done
    echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
    echo 'root:x:0:' >"$root/etc/group"
    # fixed owner/time/order: the same tarball (and layer digest) on every run
    tar -C "$root" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
        -cf "$LAB/base/busybox-$arch.tar.tmp" .
    mv "$LAB/base/busybox-$arch.tar.tmp" "$LAB/base/busybox-$arch.tar"
    rm -rf "$root"
}

# elf_machine_is FILE ARCH: ELF e_machine (bytes 18-19) is x86-64 (0x3e) or aarch64 (0xb7)
elf_machine_is() {
    local want
    case $2 in amd64) want="7f454c46 3e00" ;; arm64) want="7f454c46 b700" ;; *) return 1 ;; esac
    [[ "$(head -c 4 "$1" | od -An -tx1 | tr -d ' \n') $(head -c 20 "$1" | tail -c 2 | od -An -tx1 | tr -d ' \n')" == "$want" ]]
}

# A cached tarball is only trusted if its /bin/busybox is an ELF of the right arch.
tarball_ok() {
    local arch=$1 tar=$LAB/base/busybox-$1.tar t ok=1
    [[ -s $tar ]] || return 1
    t=$(mktemp)
    tar -xOf "$tar" ./bin/busybox >"$t" 2>/dev/null && elf_machine_is "$t" "$arch" && ok=0
    rm -f "$t"
    return $ok
}

ensure_base_tarballs() {
    local d deb bb
    mkdir -p "$LAB/base"
    if ! tarball_ok amd64; then
        log "making amd64 busybox rootfs"
        file_is_static /bin/busybox || die "/bin/busybox is not the static busybox (install busybox-static)"
        make_rootfs amd64 /bin/busybox
    fi
    if ! tarball_ok arm64; then
        log "making arm64 busybox rootfs from Debian's busybox-static:arm64"
        # shellcheck disable=SC2034 # read by apt_update_once (common.sh)
        dpkg --print-foreign-architectures | grep -qx arm64 || { dpkg --add-architecture arm64; APT_UPDATED=0; }
        d=$(mktemp -d)
        chmod 755 "$d"; chown _apt "$d" 2>/dev/null || true  # apt downloads as _apt
        if ! (cd "$d" && apt-get download busybox-static:arm64 >&2 2>/dev/null); then
            apt_update_once
            (cd "$d" && apt-get download busybox-static:arm64 >&2) || die "apt-get download busybox-static:arm64 failed"
        fi
        deb=$(ls "$d"/busybox-static_*_arm64.deb)
        dpkg -x "$deb" "$d/x"
        bb=$(find "$d/x" -path '*bin/busybox' -type f | head -n1)
        [[ -n $bb ]] || die "no busybox binary in $deb"
        make_rootfs arm64 "$bb"
        rm -rf "$d"
    fi
}

file_is_static() { ! LC_ALL=C ldd "$1" >/dev/null 2>&1; }  # ldd fails on static binaries

# import_base WHAT CLIENT... : import both tarballs through the given podman client
# command (local podman, or node_podman i) unless the image is already there with
# the right architecture and made from the current tarball (label holds its sha256).
import_base() {
    local what=$1; shift
    local arch got want old
    for arch in amd64 arm64; do
        want="$arch $(sha256sum <"$LAB/base/busybox-$arch.tar" | cut -c1-64)"
        got=$("$@" image inspect "localhost/busybox:$arch" \
            --format '{{.Architecture}} {{index .Labels "farm-lab.rootfs"}}' 2>/dev/null || true)
        [[ $got == "$want" ]] && continue
        old=$("$@" image inspect "localhost/busybox:$arch" --format '{{.Id}}' 2>/dev/null || true)
        log "$what: importing localhost/busybox:$arch"
        "$@" import -q --arch "$arch" --os linux --change "LABEL farm-lab.rootfs=${want#* }" \
            "$LAB/base/busybox-$arch.tar" "localhost/busybox:$arch" >/dev/null ||
            die "$what: import of busybox:$arch failed"
        got=$("$@" image inspect "localhost/busybox:$arch" --format '{{.Architecture}}')
        [[ $got == "$arch" ]] || die "$what: localhost/busybox:$arch has architecture '$got'"
        # drop the outdated image unless something still uses it
        [[ -z $old ]] || "$@" rmi "$old" >/dev/null 2>&1 || true
    done
}

