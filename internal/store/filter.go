package store

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"kmsd/internal/wire"
)

// Filter semantics shared by every backend: Since is inclusive, Until
// exclusive; string fields compare exactly; Search is an ASCII
// case-insensitive substring match (what SQL LIKE does) on the CMID, the
// latest workstation, product and address, and every name and address
// recorded for the client.

// Match reports whether a passes the filter's conditions (not Limit or
// Offset).
func (f *ActivationFilter) Match(a *Activation) bool {
	switch {
	case !f.Since.IsZero() && a.Received.Before(f.Since),
		!f.Until.IsZero() && !a.Received.Before(f.Until),
		f.CMID != "" && a.CMID != f.CMID,
		f.KMSID != "" && a.KMSID != f.KMSID,
		f.HResult != nil && a.HResult != *f.HResult:
		return false
	}
	return true
}

// Match reports whether c passes the filter's conditions (not Limit,
// Offset or OrderBy).
func (f *ClientFilter) Match(c *Client) bool {
	switch {
	case !f.SeenSince.IsZero() && c.LastSeen.Before(f.SeenSince),
		f.KMSID != "" && c.KMSID != f.KMSID:
		return false
	case f.Search == "":
		return true
	}
	q := wire.ASCIILower(f.Search)
	for _, s := range [...]string{c.CMID, c.Workstation, c.Product, c.Peer} {
		if strings.Contains(wire.ASCIILower(s), q) {
			return true
		}
	}
	for _, s := range slices.Concat(c.Names, c.Addresses) {
		if strings.Contains(wire.ASCIILower(s), q) {
			return true
		}
	}
	return false
}

// Client orders accepted by ClientFilter.OrderBy.
const (
	OrderLastSeen    = "last_seen"   // newest first (the default)
	OrderFirstSeen   = "first_seen"  // newest first
	OrderWorkstation = "workstation" // A to Z (byte order)
	OrderProduct     = "product"     // A to Z (byte order)
	OrderRenewalDue  = "renewal_due" // soonest first, never activated last
)

// CheckOrder returns an error for an OrderBy value no backend knows.
func CheckOrder(order string) error {
	switch order {
	case "", OrderLastSeen, OrderFirstSeen, OrderWorkstation, OrderProduct, OrderRenewalDue:
		return nil
	}
	return fmt.Errorf("store: unknown client order %q", order)
}

// SortClients sorts cs by order; ties are broken by CMID.
func SortClients(cs []Client, order string) error {
	if err := CheckOrder(order); err != nil {
		return err
	}
	slices.SortFunc(cs, func(a, b Client) int {
		var c int
		switch order {
		case OrderFirstSeen:
			c = b.FirstSeen.Compare(a.FirstSeen)
		case OrderWorkstation:
			c = cmp.Compare(a.Workstation, b.Workstation)
		case OrderProduct:
			c = cmp.Compare(a.Product, b.Product)
		case OrderRenewalDue:
			c = compareDue(a, b)
		default:
			c = b.LastSeen.Compare(a.LastSeen)
		}
		return cmp.Or(c, cmp.Compare(a.CMID, b.CMID))
	})
	return nil
}

func compareDue(a, b Client) int {
	switch az, bz := a.RenewalDue.IsZero(), b.RenewalDue.IsZero(); {
	case az && bz:
		return 0
	case az:
		return 1
	case bz:
		return -1
	}
	return a.RenewalDue.Compare(b.RenewalDue)
}

// SortActivations sorts records newest first (by Received, then ID).
func SortActivations(as []Activation) {
	slices.SortFunc(as, func(a, b Activation) int {
		return cmp.Or(b.Received.Compare(a.Received), cmp.Compare(b.ID, a.ID))
	})
}

// Page applies offset and limit (0 = no limit) to a sorted slice.
func Page[T any](s []T, offset, limit int) []T {
	if offset > 0 {
		s = s[min(offset, len(s)):]
	}
	if limit > 0 && len(s) > limit {
		s = s[:limit]
	}
	return s
}
