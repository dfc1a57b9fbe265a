package kms

import (
	"fmt"
	"io"
	"time"

	"kmsd/internal/products"
	"kmsd/internal/wire"
)

// Env supplies randomness and time; tests pin both.
type Env struct {
	Rand io.Reader
	Now  func() time.Time
}

// HRESULTs a host sends (kms-server.md §10).
const (
	HResultKMSIDMismatch    = 0xC004F042 // refused by whitelisting
	HResultInvalidTimestamp = 0xC004F06C // client clock more than 4 h off
	HResultClientListFull   = 0xC004D104
)

// MaxNPolicy is the largest N policy a host accepts (kms-server.md §4.1).
const MaxNPolicy = 1000

// MaxClockSkew is the tolerance of the client time check (kms-server.md §5).
const MaxClockSkew = 4 * time.Hour

// Whitelisting bits (kms-server.md §2).
const (
	WhitelistKnownOnly = 1 // refuse unknown KMS IDs and a foreign AppID
	WhitelistNoRetail  = 2 // refuse retail and preview KMS IDs
)

// Policy is the host's answer policy.
type Policy struct {
	Whitelist          int  // vlmcsd -K, 0..3
	CheckClientTime    bool // vlmcsd -c
	ActivationInterval uint32
	RenewalInterval    uint32
	// ClientCount, when not 0, answers counts as py-kms -c does
	// (kms-compat.md §2.3): N+1 when it is below N, itself up to 2N, 2N
	// above.
	ClientCount uint32
}

// Default intervals in minutes: what the current vlmcsd sends
// (kms-server.md §4.4).
const (
	DefaultActivationInterval = 1440
	DefaultRenewalInterval    = 20160
)

// Slot is the identity the host shows for one CSVLK: its ePID and HWID.
type Slot struct {
	EPID   string
	HWID   [8]byte
	epid16 []byte
}

// NewSlot returns a slot with its ePID pre-encoded for the wire.
func NewSlot(epid string, hwid [8]byte) Slot {
	return Slot{EPID: epid, HWID: hwid, epid16: wire.AppendUTF16Z(nil, epid)}
}

// DefaultHWID is vlmcsd's fixed HWID, in wire order (kms-server.md §7).
var DefaultHWID = [8]byte{0x3A, 0x1C, 0x04, 0x96, 0x00, 0xB6, 0x00, 0x76}

// Host decides and builds answers. Its fields are set once before use;
// Handle is safe for concurrent use.
type Host struct {
	Table  *products.Table
	Policy Policy
	Slots  []Slot // one per CSVLK of Table, in order
	// Clients counts distinct CMIDs (vlmcsd -M1); nil answers 2·N.
	Clients *ClientList
	// FreshEPID, when set, makes a new ePID for every request (vlmcsd -r2).
	FreshEPID func(csvlk int) string
	Env       Env
}

// Decision records what the host did with one request.
type Decision struct {
	Request   Request
	KMSItem   int // index in the table, -1 when unknown
	App       int
	CSVLK     int
	EPID      string
	HWID      [8]byte
	Count     uint32
	HResult   uint32 // 0 when activated
	Reason    string // why refused
	Decrypted bool   // Request holds a decoded base request
	// Table is the product table the decision was made with; KMSItem,
	// App and CSVLK index it (it changes when SIGHUP loads another file).
	Table *products.Table
	rnd   [32]byte
}

// Handle decodes payload, applies the policy and appends the response
// message to dst. A refusal returns a *RefusalError (and d.HResult); any
// other error means the payload could not be processed at all.
func (h *Host) Handle(dst, payload []byte, d *Decision) ([]byte, error) {
	*d = Decision{KMSItem: -1, Table: h.Table}
	if err := d.Request.Decode(payload); err != nil {
		return dst, h.refuse(d, err)
	}
	d.Decrypted = true
	req := &d.Request
	if err := h.check(d); err != nil {
		return dst, h.refuse(d, err)
	}
	slot := &h.Slots[d.CSVLK]
	a := Answer{EPID: slot.epid16, HWID: slot.HWID, Count: d.Count,
		ActivationInterval: h.Policy.ActivationInterval, RenewalInterval: h.Policy.RenewalInterval}
	d.EPID, d.HWID = slot.EPID, slot.HWID
	if h.FreshEPID != nil {
		d.EPID = h.FreshEPID(d.CSVLK)
		a.EPID = wire.AppendUTF16Z(nil, d.EPID)
	}
	if req.Outer.Major > 4 {
		if _, err := io.ReadFull(h.Env.Rand, d.rnd[:]); err != nil {
			return dst, fmt.Errorf("kms: random source: %w", err)
		}
	}
	return EncodeResponse(dst, req, &a, &d.rnd), nil
}

func (h *Host) refuse(d *Decision, err error) error {
	if re, ok := err.(*RefusalError); ok {
		d.HResult, d.Reason = re.HResult, re.Reason
	}
	return err
}

// check runs the policy pipeline of kms-server.md §1 step 4 and computes
// the count.
func (h *Host) check(d *Decision) error {
	b := &d.Request.Base
	d.KMSItem = h.Table.KMSByID(b.KMSID)
	known := d.KMSItem >= 0
	if known {
		it := &h.Table.KMSItems[d.KMSItem]
		d.App, d.CSVLK = it.App, it.CSVLK
	}
	if b.NPolicy > MaxNPolicy {
		return &RefusalError{HResult: HResultInvalidData, Reason: fmt.Sprintf("N policy %d above %d", b.NPolicy, MaxNPolicy)}
	}
	if h.Policy.CheckClientTime {
		skew := h.Env.Now().Unix() - wire.UnixSeconds(b.ClientTime)
		if skew > int64(MaxClockSkew/time.Second) || -skew > int64(MaxClockSkew/time.Second) {
			return &RefusalError{HResult: HResultInvalidTimestamp, Reason: fmt.Sprintf("client clock off by %ds", -skew)}
		}
	}
	wl := h.Policy.Whitelist
	if wl&WhitelistNoRetail != 0 && known {
		if it := &h.Table.KMSItems[d.KMSItem]; it.Retail || it.Preview {
			return &RefusalError{HResult: HResultKMSIDMismatch, Reason: "retail or preview KMS ID"}
		}
	}
	if wl&WhitelistKnownOnly != 0 {
		if !known {
			return &RefusalError{HResult: HResultKMSIDMismatch, Reason: "unknown KMS ID"}
		}
		if h.Table.Apps[d.App].ID != b.AppID {
			return &RefusalError{HResult: HResultKMSIDMismatch, Reason: "application ID does not match the KMS ID"}
		}
	}
	required := 2 * b.NPolicy
	if b.NPolicy == 0 {
		required = 1
	}
	d.Count = required
	if c := h.Policy.ClientCount; c > 0 && b.NPolicy > 0 {
		switch {
		case c < b.NPolicy:
			d.Count = b.NPolicy + 1
		case c < required:
			d.Count = c
		}
	}
	if h.Clients != nil {
		n, err := h.Clients.Count(d.App, b.CMID, required, h.Env.Now())
		if err != nil {
			return err
		}
		d.Count = n
	}
	return nil
}
