package facts

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/zos-go/zos/internal/nodeapi"
)

// maxTable bounds the SMBIOS table read (real tables are a few KiB; the
// SMBIOS 3 entry point allows up to 4 GiB).
const maxTable = 1 << 20

// sysfsDMI are the sections built from /sys/class/dmi/id when the table is
// not readable: dmidecode's type, title and properties, each from a file.
var sysfsDMI = []struct {
	typ   int
	title string
	props [][2]string // property, file
}{
	{0, "BIOS Information", [][2]string{{"Vendor", "bios_vendor"}, {"Version", "bios_version"}, {"Release Date", "bios_date"}}},
	{1, "System Information", [][2]string{{"Manufacturer", "sys_vendor"}, {"Product Name", "product_name"}, {"Version", "product_version"}, {"Serial Number", "product_serial"}, {"UUID", "product_uuid"}, {"SKU Number", "product_sku"}, {"Family", "product_family"}}},
	{2, "Base Board Information", [][2]string{{"Manufacturer", "board_vendor"}, {"Product Name", "board_name"}, {"Version", "board_version"}, {"Serial Number", "board_serial"}, {"Asset Tag", "board_asset_tag"}}},
	{3, "Chassis Information", [][2]string{{"Manufacturer", "chassis_vendor"}, {"Type", "chassis_type"}, {"Version", "chassis_version"}, {"Serial Number", "chassis_serial"}, {"Asset Tag", "chassis_asset_tag"}}},
}

// DMI reads the machine's DMI facts: the SMBIOS table when the kernel
// exposes it (root only), else the summary in /sys/class/dmi/id;
// ErrNoDMI when there is neither.
func (r Reader) DMI() (nodeapi.DMI, error) {
	b, err := readBounded(r.path("sys/firmware/dmi/tables/DMI"), maxTable)
	if err == nil {
		d, err := ParseSMBIOS(b)
		if err != nil {
			return nodeapi.DMI{}, fmt.Errorf("decoding the smbios table: %w", err)
		}
		return d, nil
	}
	if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, fs.ErrPermission) {
		return nodeapi.DMI{}, fmt.Errorf("reading the smbios table: %w", err)
	}
	d := nodeapi.DMI{
		Tooling:  nodeapi.DMITooling{Aggregator: "sysfs /sys/class/dmi/id", Decoder: Decoder},
		Sections: []nodeapi.DMISection{},
	}
	for _, s := range sysfsDMI {
		props := map[string]nodeapi.DMIProperty{}
		for _, p := range s.props {
			v := r.readTrim("sys/class/dmi/id/" + p[1])
			if v == "" {
				continue
			}
			if p[1] == "chassis_type" {
				var n int
				if _, err := fmt.Sscanf(v, "%d", &n); err == nil && n >= 0 && n < 256 {
					v = ChassisType(byte(n))
				}
			}
			props[p[0]] = nodeapi.DMIProperty{Val: v}
		}
		if len(props) == 0 {
			continue
		}
		d.Sections = append(d.Sections, nodeapi.DMISection{
			HandleLine:  fmt.Sprintf("DMI type %d (from sysfs)", s.typ),
			TypeStr:     TypeName(s.typ),
			Type:        s.typ,
			SubSections: []nodeapi.DMISubSection{{Title: s.title, Properties: props}},
		})
	}
	if len(d.Sections) == 0 {
		return nodeapi.DMI{}, ErrNoDMI
	}
	return d, nil
}

// readBounded reads at most max bytes of path; a longer file is an error.
func readBounded(path string, max int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, max+1)
	n := 0
	for n < len(b) {
		m, err := f.Read(b[n:])
		n += m
		if err != nil {
			break
		}
	}
	if n > max {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, max)
	}
	return b[:n], nil
}
