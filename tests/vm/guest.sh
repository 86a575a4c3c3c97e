# A QEMU guest running Debian's own kernel, for tests that need a kernel that is not
# this machine's: Linux's Soft-RoCE (rdma_rxe) as a wire peer, a real vfio-pci.
#
# The kernel comes from Debian's apt (apt-get download of linux-image-6.1.*-amd64,
# dpkg-deb -x, depmod -b) into $VM_CACHE. A busybox-static initramfs loads virtio and 9p,
# mounts this machine's root read-only over 9p (so the guest runs the host's installed
# rdma-core, perftest and the project's build), puts tmpfs on /tmp and /run, mounts the
# test's work directory read-write on /mnt and runs $WORK/guest-run.sh there. The guest's
# NICs are on taps that QEMU creates in the caller's namespace (vm_tap_nic).
# Software emulation (TCG): no KVM is assumed.
set -euo pipefail

VM_CACHE="${VRDMA_VM_CACHE:-/var/cache/vrdma/vm}"

# Sets KVER and KDIR (the extracted kernel tree), downloading and extracting once.
vm_kernel() {
  mkdir -p "$VM_CACHE"
  if [[ -z "${KVER:-}" ]]; then
    KVER=$(apt-cache search --names-only '^linux-image-6\.1\.[0-9]+-[0-9]+-amd64$' 2>/dev/null |
      awk '{print $1}' | sed 's/^linux-image-//' | sort -V | tail -1)
    [[ -n "$KVER" ]] || KVER=$(apt-cache search --names-only '^linux-image-6.1.0-[0-9]+-amd64$' |
      awk '{print $1}' | sed 's/^linux-image-//' | sort -V | tail -1)
  fi
  KDIR="$VM_CACHE/$KVER"
  if [[ ! -f "$KDIR/boot/vmlinuz-$KVER" || ! -f "$KDIR/lib/modules/$KVER/modules.dep" ]]; then
    local tmp
    tmp=$(mktemp -d "$VM_CACHE/dl.XXXXXX")
    (cd "$tmp" && apt-get download "linux-image-$KVER" >/dev/null 2>&1)
    rm -rf "$KDIR"
    mkdir -p "$KDIR"
    dpkg-deb -x "$tmp"/linux-image-"$KVER"_*.deb "$KDIR"
    rm -rf "$tmp"
    depmod -b "$KDIR" "$KVER"
  fi
}

# Builds $VM_CACHE/initramfs-$KVER.cpio.gz once.
vm_initramfs() {
  INITRD="$VM_CACHE/initramfs-$KVER.cpio.gz"
  [[ -f "$INITRD" ]] && return 0
  local d
  d=$(mktemp -d)
  mkdir -p "$d"/{bin,proc,sys,dev,newroot,mods}
  cp /bin/busybox "$d/bin/busybox"
  for c in sh mount insmod switch_root mkdir cat sleep echo poweroff; do ln -s busybox "$d/bin/$c"; done
  : >"$d/mods/order"
  local m
  for mod in virtio_pci virtio_net 9p 9pnet_virtio; do
    modprobe -d "$KDIR" -S "$KVER" --show-depends "$mod" | awk '$1 == "insmod" {print $2}'
  done | awk '!seen[$0]++' | while read -r m; do
    cp "$m" "$d/mods/"
    basename "$m" >>"$d/mods/order"
  done
  cat >"$d/init" <<'INIT'
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /mods/order); do insmod /mods/$m; done
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose hostroot /newroot || {
  echo "vrdma-vm: cannot mount the host's root"; poweroff -f; }
mount -t tmpfs tmpfs /newroot/tmp
mount -t tmpfs tmpfs /newroot/run
mount -t 9p -o trans=virtio,version=9p2000.L,rw work /newroot/mnt
mount --move /dev /newroot/dev
mount --move /proc /newroot/proc
mount --move /sys /newroot/sys
exec switch_root /newroot /bin/bash /mnt/guest-run.sh
INIT
  chmod +x "$d/init"
  (cd "$d" && find . | cpio -o -H newc 2>/dev/null | gzip -1) >"$INITRD.tmp"
  mv "$INITRD.tmp" "$INITRD"
  rm -rf "$d"
}

# vm_start WORKDIR [qemu args...]: boots the guest in the background (its console in
# WORKDIR/console.log, its QMP socket WORKDIR/qmp.sock for tests/vm/qmp.py). VM_REPO and VM_BUILD, when set, are shared read-only as tags
# "repo" and "build": the guest's /tmp and /run are its own tmpfs, so a checkout under
# /tmp is not visible through the host root (guest scripts mount them with
# vm_guest_mounts). The caller adds the guest's NICs, e.g. vm_tap_nic; VM_MACHINE
# and VM_APPEND change the machine type and add kernel arguments; VM_SMP the vCPUs.
# Sets VM_PID.
vm_start() {
  local work="$1"
  shift
  vm_kernel
  vm_initramfs
  # The guest's clock from its TSC (tsc=reliable: no watchdog demotes it). perftest checks
  # its TSC against gettimeofday before it reports and refuses when they are out of line
  # ("Correlation coefficient r^2 < 0.9", "Can't produce a report"), which an emulated
  # clocksource (HPET or ACPI PM timer, a trip into QEMU per read) made them under TCG.
  qemu-system-x86_64 -machine "${VM_MACHINE:-q35}" -cpu max -m 2048 -smp "${VM_SMP:-1}" \
    -nographic -no-reboot -qmp unix:"$work/qmp.sock",server=on,wait=off \
    -kernel "$KDIR/boot/vmlinuz-$KVER" -initrd "$INITRD" \
    -append "console=ttyS0 quiet panic=-1 clocksource=tsc tsc=reliable vrdma_kdir=$KDIR vrdma_kver=$KVER ${VM_APPEND:-}" \
    -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
    -virtfs local,path="$work",mount_tag=work,security_model=none,multidevs=remap \
    ${VM_REPO:+-virtfs local,path="$VM_REPO",mount_tag=repo,security_model=none,readonly=on,multidevs=remap} \
    ${VM_BUILD:+-virtfs local,path="$VM_BUILD",mount_tag=build,security_model=none,readonly=on,multidevs=remap} \
    "$@" >"$work/console.log" 2>&1 </dev/null &
  VM_PID=$!
}

# vm_tap_nic ID TAP MODEL MAC [device options]: the qemu arguments for a guest NIC of
# MODEL (virtio-net-pci, e1000e) on a new tap TAP in the caller's namespace.
vm_tap_nic() {
  local id="$1" tap="$2" model="$3" mac="$4"
  shift 4
  local opts=""
  (($#)) && opts=",$(IFS=,; echo "$*")"
  echo "-netdev tap,id=$id,ifname=$tap,script=no,downscript=no -device $model,netdev=$id,mac=$mac$opts"
}

# Lines for a guest script (before it uses the repository or the build): mounts the
# repo and build shares at their host paths.
vm_guest_mounts() {
  local tag path
  for tag in repo build; do
    path=$([[ $tag == repo ]] && echo "${VM_REPO:-}" || echo "${VM_BUILD:-}")
    [[ -n "$path" ]] || continue
    echo "mkdir -p '$path' 2>/dev/null; mount -t 9p -o trans=virtio,version=9p2000.L,ro $tag '$path'"
  done
}
