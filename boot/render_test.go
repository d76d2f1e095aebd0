package boot

import (
	"errors"
	"strings"
	"testing"
)

func TestRender(t *testing.T) {
	data := TemplateData{
		HTTPIP:       "10.0.2.2",
		HTTPPort:     8123,
		Name:         "debian-12",
		SSHPublicKey: "ssh-ed25519 AAAA+/= kiln",
	}
	tests := []struct {
		in, want string
	}{
		{"ks=http://{{ .HTTPIP }}:{{ .HTTPPort }}/ks.cfg<enter>", "ks=http://10.0.2.2:8123/ks.cfg<enter>"},
		{"hostname={{ .Name }}", "hostname=debian-12"},
		{"key={{ .SSHPublicKey }}", "key=ssh-ed25519 AAAA+/= kiln"},
		{"key={{ .SSHPublicKey | urlquery }}", "key=ssh-ed25519+AAAA%2B%2F%3D+kiln"},
		{"{{ upper .Name }} {{ lower \"ABC\" }}", "DEBIAN-12 abc"},
		{"{{ replace \"-\" \"_\" 1 .Name }} {{ replace_all \"e\" \"E\" .Name }}", "debian_12 dEbian-12"},
		{"{{ split .Name \"-\" 1 }}", "12"},
		{"{{ printf \"%05d\" .HTTPPort }}", "08123"},
		{"no template <wait5>", "no template <wait5>"},
	}
	for _, tt := range tests {
		got, err := Render(tt.in, data)
		if err != nil {
			t.Errorf("Render(%q): %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("Render(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestRenderZeroPortWhenNoHTTPServer(t *testing.T) {
	got, err := Render("{{ .HTTPIP }}:{{ .HTTPPort }}", TemplateData{})
	if err != nil || got != ":0" {
		t.Errorf("Render = %q, %v; want \":0\"", got, err)
	}
}

func TestRenderErrors(t *testing.T) {
	for _, in := range []string{
		"{{ .HTTPIp }}",             // unknown field
		"{{ .HTTPIP }",              // unclosed action
		"{{ env \"HOME\" }}",        // Packer refuses env here too
		"{{ split .Name \"-\" 5 }}", // index out of range
	} {
		if got, err := Render(in, TemplateData{Name: "a-b"}); err == nil {
			t.Errorf("Render(%q) = %q, want error", in, got)
		}
	}
}

func TestValidate(t *testing.T) {
	ok := [][]string{
		nil,
		{"<esc><wait>", "linux ks=http://{{ .HTTPIP }}:{{ .HTTPPort }}/ks.cfg<enter>"},
		{"<ent", "er>"},                              // Packer joins before parsing
		{"<wait{{ .HTTPPort }}>"},                    // only checkable after rendering
		{"{{ \"<entr> }} é\" }}"},                    // text inside actions is not keys
		{"{{/* <entr> }} */}}<enter>"},               // nor comments
		{"{{ `}}<entr>` }}"},                         // nor raw strings
		{"{{ with .Name }}{{ .Anything }}{{ end }}"}, // dot is not TemplateData inside with
		{"{{ if .HTTPIP }}<enter>{{ else }}<tab>{{ end }}"},
		{"key={{ .SSHPublicKey | urlquery }}"},
	}
	for _, cmds := range ok {
		if err := Validate(cmds); err != nil {
			t.Errorf("Validate(%q): %v", cmds, err)
		}
	}

	bad := []struct {
		cmds []string
		msg  string
	}{
		{[]string{"<esc>", "hostname={{ .Name }}<entr>"}, "boot_command[1]: unknown key <entr> at offset 20; did you mean <enter>?"},
		{[]string{"abc", "<wait0>"}, "boot_command[1]: wait <wait0> is not positive at offset 0"},
		{[]string{"{{ .HTTPIp }}"}, "unknown field .HTTPIp"},
		{[]string{"{{ if .Nmae }}x{{ end }}"}, "unknown field .Nmae"},
		{[]string{"{{ .HTTPIP }"}, "boot_command template:"},
		{[]string{"{{ vault \"a\" \"b\" }}"}, `function "vault" not defined`},
		{[]string{"{{ .Name }}é"}, "boot_command[0]: character 'é'"},
	}
	for _, tt := range bad {
		err := Validate(tt.cmds)
		if err == nil || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("Validate(%q) = %v, want error containing %q", tt.cmds, err, tt.msg)
		}
	}
}

func TestValidateErrorIsParseError(t *testing.T) {
	err := Validate([]string{"one", "two<ctrl>"})
	var pe *ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("Validate error %v does not wrap a *ParseError", err)
	}
	if pe.Offset != 3 || pe.Hint == "" {
		t.Errorf("ParseError = %+v, want offset 3 within element 1 and a hint", pe)
	}
}
