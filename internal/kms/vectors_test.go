package kms_test

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"kmsd/internal/config"
	"kmsd/internal/kms"
	"kmsd/internal/kmscrypto"
	"kmsd/internal/products"
	"kmsd/internal/vectors"
	"kmsd/internal/wire"
)

// rawBase decodes the base request of any payload the way vlmcs built it
// (V4 layout below major 5, else decrypted with the cipher of the major),
// whatever its version; used to check the fields of refused requests.
func rawBase(tb testing.TB, payload []byte) kms.BaseRequest {
	tb.Helper()
	v, ok := kms.PeekVersion(payload)
	if !ok {
		tb.Fatalf("payload of %d bytes", len(payload))
	}
	var b kms.BaseRequest
	if v.Major < 5 {
		if err := b.Decode(payload); err != nil {
			tb.Fatal(err)
		}
		return b
	}
	if len(payload) < kms.V6RequestSize {
		tb.Fatalf("V%d payload of %d bytes", v.Major, len(payload))
	}
	var iv [16]byte
	copy(iv[:], payload[4:20])
	plain := bytes.Clone(payload[20:kms.V6RequestSize])
	kmscrypto.ForMajor(v.Major).CBCDecrypt(&iv, plain)
	if err := b.Decode(plain); err != nil {
		tb.Fatal(err)
	}
	return b
}

// compareRequest lists the differences between a decoded base request and
// vlmcs's printout of it.
func compareRequest(tb testing.TB, b *kms.BaseRequest, want *vectors.Request) []string {
	var d []string
	check := func(field string, got, exp any) {
		if got != exp {
			d = append(d, field+": got "+strings.TrimSpace(toString(got))+", want "+toString(exp))
		}
	}
	check("protocol_version", b.Version, parseVersion(tb, want.ProtocolVersion))
	check("virtual_machine", b.VMInfo != 0, want.VirtualMachine)
	check("license_status", b.LicenseStatus, want.LicenseStatus)
	check("remaining_minutes", b.BindingExpiration, want.RemainingMinutes)
	check("application_id", b.AppID.String(), want.ApplicationID)
	check("sku_id", b.ActID.String(), want.SKUID)
	check("kms_id", b.KMSID.String(), want.KMSID)
	check("client_time_unix", b.ClientTime, wire.FileTimeSeconds(want.ClientTimeUnix))
	check("client_time_utc", wire.Time(b.ClientTime).Format(time.DateTime), want.ClientTimeUTC)
	check("n_policy", b.NPolicy, want.NPolicy)
	if want.PrivacyMode != "ON" { // names hidden in privacy mode
		check("cmid", b.CMID.String(), want.CMID)
		check("previous_cmid", b.CMIDPrev.String(), want.PreviousCMID)
		check("workstation", b.WorkstationName(), want.Workstation)
	}
	return d
}

func toString(v any) string {
	switch x := v.(type) {
	case string:
		return strconv.Quote(x)
	case kms.Version:
		return x.String()
	case uint32:
		return strconv.FormatUint(uint64(x), 10)
	case uint64:
		return strconv.FormatUint(x, 10)
	case bool:
		return strconv.FormatBool(x)
	}
	return "?"
}

// TestVectorRequests decodes every recorded KMS request and compares it with
// what vlmcs printed about it.
func TestVectorRequests(t *testing.T) {
	decoded, refused, compared := 0, 0, 0
	for _, f := range vectors.Load(t) {
		for i, e := range f.Exchanges {
			where := f.Name + " exchange " + strconv.Itoa(i)
			var r kms.Request
			err := r.Decode(e.KMSRequest)
			var base *kms.BaseRequest
			if strings.HasPrefix(f.Name, "invalid-version-") {
				var re *kms.RefusalError
				if !errors.As(err, &re) || re.HResult != 0x8007000D || e.ReturnCode != 0x8007000D {
					t.Errorf("%s: Decode = %v, want a refusal 0x8007000D", where, err)
				}
				b := rawBase(t, e.KMSRequest)
				base = &b
				refused++
			} else {
				if err != nil {
					t.Errorf("%s: Decode: %v", where, err)
					continue
				}
				if !r.MACOK || !r.PaddingOK {
					t.Errorf("%s: MACOK %v PaddingOK %v for a request vlmcs built", where, r.MACOK, r.PaddingOK)
				}
				if r.Outer != r.Base.Version || !r.Outer.Supported() {
					t.Errorf("%s: outer version %v, inner %v", where, r.Outer, r.Base.Version)
				}
				wantLen := kms.V6RequestSize
				if r.Outer.Major == 4 {
					wantLen = kms.V4RequestSize
				}
				if len(e.KMSRequest) != wantLen {
					t.Errorf("%s: %d-byte V%d request", where, len(e.KMSRequest), r.Outer.Major)
				}
				if r.Outer.Major > 4 {
					var div [16]byte
					kmscrypto.ForMajor(r.Outer.Major).DecryptBlock(div[:], e.KMSRequest[4:20])
					if !bytes.Equal(r.IV[:], e.KMSRequest[4:20]) || r.DIV != div {
						t.Errorf("%s: IV/DIV not taken from the request", where)
					}
				}
				base = &r.Base
				decoded++
			}
			if e.Request == nil {
				if e.ProtocolMajor != 0 && int(base.Version.Major) != e.ProtocolMajor {
					t.Errorf("%s: major %d, vlmcs announced %d", where, base.Version.Major, e.ProtocolMajor)
				}
				continue
			}
			for _, d := range compareRequest(t, base, e.Request) {
				t.Errorf("%s: %s", where, d)
			}
			compared++
		}
	}
	t.Logf("%d requests decoded, %d unsupported versions refused, %d compared with vlmcs's printout", decoded, refused, compared)
	if decoded == 0 || compared == 0 {
		t.Fatal("nothing checked")
	}
}

// checkResponse compares a verified response with vlmcs's printout.
func checkResponse(tb testing.TB, where string, v *kms.Verified, resp []byte, want *vectors.Response) {
	if v.Base.EPID != want.EPID {
		tb.Errorf("%s: ePID %q, want %q", where, v.Base.EPID, want.EPID)
	}
	if want.HWID != "" {
		if !v.HasHWID || hwidHex(v.HWID) != want.HWID {
			tb.Errorf("%s: HWID %s (%v), want %s", where, hwidHex(v.HWID), v.HasHWID, want.HWID)
		}
	} else if v.HasHWID && v.Outer.Major != 6 {
		tb.Errorf("%s: V%d response with an HWID", where, v.Outer.Major)
	}
	if !want.Verbose() {
		return
	}
	ver := parseVersion(tb, want.ProtocolVersion)
	switch {
	case v.Outer != ver || v.Base.Version != ver:
		tb.Errorf("%s: version %v/%v, want %v", where, v.Outer, v.Base.Version, ver)
	case v.Base.CMID.String() != want.CMID:
		tb.Errorf("%s: CMID %v, want %s", where, v.Base.CMID, want.CMID)
	case v.Base.ClientTime != wire.FileTimeSeconds(want.ClientTimeUnix):
		tb.Errorf("%s: client time %d, want %d", where, v.Base.ClientTime, want.ClientTimeUnix)
	case v.Base.Count != want.ActiveClients:
		tb.Errorf("%s: count %d, want %d", where, v.Base.Count, want.ActiveClients)
	case v.Base.RenewalInterval != want.RenewalIntervalMinutes || v.Base.ActivationInterval != want.ActivationIntervalMinutes:
		tb.Errorf("%s: intervals %d/%d, want %d/%d", where, v.Base.RenewalInterval, v.Base.ActivationInterval,
			want.RenewalIntervalMinutes, want.ActivationIntervalMinutes)
	case v.Size != want.KMSMessageSize || len(resp) != want.KMSMessageSize:
		tb.Errorf("%s: size %d (%d bytes), want %d", where, v.Size, len(resp), want.KMSMessageSize)
	}
}

// TestVectorResponses verifies every response vlmcs accepted, as vlmcs.
func TestVectorResponses(t *testing.T) {
	verified := map[uint16]int{}
	for _, f := range vectors.Load(t) {
		for i, e := range f.Exchanges {
			if !e.Success() {
				if e.KMSResponse != nil {
					t.Errorf("%s exchange %d: failed exchange with a response", f.Name, i)
				}
				continue
			}
			where := f.Name + " exchange " + strconv.Itoa(i)
			if e.KMSResponse == nil || e.Response == nil || e.ReturnCode != 0 {
				t.Errorf("%s: success without response", where)
				continue
			}
			v, err := kms.VerifyResponse(e.KMSRequest, e.KMSResponse)
			if err != nil {
				t.Errorf("%s: VerifyResponse: %v", where, err)
				continue
			}
			if len(v.Warnings) != 0 {
				t.Errorf("%s: warnings %q", where, v.Warnings)
			}
			checkResponse(t, where, v, e.KMSResponse, e.Response)
			verified[v.Outer.Major]++
		}
	}
	t.Logf("responses verified by major version: %v", verified)
	if len(verified) == 0 {
		t.Fatal("nothing verified")
	}
}

// hostFor builds the kms.Host vlmcsd was in a recording: policy, intervals
// and client list from its options, the built-in or configured ePIDs.
func hostFor(t *testing.T, f *vectors.File, now *clock) *kms.Host {
	tab := products.Builtin()
	cfg, err := config.ParseServer(f.ServerArgs[1:])
	if err != nil {
		t.Fatalf("%s: server options %q: %v", f.Name, f.ServerArgs, err)
	}
	act, ren := cfg.ActivationInterval, cfg.RenewalInterval
	if f.ServerBuild == "older" {
		_, a := f.ServerOption('A')
		_, r := f.ServerOption('R')
		if !a && !r {
			act, ren = 120, 10080 // the older build's defaults (kms-server.md §4.4)
		}
	}
	h := &kms.Host{
		Table: tab,
		Policy: kms.Policy{Whitelist: cfg.Whitelist, CheckClientTime: cfg.CheckTime,
			ActivationInterval: act, RenewalInterval: ren},
		Slots: builtinSlots(tab),
		Env:   kms.Env{Rand: newRand(7), Now: now.Now},
	}
	for _, o := range cfg.EPIDs {
		i := tab.CSVLKByName(o.CSVLK)
		if i < 0 {
			t.Fatalf("%s: -a %s: unknown CSVLK", f.Name, o.CSVLK)
		}
		hw := kms.DefaultHWID
		if o.HasHWID {
			hw = o.HWID
		}
		h.Slots[i] = kms.NewSlot(o.EPID, hw)
	}
	if cfg.Maintain {
		sizes := make([]int, len(tab.Apps))
		for i, a := range tab.Apps {
			sizes[i] = a.ClientSlots
		}
		fill := newClientMaker(99)
		h.Clients = kms.NewClientList(sizes, cfg.StartEmpty, fill.guid)
	}
	return h
}

// TestVectorHost answers every recorded request with a Host configured as
// vlmcsd was and compares the outcome with vlmcsd's: the refusal code, or a
// response that vlmcs's checks accept with the same contents; V4 responses
// must be byte-identical (V4 has nothing random).
func TestVectorHost(t *testing.T) {
	tab := products.Builtin()
	var handled, refusals, successes, v4, v4Identical int
	files := vectors.Load(t)
	for fi := range files {
		f := &files[fi]
		now := &clock{}
		h := hostFor(t, f, now)
		for i, e := range f.Exchanges {
			where := f.Name + " exchange " + strconv.Itoa(i)
			// The host's clock: the real time when vlmcs ran, i.e. the
			// request's time minus the scenario's client clock shift.
			var req kms.Request
			if req.Decode(e.KMSRequest) == nil {
				now.t = wire.Time(req.Base.ClientTime).Add(-time.Duration(f.ClientClockShiftSeconds) * time.Second)
				// The ePID (and HWID) vlmcsd used for this request's CSVLK.
				if e.Response != nil && e.Response.EPID != "" {
					cs := 0
					if k := tab.KMSByID(req.Base.KMSID); k >= 0 {
						cs = tab.KMSItems[k].CSVLK
					}
					hw := h.Slots[cs].HWID
					if e.Response.HWID != "" {
						hw = parseHWID(t, e.Response.HWID)
					}
					h.Slots[cs] = kms.NewSlot(e.Response.EPID, hw)
				}
			}
			var d kms.Decision
			out, err := h.Handle([]byte("keep"), e.KMSRequest, &d)
			handled++
			if e.ReturnCode != 0 {
				var re *kms.RefusalError
				if !errors.As(err, &re) || re.HResult != e.ReturnCode || d.HResult != e.ReturnCode {
					t.Errorf("%s: Handle = %v (HResult %#08x), vlmcsd refused with %s", where, err, d.HResult, e.RPCReturnCode)
				} else if string(out) != "keep" {
					t.Errorf("%s: refusal appended %d bytes", where, len(out)-4)
				} else {
					refusals++
				}
				continue
			}
			if err != nil {
				t.Errorf("%s: Handle: %v (vlmcsd answered)", where, err)
				continue
			}
			if !bytes.HasPrefix(out, []byte("keep")) {
				t.Fatalf("%s: dst prefix overwritten", where)
			}
			out = out[4:]
			ours, err := kms.VerifyResponse(e.KMSRequest, out)
			if err != nil {
				t.Errorf("%s: our response fails verification: %v", where, err)
				continue
			}
			theirs, err := kms.VerifyResponse(e.KMSRequest, e.KMSResponse)
			if err != nil {
				t.Errorf("%s: recorded response fails verification: %v", where, err)
				continue
			}
			if len(ours.Warnings) != 0 || ours.Base != theirs.Base || ours.Outer != theirs.Outer || ours.HWID != theirs.HWID ||
				ours.HasHWID != theirs.HasHWID || len(out) != len(e.KMSResponse) {
				t.Errorf("%s: our response differs from vlmcsd's:\n ours   %+v (%d bytes, HWID %X, warnings %q)\n theirs %+v (%d bytes, HWID %X)",
					where, ours.Base, len(out), ours.HWID, ours.Warnings, theirs.Base, len(e.KMSResponse), theirs.HWID)
				continue
			}
			if d.EPID != theirs.Base.EPID || d.Count != theirs.Base.Count || d.HResult != 0 || !d.Decrypted {
				t.Errorf("%s: decision %+v", where, d)
			}
			successes++
			if ours.Outer.Major == 4 {
				v4++
				if bytes.Equal(out, e.KMSResponse) {
					v4Identical++
				} else {
					t.Errorf("%s: V4 response not byte-identical\n ours   % x\n theirs % x", where, out, e.KMSResponse)
				}
			}
		}
	}
	t.Logf("%d requests handled: %d refusals matched, %d responses matched (%d V4, %d byte-identical)",
		handled, refusals, successes, v4, v4Identical)
	if v4Identical == 0 {
		t.Fatal("no V4 response was byte-identical")
	}
}

// TestVectorEPIDsFollowRules checks that the ePIDs vlmcsd generated (current
// build, random ePIDs) satisfy the rules the EPIDGen test applies to ours,
// so those rules are vlmcsd's.
func TestVectorEPIDsFollowRules(t *testing.T) {
	tab := products.Builtin()
	checked := 0
	for _, f := range vectors.Load(t) {
		if f.ServerBuild != "current" {
			continue
		}
		if _, ok := f.ServerOption('a'); ok {
			continue
		}
		if _, ok := f.ServerOption('i'); ok {
			continue
		}
		r, _ := f.ServerOption('r')
		for i, e := range f.Exchanges {
			if e.Response == nil || e.Response.EPID == "" {
				continue
			}
			var req kms.Request
			if req.Decode(e.KMSRequest) != nil {
				continue
			}
			cs := 0
			if k := tab.KMSByID(req.Base.KMSID); k >= 0 {
				cs = tab.KMSItems[k].CSVLK
			}
			if r == "0" {
				if e.Response.EPID != tab.CSVLKs[cs].BuiltinEPID {
					t.Errorf("%s exchange %d: -r0 ePID %s, built-in %s", f.Name, i, e.Response.EPID, tab.CSVLKs[cs].BuiltinEPID)
				}
				continue
			}
			p, err := parseEPID(e.Response.EPID)
			if err != nil {
				t.Errorf("%s exchange %d: %v", f.Name, i, err)
				continue
			}
			want := epidWant{csvlk: cs, lcid: optUint(&f, 'C'), build: uint32(optUint(&f, 'H')),
				now: wire.Time(req.Base.ClientTime).Add(-time.Duration(f.ClientClockShiftSeconds) * time.Second)}
			for _, d := range checkEPID(tab, p, want) {
				t.Errorf("%s exchange %d: %s: %s", f.Name, i, e.Response.EPID, d)
			}
			checked++
		}
	}
	t.Logf("%d recorded random ePIDs checked", checked)
}

func optUint(f *vectors.File, letter byte) uint16 {
	v, _ := f.ServerOption(letter)
	n, _ := strconv.Atoi(v)
	return uint16(n)
}
