package ami

import (
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// The tests never reach AWS: both endpoints are overridden, credentials
// are static, and the shared config files and IMDS are switched off.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ami-test-")
	if err != nil {
		panic(err)
	}
	for k, v := range map[string]string{
		"AWS_EC2_METADATA_DISABLED":   "true",
		"AWS_CONFIG_FILE":             filepath.Join(dir, "no-config"),
		"AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "no-credentials"),
	} {
		os.Setenv(k, v)
	}
	for _, k := range []string{"AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"} {
		os.Unsetenv(k)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// ec2Call is one request the fake EC2 endpoint received.
type ec2Call struct {
	form url.Values
	auth string // the Authorization header
}

// ec2Fake speaks EC2's query protocol: form-encoded POSTs naming an
// Action, answered with XML in the 2016-11-15 namespace. Tests register a
// handler per action and read back every request.
type ec2Fake struct {
	mu       sync.Mutex
	calls    []ec2Call
	handlers map[string]func(url.Values) (int, string)
	// Requests with DryRun=true are answered here, not by handlers:
	// DryRunOperation, or UnauthorizedOperation for actions in denyDryRun.
	dryRuns    []string
	denyDryRun map[string]bool
}

func newEC2Fake(t *testing.T) (*ec2Fake, string) {
	f := &ec2Fake{handlers: map[string]func(url.Values) (int, string){}, denyDryRun: map[string]bool{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv.URL
}

func (f *ec2Fake) on(action string, h func(url.Values) (int, string)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.handlers[action] = h
}

// reply answers action with a fixed body.
func (f *ec2Fake) reply(action, inner string) {
	f.on(action, func(url.Values) (int, string) { return ok(action, inner) })
}

// sequence answers action with each body in turn, repeating the last.
func (f *ec2Fake) sequence(action string, inners ...string) {
	var n atomic.Int32
	f.on(action, func(url.Values) (int, string) {
		i := min(int(n.Add(1))-1, len(inners)-1)
		return ok(action, inners[i])
	})
}

func (f *ec2Fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "EC2 query API takes POST", http.StatusMethodNotAllowed)
		return
	}
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	action := r.PostForm.Get("Action")
	f.mu.Lock()
	if r.PostForm.Get("DryRun") == "true" {
		f.dryRuns = append(f.dryRuns, action)
		status, body := apiError(http.StatusPreconditionFailed, "DryRunOperation", "Request would have succeeded, but DryRun flag is set.")
		if f.denyDryRun[action] {
			status, body = apiError(http.StatusForbidden, "UnauthorizedOperation", "You are not authorized to perform this operation.")
		}
		f.mu.Unlock()
		w.WriteHeader(status)
		io.WriteString(w, body)
		return
	}
	f.calls = append(f.calls, ec2Call{form: r.PostForm, auth: r.Header.Get("Authorization")})
	h := f.handlers[action]
	f.mu.Unlock()
	status, body := apiError(http.StatusBadRequest, "InvalidAction", "fake EC2 has no handler for "+action)
	if r.PostForm.Get("Version") != "2016-11-15" {
		status, body = apiError(http.StatusBadRequest, "InvalidParameterValue", "bad Version")
	} else if h != nil {
		status, body = h(r.PostForm)
	}
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.WriteHeader(status)
	io.WriteString(w, body)
}

func ok(action, inner string) (int, string) {
	return http.StatusOK, fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?>
<%sResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>11111111-2222-3333-4444-555555555555</requestId>%s</%sResponse>`, action, inner, action)
}

func apiError(status int, code, msg string) (int, string) {
	return status, fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?>
<Response><Errors><Error><Code>%s</Code><Message>%s</Message></Error></Errors><RequestID>99999999-2222-3333-4444-555555555555</RequestID></Response>`, code, msg)
}

// actions lists the actions received, in order.
func (f *ec2Fake) actions() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.calls {
		out = append(out, c.form.Get("Action"))
	}
	return out
}

// call returns the form of the n-th (0-based) request for action.
func (f *ec2Fake) call(t *testing.T, action string, n int) url.Values {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	i := n
	for _, c := range f.calls {
		if c.form.Get("Action") == action {
			if i == 0 {
				return c.form
			}
			i--
		}
	}
	t.Fatalf("no request #%d for %s", n, action)
	return nil
}

func (f *ec2Fake) count(action string) int {
	n := 0
	for _, a := range f.actions() {
		if a == action {
			n++
		}
	}
	return n
}

// wantForm checks form fields of a recorded request.
func wantForm(t *testing.T, form url.Values, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got := form.Get(k); got != v {
			t.Errorf("%s: %s = %q, want %q", form.Get("Action"), k, got, v)
		}
	}
}

// EC2 XML fragments.
func imageTask(status, progress, msg string) string {
	return fmt.Sprintf(`<importImageTaskSet><item><importTaskId>import-ami-0abc</importTaskId><status>%s</status><progress>%s</progress><statusMessage>%s</statusMessage></item></importImageTaskSet>`, status, progress, msg)
}

const imageTaskDone = `<importImageTaskSet><item><importTaskId>import-ami-0abc</importTaskId><status>completed</status><imageId>ami-0123</imageId>` +
	`<snapshotDetailSet><item><deviceName>/dev/sda1</deviceName><snapshotId>snap-0123</snapshotId><status>completed</status></item></snapshotDetailSet></item></importImageTaskSet>`

const importStarted = `<importTaskId>import-ami-0abc</importTaskId><status>active</status><progress>1</progress><statusMessage>pending</statusMessage>`

const cancelled = `<importTaskId>import-ami-0abc</importTaskId><previousState>active</previousState><state>deleting</state>`

// env is one test's AWS: gofakes3 for S3, ec2Fake for EC2, a Config
// pointing at both, and a recording UI.
type env struct {
	cfg     Config
	ec2     *ec2Fake
	s3      gofakes3.Backend
	parts   atomic.Int32 // UploadPart requests seen by S3
	s3reqs  atomic.Int32 // all requests seen by S3
	mu      sync.Mutex
	said    []string
	done    int64 // last upload progress
	total   int64
	reports int
}

const (
	testBucket = "kiln-images"
	testKey    = "packer-import-1700000000.raw"
	testAccess = "AKIDKILNTEST"
	testSecret = "kiln-test-secret-do-not-print"
)

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{s3: s3mem.New()}
	if err := e.s3.CreateBucket(testBucket); err != nil {
		t.Fatal(err)
	}
	h := gofakes3.New(e.s3).Server()
	s3srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.s3reqs.Add(1)
		if r.Method == http.MethodPut && r.URL.Query().Has("partNumber") {
			e.parts.Add(1)
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(s3srv.Close)
	var ec2URL string
	e.ec2, ec2URL = newEC2Fake(t)
	e.cfg = Config{
		AccessKey:        testAccess,
		SecretKey:        testSecret,
		Region:           "us-east-1",
		S3BucketName:     testBucket,
		Format:           "raw",
		S3Endpoint:       s3srv.URL,
		S3ForcePathStyle: true,
		EC2Endpoint:      ec2URL,
		pollMin:          time.Millisecond,
		pollMax:          2 * time.Millisecond,
		now:              func() time.Time { return time.Unix(1700000000, 0) },
	}
	e.ec2.reply("CancelImportTask", cancelled)
	return e
}

func (e *env) ui() UI {
	return UI{
		Say: func(format string, args ...any) {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.said = append(e.said, fmt.Sprintf(format, args...))
		},
		Progress: func(string) func(done, total int64) {
			return func(done, total int64) {
				e.mu.Lock()
				defer e.mu.Unlock()
				e.done, e.total = done, total
				e.reports++
			}
		},
	}
}

func (e *env) output() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return strings.Join(e.said, "\n")
}

// object returns the sha256 of an S3 object, or ok=false if it is absent.
func (e *env) object(t *testing.T, key string) (sum [32]byte, ok bool) {
	t.Helper()
	obj, err := e.s3.GetObject(testBucket, key, nil)
	if err != nil {
		return sum, false
	}
	defer obj.Contents.Close()
	h := sha256.New()
	if _, err := io.Copy(h, obj.Contents); err != nil {
		t.Fatal(err)
	}
	copy(sum[:], h.Sum(nil))
	return sum, true
}

// makeDisk writes size pseudo-random bytes (no image header) and returns
// the path and the content's sha256.
func makeDisk(t *testing.T, name string, size int) (string, [32]byte) {
	t.Helper()
	data := make([]byte, size)
	r := rand.NewChaCha8([32]byte{'k', 'i', 'l', 'n'})
	r.Read(data)
	copy(data, "not-an-image-header")
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p, sha256.Sum256(data)
}

// writeHeader overwrites the start of a file.
func writeHeader(t *testing.T, path, header string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte(header), 0); err != nil {
		t.Fatal(err)
	}
}
