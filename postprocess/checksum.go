package postprocess

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/hashicorp/hcl/v2"

	"github.com/kilnbuild/kiln/config"
	"github.com/kilnbuild/kiln/internal/fsx"
)

// checksumTypes are Packer's, in its order.
var checksumTypes = []string{"md5", "sha1", "sha224", "sha256", "sha384", "sha512"}

func newHash(typ string) hash.Hash {
	switch typ {
	case "md5":
		return md5.New()
	case "sha1":
		return sha1.New()
	case "sha224":
		return sha256.New224()
	case "sha256":
		return sha256.New()
	case "sha384":
		return sha512.New384()
	case "sha512":
		return sha512.New()
	}
	return nil
}

const defaultChecksumOutput = "packer_{{.BuildName}}_{{.BuilderType}}_{{.ChecksumType}}.checksum"

// checksum is Packer's checksum post-processor: for each type, one line
// "HEX\tBASENAME" per artifact file appended to the output file.
type checksum struct {
	Types  []string `hcl:"checksum_types,optional"`
	Output string   `hcl:"output,optional"`
}

func decodeChecksum(pp *config.PostProcessor) (processor, hcl.Diagnostics) {
	c := &checksum{}
	diags := decodeBody(pp, c)
	if diags.HasErrors() {
		return nil, diags
	}
	if len(c.Types) == 0 {
		c.Types = []string{"md5"}
	}
	if c.Output == "" {
		c.Output = defaultChecksumOutput
	}
	for _, t := range c.Types {
		diags = append(diags, mustBeOneOf(pp, "checksum_types", t, checksumTypes)...)
	}
	diags = append(diags, checkTemplate(pp, "output", c.Output, "BuildName", "BuilderType", "ChecksumType")...)
	if diags.HasErrors() {
		return nil, diags
	}
	return c, diags
}

func (c *checksum) run(ctx context.Context, in Artifact, env Env) (Artifact, bool, error) {
	// One read of each file feeds every hash.
	sums := map[string]map[string]string{} // file -> type -> hex
	for _, f := range in.Files {
		s, err := hashFile(ctx, env, env.path(f), c.Types)
		if err != nil {
			return Artifact{}, true, err
		}
		sums[f] = s
	}

	// Lines per output file, in Packer's order: by type, then by file.
	var outputs []string
	lines := map[string]*bytes.Buffer{}
	for _, typ := range c.Types {
		data := map[string]string{"BuildName": env.BuildName, "BuilderType": in.BuilderType, "ChecksumType": typ}
		out, err := render(c.Output, data, env)
		if err != nil {
			return Artifact{}, true, fmt.Errorf("output: %w", err)
		}
		if lines[out] == nil {
			lines[out] = &bytes.Buffer{}
			outputs = append(outputs, out)
		}
		for _, f := range in.Files {
			fmt.Fprintf(lines[out], "%s\t%s\n", sums[f][typ], filepath.Base(f))
		}
	}
	for _, out := range outputs {
		if err := appendAtomic(env.path(out), lines[out].Bytes()); err != nil {
			return Artifact{}, true, err
		}
		env.Say("Checksums written to %s", out)
	}

	a := in
	a.BuilderID = "packer.post-processor.checksum"
	a.Files = slices.Clone(in.Files)
	for _, out := range outputs {
		if !slices.Contains(a.Files, out) {
			a.Files = append(a.Files, out)
		}
	}
	// The new artifact lists the input's files: deleting the input would
	// delete them, so it is always kept.
	return a, true, nil
}

// hashFile computes the given hash types of one file in one pass.
func hashFile(ctx context.Context, env Env, p string, types []string) (map[string]string, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	hs := make([]hash.Hash, len(types))
	ws := make([]io.Writer, len(types))
	for i, t := range types {
		hs[i] = newHash(t)
		ws[i] = hs[i]
	}
	report := env.Progress("Checksumming " + filepath.Base(p))
	if _, err := fsx.CopyContext(ctx, io.MultiWriter(ws...), f, func(n int64) { report(n, fi.Size()) }); err != nil {
		return nil, fmt.Errorf("hashing %s: %w", p, err)
	}
	out := map[string]string{}
	for i, t := range types {
		out[t] = hex.EncodeToString(hs[i].Sum(nil))
	}
	return out, nil
}

// appendAtomic appends data to p (Packer appends to an existing checksum
// file) by writing old+new to a temporary file and renaming it, then
// re-reads the result to check it.
func appendAtomic(p string, data []byte) error {
	old, err := os.ReadFile(p)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	want := append(old, data...)
	if err := fsx.WriteFile(p, want, 0o644); err != nil {
		return err
	}
	got, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("%s: content read back differs from what was written", p)
	}
	return nil
}
