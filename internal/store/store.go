// Package store keeps activation records and the client inventory built
// from them. Store is implemented by the memory, sqlite and postgres
// backends; storetest holds the contract suite every backend passes.
package store

import (
	"context"
	"errors"
	"time"
)

// Activation is one activation request and the host's decision, with the
// fields of Microsoft's event 12290 and what the host answered. Times are
// UTC.
type Activation struct {
	ID                 int64
	Received           time.Time // when the host received the request
	Host               string    // name of the host that answered
	Peer               string    // client address, ip:port
	Protocol           string    // "6.0"
	HResult            uint32    // 0 = activated
	NPolicy            uint32
	Workstation        string
	CMID               string // client machine ID, GUID text
	PreviousCMID       string
	ClientTime         time.Time
	VM                 bool
	LicenseStatus      uint32
	BindingExpiration  uint32 // minutes left in the client's current state
	AppID              string
	SKUID              string // activation ID
	KMSID              string
	Product            string // product name, or "" when unknown
	KMSName            string
	Count              uint32 // count answered (0 when refused)
	EPID               string
	ActivationInterval uint32
	RenewalInterval    uint32
}

// Client is one row of the inventory: one client machine ID.
type Client struct {
	CMID          string
	FirstSeen     time.Time
	LastSeen      time.Time
	Workstation   string // latest name
	Peer          string // latest address (ip only)
	Product       string
	SKUID         string
	KMSID         string
	LicenseStatus uint32
	VM            bool
	LastHResult   uint32
	RenewalDue    time.Time // LastSeen + renewal interval of the last success
	ClockSkew     time.Duration
	Activations   int
	// Names and Addresses seen for this CMID; more than one machine name
	// means an image cloned without sysprep.
	Names     []string
	Addresses []string
}

// Cloned reports whether the CMID was seen from several machine names.
func (c *Client) Cloned() bool { return len(c.Names) > 1 }

// ActivationFilter selects activation records; zero fields match all.
type ActivationFilter struct {
	Since, Until time.Time
	CMID         string
	KMSID        string
	HResult      *uint32
	Limit        int // 0 = no limit; newest first
	Offset       int
}

// ClientFilter selects inventory rows; zero fields match all.
type ClientFilter struct {
	SeenSince time.Time // last seen at or after
	KMSID     string
	Search    string // substring of CMID, workstation, product or address (case-insensitive)
	Limit     int
	Offset    int
	OrderBy   string // "last_seen" (default, newest first), "first_seen", "workstation", "product", "renewal_due"
}

// Store persists activation records and maintains the inventory. All
// methods are safe for concurrent use.
type Store interface {
	// Add stores a batch of records in one transaction and updates the
	// inventory; records without CMID update nothing but the log.
	Add(ctx context.Context, recs []Activation) error
	Activations(ctx context.Context, f ActivationFilter) ([]Activation, error)
	Clients(ctx context.Context, f ClientFilter) ([]Client, error)
	// ActiveClients counts distinct CMIDs of a KMS ID seen since a time.
	ActiveClients(ctx context.Context, kmsID string, since time.Time) (int, error)
	// Prune removes activation records received before a time and
	// clients last seen before it; it returns the number of records removed.
	Prune(ctx context.Context, before time.Time) (int64, error)
	Close() error
}

// ErrClosed is returned after Close.
var ErrClosed = errors.New("store: closed")

// DefaultRetention is how long records are kept.
const DefaultRetention = 90 * 24 * time.Hour
