package store

import (
	"net"
	"net/netip"
	"slices"
	"time"
)

// MaxNamesPerClient caps the distinct machine names and the distinct
// addresses kept for one CMID; later ones are not recorded. Sixteen names
// are plenty to show that an image was cloned.
const MaxNamesPerClient = 16

// The inventory rules every backend follows (storetest checks them):
//
//   - Only records with a CMID touch the inventory; the others (requests
//     that could not be decrypted) are kept in the activation log only.
//   - FirstSeen is the earliest and LastSeen the latest Received; the
//     fields describing the client's current state (workstation, address,
//     product, SKU, KMS ID, license status, VM flag, last HRESULT, clock
//     skew) come from the record with the latest Received.
//   - Activations counts every request recorded for the CMID, refusals
//     included.
//   - RenewalDue is Received plus the renewal interval of a successful
//     request (HResult 0); refusals leave it alone; of several successes
//     the latest due time wins. It stays zero for a client never activated.
//   - ClockSkew is ClientTime − Received.
//   - Names and Addresses collect the distinct non-empty workstation names
//     and peer IPs, at most MaxNamesPerClient each, returned sorted.

// PeerIP returns the address part of an "ip:port" peer, or peer itself
// when it has no port.
func PeerIP(peer string) string {
	if ap, err := netip.ParseAddrPort(peer); err == nil {
		return ap.Addr().String()
	}
	if h, _, err := net.SplitHostPort(peer); err == nil {
		return h
	}
	return peer
}

// RenewalDue is when a client activated by a should come back: Received
// plus the renewal interval for a success, zero for a refusal.
func RenewalDue(a *Activation) time.Time {
	if a.HResult != 0 {
		return time.Time{}
	}
	return a.Received.Add(time.Duration(a.RenewalInterval) * time.Minute)
}

// ClockSkew is how far the client's clock was ahead of the host's (negative
// when behind); zero when the client time is unknown.
func ClockSkew(a *Activation) time.Duration {
	if a.ClientTime.IsZero() {
		return 0
	}
	return a.ClientTime.Sub(a.Received)
}

// Apply updates c with one activation record of its CMID following the
// inventory rules above; a zero c (empty CMID) starts a new row. Backends
// without their own query language (memory) use it directly; the others
// implement the same rules and are checked against it by storetest.
func (c *Client) Apply(a *Activation) {
	if c.CMID == "" {
		c.CMID, c.FirstSeen, c.LastSeen = a.CMID, a.Received, a.Received
		c.setCurrent(a)
	} else {
		if a.Received.Before(c.FirstSeen) {
			c.FirstSeen = a.Received
		}
		if !a.Received.Before(c.LastSeen) {
			c.LastSeen = a.Received
			c.setCurrent(a)
		}
	}
	c.Activations++
	if due := RenewalDue(a); !due.IsZero() && due.After(c.RenewalDue) {
		c.RenewalDue = due
	}
	c.Names = addCapped(c.Names, a.Workstation)
	c.Addresses = addCapped(c.Addresses, PeerIP(a.Peer))
}

func (c *Client) setCurrent(a *Activation) {
	c.Workstation, c.Peer = a.Workstation, PeerIP(a.Peer)
	c.Product, c.SKUID, c.KMSID = a.Product, a.SKUID, a.KMSID
	c.LicenseStatus, c.VM, c.LastHResult = a.LicenseStatus, a.VM, a.HResult
	c.ClockSkew = ClockSkew(a)
}

// addCapped inserts v into the sorted set s unless it is empty, present or
// the set is full.
func addCapped(s []string, v string) []string {
	if v == "" || len(s) >= MaxNamesPerClient {
		return s
	}
	i, found := slices.BinarySearch(s, v)
	if found {
		return s
	}
	return slices.Insert(s, i, v)
}
