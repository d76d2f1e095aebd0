package libvirt

import golibvirt "github.com/digitalocean/go-libvirt"

type testIface struct {
	Name, HW string
	Addrs    []string
}

func toInterfaces(in []testIface) []golibvirt.DomainInterface {
	var out []golibvirt.DomainInterface
	for _, i := range in {
		d := golibvirt.DomainInterface{Name: i.Name, Hwaddr: golibvirt.OptString{i.HW}}
		for _, a := range i.Addrs {
			d.Addrs = append(d.Addrs, golibvirt.DomainIPAddr{Addr: a})
		}
		out = append(out, d)
	}
	return out
}
