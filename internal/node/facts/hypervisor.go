package facts

import (
	"bufio"
	"bytes"
	"os"
	"strings"
)

// Hypervisor is what the node knows of the hypervisor it runs under.
type Hypervisor struct {
	// Virtualized is true only when the machine is a virtual machine: the
	// CPU's hypervisor bit (the "hypervisor" flag of /proc/cpuinfo), a
	// /sys/hypervisor, or firmware facts naming a hypervisor.
	Virtualized bool
	// Name is the hypervisor in virt-what's words (kvm, qemu, vmware,
	// hyperv, xen, virtualbox, ...), "unknown" when virtualized by a
	// hypervisor that says nothing of itself, "" on bare metal.
	Name string
	// Evidence says what was found, for logs and diagnostics.
	Evidence string
}

// vendors map DMI system vendor or product words to virt-what's names.
var vendors = []struct{ word, name string }{
	{"KVM", "kvm"},
	{"QEMU", "qemu"},
	{"VMware", "vmware"},
	{"VirtualBox", "virtualbox"},
	{"innotek", "virtualbox"},
	{"Xen", "xen"},
	{"Microsoft Corporation Virtual Machine", "hyperv"},
	{"Google Compute Engine", "kvm"},
	{"Amazon EC2", "aws"},
	{"OpenStack", "kvm"},
	{"Parallels", "parallels"},
	{"bhyve", "bhyve"},
	{"Bochs", "bochs"},
	{"Cloud Hypervisor", "kvm"},
	{"Firecracker", "kvm"},
}

// Hypervisor detects the hypervisor the machine runs under.
func (r Reader) Hypervisor() Hypervisor {
	if t := r.readTrim("sys/hypervisor/type"); t != "" {
		return Hypervisor{Virtualized: true, Name: t, Evidence: "/sys/hypervisor/type " + t}
	}
	// DMI names the hypervisor on most; product_name before sys_vendor
	// (a KVM guest's vendor is QEMU, its product may say KVM).
	vendor := r.readTrim("sys/class/dmi/id/sys_vendor")
	product := r.readTrim("sys/class/dmi/id/product_name")
	bios := r.readTrim("sys/class/dmi/id/bios_vendor")
	if vendor == "" && product == "" {
		if d, err := r.DMI(); err == nil {
			for _, s := range d.Sections {
				if s.Type == 1 && len(s.SubSections) > 0 {
					vendor = s.SubSections[0].Properties["Manufacturer"].Val
					product = s.SubSections[0].Properties["Product Name"].Val
				}
			}
		}
	}
	flag := r.cpuHypervisorFlag()
	for _, text := range []string{product, vendor + " " + product, bios} {
		for _, v := range vendors {
			if text != "" && strings.Contains(text, v.word) {
				return Hypervisor{Virtualized: true, Name: v.name, Evidence: "dmi " + strings.TrimSpace(text)}
			}
		}
	}
	if flag {
		return Hypervisor{Virtualized: true, Name: "unknown", Evidence: "cpu hypervisor flag"}
	}
	return Hypervisor{}
}

// cpuHypervisorFlag reports whether /proc/cpuinfo's flags have
// "hypervisor" (CPUID leaf 1, ECX bit 31: set by every hypervisor that
// presents itself).
func (r Reader) cpuHypervisorFlag() bool {
	b, err := os.ReadFile(r.path("proc/cpuinfo"))
	if err != nil {
		return false
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		if k = strings.TrimSpace(k); k != "flags" && k != "Features" {
			continue
		}
		for _, f := range strings.Fields(v) {
			if f == "hypervisor" {
				return true
			}
		}
		return false // the first CPU speaks for all
	}
	return false
}
