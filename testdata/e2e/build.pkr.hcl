# End-to-end template: two builds (qcow2 and raw) of the test guest from one
# base source, with every provisioner kind. e2e/e2e_test.go runs it with
# `kiln build` and then reads the provisioners' changes out of the images.
variable "guest_dir" {
  type = string
}

variable "out" {
  type        = string
  description = "Directory the outputs and downloaded files go to."
}

variable "name" {
  type        = string
  default     = "kiln-e2e"
  description = "vm_name prefix; tests make it unique to find their QEMU processes."
}

variable "root_password" {
  type      = string
  default   = "kiln-root-pw-3f9a"
  sensitive = true
}

variable "fault" {
  type        = string
  default     = ""
  description = "Fault tests: \"hang\" makes a provisioner hang (the test kills QEMU meanwhile), \"fail\" makes one fail."
}

variable "checksum" {
  type    = string
  default = ""
}

locals {
  greeting = "hello world, it's kiln"
}

source "qemu" "base" {
  disk_image       = true
  use_backing_file = false
  iso_url          = "${var.guest_dir}/guest.qcow2"
  iso_checksum     = var.checksum != "" ? var.checksum : "file:${var.guest_dir}/SHA256SUMS"
  disk_size        = "96M"
  memory           = 256
  accelerator      = "tcg"
  headless         = true
  ssh_username     = "root"
  ssh_password     = var.root_password
  ssh_timeout      = "3m"
  shutdown_command = "poweroff"
  shutdown_timeout = "1m"
}

build {
  name = "e2e"

  source "source.qemu.base" {
    name             = "qcow2"
    format           = "qcow2"
    output_directory = "${var.out}/qcow2"
    vm_name          = "${var.name}-qcow2"
  }

  source "source.qemu.base" {
    name             = "raw"
    format           = "raw"
    output_directory = "${var.out}/raw"
    vm_name          = "${var.name}-raw"
  }

  provisioner "shell" {
    inline = [
      "echo provisioned by ${source.name} > /data/provisioned.txt",
      "echo kiln-e2e: provisioning ${source.name}",
    ]
  }

  provisioner "shell" {
    inline = var.fault == "hang" ? ["echo kiln-e2e: hanging now", "sleep 600"] : var.fault == "fail" ? ["echo kiln-e2e: failing now", "exit 3"] : ["true"]
  }

  provisioner "file" {
    source      = "${path.root}/payload.txt"
    destination = "/data/payload.txt"
  }

  provisioner "shell" {
    script           = "${path.root}/check.sh"
    environment_vars = ["GREETING=${local.greeting}", "SOURCE=${source.name}"]
  }

  provisioner "file" {
    direction   = "download"
    source      = "/data/provisioned.txt"
    destination = "${var.out}/downloaded-${source.name}.txt"
  }

  provisioner "shell-local" {
    inline = ["echo \"local $PACKER_BUILD_NAME\" > '${var.out}/local-${source.name}.txt'"]
  }

  post-processor "checksum" {
    checksum_types = ["sha256"]
    output         = "${var.out}/${source.name}.{{ .ChecksumType }}"
  }

  post-processor "manifest" {
    output     = "${var.out}/manifest.json"
    strip_path = true
  }
}
