variable "guest_dir" {
type = string
  default= "/var/lib/guest"
}

locals {
  a = 1
  longer_name = "x"
  m = { k = "v", other_key = 2 }
}

source "qemu" "base" {
    disk_image = true
  iso_url = "${var.guest_dir}/guest.qcow2"
  iso_checksum     =    "none"
  qemuargs = [
  ["-m", "256M"],
      ["-smp","2"]
  ]
  # a comment stays
  memory = 256 // and this one
}

build {
  sources = ["source.qemu.base"]
  provisioner "shell" {
  inline = [
  "echo hi",
  ]
  }
}
