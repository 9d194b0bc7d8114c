package kernel

// The modules of the guest initramfs of the node's virtual machines
// (internal/node/vm builds it; zosctl image build puts them in the image).

// GuestModules are the modules vminit loads at every boot, by name; their
// dependencies are added and everything is ordered (virtio before
// virtio_mmio, fuse before virtiofs, ...).
// evdev and button carry the ACPI power button (QEMU's system_powerdown)
// to vminit as KEY_POWER.
func GuestModules() []string {
	return []string{"virtio_mmio", "virtio_blk", "virtio_net", "virtiofs", "evdev", "button"}
}

// DiskModules are the file systems of disks (the guest's disk group),
// loaded only when the VM has disks to mount: btrfs alone brings about
// ten modules (raid6_pq, xor, zstd, crc32c, ...).
func DiskModules() []string { return []string{"btrfs", "ext4"} }

// FallbackModules are loaded only when the root is not on virtiofs
// (the guest's 9p group in the module list): 9p costs about 0.1 s to load
// under tcg.
func FallbackModules() []string { return []string{"9pnet_virtio", "9p"} }
