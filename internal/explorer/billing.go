package explorer

import (
	"context"
	"net/http"

	"github.com/zos-go/zos/internal/registry"
)

// BillingSource is what the explorer reads of billing, asked live (bills
// are not in the snapshot): registry.Client has it. A Source without it
// serves no bills and no pricing.
type BillingSource interface {
	Bills(ctx context.Context, contract uint64) ([]registry.Bill, error)
	GridInfo(ctx context.Context) (registry.GridInfo, error)
}

var _ BillingSource = (*registry.Client)(nil)

// ContractGracePeriod is gridproxy's state of a contract in its grace
// period.
const ContractGracePeriod = "GracePeriod"

// ContractBill is gridproxy's types.ContractBilling plus ours: the billed
// window, the reports it covers and what was due with it.
type ContractBill struct {
	ContractID       uint64 `json:"contract_id"`
	AmountBilled     int64  `json:"amountBilled"`
	DiscountReceived string `json:"discountReceived"`
	Timestamp        int64  `json:"timestamp"`

	Seq     uint64 `json:"seq"`
	Start   int64  `json:"start"`
	End     int64  `json:"end"`
	Reports int    `json:"reports"`
	Due     int64  `json:"due"`
}

// serveBills answers /contracts/{id}/bills from the registry, a page of
// them oldest first.
func (e *Explorer) serveBills(w http.ResponseWriter, r *http.Request, id uint64, l limit) {
	bs, ok := e.src.(BillingSource)
	if !ok {
		setCount(w, l, 0)
		writeJSON(w, http.StatusOK, []ContractBill{})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), e.cfg.SourceTimeout)
	defer cancel()
	bills, err := bs.Bills(ctx, id)
	if err != nil {
		writeError(w, err)
		return
	}
	start, end := l.window(len(bills))
	views := make([]ContractBill, 0, end-start)
	for _, b := range bills[start:end] {
		views = append(views, ContractBill{ContractID: b.ContractID, AmountBilled: b.Amount, DiscountReceived: "None",
			Timestamp: unixSeconds(b.Time), Seq: b.Seq, Start: b.Start, End: b.End, Reports: b.Reports, Due: b.Due})
	}
	setCount(w, l, len(bills))
	writeJSON(w, http.StatusOK, views)
}

// pricing answers /pricing: the grid's pricing policy, grace period and
// billing key (registry.GridInfo).
func (e *Explorer) pricing(w http.ResponseWriter, r *http.Request) {
	bs, ok := e.src.(BillingSource)
	if !ok {
		writeError(w, errNotFound)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), e.cfg.SourceTimeout)
	defer cancel()
	info, err := bs.GridInfo(ctx)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, info)
}
