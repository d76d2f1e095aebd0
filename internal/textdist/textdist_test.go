package textdist

import "testing"

func TestDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"enter", "enter", 0}, {"entr", "enter", 1}, {"entre", "enter", 1},
		{"disk_sise", "disk_size", 1}, {"", "abc", 3}, {"kitten", "sitting", 3}, {"/ks.cgf", "/ks.cfg", 1}, {"ecs", "esc", 1}, {"foo", "f10", 2},
	} {
		if got := Distance(tc.a, tc.b); got != tc.want {
			t.Errorf("Distance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}
