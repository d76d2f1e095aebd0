package qemu

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
)

func TestForwardHostPortTriesOtherPorts(t *testing.T) {
	re := regexp.MustCompile(`^hostfwd_add user\.0 tcp:127\.0\.0\.1:(\d+)-:22$`)
	var mu sync.Mutex
	tried := map[int]bool{}
	c := fakeQMP(t, func(cmd string, args map[string]any) map[string]any {
		line, _ := args["command-line"].(string)
		m := re.FindStringSubmatch(line)
		if cmd != "human-monitor-command" || m == nil {
			return map[string]any{"error": map[string]string{"class": "GenericError", "desc": "unexpected " + cmd + " " + line}}
		}
		port, _ := strconv.Atoi(m[1])
		mu.Lock()
		tried[port] = true
		mu.Unlock()
		if port != 3003 { // QEMU 7.2's answer when the bind fails
			return map[string]any{"return": fmt.Sprintf("Could not set up host forwarding rule 'tcp:127.0.0.1:%d-:22'\r\n", port)}
		}
		return map[string]any{"return": ""}
	})
	for range 5 { // random order: whatever it tries first, it ends on 3003
		port, err := ForwardHostPort(context.Background(), c, "user.0", "127.0.0.1", 3000, 3005, 22)
		if err != nil || port != 3003 {
			t.Fatalf("ForwardHostPort = %d, %v; want 3003", port, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for p := range tried {
		if p < 3000 || p > 3005 {
			t.Errorf("tried port %d outside the range", p)
		}
	}
}

func TestForwardHostPortFailsFastOnOtherErrors(t *testing.T) {
	calls := 0
	var mu sync.Mutex
	c := fakeQMP(t, func(cmd string, args map[string]any) map[string]any {
		mu.Lock()
		calls++
		mu.Unlock()
		return map[string]any{"return": "unrecognized netdev id 'user.0'\r\n"}
	})
	_, err := ForwardHostPort(context.Background(), c, "user.0", "127.0.0.1", 3000, 3100, 22)
	if err == nil || !strings.Contains(err.Error(), "unrecognized netdev") {
		t.Fatalf("err = %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if calls != 1 {
		t.Errorf("%d attempts for an error no other port can fix", calls)
	}
	if _, err := ForwardHostPort(context.Background(), c, "user.0", "", 5000, 4000, 22); err == nil {
		t.Error("inverted range accepted")
	}
}
