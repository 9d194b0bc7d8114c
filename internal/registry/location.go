package registry

import (
	"context"
	"fmt"
	"math"
	"strings"
	"unicode"
)

// OpNodeLocation is the farmer's write that sets (or, with a nil location,
// clears) where a node of the farm stands. A location set by the farmer
// wins over what the node reports when it registers; clearing it lets the
// node's own location (zos node --location, location= on the boot command
// line) count again from its next registration.
const OpNodeLocation = "node.location"

// maxLocationText bounds a country or city name.
const maxLocationText = 64

type nodeLocationReq struct {
	NodeID   uint32    `json:"node_id"`
	Location *Location `json:"location"`
}

// ParseLocation reads a location as COUNTRY[,CITY] ("Belgium",
// "Belgium,Ghent"); "" is no location.
func ParseLocation(s string) (Location, error) {
	if strings.TrimSpace(s) == "" {
		return Location{}, nil
	}
	country, city, _ := strings.Cut(s, ",")
	l := Location{Country: strings.TrimSpace(country), City: strings.TrimSpace(city)}
	if l.Country == "" {
		return Location{}, fmt.Errorf("%w: location %q has no country (COUNTRY[,CITY])", ErrInvalid, s)
	}
	if err := l.Check(); err != nil {
		return Location{}, err
	}
	return l, nil
}

// Check refuses a location the explorer could not show: names longer than
// 64 bytes or with control characters, a city without a country,
// coordinates out of range.
func (l Location) Check() error {
	for _, v := range [...]struct{ what, s string }{{"country", l.Country}, {"city", l.City}} {
		if len(v.s) > maxLocationText {
			return fmt.Errorf("%w: %s is %d bytes, limit %d", ErrInvalid, v.what, len(v.s), maxLocationText)
		}
		if strings.IndexFunc(v.s, func(r rune) bool { return unicode.IsControl(r) || r == unicode.ReplacementChar }) >= 0 {
			return fmt.Errorf("%w: %s %q has control or invalid characters", ErrInvalid, v.what, v.s)
		}
	}
	switch {
	case l.Country == "" && l.City != "":
		return fmt.Errorf("%w: city %q without a country", ErrInvalid, l.City)
	case math.IsNaN(l.Latitude) || l.Latitude < -90 || l.Latitude > 90:
		return fmt.Errorf("%w: latitude %v out of [-90, 90]", ErrInvalid, l.Latitude)
	case math.IsNaN(l.Longitude) || l.Longitude < -180 || l.Longitude > 180:
		return fmt.Errorf("%w: longitude %v out of [-180, 180]", ErrInvalid, l.Longitude)
	}
	return nil
}

// nodeLocation sets or clears the farmer's location of a node of the
// signer's farm.
func (s *Service) nodeLocation(ctx context.Context, w *signedRequest, req nodeLocationReq) (any, error) {
	if req.Location != nil {
		if err := req.Location.Check(); err != nil {
			return nil, err
		}
		if req.Location.Country == "" {
			return nil, fmt.Errorf("%w: a location needs a country (clear it with no location)", ErrInvalid)
		}
	}
	owned, err := s.farmerNode(ctx, w.Key, req.NodeID)
	if err != nil {
		return nil, err
	}
	_, err = update(ctx, s.st.nodes, idKey(uint64(owned.ID)), func(n *Node) error {
		if n.FarmID != owned.FarmID {
			return fmt.Errorf("%w: node %d moved to farm %d", ErrConflict, n.ID, n.FarmID)
		}
		if req.Location == nil {
			n.Location, n.LocationByFarmer = Location{}, false
			return nil
		}
		n.Location, n.LocationByFarmer = *req.Location, true
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("setting location of node %d: %w", owned.ID, err)
	}
	return struct{}{}, nil
}

// Firmware is a node's BIOS and board as its DMI names them (the
// explorer's dmi object).
type Firmware struct {
	BIOSVendor        string `json:"bios_vendor,omitempty"`
	BIOSVersion       string `json:"bios_version,omitempty"`
	BoardManufacturer string `json:"board_manufacturer,omitempty"`
	BoardProduct      string `json:"board_product,omitempty"`
}

// check refuses values longer than 128 bytes or with control characters.
func (f *Firmware) check() error {
	if f == nil {
		return nil
	}
	for _, v := range []string{f.BIOSVendor, f.BIOSVersion, f.BoardManufacturer, f.BoardProduct} {
		if len(v) > 128 || strings.IndexFunc(v, unicode.IsControl) >= 0 {
			return fmt.Errorf("%w: firmware value %q is longer than 128 bytes or has control characters", ErrInvalid, v)
		}
	}
	return nil
}

// SetLocation sets (nil: clears) a node's location, as the farmer of its
// farm.
func (c *Client) SetLocation(ctx context.Context, nodeID uint32, l *Location) error {
	return c.write(ctx, OpNodeLocation, nodeLocationReq{NodeID: nodeID, Location: l}, nil)
}
