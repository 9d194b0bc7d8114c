package registry

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"time"
)

// maxRelayLen bounds a twin's relay hint.
const maxRelayLen = 255

// twinByKey reads the twin of a hex public key. The index entry is written
// before the twin record, so a just-created twin may need a moment.
func (s *Service) twinByKey(ctx context.Context, keyHex string) (Twin, error) {
	id, err := s.st.indexGet(ctx, "twinkey."+keyHex)
	if err != nil {
		return Twin{}, err
	}
	return s.twinByID(ctx, id, true)
}

func (s *Service) twinByID(ctx context.Context, id uint64, wait bool) (Twin, error) {
	var t Twin
	for i := 0; ; i++ {
		_, err := getJSON(ctx, s.st.twins, idKey(id), &t)
		if errors.Is(err, ErrNotFound) && wait && i < 50 {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if errors.Is(err, ErrNotFound) {
			return Twin{}, fmt.Errorf("%w: twin %d", ErrNotFound, id)
		}
		return t, err
	}
}

func (s *Service) twinCreate(ctx context.Context, w *signedRequest, req twinCreateReq) (any, error) {
	signer := w.Key
	if len(req.Relay) > maxRelayLen {
		return nil, fmt.Errorf("%w: relay longer than %d bytes", ErrInvalid, maxRelayLen)
	}
	// The key index is claimed first, so two concurrent creates for one key
	// agree on the id; the record is then written, and a create that finds
	// the index without its record (a crash in between) writes it.
	idx := "twinkey." + signer
	id, err := s.st.indexGet(ctx, idx)
	if errors.Is(err, ErrNotFound) {
		if id, err = s.st.nextID(ctx, "twin"); err != nil {
			return nil, fmt.Errorf("creating twin: %w", err)
		}
		if err = s.st.indexCreate(ctx, idx, id); errors.Is(err, ErrExists) {
			id, err = s.st.indexGet(ctx, idx) // a concurrent create won
		}
	}
	if err != nil {
		return nil, fmt.Errorf("creating twin: %w", err)
	}
	// Known to this process's authenticator before the answer leaves, so a
	// client that reconnects right away gets its twin's rights (the watch
	// of the index would tell it a moment later).
	s.keys.set(signer, uint32(id))
	if t, err := s.twinByID(ctx, id, false); !errors.Is(err, ErrNotFound) {
		return t, err
	}
	t := Twin{ID: uint32(id), PublicKey: signer, Relay: req.Relay}
	if err := putJSON(ctx, s.st.twins, idKey(id), 0, t); errors.Is(err, ErrExists) {
		return s.twinByID(ctx, id, false)
	} else if err != nil {
		return nil, fmt.Errorf("creating twin: %w", err)
	}
	s.log.Info("twin_created", "twin_id", t.ID)
	return t, nil
}

// validName reports whether s is 1..max characters of [A-Za-z0-9_-] (or,
// with lower, [a-z0-9-]).
func validName(s string, max int, lower bool) bool {
	if len(s) == 0 || len(s) > max {
		return false
	}
	for _, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-':
		case !lower && (c >= 'A' && c <= 'Z' || c == '_'):
		default:
			return false
		}
	}
	return true
}

func (s *Service) farmCreate(ctx context.Context, w *signedRequest, req farmCreateReq) (any, error) {
	signer := w.Key
	if !validName(req.Name, 64, false) {
		return nil, fmt.Errorf("%w: farm name %q: want 1 to 64 of A-Z a-z 0-9 _ -", ErrInvalid, req.Name)
	}
	twin, err := s.signerTwin(ctx, signer)
	if err != nil {
		return nil, err
	}
	id, err := s.st.nextID(ctx, "farm")
	if err != nil {
		return nil, fmt.Errorf("creating farm: %w", err)
	}
	if err := s.st.indexCreate(ctx, "farmname."+req.Name, id); errors.Is(err, ErrExists) {
		return nil, fmt.Errorf("%w: farm name %q", ErrNameTaken, req.Name)
	} else if err != nil {
		return nil, fmt.Errorf("creating farm: %w", err)
	}
	f := Farm{ID: uint32(id), Name: req.Name, TwinID: twin.ID, PublicIPs: []PublicIP{}}
	if err := putJSON(ctx, s.st.farms, idKey(id), 0, f); err != nil {
		return nil, fmt.Errorf("creating farm: %w", err)
	}
	s.log.Info("farm_created", "farm_id", f.ID, "twin_id", twin.ID)
	return f, nil
}

// maxFarmIPs bounds the public IPs of a farm.
const maxFarmIPs = 4096

// channelRe is a release channel's name (release.ValidName's shape).
var channelRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$`)

// farmChannel sets the release channel a farm's nodes follow: the farm's
// twin only.
func (s *Service) farmChannel(ctx context.Context, w *signedRequest, req farmChannelReq) (any, error) {
	if req.Channel != "" && (!channelRe.MatchString(req.Channel) || strings.Contains(req.Channel, "..")) {
		return nil, fmt.Errorf("%w: channel %q", ErrInvalid, req.Channel)
	}
	twin, err := s.signerTwin(ctx, w.Key)
	if err != nil {
		return nil, err
	}
	f, err := update(ctx, s.st.farms, idKey(uint64(req.FarmID)), func(f *Farm) error {
		if f.TwinID != twin.ID {
			return fmt.Errorf("%w: farm %d belongs to twin %d, not %d", ErrUnauthorized, f.ID, f.TwinID, twin.ID)
		}
		f.Channel = req.Channel
		return nil
	})
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("%w: farm %d", ErrNotFound, req.FarmID)
	}
	if err != nil {
		return nil, fmt.Errorf("setting the channel of farm %d: %w", req.FarmID, err)
	}
	return f, nil
}

func (s *Service) farmAddIP(ctx context.Context, w *signedRequest, req farmAddIPReq) (any, error) {
	signer := w.Key
	pfx, err := netip.ParsePrefix(req.IP)
	if err != nil {
		return nil, fmt.Errorf("%w: ip %q is not an address with prefix (185.1.2.3/24): %v", ErrInvalid, req.IP, err)
	}
	gw, err := netip.ParseAddr(req.Gateway)
	if err != nil {
		return nil, fmt.Errorf("%w: gateway %q: %v", ErrInvalid, req.Gateway, err)
	}
	if !pfx.Masked().Contains(gw) || gw == pfx.Addr() {
		return nil, fmt.Errorf("%w: gateway %s is not another address of %s", ErrInvalid, gw, pfx)
	}
	twin, err := s.signerTwin(ctx, signer)
	if err != nil {
		return nil, err
	}
	f, err := update(ctx, s.st.farms, idKey(uint64(req.FarmID)), func(f *Farm) error {
		if f.TwinID != twin.ID {
			return fmt.Errorf("%w: farm %d belongs to twin %d, not %d", ErrUnauthorized, f.ID, f.TwinID, twin.ID)
		}
		if len(f.PublicIPs) >= maxFarmIPs {
			return fmt.Errorf("%w: farm %d has the maximum of %d public ips", ErrInvalid, f.ID, maxFarmIPs)
		}
		for _, ip := range f.PublicIPs {
			if p, err := netip.ParsePrefix(ip.IP); err == nil && p.Addr() == pfx.Addr() {
				return fmt.Errorf("%w: ip %s in farm %d", ErrExists, pfx.Addr(), f.ID)
			}
		}
		f.PublicIPs = append(f.PublicIPs, PublicIP{IP: pfx.String(), Gateway: gw.String()})
		return nil
	})
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("%w: farm %d", ErrNotFound, req.FarmID)
	}
	if err != nil {
		return nil, fmt.Errorf("adding ip to farm %d: %w", req.FarmID, err)
	}
	return f, nil
}

// farmRemoveIP removes a public IP from a farm: the farm's twin only, and
// only while no contract holds the address.
func (s *Service) farmRemoveIP(ctx context.Context, w *signedRequest, req farmRemoveIPReq) (any, error) {
	addr, err := netip.ParseAddr(req.IP)
	if err != nil {
		pfx, perr := netip.ParsePrefix(req.IP)
		if perr != nil {
			return nil, fmt.Errorf("%w: ip %q is not an address (185.1.2.3 or 185.1.2.3/24)", ErrInvalid, req.IP)
		}
		addr = pfx.Addr()
	}
	twin, err := s.signerTwin(ctx, w.Key)
	if err != nil {
		return nil, err
	}
	noIP := false // the farm is there, the address is not
	f, err := update(ctx, s.st.farms, idKey(uint64(req.FarmID)), func(f *Farm) error {
		if f.TwinID != twin.ID {
			return fmt.Errorf("%w: farm %d belongs to twin %d, not %d", ErrUnauthorized, f.ID, f.TwinID, twin.ID)
		}
		for i, ip := range f.PublicIPs {
			if p, err := netip.ParsePrefix(ip.IP); err != nil || p.Addr() != addr {
				continue
			}
			if ip.ContractID != 0 {
				return fmt.Errorf("%w: ip %s of farm %d is used by contract %d", ErrInvalid, addr, f.ID, ip.ContractID)
			}
			f.PublicIPs = append(f.PublicIPs[:i:i], f.PublicIPs[i+1:]...)
			return nil
		}
		noIP = true
		return fmt.Errorf("%w: ip %s in farm %d", ErrNotFound, addr, f.ID)
	})
	if errors.Is(err, ErrNotFound) && !noIP {
		return nil, fmt.Errorf("%w: farm %d", ErrNotFound, req.FarmID)
	}
	if err != nil {
		return nil, fmt.Errorf("removing ip from farm %d: %w", req.FarmID, err)
	}
	return f, nil
}
