package registry

import (
	"context"
	"errors"
	"fmt"
)

// A farm may price its capacity, IPs and traffic within bounds the grid
// sets (tfchain lets a farm have its own pricing policy among those the
// council made; here a farmer picks the numbers, within the bounds). Name
// contracts and the grid's share stay the grid's.

// OpFarmPricing sets (nil: clears) a farm's pricing; by the farm's twin.
const OpFarmPricing = "farm.pricing"

// PricingBounds are the lowest and highest prices a farm may set.
type PricingBounds struct {
	Min Pricing `json:"min"`
	Max Pricing `json:"max"`
}

// defaultBounds are half and twice the grid's prices.
func defaultBounds(p Pricing) PricingBounds {
	return PricingBounds{
		Min: Pricing{CU: p.CU / 2, SU: p.SU / 2, IPv4: p.IPv4 / 2, NU: p.NU / 2},
		Max: Pricing{CU: min(2*p.CU, MaxAmount), SU: min(2*p.SU, MaxAmount), IPv4: min(2*p.IPv4, MaxAmount), NU: min(2*p.NU, MaxAmount)},
	}
}

// check refuses a farm's price outside the bounds.
func (b PricingBounds) check(p Pricing) error {
	for _, v := range [...]struct {
		name          string
		n, least, top int64
	}{{"cu", p.CU, b.Min.CU, b.Max.CU}, {"su", p.SU, b.Min.SU, b.Max.SU}, {"ipv4", p.IPv4, b.Min.IPv4, b.Max.IPv4},
		{"nu", p.NU, b.Min.NU, b.Max.NU}} {
		if v.n < v.least || v.n > v.top {
			return fmt.Errorf("%w: farm price %s %d outside the grid's bounds %d..%d", ErrInvalid, v.name, v.n, v.least, v.top)
		}
	}
	return nil
}

// farmPricing is the pricing a farm's contracts pay: the grid's, with
// the farm's capacity, IP and traffic prices when it set them.
func farmPricing(grid Pricing, f *Farm) Pricing {
	if f == nil || f.Pricing == nil {
		return grid
	}
	p := grid
	p.CU, p.SU, p.IPv4, p.NU = f.Pricing.CU, f.Pricing.SU, f.Pricing.IPv4, f.Pricing.NU
	return p
}

type farmPricingReq struct {
	FarmID  uint32   `json:"farm_id"`
	Pricing *Pricing `json:"pricing"`
}

func (s *Service) farmPricingSet(ctx context.Context, w *signedRequest, req farmPricingReq) (any, error) {
	if req.Pricing != nil {
		if err := req.Pricing.Validate(); err != nil {
			return nil, err
		}
		if err := s.cfg.Billing.Bounds.check(*req.Pricing); err != nil {
			return nil, err
		}
		// Only what a farm prices is kept.
		req.Pricing = &Pricing{CU: req.Pricing.CU, SU: req.Pricing.SU, IPv4: req.Pricing.IPv4, NU: req.Pricing.NU}
	}
	twin, err := s.signerTwin(ctx, w.Key)
	if err != nil {
		return nil, err
	}
	f, err := update(ctx, s.st.farms, idKey(uint64(req.FarmID)), func(f *Farm) error {
		if f.TwinID != twin.ID {
			return fmt.Errorf("%w: farm %d belongs to twin %d, not %d", ErrUnauthorized, f.ID, f.TwinID, twin.ID)
		}
		f.Pricing = req.Pricing
		return nil
	})
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("%w: farm %d", ErrNotFound, req.FarmID)
	}
	if err != nil {
		return nil, fmt.Errorf("setting the pricing of farm %d: %w", req.FarmID, err)
	}
	return f, nil
}

// SetFarmPricing sets the prices of a farm of the client's twin within the
// grid's bounds (GridInfo); nil goes back to the grid's.
func (c *Client) SetFarmPricing(ctx context.Context, farm uint32, p *Pricing) (Farm, error) {
	return writeOne[Farm](ctx, c, OpFarmPricing, farmPricingReq{FarmID: farm, Pricing: p})
}
