package media

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// mkfile creates dir/rel with content and mode, making parents.
func mkfile(t *testing.T, dir, rel, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // beat the umask
		t.Fatal(err)
	}
	return p
}

// summary is an Entry flattened for comparison.
type summary struct {
	Path, Source, Content string
	Mode                  os.FileMode
}

func summarize(es []Entry) []summary {
	var out []summary
	for _, e := range es {
		out = append(out, summary{e.Path, e.Source, string(e.Content), e.Mode})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

func TestEntriesPackerSemantics(t *testing.T) {
	base := t.TempDir()
	userData := mkfile(t, base, "user-data", "#cloud-config\n", 0o644)
	metaData := mkfile(t, base, "seed/meta-data", "instance-id: i\n", 0o640)
	script := mkfile(t, base, "seed/sub/x.sh", "#!/bin/sh\n", 0o755)
	if err := os.Mkdir(filepath.Join(base, "seed/empty"), 0o700); err != nil {
		t.Fatal(err)
	}
	a := mkfile(t, base, "globdir/a.cfg", "a", 0o644)
	b := mkfile(t, base, "globdir/b.cfg", "b", 0o644)
	mkfile(t, base, "globdir/c.txt", "c", 0o644)
	if err := os.Symlink("seed/meta-data", filepath.Join(base, "link")); err != nil {
		t.Fatal(err)
	}
	abs := mkfile(t, t.TempDir(), "elsewhere.cfg", "e", 0o600)

	got, err := Entries(base, []string{"user-data", "seed", "globdir/*.cfg", "link", abs}, map[string]string{
		"/nested/c.txt": "hi",
		"d.txt":         "x",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []summary{
		{Path: "a.cfg", Source: a, Mode: 0o644},
		{Path: "b.cfg", Source: b, Mode: 0o644},
		{Path: "d.txt", Content: "x", Mode: 0o644},
		{Path: "elsewhere.cfg", Source: abs, Mode: 0o600},
		// A symbolic link is stored as its target's content, under its own name.
		{Path: "link", Source: filepath.Join(base, "link"), Mode: 0o640},
		{Path: "nested/c.txt", Content: "hi", Mode: 0o644},
		// A directory keeps its own name and its structure, empty
		// directories included.
		{Path: "seed", Mode: os.ModeDir | 0o755},
		{Path: "seed/empty", Mode: os.ModeDir | 0o700},
		{Path: "seed/meta-data", Source: metaData, Mode: 0o640},
		{Path: "seed/sub", Mode: os.ModeDir | 0o755},
		{Path: "seed/sub/x.sh", Source: script, Mode: 0o755},
		{Path: "user-data", Source: userData, Mode: 0o644},
	}
	if diff := cmp.Diff(want, summarize(got)); diff != "" {
		t.Errorf("Entries (-want +got):\n%s", diff)
	}
	// cd_files order first, then cd_content by path.
	if got[0].Path != "user-data" || got[len(got)-1].Path != "nested/c.txt" {
		t.Errorf("order: first %q, last %q", got[0].Path, got[len(got)-1].Path)
	}
}

func TestEntriesContentsAtRoot(t *testing.T) {
	base := t.TempDir()
	ud := mkfile(t, base, "seed/user-data", "u", 0o644)
	md := mkfile(t, base, "seed/meta-data", "m", 0o644)
	want := []summary{
		{Path: "meta-data", Source: md, Mode: 0o644},
		{Path: "user-data", Source: ud, Mode: 0o644},
	}
	// Packer: "dir/" and "dir/." split to an empty or "." base name, so the
	// contents land at the root; the glob "dir/*" does the same.
	for _, item := range []string{"seed/", "seed/.", "seed/*", base + "/seed/"} {
		got, err := Entries(base, []string{item}, nil)
		if err != nil {
			t.Fatalf("%q: %v", item, err)
		}
		if diff := cmp.Diff(want, summarize(got)); diff != "" {
			t.Errorf("%q (-want +got):\n%s", item, diff)
		}
	}
}

func TestEntriesLinkToDirectory(t *testing.T) {
	base := t.TempDir()
	md := mkfile(t, base, "seed/meta-data", "m", 0o644)
	if err := os.Symlink("seed", filepath.Join(base, "seedlink")); err != nil {
		t.Fatal(err)
	}
	got, err := Entries(base, []string{"seedlink"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []summary{
		{Path: "seedlink", Mode: os.ModeDir | 0o755},
		{Path: "seedlink/meta-data", Source: md, Mode: 0o644},
	}
	if diff := cmp.Diff(want, summarize(got)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestEntriesDuplicatesNameBothSources(t *testing.T) {
	base := t.TempDir()
	one := mkfile(t, base, "a/user-data", "1", 0o644)
	two := mkfile(t, base, "b/user-data", "2", 0o644)

	_, err := Entries(base, []string{"a/user-data", "b/user-data"}, nil)
	if err == nil || !strings.Contains(err.Error(), one) || !strings.Contains(err.Error(), two) {
		t.Errorf("two files for user-data: got %v, want an error naming %s and %s", err, one, two)
	}
	_, err = Entries(base, []string{"a/user-data"}, map[string]string{"user-data": "x"})
	if err == nil || !strings.Contains(err.Error(), one) || !strings.Contains(err.Error(), `cd_content["user-data"]`) {
		t.Errorf("file and cd_content for user-data: got %v", err)
	}
	// Two trees sharing a directory name merge, as in Packer.
	mkfile(t, base, "x/shared/one", "1", 0o644)
	mkfile(t, base, "y/shared/two", "2", 0o644)
	got, err := Entries(base, []string{"x/shared", "y/shared"}, nil)
	if err != nil {
		t.Fatalf("merging directories: %v", err)
	}
	if len(got) != 3 { // shared/, shared/one, shared/two
		t.Errorf("merged entries: %+v", summarize(got))
	}
}

func TestEntriesErrors(t *testing.T) {
	base := t.TempDir()
	mkfile(t, base, "file", "f", 0o644)
	mkfile(t, base, "tree/x", "x", 0o644)
	if err := os.Symlink(base, filepath.Join(base, "tree/loop")); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		files   []string
		content map[string]string
		want    string
	}{
		{"missing file", []string{"nope"}, nil, "nope"},
		{"bad glob", []string{"[x"}, nil, "bad pattern"},
		{"content escapes root", nil, map[string]string{"../etc/passwd": "x"}, "leaves the ISO root"},
		{"content at root", nil, map[string]string{"/": "x"}, "empty path"},
		{"file where a directory is needed", []string{"file"}, map[string]string{"file/x": "y"}, "needs it to be a directory"},
		{"symlinked directory in a tree", []string{"tree"}, nil, "symbolic link to a directory"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Entries(base, c.files, c.content)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want an error containing %q", err, c.want)
			}
		})
	}

	// A glob matching nothing adds nothing, as in Packer.
	got, err := Entries(base, []string{"*.nothing"}, nil)
	if err != nil || len(got) != 0 {
		t.Errorf("empty glob: %v, %v", got, err)
	}
}
