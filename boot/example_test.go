package boot_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/kilnbuild/kiln/boot"
)

// Typing a Packer boot_command over QMP: validate at config time, render
// and parse at type time, then send.
func Example() {
	bootCommand := []string{"<esc><wait>", "linux ks=http://{{ .HTTPIP }}:{{ .HTTPPort }}/ks.cfg<enter>"}
	if err := boot.Validate(bootCommand); err != nil {
		panic(err)
	}
	cmd, err := boot.Render(strings.Join(bootCommand, ""), boot.TemplateData{HTTPIP: "10.0.2.2", HTTPPort: 8080})
	if err != nil {
		panic(err)
	}
	actions, err := boot.Parse(cmd)
	if err != nil {
		panic(err)
	}
	commands := 0
	qmp := &boot.QMPSender{Exec: func(ctx context.Context, cmd string, args, out any) error {
		// A real caller passes its QMP client's Execute here.
		if commands == 0 {
			b, _ := json.Marshal(args)
			fmt.Println(cmd, string(b))
		}
		commands++
		return nil
	}}
	opts := boot.TypeOptions{KeyInterval: -1, Log: func(s string) { fmt.Println(s) }}
	ctx := context.Background()
	// Shorten the <wait> for the example.
	actions[1] = boot.Wait{D: 1}
	if err := boot.Type(ctx, actions, qmp, opts); err != nil {
		panic(err)
	}
	fmt.Println(commands, "QMP commands")
	// Output:
	// pressing <esc>
	// input-send-event {"events":[{"type":"key","data":{"down":true,"key":{"type":"qcode","data":"esc"}}},{"type":"key","data":{"down":false,"key":{"type":"qcode","data":"esc"}}}]}
	// waiting 1ns
	// typed 36 characters
	// pressing <enter>
	// boot command typed: 38 keystrokes
	// 38 QMP commands
}

func ExampleParse_error() {
	_, err := boot.Parse("linux ks=cdrom:/ks.cfg<entr>")
	fmt.Println(err)
	// Output:
	// unknown key <entr> at offset 22; did you mean <enter>? (to type the text literally, start it with <<On><<Off> instead of <)
}
