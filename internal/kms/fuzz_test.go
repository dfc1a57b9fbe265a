package kms_test

import (
	"bytes"
	"errors"
	"testing"

	"kmsd/internal/kms"
	"kmsd/internal/products"
	"kmsd/internal/vectors"
	"kmsd/internal/wire"
)

// fuzzHosts are a default host and a strict one (whitelisting, time check,
// client list), each with a fresh deterministic random source.
func fuzzHosts() []*kms.Host {
	def, _ := newHost(kms.Policy{})
	strict, _ := newHost(kms.Policy{Whitelist: 3, CheckClientTime: true, ActivationInterval: 1, RenewalInterval: 0xFFFFFFFF})
	tab := products.Builtin()
	sizes := make([]int, len(tab.Apps))
	for i, a := range tab.Apps {
		sizes[i] = a.ClientSlots
	}
	strict.Clients = kms.NewClientList(sizes, false, newClientMaker(20).guid)
	return []*kms.Host{def, strict}
}

// syntheticRequests are V4, V5 and V6 requests for a few products, built
// the same way every time.
func syntheticRequests(tb testing.TB) [][]byte {
	m := newClientMaker(21)
	var out [][]byte
	for _, num := range []int{64, 135, 154, 238} {
		for _, major := range []uint16{4, 5, 6} {
			b := m.base(tb, num, major)
			out = append(out, m.encode(&b))
		}
	}
	return out
}

// FuzzKMSRequest decodes arbitrary payloads and lets two hosts answer them.
// Nothing may panic; a refusal must be a *RefusalError; an answer must pass
// the client's verification against the same payload.
func FuzzKMSRequest(f *testing.F) {
	for _, r := range syntheticRequests(f) {
		f.Add(r)
	}
	files, err := vectors.TryLoad()
	if err != nil {
		f.Fatal(err)
	}
	for _, vf := range files {
		for _, e := range vf.Exchanges {
			f.Add(e.KMSRequest)
		}
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		var r kms.Request
		decErr := r.Decode(payload)
		if decErr == nil && !r.Outer.Supported() {
			t.Fatalf("unsupported version %v decoded", r.Outer)
		}
		for _, h := range fuzzHosts() {
			var d kms.Decision
			out, err := h.Handle([]byte{0xEE}, payload, &d)
			if out[0] != 0xEE {
				t.Fatal("dst prefix overwritten")
			}
			if err != nil {
				var re *kms.RefusalError
				if !errors.As(err, &re) || re.HResult != d.HResult || d.HResult == 0 || len(out) != 1 {
					t.Fatalf("Handle: %v (decision %+v, %d bytes)", err, d, len(out))
				}
				continue
			}
			if decErr != nil {
				t.Fatalf("Handle answered a payload Decode refused: %v", decErr)
			}
			v, err := kms.VerifyResponse(payload, out[1:])
			if d.Request.Base.Version != d.Request.Outer {
				// The host echoes a differing inner version as vlmcsd does;
				// the client (like vlmcs) must then refuse the answer.
				if err == nil {
					t.Fatalf("answer with base version %v to outer %v verified", d.Request.Base.Version, d.Request.Outer)
				}
				continue
			}
			if err != nil {
				t.Fatalf("our answer fails verification: %v\npayload % x", err, payload)
			}
			if v.Base.Count != d.Count || v.Base.EPID != d.EPID || v.Base.CMID != d.Request.Base.CMID {
				t.Fatalf("answer %+v does not match decision %+v", v.Base, d)
			}
		}
	})
}

// FuzzVerifyResponse checks arbitrary responses against valid requests
// (selected by sel): nothing may panic, and whatever is accepted must echo
// the request.
func FuzzVerifyResponse(f *testing.F) {
	reqs := syntheticRequests(f)
	h, _ := newHost(kms.Policy{})
	for i, r := range reqs {
		var d kms.Decision
		resp, err := h.Handle(nil, r, &d)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint16(i), resp)
	}
	files, err := vectors.TryLoad()
	if err != nil {
		f.Fatal(err)
	}
	for _, vf := range files {
		for _, e := range vf.Exchanges {
			if e.Success() && len(reqs) < 0xFFFF {
				f.Add(uint16(len(reqs)), e.KMSResponse)
				reqs = append(reqs, e.KMSRequest)
			}
		}
	}
	bases := make([]kms.Request, len(reqs))
	for i, r := range reqs {
		if err := bases[i].Decode(r); err != nil {
			f.Fatalf("request %d: %v", i, err)
		}
	}
	f.Fuzz(func(t *testing.T, sel uint16, resp []byte) {
		i := int(sel) % len(reqs)
		v, err := kms.VerifyResponse(reqs[i], resp)
		if err != nil {
			// The V4 path returns its partial result together with an
			// echo error (see TestVerifyResponseNilOnError); callers use
			// the result only without error.
			return
		}
		want := &bases[i]
		switch {
		case v.Base.CMID != want.Base.CMID || v.Base.ClientTime != want.Base.ClientTime:
			t.Fatalf("accepted an answer for another request: %+v", v.Base)
		case v.Outer != want.Outer || v.Base.Version != want.Base.Version:
			t.Fatalf("accepted version %v/%v for %v/%v", v.Outer, v.Base.Version, want.Outer, want.Base.Version)
		case v.Size != len(resp):
			t.Fatalf("size %d for %d bytes", v.Size, len(resp))
		case len(v.Base.EPID) == 0 && !bytes.Contains(resp, []byte{0, 0}):
			t.Fatal("empty ePID without terminator")
		case v.HasHWID != (want.Outer.Major > 5):
			t.Fatalf("HWID %v for V%d", v.HasHWID, want.Outer.Major)
		}
		_ = wire.UTF16Len(v.Base.EPID)
	})
}
