# kiln — see README.md. Two commands do everything on a fresh Debian 12:
#   make run    install what is missing, build bin/kiln, run the example build
#   make test   install what is missing, build the test guest, run every test
SHELL := /bin/bash
GO ?= go
export GOTOOLCHAIN ?= local
GOFLAGS_TEST ?= -count=1
# Debian packages kiln needs at run time (qemu, qemu-img, UEFI firmware) and
# the test guest's build script needs (kernel and tools come from apt).
APT_PACKAGES := qemu-system-x86 qemu-utils ovmf mtools dosfstools syslinux syslinux-common \
	busybox-static cpio fdisk e2fsprogs kmod openssl openssh-client openssh-server openssh-sftp-server \
	ca-certificates grub-common grub-pc-bin grub-efi-amd64-bin xorriso genisoimage \
	libvirt-daemon-system libvirt-clients ipxe-qemu dnsmasq-base

.PHONY: all setup build fixtures run test test-unit bench vet clean

all: build

# setup installs only what is missing, so it is quick on a prepared machine.
setup:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

build:
	$(GO) build -o bin/kiln ./cmd/kiln

# The guest is built from Debian packages fetched with apt-get download, which
# needs package lists.
fixtures: setup
	@if [ -z "$$(ls /var/lib/apt/lists/ 2>/dev/null | grep -v -e lock -e partial -e auxfiles)" ]; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); $$SUDO apt-get update -qq; fi
	@testdata/guest/ensure.sh >/dev/null
	@testdata/installer/ensure.sh >/dev/null

# run: the main job, end to end: a real guest booted under QEMU, provisioned
# over SSH, shut down and written to output-example/.
run: setup build fixtures
	bin/kiln build -force -var "guest_dir=$$(testdata/guest/ensure.sh)" testdata/example/example.pkr.hcl

vet:
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

test: setup fixtures vet
	$(GO) test $(GOFLAGS_TEST) -timeout 40m ./...

test-unit:
	$(GO) test -short $(GOFLAGS_TEST) ./...

bench: setup build fixtures
	$(GO) run ./bench -n 5

clean:
	rm -rf bin output-*
