package http

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	nethttp "net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// start runs a server on a free ephemeral-range port for the test.
func start(t *testing.T, o Options) *Server {
	t.Helper()
	if o.PortMin == 0 {
		o.PortMin, o.PortMax = 20000, 40000
	}
	s, err := Start(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func get(t *testing.T, s *Server, p string) (int, string, nethttp.Header) {
	t.Helper()
	return do(t, s, "GET", p)
}

func do(t *testing.T, s *Server, method, p string) (int, string, nethttp.Header) {
	t.Helper()
	req, err := nethttp.NewRequest(method, fmt.Sprintf("http://127.0.0.1:%d%s", s.Port(), p), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := nethttp.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func TestDirectory(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "http")
	os.MkdirAll(filepath.Join(dir, "sub"), 0o755)
	os.MkdirAll(filepath.Join(dir, "site"), 0o755)
	os.WriteFile(filepath.Join(dir, "ks.cfg"), []byte("install\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "sub", "user-data"), []byte("#cloud-config\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "site", "index.html"), []byte("<p>hi</p>"), 0o644)
	os.WriteFile(filepath.Join(root, "secret"), []byte("do not serve"), 0o644)
	if err := os.Symlink(filepath.Join(root, "secret"), filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	s := start(t, Options{Dir: dir})

	cases := []struct {
		method, path string
		status       int
		body         string // substring
	}{
		{"GET", "/ks.cfg", 200, "install"},
		{"GET", "/sub/user-data", 200, "#cloud-config"},
		{"GET", "/sub/../ks.cfg", 200, "install"},
		{"GET", "/site/", 200, "<p>hi</p>"},
		{"HEAD", "/ks.cfg", 200, ""},
		{"GET", "/missing", 404, "/missing not found"},
		{"GET", "/", 404, "listings are disabled"},
		{"GET", "/sub/", 404, "listings are disabled"},
		{"GET", "/link", 404, "not found"},
		{"GET", "/../secret", 404, "not found"},
		{"PUT", "/ks.cfg", 405, "read-only"},
	}
	for _, c := range cases {
		status, body, _ := do(t, s, c.method, c.path)
		if status != c.status || !strings.Contains(body, c.body) || strings.Contains(body, "do not serve") {
			t.Errorf("%s %s = %d %q, want %d containing %q", c.method, c.path, status, body, c.status, c.body)
		}
	}
}

func TestContent(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "from-dir"), []byte("dir file"), 0o644)
	s := start(t, Options{
		Content: map[string]string{"/ks.cfg": "lang en_US\n", "user-data": "#cloud-config\n", "/meta-data": ""},
		Dir:     dir,
	})
	if status, body, _ := get(t, s, "/ks.cfg"); status != 200 || body != "lang en_US\n" {
		t.Errorf("/ks.cfg = %d %q", status, body)
	}
	// Keys without a leading slash are served at /key.
	if status, body, _ := get(t, s, "/user-data"); status != 200 || body != "#cloud-config\n" {
		t.Errorf("/user-data = %d %q", status, body)
	}
	if status, body, _ := get(t, s, "/meta-data"); status != 200 || body != "" {
		t.Errorf("/meta-data = %d %q", status, body)
	}
	if status, body, _ := get(t, s, "/from-dir"); status != 200 || body != "dir file" {
		t.Errorf("directory fallback = %d %q", status, body)
	}
	status, body, _ := get(t, s, "/ks.cgf")
	if status != 404 {
		t.Fatalf("typo status %d", status)
	}
	for _, want := range []string{`/ks.cgf not found`, `Did you mean "/ks.cfg"?`, "Available: /ks.cfg, /meta-data, /user-data"} {
		if !strings.Contains(body, want) {
			t.Errorf("404 body %q lacks %q", body, want)
		}
	}
	if _, body, _ := get(t, s, "/completely/unrelated/path"); strings.Contains(body, "Did you mean") {
		t.Errorf("far-off path got a suggestion: %q", body)
	}
}

// adjacentPorts finds p, p+1 on 127.0.0.1 with p held (returned listener)
// and p+1 free.
func adjacentPorts(t *testing.T) (net.Listener, int) {
	t.Helper()
	for range 50 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := ln.Addr().(*net.TCPAddr).Port
		probe, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p+1))
		if err == nil {
			probe.Close()
			return ln, p
		}
		ln.Close()
	}
	t.Fatal("no adjacent free ports")
	return nil, 0
}

func TestPortRangeSkipsOccupied(t *testing.T) {
	held, p := adjacentPorts(t)
	defer held.Close()
	// Random order: with an occupied first port some runs try it first.
	for range 5 {
		s, err := Start(context.Background(), Options{PortMin: p, PortMax: p + 1})
		if err != nil {
			t.Fatal(err)
		}
		got := s.Port()
		s.Close()
		if got != p+1 {
			t.Fatalf("port %d, want %d (the only free one)", got, p+1)
		}
	}
	_, err := Start(context.Background(), Options{PortMin: p, PortMax: p})
	if err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("only port occupied: err = %v", err)
	}
	if _, err := Start(context.Background(), Options{PortMin: 10, PortMax: 5}); err == nil {
		t.Error("inverted range accepted")
	}
	if _, err := Start(context.Background(), Options{Bind: "192.0.2.1", PortMin: p + 1, PortMax: p + 1}); err == nil || strings.Contains(err.Error(), "in use") {
		t.Errorf("unassignable bind address: err = %v, want the listen error itself", err)
	}
}

func TestBindDefaultIsLoopback(t *testing.T) {
	s, err := Start(context.Background(), Options{Content: map[string]string{"/x": "y"}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	addr := s.Addr().(*net.TCPAddr)
	if !addr.IP.Equal(net.IPv4(127, 0, 0, 1)) {
		t.Errorf("listening on %v, want 127.0.0.1", addr)
	}
	if s.Port() < DefaultPortMin || s.Port() > DefaultPortMax || addr.Port != s.Port() {
		t.Errorf("port %d (listener %d), want in Packer's default %d-%d", s.Port(), addr.Port, DefaultPortMin, DefaultPortMax)
	}
}

func TestRequestLog(t *testing.T) {
	var mu sync.Mutex
	var lines []string
	s := start(t, Options{
		Content: map[string]string{"/ks.cfg": "12345"},
		Log: func(f string, a ...any) {
			mu.Lock()
			lines = append(lines, fmt.Sprintf(f, a...))
			mu.Unlock()
		},
	})
	before := time.Now()
	get(t, s, "/ks.cfg")
	get(t, s, "/nope")
	reqs := s.Requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests logged, want 2: %+v", len(reqs), reqs)
	}
	r := reqs[0]
	if r.Method != "GET" || r.Path != "/ks.cfg" || r.Status != 200 || r.Bytes != 5 || !strings.HasPrefix(r.Remote, "127.0.0.1:") || r.Time.Before(before) {
		t.Errorf("first request %+v", r)
	}
	if reqs[1].Status != 404 || reqs[1].Path != "/nope" || reqs[1].Bytes == 0 {
		t.Errorf("second request %+v", reqs[1])
	}
	mu.Lock()
	defer mu.Unlock()
	joined := strings.Join(lines, "\n")
	for _, want := range []string{"GET /ks.cfg 200 5B from 127.0.0.1:", "GET /nope 404"} {
		if !strings.Contains(joined, want) {
			t.Errorf("log %q lacks %q", joined, want)
		}
	}
}

func TestWaitFetched(t *testing.T) {
	s := start(t, Options{Content: map[string]string{"/ks.cfg": "x", "/other": "y"}})

	get(t, s, "/ks.cgf") // a 404 does not count
	do(t, s, "HEAD", "/ks.cfg")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	err := s.WaitFetched(ctx, "/ks.cfg")
	cancel()
	if !errors.Is(err, ErrNotFetched) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want ErrNotFetched and DeadlineExceeded", err)
	}
	if !strings.Contains(err.Error(), "GET /ks.cgf 404") {
		t.Errorf("timeout error %q does not list the requests seen", err)
	}

	res := make(chan error, 1)
	go func() { res <- s.WaitFetched(context.Background(), "ks.cfg") }()
	get(t, s, "/other") // wakes the waiter, which must keep waiting
	get(t, s, "/ks.cfg")
	select {
	case err := <-res:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("WaitFetched did not return after the fetch")
	}
	// Already fetched: returns at once, even with a dead context.
	dead, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.WaitFetched(dead, "/ks.cfg"); err != nil {
		t.Errorf("already fetched: %v", err)
	}

	go func() { res <- s.WaitFetched(context.Background(), "/never") }()
	s.Close()
	if err := <-res; !errors.Is(err, ErrNotFetched) {
		t.Errorf("after Close: %v, want ErrNotFetched", err)
	}
}

func TestContextStopsServer(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	s, err := Start(ctx, Options{PortMin: 20000, PortMax: 40000})
	if err != nil {
		t.Fatal(err)
	}
	w := make(chan error, 1)
	go func() { w <- s.WaitFetched(context.Background(), "/x") }()
	cancel()
	if err := <-w; !errors.Is(err, ErrNotFetched) {
		t.Fatalf("WaitFetched after ctx cancel: %v", err)
	}
	<-s.done
	if _, err := net.Dial("tcp", s.Addr().String()); err == nil {
		t.Error("server still accepting after ctx was cancelled")
	}
}
