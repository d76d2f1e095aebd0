# End-to-end template for kiln's output formats (kiln extensions): the test
# guest built as vmdk and as ova (both run on a qcow2 working disk and are
# exported at the end), and as raw with trim_before_shutdown.
# e2e/export_test.go runs it.
variable "guest_dir" {
  type = string
}

variable "out" {
  type = string
}

variable "name" {
  type    = string
  default = "kiln-e2e"
}

source "qemu" "base" {
  disk_image       = true
  iso_url          = "${var.guest_dir}/guest.qcow2"
  iso_checksum     = "file:${var.guest_dir}/SHA256SUMS"
  disk_size        = "96M"
  memory           = 256
  accelerator      = "tcg"
  headless         = true
  ssh_username     = "root"
  ssh_password     = "kiln-root-pw-3f9a"
  ssh_timeout      = "5m"
  shutdown_command = "poweroff"
  shutdown_timeout = "2m"
}

build {
  # vmdk and ova leave /data untouched, so their disks must equal the
  # fixture's guest.raw.
  source "source.qemu.base" {
    name              = "vmdk"
    format            = "vmdk"
    vmdk_subformat    = "monolithicSparse"
    vmdk_adapter_type = "lsilogic"
    vmdk_hwversion    = "14"
    output_directory  = "${var.out}/vmdk"
    vm_name           = "${var.name}-vmdk.vmdk"
  }

  source "source.qemu.base" {
    name             = "ova"
    format           = "ova"
    cpus             = 1
    output_directory = "${var.out}/ova"
    vm_name          = "${var.name}-ova.ova"
  }

  # raw writes 24 MiB of random data and deletes it again: with the trim
  # the freed blocks must not reach the image.
  source "source.qemu.base" {
    name                 = "raw"
    format               = "raw"
    trim_before_shutdown = true
    output_directory     = "${var.out}/raw"
    vm_name              = "${var.name}-raw"
  }

  provisioner "shell" {
    only = ["qemu.raw"]
    inline = [
      "echo kept > /data/kept.txt",
      "dd if=/dev/urandom of=/data/junk bs=1M count=24 2>/dev/null",
      "sync",
      "rm /data/junk",
      "sync",
    ]
  }

  # The PXE-ready output of the raw build, through `kiln build`.
  post-processor "pxe" {
    only                = ["qemu.raw"]
    output_directory    = "${var.out}/pxe"
    compression         = "gz"
    kernel_args         = "console=ttyS0,115200"
    keep_input_artifact = true
  }
}
