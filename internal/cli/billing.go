package cli

import (
	"context"
	"flag"
	"fmt"
	"strconv"
	"time"

	"github.com/zos-go/zos/internal/registry"
)

// Billing: the grid's pricing, balances, deposits, transfers and bills.

func pricingCommand() *command {
	return &command{name: "pricing", usage: "[--grid URL] [--json]", summary: "the grid's pricing policy and billing key", run: pricingShow}
}

func balanceCommand() *command {
	return &command{name: "balance", usage: "[TWIN] [--ledger] [--grid URL] [--key FILE] [--json]",
		summary: "a twin's balance (default: yours; 0: the grid's), --ledger: every change", run: balanceShow}
}

func depositCommand() *command {
	return &command{name: "deposit", usage: "TWIN AMOUNT [--grid URL] [--key FILE] [--json]",
		summary: "credit a twin's balance (the grid's treasury twins only)", run: deposit}
}

func transferCommand() *command {
	return &command{name: "transfer", usage: "TWIN AMOUNT [--grid URL] [--key FILE] [--json]",
		summary: "move an amount from your balance to another twin's", run: transfer}
}

func contractBillsCommand() *command {
	return &command{name: "bills", usage: "ID [--grid URL] [--json]", summary: "the bills of a contract", run: contractBills}
}

func farmPricingCommand() *command {
	return &command{name: "pricing", usage: "FARM (--cu N --su N --ipv4 N --nu N | --clear) [--grid URL] [--key FILE] [--json]",
		summary: "set your farm's prices within the grid's bounds (zosctl pricing), or go back to the grid's", run: farmPricing}
}

func farmPricing(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("farm pricing", flag.ContinueOnError)
	o := addGridFlags(fs, env)
	var p registry.Pricing
	fs.Int64Var(&p.CU, "cu", -1, "price of a compute unit per hour")
	fs.Int64Var(&p.SU, "su", -1, "price of a storage unit per hour")
	fs.Int64Var(&p.IPv4, "ipv4", -1, "price of a public IPv4 per hour")
	fs.Int64Var(&p.NU, "nu", -1, "price of a GB of traffic")
	reset := fs.Bool("clear", false, "use the grid's prices again")
	id, err := oneIDArg(fs, env, args, "farm id", 32)
	if err != nil {
		return err
	}
	set := p.CU >= 0 && p.SU >= 0 && p.IPv4 >= 0 && p.NU >= 0
	if *reset == set {
		return usageError("want --cu, --su, --ipv4 and --nu, or --clear")
	}
	var pp *registry.Pricing
	if set {
		pp = &p
	}
	return withGrid(ctx, o, true, func(ctx context.Context, s *session) error {
		f, err := s.reg.SetFarmPricing(ctx, uint32(id), pp)
		if err != nil {
			return fmt.Errorf("setting the pricing of farm %d: %w", id, explain(err))
		}
		if *o.json {
			return printJSON(env, f)
		}
		if f.Pricing == nil {
			fmt.Fprintf(env.Stdout, "farm %d uses the grid's prices\n", f.ID)
			return nil
		}
		fmt.Fprintf(env.Stdout, "farm %d: cu %d su %d ipv4 %d nu %d\n", f.ID, f.Pricing.CU, f.Pricing.SU, f.Pricing.IPv4, f.Pricing.NU)
		return nil
	})
}

func pricingShow(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("pricing", flag.ContinueOnError)
	o := addGridFlags(fs, env)
	if pos, err := parseFlags(fs, env, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageError("unexpected arguments %q", pos)
	}
	return withGrid(ctx, o, false, func(ctx context.Context, s *session) error {
		info, err := s.reg.GridInfo(ctx)
		if err != nil {
			return fmt.Errorf("reading the grid's pricing: %w", explain(err))
		}
		if *o.json {
			return printJSON(env, info)
		}
		p := info.Pricing
		return table(env.Stdout, "WHAT\tPRICE\tPER", [][]string{
			{"compute unit (CU)", strconv.FormatInt(p.CU, 10), "hour"},
			{"storage unit (SU)", strconv.FormatInt(p.SU, 10), "hour"},
			{"public IPv4", strconv.FormatInt(p.IPv4, 10), "hour"},
			{"network (NU)", strconv.FormatInt(p.NU, 10), "GB"},
			{"name contract", strconv.FormatInt(p.Name, 10), "hour"},
			{"grid's share", strconv.FormatInt(p.GridShare, 10) + "%", "payment"},
			{"grace period", (time.Duration(info.GracePeriod) * time.Second).String(), ""},
			{"billing key", info.BillingKey, ""},
			{"farm bounds cu/su/ipv4/nu", fmt.Sprintf("%d..%d %d..%d %d..%d %d..%d", info.FarmBounds.Min.CU, info.FarmBounds.Max.CU,
				info.FarmBounds.Min.SU, info.FarmBounds.Max.SU, info.FarmBounds.Min.IPv4, info.FarmBounds.Max.IPv4,
				info.FarmBounds.Min.NU, info.FarmBounds.Max.NU), ""},
		})
	})
}

// parseAmount reads an amount: a whole number 1..registry.MaxAmount.
func parseAmount(s string) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n > registry.MaxAmount {
		return 0, usageError("amount %q: want a whole number from 1 to %d", s, int64(registry.MaxAmount))
	}
	return n, nil
}

func balanceShow(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("balance", flag.ContinueOnError)
	o := addGridFlags(fs, env)
	withLedger := fs.Bool("ledger", false, "list every change of the balance")
	pos, err := parseFlags(fs, env, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return usageError("unexpected arguments %q", pos[1:])
	}
	var twin uint64
	if len(pos) == 1 {
		if pos[0] == "0" {
			twin = uint64(registry.GridAccount)
		} else if twin, err = parseID("twin id", pos[0], 32); err != nil {
			return err
		}
	}
	return withGrid(ctx, o, len(pos) == 0, func(ctx context.Context, s *session) error {
		if len(pos) == 0 {
			t, err := s.reg.TwinByKey(ctx, s.key.Public())
			if err != nil {
				return fmt.Errorf("reading your twin: %w", explain(err))
			}
			twin = uint64(t.ID)
		}
		a, err := s.reg.Balance(ctx, uint32(twin))
		if err != nil {
			return fmt.Errorf("reading the balance of twin %d: %w", twin, explain(err))
		}
		var es []registry.LedgerEntry
		if *withLedger {
			if es, err = s.reg.Ledger(ctx, uint32(twin)); err != nil {
				return fmt.Errorf("reading the ledger of twin %d: %w", twin, explain(err))
			}
		}
		if *o.json {
			if es == nil {
				es = []registry.LedgerEntry{}
			}
			return printJSON(env, struct {
				registry.Account
				Ledger []registry.LedgerEntry `json:"ledger,omitempty"`
			}{a, es})
		}
		fmt.Fprintf(env.Stdout, "twin:    %d\nbalance: %d\nentries: %d\n", a.TwinID, a.Balance, a.Seq)
		if !*withLedger {
			return nil
		}
		var rows [][]string
		for _, e := range es {
			rows = append(rows, []string{strconv.FormatUint(e.Seq, 10), e.Time.Format(time.RFC3339), e.Kind,
				strconv.FormatInt(e.Amount, 10), strconv.FormatInt(e.Balance, 10), e.Ref})
		}
		return table(env.Stdout, "SEQ\tTIME\tKIND\tAMOUNT\tBALANCE\tREF", rows)
	})
}

// twinAndAmount reads the TWIN AMOUNT arguments of deposit and transfer.
func twinAndAmount(fs *flag.FlagSet, env *Env, args []string) (uint32, int64, error) {
	pos, err := parseFlags(fs, env, args)
	if err != nil {
		return 0, 0, err
	}
	if len(pos) != 2 {
		return 0, 0, usageError("want TWIN AMOUNT")
	}
	twin, err := parseID("twin id", pos[0], 32)
	if err != nil {
		return 0, 0, err
	}
	amount, err := parseAmount(pos[1])
	return uint32(twin), amount, err
}

func printEntry(env *Env, o gridFlags, e registry.LedgerEntry, what string) error {
	if *o.json {
		return printJSON(env, e)
	}
	fmt.Fprintf(env.Stdout, "%s: twin %d balance %d (entry %d)\n", what, e.TwinID, e.Balance, e.Seq)
	return nil
}

func deposit(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("deposit", flag.ContinueOnError)
	o := addGridFlags(fs, env)
	twin, amount, err := twinAndAmount(fs, env, args)
	if err != nil {
		return err
	}
	return withGrid(ctx, o, true, func(ctx context.Context, s *session) error {
		e, err := s.reg.Deposit(ctx, twin, amount)
		if err != nil {
			return fmt.Errorf("depositing %d to twin %d: %w", amount, twin, explain(err))
		}
		return printEntry(env, o, e, "deposited")
	})
}

func transfer(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("transfer", flag.ContinueOnError)
	o := addGridFlags(fs, env)
	twin, amount, err := twinAndAmount(fs, env, args)
	if err != nil {
		return err
	}
	return withGrid(ctx, o, true, func(ctx context.Context, s *session) error {
		e, err := s.reg.Transfer(ctx, twin, amount)
		if err != nil {
			return fmt.Errorf("transferring %d to twin %d: %w", amount, twin, explain(err))
		}
		return printEntry(env, o, e, "transferred")
	})
}

func contractBills(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("contract bills", flag.ContinueOnError)
	o := addGridFlags(fs, env)
	id, err := oneIDArg(fs, env, args, "contract id", 64)
	if err != nil {
		return err
	}
	return withGrid(ctx, o, false, func(ctx context.Context, s *session) error {
		bills, err := s.reg.Bills(ctx, id)
		if err != nil {
			return fmt.Errorf("reading the bills of contract %d: %w", id, explain(err))
		}
		if *o.json {
			return printJSON(env, bills)
		}
		var rows [][]string
		for _, b := range bills {
			rows = append(rows, []string{strconv.FormatUint(b.Seq, 10), b.Time.Format(time.RFC3339),
				time.Unix(b.Start, 0).UTC().Format(time.RFC3339), time.Unix(b.End, 0).UTC().Format(time.RFC3339),
				strconv.Itoa(b.Reports), strconv.FormatInt(b.Amount, 10), strconv.FormatInt(b.Due, 10)})
		}
		return table(env.Stdout, "SEQ\tBILLED\tFROM\tTO\tREPORTS\tAMOUNT\tDUE", rows)
	})
}
