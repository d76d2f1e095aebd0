# The example build `make run` performs: boot the test guest (a small Linux
# disk image with OpenSSH, built by testdata/guest/build.sh from Debian
# packages), provision it over SSH, shut it down cleanly and write a
# compacted qcow2 image to output-example/.
packer {
  required_plugins {
    qemu = {
      version = ">= 1.1.0"
      source  = "github.com/hashicorp/qemu"
    }
  }
}

variable "guest_dir" {
  type        = string
  description = "Directory holding guest.qcow2 and SHA256SUMS (printed by testdata/guest/ensure.sh)."
}

variable "root_password" {
  type      = string
  default   = "kiln-root-pw-3f9a"
  sensitive = true
}

source "qemu" "example" {
  disk_image       = true
  iso_url          = "${var.guest_dir}/guest.qcow2"
  iso_checksum     = "file:${var.guest_dir}/SHA256SUMS"
  format           = "qcow2"
  disk_size        = "128M"
  memory           = 256
  accelerator      = "tcg"
  headless         = true
  ssh_username     = "root"
  ssh_password     = var.root_password
  ssh_timeout      = "3m"
  shutdown_command = "poweroff"
  output_directory = "output-example"
  vm_name          = "example.qcow2"
}

build {
  sources = ["source.qemu.example"]

  provisioner "shell" {
    inline = [
      "echo \"built by kiln at $(date -u)\" > /data/built-by-kiln.txt",
      "uname -a",
    ]
  }

  provisioner "file" {
    content     = "hello from ${source.name}\n"
    destination = "/data/hello.txt"
  }
}
