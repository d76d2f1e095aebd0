package media

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/iso9660"
	"github.com/google/go-cmp/cmp"

	"github.com/kilnbuild/kiln/internal/testutil"
)

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	testutil.Tool(t, name)
	var stdout, stderr bytes.Buffer
	// isoinfo loops forever on some malformed images: a broken writer must
	// fail the test, not hang it.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	// xorriso reports problems with these words even when it exits 0.
	if m := regexp.MustCompile(`(?m)^.*\b(SORRY|WARNING|FAILURE|FATAL)\b.*$`).FindString(stderr.String()); m != "" {
		t.Errorf("%s reported a problem: %s", name, m)
	}
	return stdout.String()
}

// want describes one path of a sample image.
type want struct {
	dir     bool
	mode    os.FileMode // permission bits
	content []byte
}

var (
	longName  = strings.Repeat("a-long-name-", 10) + "end.yaml" // 128 bytes: fits a record with NM
	hugeName  = strings.Repeat("h", 230) + "-continued.txt"     // 244 bytes: NM goes to a continuation area
	deepPath  = "d1/d2/d3/d4/d5/d6/d7/d8/d9/deep.txt"           // deeper than ISO 9660's 8 levels
	bigRandom = func() []byte {
		b := make([]byte, 3*blockSize+123)
		r := rand.New(rand.NewPCG(1, 2))
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	}()
)

// sample returns entries exercising what a seed CD needs, and what a
// correct image holds for them.
func sample(t *testing.T) ([]Entry, map[string]want) {
	src := t.TempDir()
	script := mkfile(t, src, "run.sh", "#!/bin/sh\necho hi\n", 0o755)
	big := filepath.Join(src, "big.bin")
	if err := os.WriteFile(big, bigRandom, 0o644); err != nil {
		t.Fatal(err)
	}
	entries := []Entry{
		{Path: "user-data", Content: []byte("#cloud-config\nhostname: kiln\n")},
		{Path: "meta-data", Content: []byte("instance-id: iid-kiln\n")},
		{Path: "scripts/run.sh", Source: script},
		{Path: "scripts/nested/" + longName, Content: []byte("long\n"), Mode: 0o600},
		{Path: hugeName, Content: []byte("huge\n")},
		{Path: "MixedCase.Cfg", Content: []byte("upper")},
		{Path: "mixedcase.cfg", Content: []byte("lower")},
		{Path: "empty", Content: nil},
		{Path: "emptydir", Mode: os.ModeDir | 0o700},
		{Path: "data/big.bin", Source: big, Mode: 0o444},
		{Path: deepPath, Content: []byte("deep\n")},
	}
	w := map[string]want{
		"user-data":                  {mode: 0o644, content: entries[0].Content},
		"meta-data":                  {mode: 0o644, content: entries[1].Content},
		"scripts":                    {dir: true, mode: 0o755},
		"scripts/run.sh":             {mode: 0o755, content: []byte("#!/bin/sh\necho hi\n")},
		"scripts/nested":             {dir: true, mode: 0o755},
		"scripts/nested/" + longName: {mode: 0o600, content: []byte("long\n")},
		hugeName:                     {mode: 0o644, content: []byte("huge\n")},
		"MixedCase.Cfg":              {mode: 0o644, content: []byte("upper")},
		"mixedcase.cfg":              {mode: 0o644, content: []byte("lower")},
		"empty":                      {mode: 0o644, content: []byte{}},
		"emptydir":                   {dir: true, mode: 0o700},
		"data":                       {dir: true, mode: 0o755},
		"data/big.bin":               {mode: 0o444, content: bigRandom},
		"many":                       {dir: true, mode: 0o755},
	}
	for p := deepPath; p != "."; p = path.Dir(p) {
		if p == deepPath {
			w[p] = want{mode: 0o644, content: []byte("deep\n")}
		} else {
			w[p] = want{dir: true, mode: 0o755}
		}
	}
	// Enough records that the directory spans several blocks: a record
	// must never straddle a block boundary.
	for i := range 150 {
		p := fmt.Sprintf("many/file-with-a-longer-name-%03d.txt", i)
		c := []byte(fmt.Sprint(i))
		entries = append(entries, Entry{Path: p, Content: c})
		w[p] = want{mode: 0o644, content: c}
	}
	return entries, w
}

func writeSample(t *testing.T) (string, map[string]want) {
	t.Helper()
	entries, w := sample(t)
	iso := filepath.Join(t.TempDir(), "seed.iso")
	if err := WriteISO(context.Background(), iso, "cidata", entries); err != nil {
		t.Fatal(err)
	}
	return iso, w
}

func TestWriteISOReadBackWithGoDiskfs(t *testing.T) {
	iso, w := writeSample(t)
	f, err := os.Open(iso)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fsys, err := iso9660.Read(file.New(f, true), 0, 0, blockSize)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimRight(fsys.Label(), " "); got != "cidata" {
		t.Errorf("label %q, want cidata", got)
	}
	got := map[string]want{}
	err = fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == "." {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		g := want{dir: d.IsDir(), mode: info.Mode().Perm()}
		if !d.IsDir() {
			if g.content, err = fsys.ReadFile(p); err != nil {
				return err
			}
		}
		got[p] = g
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(w, got, cmp.AllowUnexported(want{})); diff != "" {
		t.Errorf("tree read back with go-diskfs (-want +got):\n%s", diff)
	}
}

// lsdl parses `xorriso -find / -exec lsdl`: "-rwxr-xr-x 1 0 0 18 date '/path'".
func lsdl(t *testing.T, out string) map[string]string {
	modes := map[string]string{}
	re := regexp.MustCompile(`^([-d][-rwxsStT]{9})\s.*'(/.*)'$`)
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil && m[2] != "/" {
			modes[strings.TrimPrefix(m[2], "/")] = m[1]
		}
	}
	return modes
}

func TestWriteISOXorrisoSeesRockRidge(t *testing.T) {
	iso, w := writeSample(t)
	got := lsdl(t, run(t, "xorriso", "-indev", iso, "-find", "/", "-exec", "lsdl"))
	wantModes := map[string]string{}
	for p, x := range w {
		m := x.mode
		if x.dir {
			m |= os.ModeDir
		}
		wantModes[p] = m.String()
	}
	if diff := cmp.Diff(wantModes, got); diff != "" {
		t.Errorf("xorriso names and modes (-want +got):\n%s", diff)
	}

	// Extract everything with xorriso and compare the bytes.
	out := filepath.Join(t.TempDir(), "x")
	run(t, "xorriso", "-osirrox", "on", "-indev", iso, "-extract", "/", out)
	for p, x := range w {
		if x.dir {
			continue
		}
		b, err := os.ReadFile(filepath.Join(out, p))
		if err != nil {
			t.Errorf("xorriso extract: %v", err)
			continue
		}
		if !bytes.Equal(b, x.content) {
			t.Errorf("xorriso extract %s: %d bytes differ from the %d written", p, len(b), len(x.content))
		}
	}
}

func TestWriteISOIsoinfo(t *testing.T) {
	iso, _ := writeSample(t)
	d := run(t, "isoinfo", "-d", "-i", iso)
	for _, s := range []string{"Volume id: cidata", "Joliet with UCS level 3 found", "Rock Ridge signatures version 1 found"} {
		if !strings.Contains(d, s) {
			t.Errorf("isoinfo -d lacks %q:\n%s", s, d)
		}
	}

	// Joliet tree: every directory reachable with its real names (64
	// characters at most), case clashes renamed, as Windows reads it.
	j := isoinfoListing(run(t, "isoinfo", "-J", "-l", "-i", iso))
	jLong := strings.Repeat("a-long-name-", 5)[:59] + ".yaml" // 64 characters, extension kept
	for dir, names := range map[string][]string{
		"/":                            {"MixedCase.Cfg", "data", "emptydir", "meta-data", "mixedcase~1.cfg", "scripts", "user-data", strings.Repeat("h", 60) + ".txt"},
		"/scripts/":                    {"nested", "run.sh"},
		"/scripts/nested/":             {jLong},
		"/d1/d2/d3/d4/d5/d6/d7/d8/d9/": {"deep.txt"},
	} {
		for _, n := range names {
			if !j[dir][n] {
				t.Errorf("Joliet directory %s lacks %q; has %v", dir, n, keys(j[dir]))
			}
		}
	}
	if got := run(t, "isoinfo", "-J", "-x", "/scripts/run.sh", "-i", iso); got != "#!/bin/sh\necho hi\n" {
		t.Errorf("isoinfo -J -x /scripts/run.sh = %q", got)
	}

	// Rock Ridge through isoinfo too, and the plain tree's 8.3 names.
	r := isoinfoListing(run(t, "isoinfo", "-R", "-l", "-i", iso))
	if !r["/scripts/nested/"][longName] || !r["/"][hugeName] {
		t.Errorf("isoinfo -R: long names missing: %v / %v", keys(r["/scripts/nested/"]), keys(r["/"]))
	}
	p := isoinfoListing(run(t, "isoinfo", "-l", "-i", iso))
	if !p["/"]["USER_DAT.;1"] || !p["/SCRIPTS/"]["RUN.SH;1"] || !p["/"]["MIXEDCAS.CFG;1"] || !p["/"]["MIXEDCA1.CFG;1"] {
		t.Errorf("plain ISO 9660 names: %v", keys(p["/"]))
	}
}

// isoinfoListing parses `isoinfo -l` output into directory -> names.
func isoinfoListing(out string) map[string]map[string]bool {
	res := map[string]map[string]bool{}
	var dir string
	line := regexp.MustCompile(`^[-d][-rwxsStT]{9}.*\]  (.*?) ?$`)
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "Directory listing of ") {
			dir = strings.TrimPrefix(l, "Directory listing of ")
			res[dir] = map[string]bool{}
			continue
		}
		if m := line.FindStringSubmatch(l); m != nil && m[1] != "." && m[1] != ".." {
			res[dir][m[1]] = true
		}
	}
	return res
}

func keys(m map[string]bool) []string {
	var k []string
	for s := range m {
		k = append(k, s)
	}
	sort.Strings(k)
	return k
}

func TestWriteISOBlkidLabel(t *testing.T) {
	iso, _ := writeSample(t)
	out := run(t, "blkid", "-p", "-o", "export", iso)
	for _, s := range []string{"LABEL=cidata\n", "TYPE=iso9660\n"} {
		if !strings.Contains(out, s) {
			t.Errorf("blkid -p lacks %q:\n%s", s, out)
		}
	}
}

func TestWriteISOSizeIsVolumeSize(t *testing.T) {
	iso, _ := writeSample(t)
	b, err := os.ReadFile(iso)
	if err != nil {
		t.Fatal(err)
	}
	blocks := binary.LittleEndian.Uint32(b[16*blockSize+80:])
	if int64(blocks)*blockSize != int64(len(b)) {
		t.Errorf("image is %d bytes, volume descriptor says %d blocks (%d bytes)", len(b), blocks, int64(blocks)*blockSize)
	}
}

func TestWriteISOErrorsLeaveNothing(t *testing.T) {
	src := mkfile(t, t.TempDir(), "f", "x", 0o644)
	cases := []struct {
		name    string
		label   string
		entries []Entry
		want    []string
	}{
		{"duplicate", "cidata", []Entry{{Path: "a", Source: src}, {Path: "a", Content: []byte("x")}}, []string{src, "inline content for a"}},
		{"file under a file", "cidata", []Entry{{Path: "a", Content: []byte("x")}, {Path: "a/b", Content: []byte("y")}}, []string{"needs it to be a directory"}},
		{"unclean path", "cidata", []Entry{{Path: "a/../b"}}, []string{"not clean"}},
		{"absolute path", "cidata", []Entry{{Path: "/a"}}, []string{"relative"}},
		{"missing source", "cidata", []Entry{{Path: "a", Source: src + ".missing"}}, []string{src + ".missing"}},
		{"source and content", "cidata", []Entry{{Path: "a", Source: src, Content: []byte("x")}}, []string{"both a source"}},
		{"long label", strings.Repeat("L", 33), nil, []string{"32"}},
		{"empty label", "", nil, []string{"empty volume label"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			err := WriteISO(context.Background(), filepath.Join(dir, "x.iso"), c.label, c.entries)
			if err == nil {
				t.Fatal("no error")
			}
			for _, s := range c.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q lacks %q", err, s)
				}
			}
			if left, _ := os.ReadDir(dir); len(left) != 0 {
				t.Errorf("left behind: %v", left)
			}
		})
	}
}

func TestWriteISOCancelKeepsOldFile(t *testing.T) {
	dir := t.TempDir()
	iso := filepath.Join(dir, "x.iso")
	if err := os.WriteFile(iso, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := WriteISO(ctx, iso, "cidata", []Entry{{Path: "a", Content: []byte("x")}})
	if err == nil {
		t.Fatal("cancelled write succeeded")
	}
	if b, _ := os.ReadFile(iso); string(b) != "old" {
		t.Errorf("old file changed to %d bytes", len(b))
	}
	if left, _ := os.ReadDir(dir); len(left) != 1 {
		t.Errorf("temporary files left: %v", left)
	}
	// And an uncancelled write replaces it.
	if err := WriteISO(context.Background(), iso, "cidata", []Entry{{Path: "a", Content: []byte("x")}}); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(iso); st.Size() <= 3 {
		t.Errorf("not replaced: %d bytes", st.Size())
	}
}
