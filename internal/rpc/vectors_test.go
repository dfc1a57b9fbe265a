package rpc_test

import (
	"bytes"
	"encoding/binary"
	"reflect"
	"strconv"
	"testing"

	"kmsd/internal/rpc"
	"kmsd/internal/vectors"
)

func syntaxOf(t testing.TB, name string) rpc.Syntax {
	t.Helper()
	switch name {
	case "NDR32":
		return rpc.NDR32
	case "NDR64":
		return rpc.NDR64
	}
	t.Fatalf("unknown rpc_syntax %q", name)
	return rpc.SyntaxNone
}

// secAddrPad returns the range of the secondary-address padding of a
// bind_ack or alter_context_resp, whose bytes vlmcsd leaves stale.
func secAddrPad(pdu []byte) (from, to int) {
	l := int(binary.LittleEndian.Uint16(pdu[24:]))
	from = 26 + l
	to = (from + 3) &^ 3
	return from, to
}

// TestVectorPDUs decodes every recorded PDU and checks it against the
// recorded KMS payloads and return codes.
func TestVectorPDUs(t *testing.T) {
	files := vectors.Load(t)
	counts := map[string]int{}
	for fi := range files {
		f := &files[fi]
		calls, err := f.Calls()
		if err != nil {
			t.Fatal(err)
		}
		byReq := map[*vectors.PDU]*vectors.Call{}
		byResp := map[*vectors.PDU]*vectors.Call{}
		for i := range calls {
			byReq[calls[i].Request] = &calls[i]
			if calls[i].Response != nil {
				byResp[calls[i].Response] = &calls[i]
			}
		}
		for ci := range f.Connections {
			var lastBind *rpc.Bind
			for pi := range f.Connections[ci].PDUs {
				p := &f.Connections[ci].PDUs[pi]
				where := f.Name + " conn " + strconv.Itoa(ci) + " pdu " + strconv.Itoa(pi) + " (" + p.Type + ")"
				h, err := rpc.ParseHeader(p.Data)
				if err != nil {
					t.Errorf("%s: ParseHeader: %v", where, err)
					continue
				}
				if int(h.FragLength) != len(p.Data) || h.Version != 5 || h.VersionMinor != 0 || h.Drep != rpc.DrepLE || h.AuthLength != 0 {
					t.Errorf("%s: header %+v", where, h)
				}
				counts[p.Type]++
				switch p.Type {
				case "bind", "alter_context":
					var b rpc.Bind
					if err := b.Decode(p.Data); err != nil {
						t.Errorf("%s: Bind.Decode: %v", where, err)
						continue
					}
					if b.Alter != (p.Type == "alter_context") || h.Type != map[bool]uint8{false: rpc.TypeBind, true: rpc.TypeAlterContext}[b.Alter] {
						t.Errorf("%s: Alter = %v, type %d", where, b.Alter, h.Type)
					}
					out, err := b.Encode(nil)
					if err != nil || !bytes.Equal(out, p.Data) {
						t.Errorf("%s: re-encoded bind differs (err %v)\n got % x\nwant % x", where, err, out, p.Data)
					}
					lastBind = &b
				case "bind_ack", "alter_context_resp":
					var a rpc.BindAck
					if err := a.Decode(p.Data); err != nil {
						t.Errorf("%s: BindAck.Decode: %v", where, err)
						continue
					}
					if a.Alter != (p.Type == "alter_context_resp") {
						t.Errorf("%s: Alter = %v", where, a.Alter)
					}
					if _, err := strconv.Atoi(a.SecAddr); (err != nil) != a.Alter {
						t.Errorf("%s: secondary address %q", where, a.SecAddr)
					}
					out, err := a.Encode(nil)
					if err != nil || len(out) != len(p.Data) {
						t.Errorf("%s: re-encoded bind answer has %d bytes, recorded %d (err %v)", where, len(out), len(p.Data), err)
						continue
					}
					// Equal except the stale padding after the secondary address.
					want := bytes.Clone(p.Data)
					from, to := secAddrPad(want)
					clear(want[from:to])
					if !bytes.Equal(out, want) {
						t.Errorf("%s: re-encoded bind answer differs outside the padding\n got % x\nwant % x", where, out, want)
					}
					var again rpc.BindAck
					if err := again.Decode(out); err != nil || !reflect.DeepEqual(again, a) {
						t.Errorf("%s: decode(encode(x)) = %+v, %v; want %+v", where, again, err, a)
					}
					if lastBind == nil {
						t.Errorf("%s: answer without bind", where)
						continue
					}
					if a.CallID != lastBind.CallID || a.MaxXmitFrag != lastBind.MaxXmitFrag || a.MaxRecvFrag != lastBind.MaxRecvFrag {
						t.Errorf("%s: call id/frag sizes not echoed: %+v for %+v", where, a, lastBind)
					}
					if len(a.Results) != len(lastBind.Contexts) {
						t.Errorf("%s: %d results for %d contexts", where, len(a.Results), len(lastBind.Contexts))
					}
					if got := rpc.AckFlags(lastBind); got != a.Flags {
						t.Errorf("%s: AckFlags = %#02x, recorded %#02x", where, got, a.Flags)
					}
				case "request":
					c := byReq[p]
					var r rpc.Request
					if err := r.Decode(p.Data); err != nil {
						t.Errorf("%s: Request.Decode: %v", where, err)
						continue
					}
					syn := syntaxOf(t, c.Exchange.RPCSyntax)
					if want := map[rpc.Syntax]uint16{rpc.NDR32: 0, rpc.NDR64: 1}[syn]; r.ContextID != want {
						t.Errorf("%s: %v request on context %d", where, syn, r.ContextID)
					}
					if r.Opnum != 0 || r.Object != nil || int(r.AllocHint) != len(r.Stub) {
						t.Errorf("%s: opnum %d, object %v, alloc_hint %d for %d stub bytes", where, r.Opnum, r.Object, r.AllocHint, len(r.Stub))
					}
					payload, err := rpc.RequestPayload(r.Stub, syn)
					if err != nil || !bytes.Equal(payload, c.Exchange.KMSRequest) {
						t.Errorf("%s: RequestPayload = % x, %v; want kms_request_hex", where, payload, err)
					}
					if stub := rpc.AppendRequestStub(nil, syn, c.Exchange.KMSRequest); !bytes.Equal(stub, r.Stub) {
						t.Errorf("%s: AppendRequestStub differs from vlmcs's stub\n got % x\nwant % x", where, stub, r.Stub)
					}
					if out, err := r.Encode(nil); err != nil || !bytes.Equal(out, p.Data) {
						t.Errorf("%s: re-encoded request differs (err %v)", where, err)
					}
					counts["payloads"]++
				case "response":
					c := byResp[p]
					if c == nil {
						t.Errorf("%s: response without request", where)
						continue
					}
					var req rpc.Request
					if err := req.Decode(c.Request.Data); err != nil {
						continue // reported above
					}
					var r rpc.Response
					if err := r.Decode(p.Data); err != nil {
						t.Errorf("%s: Response.Decode: %v", where, err)
						continue
					}
					if r.CallID != req.CallID || r.ContextID != req.ContextID || int(r.AllocHint) != len(r.Stub) || r.CancelCount != 0 {
						t.Errorf("%s: call %d ctx %d alloc_hint %d cancel %d (request call %d ctx %d, stub %d)",
							where, r.CallID, r.ContextID, r.AllocHint, r.CancelCount, req.CallID, req.ContextID, len(r.Stub))
					}
					syn := syntaxOf(t, c.Exchange.RPCSyntax)
					st, err := rpc.DecodeResponseStub(r.Stub, syn)
					if err != nil {
						t.Errorf("%s: DecodeResponseStub: %v", where, err)
						continue
					}
					if !bytes.Equal(st.Payload, c.Exchange.KMSResponse) || (st.Payload == nil) != (c.Exchange.KMSResponse == nil) {
						t.Errorf("%s: payload % x, want kms_response_hex %s", where, st.Payload, c.Exchange.KMSResponseHex)
					}
					if st.ReturnValue != c.Exchange.ReturnCode || st.PaddingNonZero {
						t.Errorf("%s: return value %#08x (padding non-zero %v), want %s", where, st.ReturnValue, st.PaddingNonZero, c.Exchange.RPCReturnCode)
					}
					var stub []byte
					if c.Exchange.KMSResponse != nil {
						stub = rpc.AppendResponseStub(nil, syn, c.Exchange.KMSResponse)
						if n := rpc.ResponseStubLen(syn, len(c.Exchange.KMSResponse)); n != len(r.Stub) {
							t.Errorf("%s: ResponseStubLen = %d, recorded stub %d", where, n, len(r.Stub))
						}
						counts["responses with payload"]++
					} else {
						stub = rpc.AppendRefusalStub(nil, syn, c.Exchange.ReturnCode)
						counts["refusals"]++
					}
					if !bytes.Equal(stub, r.Stub) {
						t.Errorf("%s: our stub differs from vlmcsd's\n got % x\nwant % x", where, stub, r.Stub)
					}
					if out, err := r.Encode(nil); err != nil || !bytes.Equal(out, p.Data) {
						t.Errorf("%s: re-encoded response differs (err %v)", where, err)
					}
				default:
					t.Errorf("%s: unexpected PDU type", where)
				}
			}
		}
	}
	t.Logf("decoded: %v", counts)
	if counts["payloads"] == 0 {
		t.Fatal("no request PDUs checked")
	}
}

// serverNegotiation derives vlmcsd's NDR64 and BTFN switches from the
// recorded options (kms-rpc.md §12): -N and -B when given; otherwise BTFN
// on, and NDR64 on (the current table has only NDR64 builds) unless a fixed
// host build ≤ 7601 with random ePIDs turns it off. The older vlmcsd picks a
// random build of its six-build table at start (compat-older-server-v6 got
// 6002, so NDR64 off); for the older server without -N the switch is read
// from its recorded answer instead.
func serverNegotiation(t *testing.T, f *vectors.File) rpc.Negotiation {
	n := rpc.Negotiation{NDR64: true, BTFN: true}
	if v, ok := f.ServerOption('B'); ok {
		n.BTFN = v == "1"
	}
	if v, ok := f.ServerOption('N'); ok {
		n.NDR64 = v == "1"
		return n
	}
	if hb, ok := f.ServerOption('H'); ok {
		if r, _ := f.ServerOption('r'); r != "0" {
			b, _ := strconv.Atoi(hb)
			n.NDR64 = b > 7601
		}
	}
	if f.ServerBuild == "older" {
		n.NDR64 = recordedNDR64(f)
		t.Logf("%s: older vlmcsd, NDR64 %v taken from its recorded answers", f.Name, n.NDR64)
	}
	return n
}

// recordedNDR64 reports whether any recorded bind answer accepted NDR64.
func recordedNDR64(f *vectors.File) bool {
	for _, c := range f.Connections {
		for _, p := range c.PDUs {
			if p.Type != "bind_ack" && p.Type != "alter_context_resp" {
				continue
			}
			var a rpc.BindAck
			if a.Decode(p.Data) != nil {
				continue
			}
			for _, r := range a.Results {
				if r.Result == rpc.ResultAcceptance && r.Transfer == rpc.NDR64Syntax {
					return true
				}
			}
		}
	}
	return false
}

// TestVectorNegotiation replays every recorded bind and alter_context
// through Negotiate with the switches vlmcsd ran with, compares the results
// with vlmcsd's answer and checks that each request travelled on a context
// that Negotiate accepted with the recorded syntax.
func TestVectorNegotiation(t *testing.T) {
	files := vectors.Load(t)
	binds, requests := 0, 0
	for fi := range files {
		f := &files[fi]
		n := serverNegotiation(t, f)
		calls, err := f.Calls()
		if err != nil {
			t.Fatal(err)
		}
		syntaxByReq := map[*vectors.PDU]string{}
		for _, c := range calls {
			syntaxByReq[c.Request] = c.Exchange.RPCSyntax
		}
		for ci, conn := range f.Connections {
			contexts := map[uint16]rpc.Syntax{}
			var want []rpc.Result
			for pi, p := range conn.PDUs {
				where := f.Name + " conn " + strconv.Itoa(ci) + " pdu " + strconv.Itoa(pi)
				switch p.Type {
				case "bind", "alter_context":
					var b rpc.Bind
					if err := b.Decode(p.Data); err != nil {
						t.Fatalf("%s: %v", where, err)
					}
					var acc []rpc.Accepted
					want, acc = n.Negotiate(b.Contexts, nil, nil)
					for _, a := range acc {
						contexts[a.ID] = a.Syntax
					}
					binds++
				case "bind_ack", "alter_context_resp":
					var a rpc.BindAck
					if err := a.Decode(p.Data); err != nil {
						t.Fatalf("%s: %v", where, err)
					}
					if !reflect.DeepEqual(a.Results, want) {
						t.Errorf("%s: %+v: Negotiate = %+v, vlmcsd answered %+v", where, n, want, a.Results)
					}
				case "request":
					var r rpc.Request
					if err := r.Decode(p.Data); err != nil {
						t.Fatalf("%s: %v", where, err)
					}
					syn, ok := contexts[r.ContextID]
					if !ok || syn.String() != syntaxByReq[&conn.PDUs[pi]] {
						t.Errorf("%s: request on context %d: accepted as %v (%v), recorded %s", where, r.ContextID, syn, ok, syntaxByReq[&conn.PDUs[pi]])
					}
					requests++
				}
			}
		}
	}
	t.Logf("%d binds/alter_contexts negotiated, %d requests matched their context", binds, requests)
}
