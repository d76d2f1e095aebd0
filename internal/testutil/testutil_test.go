package testutil

import "testing"

func TestToolFindsSh(t *testing.T) {
	if p := Tool(t, "sh"); p == "" {
		t.Fatal("Tool returned an empty path for sh")
	}
}

func TestInCI(t *testing.T) {
	for _, c := range []struct {
		env  string
		want bool
	}{{"true", true}, {"", false}, {"false", false}} {
		t.Setenv("CI", c.env)
		if got := InCI(); got != c.want {
			t.Errorf("CI=%q: InCI() = %v, want %v", c.env, got, c.want)
		}
	}
}
