package config

import (
	"time"

	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
)

// legacyIsotimeFunc is Packer's legacy_isotime(layout): the build's start
// time (UTC) in a Go time layout, what {{isotime "layout"}} gives in a
// legacy JSON template. hcl2_upgrade translates to it.
func legacyIsotimeFunc(now time.Time) function.Function {
	return function.New(&function.Spec{
		Params: []function.Parameter{{Name: "layout", Type: cty.String}},
		Type:   function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			return cty.StringVal(now.UTC().Format(args[0].AsString())), nil
		},
	})
}
