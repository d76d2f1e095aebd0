package disk

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// CompareFormats is Compare with explicit formats (empty: probed). Some
// formats cannot be probed: a fixed VHD's only header is a footer at the
// end, so qemu-img would read it as a raw image one sector too long.
func (t Tool) CompareFormats(ctx context.Context, a, aFormat, b, bFormat string) error {
	args := []string{"compare"}
	if aFormat != "" {
		args = append(args, "-f", aFormat)
	}
	if bFormat != "" {
		args = append(args, "-F", bFormat)
	}
	args = append(args, a, b)
	out, err := t.run(ctx, args...)
	var ce *CommandError
	if err != nil && errors.As(err, &ce) && ce.ExitCode() == 1 && ctx.Err() == nil {
		return fmt.Errorf("%w: %s and %s: %s", ErrImagesDiffer, a, b, strings.TrimSpace(string(out)))
	}
	return err
}
