source "qemu" "broken" {
  iso_url = "x.iso"
  iso_checksum = "none"
  ssh_username = "root"
  disk_size = 
}
