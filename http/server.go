// Package http serves installer answer files (kickstart, preseed,
// autoinstall user-data) to the guest, as Packer's http_directory and
// http_content options do, and records every request so a build can tell
// whether the guest ever fetched its answer file.
//
// Differences from Packer, on purpose:
//   - The default bind address is 127.0.0.1, not 0.0.0.0: QEMU's user-mode
//     network forwards the guest's 10.0.2.2 to host loopback, so nothing
//     needs to listen on the LAN.
//   - Ports are picked by binding directly (in random order within the
//     range), so no other process can take the port between a probe and
//     the real listen.
//   - The directory is served without directory listings and cannot be
//     escaped through symlinks (os.Root).
//   - Dir and Content may both be set; Content paths win.
package http

import (
	"context"
	"errors"
	"fmt"
	"github.com/kilnbuild/kiln/internal/textdist"
	"math/rand/v2"
	"net"
	nethttp "net/http"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Packer's http_port_min / http_port_max defaults.
const (
	DefaultPortMin = 8000
	DefaultPortMax = 9000
)

// Options configures the server.
type Options struct {
	// Dir (http_directory) is served read-only.
	Dir string
	// Content (http_content) maps URL paths ("/ks.cfg") to bodies.
	Content map[string]string
	// Bind (http_bind_address); default "127.0.0.1".
	Bind string
	// PortMin and PortMax (http_port_min/max) bound the port; both zero
	// means 8000..9000. PortMin == PortMax asks for exactly that port.
	PortMin, PortMax int
	// Log, if set, receives one line per request.
	Log func(format string, args ...any)
}

// Request is one answered request.
type Request struct {
	Time   time.Time
	Method string
	Path   string
	Status int
	Bytes  int64 // body bytes sent
	Remote string
}

// ErrNotFetched is returned by WaitFetched when the path was not fetched
// before the context ended or the server closed.
var ErrNotFetched = errors.New("file was never fetched")

// Server is a running answer-file server.
type Server struct {
	srv  *nethttp.Server
	ln   net.Listener
	port int
	log  func(string, ...any)

	mu      sync.Mutex
	reqs    []Request
	fetched map[string]bool
	changed chan struct{} // closed and replaced on every request
	closed  chan struct{}
	once    sync.Once
	done    chan struct{} // Serve returned
}

// Start listens and serves until Close or until ctx is done.
func Start(ctx context.Context, o Options) (*Server, error) {
	if o.Bind == "" {
		o.Bind = "127.0.0.1"
	}
	if o.PortMin == 0 && o.PortMax == 0 {
		o.PortMin, o.PortMax = DefaultPortMin, DefaultPortMax
	}
	if o.PortMin < 1 || o.PortMax > 65535 || o.PortMin > o.PortMax {
		return nil, fmt.Errorf("http server: invalid port range %d-%d", o.PortMin, o.PortMax)
	}
	h, err := newHandler(o)
	if err != nil {
		return nil, err
	}
	ln, port, err := listenInRange(ctx, o.Bind, o.PortMin, o.PortMax)
	if err != nil {
		h.close()
		return nil, err
	}
	s := &Server{
		ln:      ln,
		port:    port,
		log:     o.Log,
		fetched: map[string]bool{},
		changed: make(chan struct{}),
		closed:  make(chan struct{}),
		done:    make(chan struct{}),
	}
	s.srv = &nethttp.Server{
		Handler:           s.record(h),
		ReadHeaderTimeout: 30 * time.Second,
	}
	go func() {
		defer close(s.done)
		defer h.close()
		// Serve does not close ln if Close won the race to start.
		defer ln.Close()
		s.srv.Serve(ln)
	}()
	go func() {
		select {
		case <-ctx.Done():
			s.Close()
		case <-s.closed:
		}
	}()
	s.logf("http: serving on %s", ln.Addr())
	return s, nil
}

// listenInRange binds the first free port of [min, max], trying them in
// random order so concurrent builds rarely collide. Only "address in use"
// moves on to the next port; any other error (bad bind address) is fatal.
func listenInRange(ctx context.Context, bind string, min, max int) (net.Listener, int, error) {
	var lc net.ListenConfig
	n := max - min + 1
	for _, i := range rand.Perm(n) {
		port := min + i
		ln, err := lc.Listen(ctx, "tcp", net.JoinHostPort(bind, strconv.Itoa(port)))
		if err == nil {
			return ln, port, nil
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			return nil, 0, fmt.Errorf("http server: listening on %s: %w", net.JoinHostPort(bind, strconv.Itoa(port)), err)
		}
	}
	return nil, 0, fmt.Errorf("http server: every port in %d-%d on %s is in use", min, max, bind)
}

func (s *Server) logf(format string, args ...any) {
	if s.log != nil {
		s.log(format, args...)
	}
}

// Port returns the port the server listens on.
func (s *Server) Port() int { return s.port }

// Addr returns the listener's address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Requests returns a copy of the request log, oldest first.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.reqs...)
}

// WaitFetched returns nil once a GET of urlPath has been answered with
// 200 (including before the call). Otherwise it returns an error wrapping
// ErrNotFetched, and ctx's error if ctx ended, that lists what the guest
// did request, the usual clue to a mistyped boot command URL.
func (s *Server) WaitFetched(ctx context.Context, urlPath string) error {
	urlPath = cleanPath(urlPath)
	for {
		s.mu.Lock()
		ok, ch := s.fetched[urlPath], s.changed
		s.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("%w: %s (%s): %w", ErrNotFetched, urlPath, s.summary(), ctx.Err())
		case <-s.closed:
			s.mu.Lock()
			ok = s.fetched[urlPath]
			s.mu.Unlock()
			if ok {
				return nil
			}
			return fmt.Errorf("%w: %s (%s): server closed", ErrNotFetched, urlPath, s.summary())
		}
	}
}

// summary describes the requests so far for error messages.
func (s *Server) summary() string {
	reqs := s.Requests()
	if len(reqs) == 0 {
		return "no requests at all reached the server"
	}
	const max = 10
	var parts []string
	for i, r := range reqs {
		if i == max {
			parts = append(parts, fmt.Sprintf("and %d more", len(reqs)-max))
			break
		}
		parts = append(parts, fmt.Sprintf("%s %s %d", r.Method, r.Path, r.Status))
	}
	return "requests: " + strings.Join(parts, ", ")
}

// Close stops the server, letting in-flight requests finish for up to two
// seconds.
func (s *Server) Close() error {
	var err error
	s.once.Do(func() {
		close(s.closed)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err = s.srv.Shutdown(ctx); err != nil {
			err = errors.Join(err, s.srv.Close())
		}
		<-s.done
	})
	if errors.Is(err, nethttp.ErrServerClosed) {
		err = nil
	}
	return err
}

// record wraps h to log and remember every request.
func (s *Server) record(h nethttp.Handler) nethttp.Handler {
	return nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		rw := &recorder{ResponseWriter: w, status: nethttp.StatusOK}
		h.ServeHTTP(rw, r)
		req := Request{
			Time:   time.Now(),
			Method: r.Method,
			Path:   r.URL.Path,
			Status: rw.status,
			Bytes:  rw.bytes,
			Remote: r.RemoteAddr,
		}
		s.logf("http: %s %s %d %dB from %s", req.Method, req.Path, req.Status, req.Bytes, req.Remote)
		s.mu.Lock()
		s.reqs = append(s.reqs, req)
		if r.Method == nethttp.MethodGet && rw.status == nethttp.StatusOK {
			s.fetched[cleanPath(r.URL.Path)] = true
		}
		close(s.changed)
		s.changed = make(chan struct{})
		s.mu.Unlock()
	})
}

type recorder struct {
	nethttp.ResponseWriter
	status int
	bytes  int64
	wrote  bool
}

func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.status, r.wrote = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	r.wrote = true
	n, err := r.ResponseWriter.Write(p)
	r.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the real writer.
func (r *recorder) Unwrap() nethttp.ResponseWriter { return r.ResponseWriter }

// cleanPath normalises a URL path: leading slash, no dot segments.
func cleanPath(p string) string {
	return path.Clean("/" + p)
}

// handler serves Content, then Dir.
type handler struct {
	content map[string]string
	root    *os.Root // nil without Dir
	files   nethttp.Handler
}

func newHandler(o Options) (*handler, error) {
	h := &handler{content: map[string]string{}}
	for p, body := range o.Content {
		h.content[cleanPath(p)] = body
	}
	if o.Dir != "" {
		root, err := os.OpenRoot(o.Dir)
		if err != nil {
			return nil, fmt.Errorf("http server: opening http_directory: %w", err)
		}
		h.root = root
		h.files = nethttp.FileServerFS(root.FS())
	}
	return h, nil
}

func (h *handler) close() {
	if h.root != nil {
		h.root.Close()
	}
}

func (h *handler) ServeHTTP(w nethttp.ResponseWriter, r *nethttp.Request) {
	if r.Method != nethttp.MethodGet && r.Method != nethttp.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		nethttp.Error(w, "read-only server", nethttp.StatusMethodNotAllowed)
		return
	}
	p := cleanPath(r.URL.Path)
	if body, ok := h.content[p]; ok {
		// The type comes from the extension, else from sniffing.
		nethttp.ServeContent(w, r, path.Base(p), time.Time{}, strings.NewReader(body))
		return
	}
	if h.root != nil {
		rel := strings.TrimPrefix(p, "/")
		if rel == "" {
			rel = "."
		}
		// Errors (missing, or escaping the root through ../ or a
		// symlink) fall through to the 404 below.
		if st, err := h.root.Stat(rel); err == nil {
			if st.IsDir() {
				if _, err := h.root.Stat(path.Join(rel, "index.html")); err != nil {
					nethttp.Error(w, p+" is a directory (listings are disabled)", nethttp.StatusNotFound)
					return
				}
			}
			h.files.ServeHTTP(w, r)
			return
		}
	}
	h.notFound(w, p)
}

// notFound answers 404 naming the closest http_content path and listing
// them all, so a typo in a boot command URL is obvious from the log.
func (h *handler) notFound(w nethttp.ResponseWriter, p string) {
	msg := p + " not found."
	if len(h.content) > 0 {
		paths := make([]string, 0, len(h.content))
		for k := range h.content {
			paths = append(paths, k)
		}
		sort.Strings(paths)
		if s := suggest(p, paths); s != "" {
			msg += fmt.Sprintf(" Did you mean %q?", s)
		}
		msg += " Available: " + strings.Join(paths, ", ")
	}
	nethttp.Error(w, msg, nethttp.StatusNotFound)
}

// suggest returns the candidate closest to p by edit distance, if close
// enough to be a likely typo (at most a third of the length).
func suggest(p string, candidates []string) string {
	best, bestD := "", -1
	for _, c := range candidates {
		d := textdist.Distance(p, c)
		if bestD < 0 || d < bestD {
			best, bestD = c, d
		}
	}
	if bestD < 0 || bestD > max(2, len(p)/3) {
		return ""
	}
	return best
}
