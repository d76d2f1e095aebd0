package libvirt

import (
	"path/filepath"
	"testing"

	"github.com/kilnbuild/kiln/internal/testutil"
)

// TestNetworkXMLGolden: with a DHCP range the network gets libvirt's
// dnsmasq (a <dhcp> range, DNS left on); without one, DNS is switched off
// too, so libvirt starts no dnsmasq for it.
func TestNetworkXMLGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec NetworkSpec
	}{
		{"network-dhcp", NetworkSpec{
			Name: "kiln-e2e-dhcp", Bridge: "kilnbr-dhcp", Address: "10.0.99.1", Netmask: "255.255.255.0",
			DHCPStart: "10.0.99.100", DHCPEnd: "10.0.99.199",
		}},
		{"network-static", NetworkSpec{Name: "kiln-e2e", Bridge: "kilnbr-e2e", Address: "10.0.2.2", Netmask: "255.255.255.0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := NetworkXML(tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			testutil.Golden(t, filepath.Join("testdata", tc.name+".xml"), []byte(got+"\n"))
		})
	}
}
