package boot

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func sp(name string) Key { return Key{Name: name} }

// chars returns one Press per rune of s.
func chars(s string) []Action {
	var out []Action
	for _, r := range s {
		out = append(out, Press{Char(r)})
	}
	return out
}

func seq(parts ...any) []Action {
	var out []Action
	for _, p := range parts {
		switch p := p.(type) {
		case string:
			out = append(out, chars(p)...)
		case Action:
			out = append(out, p)
		default:
			panic(p)
		}
	}
	return out
}

// packerSpecialKeys is the special key list of the Packer QEMU builder
// docs (shared/packer-qemu.md §2): every one must parse.
var packerSpecialKeys = []string{
	"bs", "del", "enter", "esc", "tab", "spacebar", "insert", "home", "end",
	"pageUp", "pageDown", "up", "down", "left", "right", "menu",
	"f1", "f2", "f3", "f4", "f5", "f6", "f7", "f8", "f9", "f10", "f11", "f12",
	"leftAlt", "rightAlt", "leftCtrl", "rightCtrl", "leftShift", "rightShift",
	"leftSuper", "rightSuper", "leftCommand", "rightCommand", "leftOption", "rightOption",
}

func TestSpecialKeyNamesMatchPacker(t *testing.T) {
	got := SpecialKeyNames()
	if diff := cmp.Diff(packerSpecialKeys, got); diff != "" {
		t.Errorf("SpecialKeyNames() mismatch (-want +got):\n%s", diff)
	}
}

func TestParseEverySpecialKey(t *testing.T) {
	for _, name := range append(slices.Clone(packerSpecialKeys), "return") {
		want := sp(name)
		if name == "return" {
			want = sp("enter")
		}
		for _, spelled := range []string{name, strings.ToLower(name), strings.ToUpper(name)} {
			for suffix, mk := range map[string]func(Key) Action{
				"":    func(k Key) Action { return Press{k} },
				"On":  func(k Key) Action { return Hold{k} },
				"on":  func(k Key) Action { return Hold{k} },
				"ON":  func(k Key) Action { return Hold{k} },
				"Off": func(k Key) Action { return Release{k} },
				"oFF": func(k Key) Action { return Release{k} },
			} {
				in := "<" + spelled + suffix + ">"
				got, err := Parse(in)
				if err != nil {
					t.Errorf("Parse(%q): %v", in, err)
					continue
				}
				if diff := cmp.Diff([]Action{mk(want)}, got); diff != "" {
					t.Errorf("Parse(%q) mismatch (-want +got):\n%s", in, diff)
				}
			}
		}
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []Action
	}{
		{"empty", "", nil},
		{"plain text", "linux ks=http://10.0.2.2:8000/ks.cfg", chars("linux ks=http://10.0.2.2:8000/ks.cfg")},
		{"all printable ascii", " !\"#$%&'()*+,-./0123456789:;=?@AZ[\\]^_`az{|}~", chars(" !\"#$%&'()*+,-./0123456789:;=?@AZ[\\]^_`az{|}~")},
		{"wait default", "<wait>", seq(Wait{time.Second})},
		{"wait seconds", "<wait5><wait10><wait20>", seq(Wait{5 * time.Second}, Wait{10 * time.Second}, Wait{20 * time.Second})},
		{"wait ns", "<wait2ns>", seq(Wait{2 * time.Nanosecond})},
		{"wait us", "<wait10us>", seq(Wait{10 * time.Microsecond})},
		{"wait µs", "<wait7µs>", seq(Wait{7 * time.Microsecond})},
		{"wait ms", "<wait300ms>", seq(Wait{300 * time.Millisecond})},
		{"wait s", "<wait3s>", seq(Wait{3 * time.Second})},
		{"wait m", "<wait10m>", seq(Wait{10 * time.Minute})},
		{"wait h", "<wait1h>", seq(Wait{time.Hour})},
		{"wait compound", "<wait1m30s><wait4m2ns><wait2h45m>", seq(Wait{90 * time.Second}, Wait{4*time.Minute + 2}, Wait{165 * time.Minute})},
		{"wait fraction", "<wait1.5s><wait0.5h>", seq(Wait{1500 * time.Millisecond}, Wait{30 * time.Minute})},
		{"enter and return", "<enter><return><ReTuRn>", seq(Press{sp("enter")}, Press{sp("enter")}, Press{sp("enter")})},
		{"case-insensitive special", "<rightShift><rightshift><RIGHTSHIFT>", seq(Press{sp("rightShift")}, Press{sp("rightShift")}, Press{sp("rightShift")})},
		{"case-insensitive on", "<delon><delON><deLoN><DELON>", seq(Hold{sp("del")}, Hold{sp("del")}, Hold{sp("del")}, Hold{sp("del")})},
		{"case-insensitive off", "<enteroff><enterOFF><eNtErOfF>", seq(Release{sp("enter")}, Release{sp("enter")}, Release{sp("enter")})},
		{"ctrl-c", "<leftCtrlOn>c<leftCtrlOff>", seq(Hold{sp("leftCtrl")}, "c", Release{sp("leftCtrl")})},
		{"alt-f2", "<leftAltOn><f2><leftAltOff>", seq(Hold{sp("leftAlt")}, Press{sp("f2")}, Release{sp("leftAlt")})},
		{"f1 on is not f10", "<f1on><f10><f1Off>", seq(Hold{sp("f1")}, Press{sp("f10")}, Release{sp("f1")})},
		{"left on", "<lefton><leftOff>", seq(Hold{sp("left")}, Release{sp("left")})},
		{"char toggle", "<cOn><cOff>", seq(Hold{Char('c')}, Release{Char('c')})},
		{"char toggle keeps case", "<COn><COFF>", seq(Hold{Char('C')}, Release{Char('C')})},
		{"char toggle digit", "<1on><1off>", seq(Hold{Char('1')}, Release{Char('1')})},
		{"char toggle punctuation", "<<On><>Off>< on>", seq(Hold{Char('<')}, Release{Char('>')}, Hold{Char(' ')})},
		// Packer's own parser test (sdk bootcommand/boot_command_ast_test.go), minus the
		// non-ASCII character kiln refuses.
		{"packer test string",
			"<wait><wait20><wait3s><wait4m2ns>foo/bar > one <fon> b<fOff><foo><f3><f12><spacebar><leftalt><rightshift><rightsuper><menu>",
			seq(Wait{time.Second}, Wait{20 * time.Second}, Wait{3 * time.Second}, Wait{4*time.Minute + 2},
				"foo/bar > one ", Hold{Char('f')}, " b", Release{Char('f')}, "<foo>",
				Press{sp("f3")}, Press{sp("f12")}, Press{sp("spacebar")}, Press{sp("leftAlt")},
				Press{sp("rightShift")}, Press{sp("rightSuper")}, Press{sp("menu")})},
		// A '<' that starts no token is typed, and so is what follows it.
		{"lone <", "<", chars("<")},
		{"less than", "a < b", chars("a < b")},
		{"double <", "<<enter>", seq("<", Press{sp("enter")})},
		{"empty brackets", "<>", chars("<>")},
		{"unterminated", "<enter", chars("<enter")},
		{"shell redirect", "cat <in >out", chars("cat <in >out")},
		{"unknown word", "<foo><br><li><3><a-b>", chars("<foo><br><li><3><a-b>")},
		{"wait with spaces", "<wait for it>", chars("<wait for it>")},
		{"html-ish", "<p>hi</p>", chars("<p>hi</p>")},
		{"key then literal", "<tab>foo<enter>", seq(Press{sp("tab")}, "foo", Press{sp("enter")})},
		{"not a toggle", "<delete", chars("<delete")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Parse(%q) mismatch (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		in     string
		offset int
		msg    string // substring of Error()
	}{
		{"hello world <entr>", 12, "unknown key <entr> at offset 12; did you mean <enter>?"},
		{"<ENTR>", 0, "unknown key <ENTR> at offset 0; did you mean <enter>?"},
		{"<ecs>", 0, "did you mean <esc>?"},
		{"ab<ctrl>", 2, "unknown key <ctrl> at offset 2; did you mean <leftCtrl>?"},
		{"<ctrlOn>", 0, "did you mean <leftCtrlOn>?"},
		{"<altoff>", 0, "did you mean <leftAltOff>?"},
		{"<space>", 0, "did you mean <spacebar>?"},
		{"<escape>", 0, "did you mean <esc>?"},
		{"<page_up>", 0, "did you mean <pageUp>?"},
		{"<left-ctrl-on>", 0, "did you mean <leftCtrlOn>?"},
		{"<lefctrlon>", 0, "did you mean <leftCtrlOn>?"},
		{"<leftShfitOff>", 0, "did you mean <leftShiftOff>?"},
		{"<f13>", 0, "did you mean <f1>?"},
		{"x<wait0>", 1, "wait <wait0> is not positive at offset 1"},
		{"<wait0s>", 0, "is not positive"},
		{"<wait-1s>", 0, "wait <wait-1s> is not positive"},
		{"<wait5x>", 0, "invalid wait <wait5x> at offset 0; use <wait>"},
		{"<wait1.5>", 0, "invalid wait <wait1.5>"},
		{"<wait05>", 0, "invalid wait <wait05>"},
		{"<wait1m-30s>", 0, "invalid wait <wait1m-30s>"},
		{"<waitms>", 0, "invalid wait <waitms>"},
		{"<Wait5>", 0, "invalid wait <Wait5> at offset 0; did you mean <wait5>? Packer only recognises lowercase wait"},
		{"<WAIT>", 0, "did you mean <wait>?"},
		{"<wait99999999999999999999>", 0, "invalid wait"},
		{"<wait9999999999999>", 0, "is too long"},
		{"naïve", 2, "character 'ï' (U+00EF) cannot be typed on a US keyboard at offset 2"},
		{"a\nb", 1, "control character U+000A cannot be typed at offset 1; use <enter>"},
		{"\t", 0, "use <tab>"},
		{"<éOn>", 0, "cannot be typed on a US keyboard in <éOn> at offset 0"},
		{"a\xffb", 1, "invalid UTF-8 byte at offset 1"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Parse(tt.in)
			if err == nil {
				t.Fatalf("Parse(%q) = %v, want error", tt.in, got)
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("Parse(%q) error %v is not a *ParseError", tt.in, err)
			}
			if pe.Offset != tt.offset {
				t.Errorf("Parse(%q) offset = %d, want %d", tt.in, pe.Offset, tt.offset)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("Parse(%q) error = %q, want it to contain %q", tt.in, err, tt.msg)
			}
		})
	}
}

func TestParseReportsEveryProblem(t *testing.T) {
	_, err := Parse("<entr> ok <wait0> é")
	if err == nil {
		t.Fatal("want error")
	}
	var offsets []int
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		offsets = append(offsets, e.(*ParseError).Offset)
	}
	if diff := cmp.Diff([]int{0, 10, 18}, offsets); diff != "" {
		t.Errorf("error offsets mismatch (-want +got):\n%s\nerror: %v", diff, err)
	}
}

func TestParseErrorCountIsBounded(t *testing.T) {
	_, err := Parse(strings.Repeat("<entr>", 50))
	if n := len(err.(interface{ Unwrap() []error }).Unwrap()); n != maxParseErrors {
		t.Errorf("got %d errors, want %d", n, maxParseErrors)
	}
}

func TestKeyString(t *testing.T) {
	if got := sp("enter").String(); got != "<enter>" {
		t.Errorf("String() = %q", got)
	}
	if got := Char('x').String(); got != "x" {
		t.Errorf("String() = %q", got)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"<enter>", "<wait1m30s>", "<cOn>", "a < b", "<entr>", "{{ .HTTPIP }}<wait{{ .X }}>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		acts, err := Parse(s)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Offset < 0 || pe.Offset > len(s) {
				t.Fatalf("bad error %v", err)
			}
			return
		}
		for _, a := range acts {
			if w, ok := a.(Wait); ok && w.D <= 0 {
				t.Fatalf("non-positive wait accepted: %v", w)
			}
		}
		_ = Validate([]string{s})
	})
}
