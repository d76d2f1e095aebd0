package media

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// installerTree lays out files the way an installer ISO holds its kernel
// and initrd, and returns the directory.
func installerTree(t *testing.T) string {
	dir := t.TempDir()
	mkfile(t, dir, "casper/vmlinuz", string(bigRandom), 0o644)
	mkfile(t, dir, "casper/initrd", strings.Repeat("initrd-", 40000), 0o644)
	mkfile(t, dir, "boot/grub/x86_64-efi/deep file name.mod", "grub module", 0o644)
	mkfile(t, dir, "README.diskdefines", "#define DISKNAME kiln", 0o644)
	return dir
}

func TestExtractFromISO(t *testing.T) {
	tree := installerTree(t)
	entries, err := Entries(tree, []string{tree + "/"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ours := filepath.Join(t.TempDir(), "ours.iso")
	if err := WriteISO(context.Background(), ours, "Ubuntu-Server 24.04 amd64", entries); err != nil {
		t.Fatal(err)
	}
	theirs := filepath.Join(t.TempDir(), "xorriso.iso")
	run(t, "xorriso", "-as", "mkisofs", "-R", "-J", "-V", "TEST", "-o", theirs, tree)
	// Without Rock Ridge and Joliet the names are 8.3 upper case
	// (CASPER/VMLINUZ.;1); case-insensitive matching still finds them.
	plain := filepath.Join(t.TempDir(), "plain.iso")
	run(t, "xorriso", "-as", "mkisofs", "-o", plain, tree)

	for _, iso := range []string{ours, theirs, plain} {
		t.Run(filepath.Base(iso), func(t *testing.T) {
			out := t.TempDir()
			files := map[string]string{
				"casper/vmlinuz": filepath.Join(out, "vmlinuz"),
				"/casper/initrd": filepath.Join(out, "initrd"),
			}
			if iso != plain {
				files["boot/grub/x86_64-efi/deep file name.mod"] = filepath.Join(out, "mod")
			}
			if err := ExtractFromISO(context.Background(), iso, files); err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct{ got, src string }{
				{"vmlinuz", "casper/vmlinuz"},
				{"initrd", "casper/initrd"},
				{"mod", "boot/grub/x86_64-efi/deep file name.mod"},
			} {
				if iso == plain && c.got == "mod" {
					continue
				}
				got, err := os.ReadFile(filepath.Join(out, c.got))
				if err != nil {
					t.Fatal(err)
				}
				want, _ := os.ReadFile(filepath.Join(tree, c.src))
				if !bytes.Equal(got, want) {
					t.Errorf("%s: extracted %d bytes differ from the %d in the tree", c.src, len(got), len(want))
				}
			}
		})
	}
}

func TestExtractFromISOMissingListsDirectory(t *testing.T) {
	tree := installerTree(t)
	iso := filepath.Join(t.TempDir(), "x.iso")
	run(t, "xorriso", "-as", "mkisofs", "-R", "-J", "-o", iso, tree)
	out := t.TempDir()

	err := ExtractFromISO(context.Background(), iso, map[string]string{"casper/vmlinuz.efi": filepath.Join(out, "k")})
	if err == nil || !strings.Contains(err.Error(), "initrd, vmlinuz") {
		t.Errorf("missing file: %v; want the listing of casper", err)
	}
	err = ExtractFromISO(context.Background(), iso, map[string]string{"install/vmlinuz": filepath.Join(out, "k")})
	if err == nil || !strings.Contains(err.Error(), "README.diskdefines, boot/, casper/") {
		t.Errorf("missing directory: %v; want the listing of the root", err)
	}
	err = ExtractFromISO(context.Background(), iso, map[string]string{"casper": filepath.Join(out, "k")})
	if err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Errorf("directory: %v", err)
	}
	if left, _ := os.ReadDir(out); len(left) != 0 {
		t.Errorf("failed extractions left %v", left)
	}
}

func TestExtractFromISOCancelled(t *testing.T) {
	tree := installerTree(t)
	iso := filepath.Join(t.TempDir(), "x.iso")
	run(t, "xorriso", "-as", "mkisofs", "-R", "-J", "-o", iso, tree)
	out := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := ExtractFromISO(ctx, iso, map[string]string{"casper/vmlinuz": filepath.Join(out, "k")})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
	if left, _ := os.ReadDir(out); len(left) != 0 {
		t.Errorf("cancelled extraction left %v", left)
	}
}

func TestExtractFromISONotAnISO(t *testing.T) {
	junk := mkfile(t, t.TempDir(), "junk.iso", strings.Repeat("not an iso ", 10000), 0o644)
	err := ExtractFromISO(context.Background(), junk, map[string]string{"a": filepath.Join(t.TempDir(), "a")})
	if err == nil || !strings.Contains(err.Error(), junk) {
		t.Errorf("got %v, want an error naming %s", err, junk)
	}
}
