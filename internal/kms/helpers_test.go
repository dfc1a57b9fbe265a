package kms_test

import (
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"kmsd/internal/kms"
	"kmsd/internal/products"
	"kmsd/internal/wire"
)

// newRand is a deterministic random source for Env.Rand.
func newRand(seed byte) io.Reader {
	var s [32]byte
	for i := range s {
		s[i] = seed + byte(i)
	}
	return rand.NewChaCha8(s)
}

// clock is a pinned Env.Now.
type clock struct{ t time.Time }

func (c *clock) Now() time.Time { return c.t }

// testNow is the pinned host time of the synthetic tests.
var testNow = time.Date(2026, 11, 22, 15, 17, 45, 0, time.UTC)

// builtinSlots gives every CSVLK its built-in ePID (vlmcsd -r0) and the
// default HWID.
func builtinSlots(t *products.Table) []kms.Slot {
	s := make([]kms.Slot, len(t.CSVLKs))
	for i, k := range t.CSVLKs {
		s[i] = kms.NewSlot(k.BuiltinEPID, kms.DefaultHWID)
	}
	return s
}

// newHost is a host with the built-in table and ePIDs, the default
// intervals and a pinned clock.
func newHost(p kms.Policy) (*kms.Host, *clock) {
	tab := products.Builtin()
	if p.ActivationInterval == 0 {
		p.ActivationInterval = kms.DefaultActivationInterval
	}
	if p.RenewalInterval == 0 {
		p.RenewalInterval = kms.DefaultRenewalInterval
	}
	c := &clock{t: testNow}
	return &kms.Host{Table: tab, Policy: p, Slots: builtinSlots(tab), Env: kms.Env{Rand: newRand(1), Now: c.Now}}, c
}

// clientMaker builds requests as a client would.
type clientMaker struct {
	tab *products.Table
	rng io.Reader
}

func newClientMaker(seed byte) *clientMaker {
	return &clientMaker{tab: products.Builtin(), rng: newRand(seed)}
}

func (m *clientMaker) guid() wire.GUID {
	var g wire.GUID
	io.ReadFull(m.rng, g[:])
	return g
}

// base returns the base request of product number num (vlmcs -l num).
func (m *clientMaker) base(tb testing.TB, num int, major uint16) kms.BaseRequest {
	tb.Helper()
	i, ok := m.tab.Lookup(strconv.Itoa(num))
	if !ok {
		tb.Fatalf("no product %d", num)
	}
	return m.baseOf(i, major)
}

func (m *clientMaker) baseOf(i int, major uint16) kms.BaseRequest {
	p := &m.tab.Products[i]
	it := &m.tab.KMSItems[p.KMS]
	b := kms.BaseRequest{
		Version:       kms.Version{Major: major},
		LicenseStatus: 2,
		AppID:         m.tab.Apps[it.App].ID,
		ActID:         p.SKU,
		KMSID:         it.ID,
		CMID:          m.guid(),
		NPolicy:       it.NPolicy,
		ClientTime:    wire.FileTime(testNow),
	}
	b.SetWorkstationName("client.example.test")
	return b
}

// encode builds the request message of b with a random IV.
func (m *clientMaker) encode(b *kms.BaseRequest) []byte {
	var iv [16]byte
	io.ReadFull(m.rng, iv[:])
	return kms.EncodeRequest(nil, b, iv)
}

func parseVersion(tb testing.TB, s string) kms.Version {
	tb.Helper()
	maj, min, ok := strings.Cut(s, ".")
	a, err1 := strconv.ParseUint(maj, 10, 16)
	b, err2 := strconv.ParseUint(min, 10, 16)
	if !ok || err1 != nil || err2 != nil {
		tb.Fatalf("bad version %q", s)
	}
	return kms.Version{Major: uint16(a), Minor: uint16(b)}
}

func hwidHex(h [8]byte) string { return fmt.Sprintf("%X", h[:]) }

func parseHWID(tb testing.TB, s string) [8]byte {
	tb.Helper()
	var h [8]byte
	if len(s) != 16 {
		tb.Fatalf("bad HWID %q", s)
	}
	for i := range h {
		v, err := strconv.ParseUint(s[2*i:2*i+2], 16, 8)
		if err != nil {
			tb.Fatalf("bad HWID %q", s)
		}
		h[i] = byte(v)
	}
	return h
}
