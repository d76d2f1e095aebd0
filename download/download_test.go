package download

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
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// payload is 1 MiB of non-repeating bytes, so a wrongly spliced resume
// cannot hash correctly by accident.
var payload = func() []byte {
	b := make([]byte, 1<<20)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	return b
}()

func sha256hex(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// isoServer serves payload at any path and records the requests.
type isoServer struct {
	*httptest.Server
	data        []byte
	etag        string
	ignoreRange bool
	// stall, when set, makes the handler send half the body and then wait
	// for the client to go away.
	stall bool

	mu       sync.Mutex
	ranges   []string // Range header per request ("" for none)
	ifRanges []string
	// answers holds "STATUS LENGTH" per response, recorded when the
	// header is written, so before the client can see any of the body.
	answers []string
}

func newISOServer(t *testing.T, data []byte) *isoServer {
	s := &isoServer{data: data, etag: `"v1"`}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *isoServer) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.ranges = append(s.ranges, r.Header.Get("Range"))
	s.ifRanges = append(s.ifRanges, r.Header.Get("If-Range"))
	stall, ignore := s.stall, s.ignoreRange
	s.mu.Unlock()
	cw := &countingWriter{ResponseWriter: w, s: s}
	switch {
	case stall:
		w.Header().Set("ETag", s.etag)
		w.Header().Set("Content-Length", fmt.Sprint(len(s.data)))
		cw.Write(s.data[:len(s.data)/2])
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	case ignore:
		w.Header().Set("Content-Length", fmt.Sprint(len(s.data)))
		cw.Write(s.data)
	default:
		w.Header().Set("ETag", s.etag)
		http.ServeContent(cw, r, "x.iso", time.Unix(1700000000, 0), bytes.NewReader(s.data))
	}
}

func (s *isoServer) requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.ranges)
}

// log returns copies of the Range and If-Range headers and the answers.
func (s *isoServer) log() (ranges, ifRanges, answers []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.ranges), slices.Clone(s.ifRanges), slices.Clone(s.answers)
}

type countingWriter struct {
	http.ResponseWriter
	s *isoServer
}

func (c *countingWriter) WriteHeader(code int) {
	c.s.mu.Lock()
	c.s.answers = append(c.s.answers, fmt.Sprintf("%d %s", code, c.Header().Get("Content-Length")))
	c.s.mu.Unlock()
	c.ResponseWriter.WriteHeader(code)
}

func (c *countingWriter) Write(p []byte) (int, error) {
	return c.ResponseWriter.Write(p)
}

func cacheName(key, ext string) string {
	h := sha1.Sum([]byte(key))
	return hex.EncodeToString(h[:]) + "." + ext
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".lock") {
			out = append(out, e.Name())
		}
	}
	return out
}

func TestFetchPlain(t *testing.T) {
	srv := newISOServer(t, payload)
	cache := t.TempDir()
	var last [2]int64
	calls := 0
	sum := "sha256:" + sha256hex(payload)
	p, err := Fetch(context.Background(), Request{
		URLs:     []string{srv.URL + "/debian.iso"},
		Checksum: strings.ToUpper(sum[:7]) + sum[7:], // type is case-insensitive
		CacheDir: cache,
		Progress: func(done, total int64) { calls++; last = [2]int64{done, total} },
		Log:      t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(cache, cacheName(sum, "iso")); p != want {
		t.Errorf("path = %s, want %s (Packer's cache name)", p, want)
	}
	if !bytes.Equal(mustRead(t, p), payload) {
		t.Error("downloaded content differs")
	}
	if calls == 0 || last != [2]int64{int64(len(payload)), int64(len(payload))} {
		t.Errorf("progress: %d calls, last %v, want last (%d, %d)", calls, last, len(payload), len(payload))
	}
	if n := dirNames(t, cache); len(n) != 1 {
		t.Errorf("cache holds %v, want only the file", n)
	}
}

func TestFetchBadChecksum(t *testing.T) {
	srv := newISOServer(t, payload)
	cache := t.TempDir()
	wrong := sha256hex([]byte("something else"))
	_, err := Fetch(context.Background(), Request{
		URLs: []string{srv.URL + "/a.iso"}, Checksum: "sha256:" + wrong, CacheDir: cache,
	})
	var ce *ChecksumError
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v, want *ChecksumError", err)
	}
	msg := err.Error()
	for _, want := range []string{srv.URL + "/a.iso", "sha256:" + wrong, "sha256:" + sha256hex(payload)} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not mention %q", msg, want)
		}
	}
	if n := dirNames(t, cache); len(n) != 0 {
		t.Errorf("cache holds %v after a bad checksum, want nothing", n)
	}
}

func TestFetchResumeFromPartial(t *testing.T) {
	srv := newISOServer(t, payload)
	cache := t.TempDir()
	sum := "sha256:" + sha256hex(payload)
	target := filepath.Join(cache, cacheName(sum, "iso"))
	const have = 300000
	if err := os.WriteFile(target+".part", payload[:have], 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := Fetch(context.Background(), Request{URLs: []string{srv.URL + "/a.iso"}, Checksum: sum, CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(mustRead(t, p), payload) {
		t.Fatal("resumed file differs")
	}
	ranges, _, answers := srv.log()
	if len(ranges) != 1 || ranges[0] != fmt.Sprintf("bytes=%d-", have) {
		t.Errorf("Range headers %q, want one bytes=%d-", ranges, have)
	}
	if want := fmt.Sprintf("206 %d", len(payload)-have); len(answers) != 1 || answers[0] != want {
		t.Errorf("answers %q, want %q: only the missing bytes", answers, want)
	}
	if n := dirNames(t, cache); len(n) != 1 {
		t.Errorf("cache holds %v, want only the file", n)
	}
}

func TestFetchServerIgnoresRange(t *testing.T) {
	srv := newISOServer(t, payload)
	srv.ignoreRange = true
	cache := t.TempDir()
	sum := "sha256:" + sha256hex(payload)
	target := filepath.Join(cache, cacheName(sum, "iso"))
	// A garbage prefix: if it were kept, the result could not verify.
	if err := os.WriteFile(target+".part", bytes.Repeat([]byte{0xFF}, 5000), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := Fetch(context.Background(), Request{URLs: []string{srv.URL + "/a.iso"}, Checksum: sum, CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(mustRead(t, p), payload) {
		t.Fatal("content differs")
	}
	if ranges, _, _ := srv.log(); ranges[0] != "bytes=5000-" {
		t.Errorf("first request Range %q, want bytes=5000-", ranges[0])
	}
	if srv.requests() != 1 {
		t.Errorf("%d requests, want 1 (the 200 answer is used as is)", srv.requests())
	}
}

func TestFetchResumeWithWrongPrefixRetries(t *testing.T) {
	srv := newISOServer(t, payload)
	cache := t.TempDir()
	sum := "sha256:" + sha256hex(payload)
	target := filepath.Join(cache, cacheName(sum, "iso"))
	if err := os.WriteFile(target+".part", bytes.Repeat([]byte{0xFF}, 5000), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := Fetch(context.Background(), Request{URLs: []string{srv.URL + "/a.iso"}, Checksum: sum, CacheDir: cache, Log: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(mustRead(t, p), payload) {
		t.Fatal("content differs")
	}
	if ranges, _, _ := srv.log(); !slices.Equal(ranges, []string{"bytes=5000-", ""}) {
		t.Errorf("Range headers %q, want bytes=5000- then none (resume, then a clean retry)", ranges)
	}
}

func TestFetchCancelKeepsPartThenResumes(t *testing.T) {
	srv := newISOServer(t, payload)
	srv.stall = true
	cache := t.TempDir()
	sum := "sha256:" + sha256hex(payload)
	target := filepath.Join(cache, cacheName(sum, "iso"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var atCancel int64
	_, err := Fetch(ctx, Request{
		URLs: []string{srv.URL + "/a.iso", srv.URL + "/mirror.iso"}, Checksum: sum, CacheDir: cache,
		Progress: func(done, total int64) {
			if done > 0 && atCancel == 0 {
				atCancel = done
				cancel()
			}
		},
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if srv.requests() != 1 {
		t.Errorf("%d requests: cancellation must not fall through to the mirror", srv.requests())
	}
	if _, err := os.Stat(target); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("final file exists after cancel: %v", err)
	}
	st, err := os.Stat(target + ".part")
	// Reads already buffered when ctx was cancelled may still land, so the
	// partial file holds at least what Progress saw, and less than all.
	if err != nil || st.Size() < atCancel || st.Size() >= int64(len(payload)) {
		t.Fatalf("partial file: %v, %v; want %d..%d bytes", st, err, atCancel, len(payload)-1)
	}
	have := st.Size()

	srv.mu.Lock()
	srv.stall = false
	srv.mu.Unlock()
	p, err := Fetch(context.Background(), Request{URLs: []string{srv.URL + "/a.iso"}, Checksum: sum, CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(mustRead(t, p), payload) {
		t.Fatal("resumed content differs")
	}
	if ranges, ifRanges, _ := srv.log(); ranges[1] != fmt.Sprintf("bytes=%d-", have) || ifRanges[1] != srv.etag {
		t.Errorf("resume request Range %q If-Range %q, want bytes=%d- and %s", ranges[1], ifRanges[1], have, srv.etag)
	}
}

func TestFetchChecksumFile(t *testing.T) {
	h := sha256hex(payload)
	other := sha256hex([]byte("other"))
	formats := map[string]string{
		"gnu text":   other + "  other.iso\n" + h + "  debian-12.iso\n",
		"gnu binary": "# comment\n" + other + " *other.iso\n" + h + " *debian-12.iso\n",
		"bsd":        "SHA256 (other.iso) = " + other + "\nSHA256 (debian-12.iso) = " + h + "\n",
		"dot slash":  h + "  ./debian-12.iso\n",
		"bare":       h + "\n",
	}
	for name, body := range formats {
		t.Run(name, func(t *testing.T) {
			srv := newISOServer(t, payload)
			sums := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, body) }))
			defer sums.Close()
			cache := t.TempDir()
			p, err := Fetch(context.Background(), Request{
				URLs: []string{srv.URL + "/dir/debian-12.iso"}, Checksum: "file:" + sums.URL + "/SHA256SUMS", CacheDir: cache,
			})
			if err != nil {
				t.Fatal(err)
			}
			if want := filepath.Join(cache, cacheName("sha256:"+h, "iso")); p != want {
				t.Errorf("path %s, want %s (keyed on the resolved sum)", p, want)
			}
			// Same file as a local relative path.
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, "SUMS"), []byte(body), 0o644)
			if _, err := Fetch(context.Background(), Request{
				URLs: []string{srv.URL + "/debian-12.iso"}, Checksum: "file:SUMS", Dir: dir, CacheDir: t.TempDir(),
			}); err != nil {
				t.Fatalf("local checksum file: %v", err)
			}
		})
	}

	t.Run("no entry", func(t *testing.T) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "SUMS"), []byte(other+"  other.iso\n"+h+"  another.iso\n"), 0o644)
		_, err := Fetch(context.Background(), Request{
			URLs: []string{"http://127.0.0.1:1/debian-12.iso"}, Checksum: "file:SUMS", Dir: dir, CacheDir: t.TempDir(),
		})
		if err == nil || !strings.Contains(err.Error(), `no entry for "debian-12.iso"`) {
			t.Errorf("err = %v, want no entry for debian-12.iso", err)
		}
	})
}

func TestFetchMirrorFallback(t *testing.T) {
	good := newISOServer(t, payload)
	wrongData := newISOServer(t, []byte("not the iso"))
	missing := httptest.NewServer(http.NotFoundHandler())
	defer missing.Close()
	sum := "sha256:" + sha256hex(payload)
	urls := []string{missing.URL + "/a.iso", wrongData.URL + "/a.iso", "ftp://example.invalid/a.iso", good.URL + "/a.iso"}
	p, err := Fetch(context.Background(), Request{URLs: urls, Checksum: sum, CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(mustRead(t, p), payload) {
		t.Fatal("content differs")
	}

	_, err = Fetch(context.Background(), Request{URLs: urls[:3], Checksum: sum, CacheDir: t.TempDir()})
	if err == nil {
		t.Fatal("all-bad mirrors succeeded")
	}
	for _, want := range []string{"404 Not Found", "checksum mismatch", "unsupported URL scheme", missing.URL, wrongData.URL} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestFetchCacheHitMakesNoRequest(t *testing.T) {
	srv := newISOServer(t, payload)
	cache := t.TempDir()
	req := Request{URLs: []string{srv.URL + "/a.iso"}, Checksum: sha256hex(payload), CacheDir: cache}
	p1, err := Fetch(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := Fetch(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if p1 != p2 || srv.requests() != 1 {
		t.Errorf("second Fetch: path %s vs %s, %d requests; want same path, 1 request", p1, p2, srv.requests())
	}
	// A corrupted cache entry is detected and replaced.
	if err := os.WriteFile(p1, []byte("corrupt"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Fetch(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if srv.requests() != 2 || !bytes.Equal(mustRead(t, p1), payload) {
		t.Errorf("corrupt cache entry: %d requests, content ok=%v", srv.requests(), bytes.Equal(mustRead(t, p1), payload))
	}
}

func TestFetchConcurrentSameFileDownloadsOnce(t *testing.T) {
	srv := newISOServer(t, payload)
	cache := t.TempDir()
	req := Request{URLs: []string{srv.URL + "/a.iso"}, Checksum: "sha256:" + sha256hex(payload), CacheDir: cache}
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { _, errs[i] = Fetch(context.Background(), req) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if srv.requests() != 1 {
		t.Errorf("%d requests for 4 concurrent Fetches, want 1", srv.requests())
	}
}

func TestFetchLocal(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "local.iso"), payload, 0o644); err != nil {
		t.Fatal(err)
	}
	abs := filepath.Join(dir, "local.iso")
	cache := t.TempDir()
	sum := "sha256:" + sha256hex(payload)
	for _, u := range []string{"local.iso", "./local.iso", abs, "file://" + abs} {
		p, err := Fetch(context.Background(), Request{URLs: []string{u}, Checksum: sum, Dir: dir, CacheDir: cache})
		if err != nil {
			t.Fatalf("%s: %v", u, err)
		}
		if p != abs {
			t.Errorf("%s: path %s, want the file itself %s", u, p, abs)
		}
	}
	if n := dirNames(t, cache); len(n) != 0 {
		t.Errorf("local files were copied to the cache: %v", n)
	}
	_, err := Fetch(context.Background(), Request{URLs: []string{"local.iso"}, Checksum: "sha256:" + sha256hex(nil), Dir: dir})
	var ce *ChecksumError
	if !errors.As(err, &ce) || ce.Source != abs {
		t.Errorf("wrong sum on local file: %v", err)
	}
	if _, err := Fetch(context.Background(), Request{URLs: []string{"missing.iso"}, Checksum: "none", Dir: dir}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing local file: %v", err)
	}
	if p, err := Fetch(context.Background(), Request{URLs: []string{"local.iso"}, Checksum: "none", Dir: dir}); err != nil || p != abs {
		t.Errorf("checksum none: %s, %v", p, err)
	}
}

func TestFetchAlgorithms(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "f.iso"), payload, 0o644)
	m, s1, s5 := md5.Sum(payload), sha1.Sum(payload), sha512.Sum512(payload)
	sums := map[string]string{
		"md5":    hex.EncodeToString(m[:]),
		"sha1":   hex.EncodeToString(s1[:]),
		"sha256": sha256hex(payload),
		"sha512": hex.EncodeToString(s5[:]),
	}
	for algo, h := range sums {
		for _, cs := range []string{algo + ":" + h, h, strings.ToUpper(h)} {
			if _, err := Fetch(context.Background(), Request{URLs: []string{"f.iso"}, Checksum: cs, Dir: dir}); err != nil {
				t.Errorf("%s: %v", cs, err)
			}
			if a, _, _ := ParseChecksum(cs); a != algo {
				t.Errorf("ParseChecksum(%s) algo %s, want %s", cs, a, algo)
			}
		}
		// Flip one digit: must fail.
		bad := h[:len(h)-1] + string("10"[h[len(h)-1]&1])
		if bad == h {
			bad = h[:len(h)-1] + "f"
		}
		if _, err := Fetch(context.Background(), Request{URLs: []string{"f.iso"}, Checksum: algo + ":" + bad, Dir: dir}); err == nil {
			t.Errorf("%s with a wrong sum verified", algo)
		}
	}
}

func TestParseChecksum(t *testing.T) {
	h := sha256hex(nil)
	good := []struct{ in, algo, val string }{
		{"sha256:" + h, "sha256", h},
		{"SHA256:" + strings.ToUpper(h), "sha256", h},
		{h, "sha256", h},
		{"none", "none", ""},
		{"file:https://example.com/SHA256SUMS", "file", "https://example.com/SHA256SUMS"},
		{"file:./SUMS", "file", "./SUMS"},
	}
	for _, c := range good {
		a, v, err := ParseChecksum(c.in)
		if err != nil || a != c.algo || v != c.val {
			t.Errorf("ParseChecksum(%q) = %q, %q, %v; want %q, %q", c.in, a, v, err, c.algo, c.val)
		}
	}
	bad := map[string]string{
		"":                      "empty",
		"sha256:abc":            "hex digits",
		"md5:" + h:              "want 32",
		"crc32:deadbeef":        "unknown type",
		"abc123":                "matches no known type",
		"sha1:" + h[:38] + "zz": "not hex",
		"file:":                 "needs a URL",
	}
	for in, want := range bad {
		if _, _, err := ParseChecksum(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseChecksum(%q) err = %v, want mention of %q", in, err, want)
		}
	}
}

func TestDefaultCacheDir(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	cases := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"KILN_CACHE_DIR": "/k", "PACKER_CACHE_DIR": "/p", "XDG_CACHE_HOME": "/x", "HOME": "/h"}, "/k"},
		{map[string]string{"PACKER_CACHE_DIR": "/p", "XDG_CACHE_HOME": "/x", "HOME": "/h"}, "/p"},
		{map[string]string{"XDG_CACHE_HOME": "/x", "HOME": "/h"}, "/x/kiln"},
		{map[string]string{"HOME": "/h"}, "/h/.cache/kiln"},
	}
	for _, c := range cases {
		if got, err := DefaultCacheDir(env(c.env)); err != nil || got != c.want {
			t.Errorf("DefaultCacheDir(%v) = %s, %v; want %s", c.env, got, err, c.want)
		}
	}
	if _, err := DefaultCacheDir(env(nil)); err == nil {
		t.Error("no environment: want an error")
	}
}

func TestFetchTargetPath(t *testing.T) {
	srv := newISOServer(t, payload)
	sum := "sha256:" + sha256hex(payload)
	dir := t.TempDir()
	p, err := Fetch(context.Background(), Request{URLs: []string{srv.URL + "/a.iso"}, Checksum: sum, Dir: dir, TargetPath: "isos", Extension: "img"})
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "isos", cacheName(sum, "img")); p != want {
		t.Errorf("directory target: %s, want %s", p, want)
	}
	p, err = Fetch(context.Background(), Request{URLs: []string{srv.URL + "/a.iso"}, Checksum: sum, Dir: dir, TargetPath: "out/my.iso"})
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "out", "my.iso"); p != want {
		t.Errorf("file target: %s, want %s", p, want)
	}
}
