package e2e

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// typingText is 300 characters with every shifted character of a US
// keyboard and the ones a boot prompt treats specially. The typing
// benchmark (bench/typing.go) types the same text.
var typingText = strings.Repeat(`Kiln_Types:Fast! "Shifted" ~Keys~ (a|b) <1> [x] {y} @home #2 $3 %4 ^5 &6 *7 +8 =9 -0 ;'/.,?\`+"` ", 10)[:300]

// TestTypingArrivesExactly types 300 characters, shifted ones included, over
// QMP at 3 ms per key (1.5 s in all), into a guest that echoes each typed
// line to the serial console: every character must arrive, in order. (VNC
// typing is checked by TestInstallFromISO; over VNC a 300-character line
// now and then shows one doubled character, see the typing benchmark.)
func TestTypingArrivesExactly(t *testing.T) {
	requireVM(t)
	dir := installerDir(t)
	for _, transport := range []string{"qmp"} {
		t.Run(transport, func(t *testing.T) {
			e := newEnv(t)
			k := e.start(t, "build", "-var", "installer_dir="+dir, "-var", "out="+filepath.Join(e.Dir, "out"),
				"-var", "transport="+transport, "-var", "interval=3ms", "-var", "text="+typingText, template("typing.pkr.hcl"))
			code, _ := k.wait(5 * time.Minute)
			log := k.output()
			if code != 0 {
				t.Fatalf("kiln build exited %d:\n%s", code, log)
			}
			e.assertClean(t)
			serial := serialLog(t, e)
			want := "kiln-installer: typed: " + typingText + "\r\n"
			if !strings.Contains(strings.ReplaceAll(serial, "\r\r\n", "\r\n"), want) {
				t.Errorf("the typed line did not arrive exactly:\nwant %q\nserial log:\n%s", want, serial)
			}
		})
	}
}
