package ui

import (
	"fmt"
	"strconv"
	"strings"
)

// Format is how an Output renders what it is given.
type Format int

const (
	// Human is "==> build: text" lines for people.
	Human Format = iota
	// MachineReadable is Packer's -machine-readable format: one
	// "timestamp,target,type,data..." line per message.
	MachineReadable
	// JSON is kiln's --json event stream: one Event object per line.
	JSON
)

// machineComma is what Packer writes for a comma inside a data field, so
// that splitting a line on "," stays right (and awk-friendly).
const machineComma = "%!(PACKER_COMMA)"

var machineEscaper = strings.NewReplacer(",", machineComma, "\r", `\r`, "\n", `\n`)

// MachineEscape escapes one field the way Packer does: commas become
// %!(PACKER_COMMA), carriage returns and newlines the two characters \r
// and \n. Backslashes are left alone, as Packer leaves them.
func MachineEscape(s string) string { return machineEscaper.Replace(s) }

var machineUnescaper = strings.NewReplacer(machineComma, ",", `\r`, "\r", `\n`, "\n")

// MachineUnescape reverses MachineEscape (for fields that held no
// backslash sequence of their own, which Packer's format cannot tell apart).
func MachineUnescape(s string) string { return machineUnescaper.Replace(s) }

// Machine writes one machine-readable line: type typ about target (a build
// name, or empty for the run as a whole) with data fields. It writes only
// in MachineReadable format: elsewhere the same facts are printed for people
// or as JSON events, as Packer's normal UI ignores Machine calls. Secrets
// are masked in every field before escaping, so a secret with a comma in it
// is still found.
func (o *Output) Machine(target, typ string, data ...string) {
	if o.Format != MachineReadable {
		return
	}
	var b strings.Builder
	b.WriteString(strconv.FormatInt(o.clock().UTC().Unix(), 10))
	b.WriteByte(',')
	b.WriteString(MachineEscape(o.Secrets.Mask(target)))
	b.WriteByte(',')
	b.WriteString(MachineEscape(typ))
	for _, d := range data {
		b.WriteByte(',')
		b.WriteString(MachineEscape(o.Secrets.Mask(d)))
	}
	b.WriteByte('\n')
	o.mu.Lock()
	defer o.mu.Unlock()
	o.w.Write([]byte(b.String()))
}

// MachineLine is one parsed machine-readable line.
type MachineLine struct {
	Time   int64 // Unix seconds, UTC
	Target string
	Type   string
	Data   []string // unescaped
}

// ParseMachineLine parses a line written by Machine.
func ParseMachineLine(line string) (MachineLine, error) {
	parts := strings.Split(strings.TrimRight(line, "\r\n"), ",")
	if len(parts) < 3 {
		return MachineLine{}, fmt.Errorf("machine-readable line %q: want timestamp,target,type[,data...]", line)
	}
	ts, err := strconv.ParseInt(parts[0], 10, 64)
	if err != nil {
		return MachineLine{}, fmt.Errorf("machine-readable line %q: bad timestamp: %w", line, err)
	}
	ml := MachineLine{Time: ts, Target: MachineUnescape(parts[1]), Type: MachineUnescape(parts[2])}
	for _, d := range parts[3:] {
		ml.Data = append(ml.Data, MachineUnescape(d))
	}
	return ml, nil
}
