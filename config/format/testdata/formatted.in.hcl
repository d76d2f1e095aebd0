source "qemu" "x" {
  iso_url      = "a.iso"
  iso_checksum = "none"
}
