package qmp

import (
	"encoding/json"
	"net"
	"path/filepath"
	"sync"
	"testing"
)

// fakeServer speaks the QMP wire protocol on a unix socket: greeting,
// capabilities negotiation, id echo. Each test supplies handle for the
// commands after negotiation.
type fakeServer struct {
	t    *testing.T
	path string
	ln   net.Listener

	// greet=false makes the server accept and then say nothing, like a
	// QMP socket that already has a client.
	greet bool
	// handle answers one command; it may send events first, reply late,
	// or close the connection.
	handle func(c *fakeConn, req fakeReq)

	mu    sync.Mutex
	conns []*fakeConn
}

type fakeReq struct {
	Execute   string          `json:"execute"`
	Arguments json.RawMessage `json:"arguments"`
	ID        json.RawMessage `json:"id"`
}

type fakeConn struct {
	conn net.Conn
	wmu  sync.Mutex
}

func (c *fakeConn) send(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_, err = c.conn.Write(append(b, '\r', '\n'))
	return err
}

func (c *fakeConn) reply(req fakeReq, ret any) error {
	return c.send(map[string]any{"return": ret, "id": req.ID})
}

func (c *fakeConn) replyError(req fakeReq, class, desc string) error {
	return c.send(map[string]any{"error": map[string]string{"class": class, "desc": desc}, "id": req.ID})
}

func (c *fakeConn) event(name string, data any) error {
	m := map[string]any{
		"event":     name,
		"timestamp": map[string]int64{"seconds": 1700000000, "microseconds": 250000},
	}
	if data != nil {
		m["data"] = data
	}
	return c.send(m)
}

func newFakeServer(t *testing.T, handle func(c *fakeConn, req fakeReq)) *fakeServer {
	t.Helper()
	s := &fakeServer{t: t, path: filepath.Join(t.TempDir(), "qmp.sock"), greet: true, handle: handle}
	return s
}

// start listens and serves; it is separate from newFakeServer so a test
// can delay it (QEMU creates its socket after the process starts).
func (s *fakeServer) start() {
	ln, err := net.Listen("unix", s.path)
	if err != nil {
		s.t.Fatalf("fake QMP server: %v", err)
	}
	s.ln = ln
	s.t.Cleanup(s.stop)
	go s.serve()
}

func (s *fakeServer) stop() {
	s.ln.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.conn.Close()
	}
}

func (s *fakeServer) serve() {
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			return
		}
		c := &fakeConn{conn: conn}
		s.mu.Lock()
		s.conns = append(s.conns, c)
		s.mu.Unlock()
		go s.serveConn(c)
	}
}

func (s *fakeServer) serveConn(c *fakeConn) {
	if !s.greet {
		return // hold the connection open and silent
	}
	err := c.send(map[string]any{"QMP": map[string]any{
		"version": map[string]any{
			"qemu":    map[string]int{"major": 7, "minor": 2, "micro": 22},
			"package": "fake",
		},
		"capabilities": []string{"oob"},
	}})
	if err != nil {
		return
	}
	dec := json.NewDecoder(c.conn)
	negotiated := false
	for {
		var req fakeReq
		if err := dec.Decode(&req); err != nil {
			return
		}
		switch {
		case req.Execute == "qmp_capabilities":
			negotiated = true
			c.reply(req, struct{}{})
		case !negotiated:
			// What QEMU answers before negotiation.
			c.replyError(req, "CommandNotFound", "Expecting capabilities negotiation with 'qmp_capabilities'")
		default:
			// Each command runs in its own goroutine so a handler that
			// never answers does not stop the others.
			go s.handle(c, req)
		}
	}
}
