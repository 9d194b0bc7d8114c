package facts

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/zos-go/zos/internal/nodeapi"
)

// Decoder names this package's decoder in DMI answers.
const Decoder = "zos-go SMBIOS decoder v1"

// maxStructures bounds the structures read from one table, so that a
// corrupt table cannot make an unbounded answer.
const maxStructures = 4096

// typeNames are the original's names of the SMBIOS structure types
// (zosbase pkg/capacity/dmi), spelling included.
var typeNames = [...]string{
	"BIOS", "System", "Baseboard", "Chassis", "Processor", "MemoryController", "MemoryModule", "Cache",
	"PortConnector", "SystemSlots", "OnBoardDevices", "OEMSettings", "SystemConfigurationOptions", "BIOSLanguage",
	"GroupAssociations", "SystemEventLog", "PhysicalMemoryArray", "MemoryDevice", "32BitMemoryError",
	"MemoryArrayMappedAddress", "MemoryDeviceMappedAddress", "BuiltinPointingDevice", "PortableBattery",
	"SystemReset", "HardwareSecurity", "SystemPowerControls", "VoltageProbe", "CoolingDevice", "TempratureProbe",
	"ElectricalCurrentProbe", "OutOfBandRemoteAccess", "BootIntegrityServices", "SystemBoot", "64BitMemoryError",
	"ManagementDevice", "ManagementDeviceComponent", "ManagementThresholdData", "MemoryChannel", "IPMIDevice",
	"PowerSupply", "AdditionalInformation", "OnboardDeviceExtendedInformation", "ManagementControllerHostInterface",
}

// TypeName is the original's name of SMBIOS type t.
func TypeName(t int) string {
	if t >= 0 && t < len(typeNames) {
		return typeNames[t]
	}
	return fmt.Sprintf("Custom Type %d", t)
}

// titles are dmidecode's titles of the structures this decoder reads.
var titles = map[int]string{
	0: "BIOS Information", 1: "System Information", 2: "Base Board Information", 3: "Chassis Information",
	4: "Processor Information", 16: "Physical Memory Array", 17: "Memory Device", 32: "System Boot Information",
}

// structure is one SMBIOS structure: its formatted area (header
// included) and its strings.
type structure struct {
	typ     int
	handle  uint16
	data    []byte
	strings []string
}

// str is string number at offset off of the formatted area ("Not
// Specified" for 0, as dmidecode; "" when the area is shorter).
func (s structure) str(off int) (string, bool) {
	if off >= len(s.data) {
		return "", false
	}
	i := int(s.data[off])
	switch {
	case i == 0:
		return "Not Specified", true
	case i > len(s.strings):
		return "<BAD INDEX>", true
	}
	return s.strings[i-1], true
}

func (s structure) byteAt(off int) (byte, bool) {
	if off >= len(s.data) {
		return 0, false
	}
	return s.data[off], true
}

func (s structure) word(off int) (uint16, bool) {
	if off+2 > len(s.data) {
		return 0, false
	}
	return binary.LittleEndian.Uint16(s.data[off:]), true
}

func (s structure) dword(off int) (uint32, bool) {
	if off+4 > len(s.data) {
		return 0, false
	}
	return binary.LittleEndian.Uint32(s.data[off:]), true
}

// splitStructures cuts an SMBIOS table (the contents of
// /sys/firmware/dmi/tables/DMI) into structures, up to the end-of-table
// structure (type 127) or the table's end.
func splitStructures(table []byte) ([]structure, error) {
	var out []structure
	for off := 0; off < len(table); {
		if len(out) == maxStructures {
			return nil, fmt.Errorf("smbios table has more than %d structures", maxStructures)
		}
		if len(table)-off < 4 {
			return nil, fmt.Errorf("smbios structure at offset %d: %d bytes left, a header needs 4", off, len(table)-off)
		}
		length := int(table[off+1])
		if length < 4 || off+length > len(table) {
			return nil, fmt.Errorf("smbios structure at offset %d: length %d does not fit the table of %d bytes", off, length, len(table))
		}
		s := structure{typ: int(table[off]), handle: binary.LittleEndian.Uint16(table[off+2:]), data: table[off : off+length]}
		// The string set follows the formatted area and ends with two
		// NULs (just two NULs when there is no string).
		rest := table[off+length:]
		end := strings.Index(string(rest), "\x00\x00")
		if end < 0 {
			return nil, fmt.Errorf("smbios structure at offset %d (type %d): its strings do not end", off, s.typ)
		}
		if end > 0 {
			s.strings = strings.Split(string(rest[:end]), "\x00")
		}
		out = append(out, s)
		off += length + end + 2
		if s.typ == 127 {
			break
		}
	}
	if len(out) == 0 {
		return nil, errors.New("smbios table is empty")
	}
	return out, nil
}

// ParseSMBIOS decodes an SMBIOS table into the DMI answer: one section per
// structure (end of table excluded); the types dmidecode users look at
// most (BIOS, system, baseboard, chassis, processor, memory) with their
// properties, the others with their handle line and type only.
func ParseSMBIOS(table []byte) (nodeapi.DMI, error) {
	structs, err := splitStructures(table)
	if err != nil {
		return nodeapi.DMI{}, err
	}
	d := nodeapi.DMI{
		Tooling:  nodeapi.DMITooling{Aggregator: "SMBIOS table /sys/firmware/dmi/tables/DMI", Decoder: Decoder},
		Sections: []nodeapi.DMISection{},
	}
	for _, s := range structs {
		if s.typ == 127 {
			continue
		}
		title, ok := titles[s.typ]
		if !ok {
			title = TypeName(s.typ)
		}
		d.Sections = append(d.Sections, nodeapi.DMISection{
			HandleLine:  fmt.Sprintf("Handle 0x%04X, DMI type %d, %d bytes", s.handle, s.typ, len(s.data)),
			TypeStr:     TypeName(s.typ),
			Type:        s.typ,
			SubSections: []nodeapi.DMISubSection{{Title: title, Properties: properties(s)}},
		})
	}
	return d, nil
}

// field is a property of a structure at an offset, decoded by kind.
type field struct {
	name string
	off  int
	kind byte // 's' string, 'b' byte, 'w' word, 'u' UUID, 'c' chassis type, 'm' memory size, 'r' BIOS revision
}

var fields = map[int][]field{
	0:  {{"Vendor", 4, 's'}, {"Version", 5, 's'}, {"Release Date", 8, 's'}, {"BIOS Revision", 0x14, 'r'}},
	1:  {{"Manufacturer", 4, 's'}, {"Product Name", 5, 's'}, {"Version", 6, 's'}, {"Serial Number", 7, 's'}, {"UUID", 8, 'u'}, {"SKU Number", 0x19, 's'}, {"Family", 0x1A, 's'}},
	2:  {{"Manufacturer", 4, 's'}, {"Product Name", 5, 's'}, {"Version", 6, 's'}, {"Serial Number", 7, 's'}, {"Asset Tag", 8, 's'}},
	3:  {{"Manufacturer", 4, 's'}, {"Type", 5, 'c'}, {"Version", 6, 's'}, {"Serial Number", 7, 's'}, {"Asset Tag", 8, 's'}},
	4:  {{"Socket Designation", 4, 's'}, {"Manufacturer", 7, 's'}, {"Version", 0x10, 's'}, {"Max Speed", 0x14, 'w'}, {"Core Count", 0x23, 'b'}, {"Thread Count", 0x25, 'b'}},
	17: {{"Size", 0x0C, 'm'}, {"Locator", 0x10, 's'}, {"Bank Locator", 0x11, 's'}, {"Speed", 0x15, 'w'}, {"Manufacturer", 0x17, 's'}, {"Serial Number", 0x18, 's'}, {"Part Number", 0x1A, 's'}},
}

var chassisTypes = [...]string{
	"", "Other", "Unknown", "Desktop", "Low Profile Desktop", "Pizza Box", "Mini Tower", "Tower", "Portable", "Laptop",
	"Notebook", "Hand Held", "Docking Station", "All In One", "Sub Notebook", "Space-saving", "Lunch Box",
	"Main Server Chassis", "Expansion Chassis", "Sub Chassis", "Bus Expansion Chassis", "Peripheral Chassis",
	"RAID Chassis", "Rack Mount Chassis", "Sealed-case PC", "Multi-system", "CompactPCI", "AdvancedTCA", "Blade",
	"Blade Enclosing", "Tablet", "Convertible", "Detachable", "IoT Gateway", "Embedded PC", "Mini PC", "Stick PC",
}

// ChassisType names an SMBIOS chassis type byte (the lock bit ignored).
func ChassisType(b byte) string {
	b &= 0x7f
	if int(b) < len(chassisTypes) && chassisTypes[b] != "" {
		return chassisTypes[b]
	}
	return fmt.Sprintf("<OUT OF SPEC> (%d)", b)
}

func properties(s structure) map[string]nodeapi.DMIProperty {
	fs := fields[s.typ]
	if len(fs) == 0 {
		return nil
	}
	props := map[string]nodeapi.DMIProperty{}
	for _, f := range fs {
		var v string
		ok := false
		switch f.kind {
		case 's':
			v, ok = s.str(f.off)
		case 'b':
			var b byte
			if b, ok = s.byteAt(f.off); ok {
				v = strconv.Itoa(int(b))
			}
		case 'w':
			var w uint16
			if w, ok = s.word(f.off); ok {
				v = "Unknown"
				if w != 0 {
					v = fmt.Sprintf("%d MHz", w)
				}
			}
		case 'c':
			var b byte
			if b, ok = s.byteAt(f.off); ok {
				v = ChassisType(b)
			}
		case 'r':
			major, ok1 := s.byteAt(f.off)
			minor, ok2 := s.byteAt(f.off + 1)
			ok = ok1 && ok2 && major != 0xff
			v = fmt.Sprintf("%d.%d", major, minor)
		case 'u':
			ok = f.off+16 <= len(s.data)
			if ok {
				v = uuid(s.data[f.off : f.off+16])
			}
		case 'm':
			v, ok = memorySize(s)
		}
		if ok {
			props[f.name] = nodeapi.DMIProperty{Val: v}
		}
	}
	return props
}

// uuid formats an SMBIOS UUID: the first three fields are little endian
// (SMBIOS 2.6 and later), as dmidecode prints them.
func uuid(b []byte) string {
	allFF, all0 := true, true
	for _, c := range b {
		allFF = allFF && c == 0xff
		all0 = all0 && c == 0
	}
	switch {
	case allFF:
		return "Not Present"
	case all0:
		return "Not Settable"
	}
	return fmt.Sprintf("%02X%02X%02X%02X-%02X%02X-%02X%02X-%02X%02X-%02X%02X%02X%02X%02X%02X",
		b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15])
}

// memorySize decodes a memory device's size (type 17, offset 0x0C, with
// the extended size at 0x1C when the word is 0x7FFF).
func memorySize(s structure) (string, bool) {
	w, ok := s.word(0x0C)
	if !ok {
		return "", false
	}
	switch {
	case w == 0:
		return "No Module Installed", true
	case w == 0xffff:
		return "Unknown", true
	case w == 0x7fff:
		ext, ok := s.dword(0x1C)
		if !ok {
			return "Unknown", true
		}
		return sizeMB(uint64(ext & 0x7fffffff)), true
	case w&0x8000 != 0:
		return fmt.Sprintf("%d kB", w&0x7fff), true
	}
	return sizeMB(uint64(w)), true
}

func sizeMB(mb uint64) string {
	if mb%1024 == 0 {
		return fmt.Sprintf("%d GB", mb/1024)
	}
	return fmt.Sprintf("%d MB", mb)
}
