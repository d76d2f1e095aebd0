package disk

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/kilnbuild/kiln/internal/testutil"
)

// A fixed VHD cannot be probed (its header is a footer): only with
// explicit formats does it compare equal to its source.
func TestCompareFormatsFixedVHD(t *testing.T) {
	testutil.Tool(t, "qemu-img")
	dir := t.TempDir()
	src := filepath.Join(dir, "src.raw")
	writeRandomRaw(t, src, 4<<20, 1<<20)
	vhd := filepath.Join(dir, "fixed.vhd")
	ctx := context.Background()
	err := Tool{}.Convert(ctx, ConvertOptions{Src: src, SrcFormat: "raw", Dst: vhd, DstFormat: "vpc",
		Extra: []string{"-o", "subformat=fixed,force_size=on"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := (Tool{}).CompareFormats(ctx, src, "raw", vhd, "vpc"); err != nil {
		t.Errorf("with formats: %v", err)
	}
	if err := (Tool{}).CompareFormats(ctx, src, "", vhd, ""); !errors.Is(err, ErrImagesDiffer) {
		t.Errorf("probed: err = %v, want ErrImagesDiffer (the footer read as data)", err)
	}
}
