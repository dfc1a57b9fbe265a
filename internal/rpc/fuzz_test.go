package rpc_test

import (
	"bytes"
	"encoding/binary"
	"reflect"
	"slices"
	"testing"

	"kmsd/internal/rpc"
	"kmsd/internal/vectors"
)

// addVectorPDUs seeds f with every recorded PDU (through pick), when the
// recordings are present; the committed corpus in testdata/fuzz is used
// either way.
func addVectorPDUs(f *testing.F, pick func(p *vectors.PDU) []byte) {
	files, err := vectors.TryLoad()
	if err != nil {
		f.Fatal(err)
	}
	seen := map[string]bool{}
	for fi := range files {
		for _, c := range files[fi].Connections {
			for pi := range c.PDUs {
				if b := pick(&c.PDUs[pi]); b != nil && !seen[string(b)] {
					seen[string(b)] = true
					f.Add(b)
				}
			}
		}
	}
}

// FuzzParsePDU feeds arbitrary bytes to ParseHeader and to the decoder of
// the PDU type (and, for coverage, to every other decoder). Nothing may
// panic, and whatever decodes must survive an encode/decode round trip.
func FuzzParsePDU(f *testing.F) {
	for _, b := range fixedPDUSeeds(f) {
		f.Add(b)
	}
	addVectorPDUs(f, func(p *vectors.PDU) []byte { return p.Data })
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := rpc.ParseHeader(data)
		if err != nil {
			if len(data) >= rpc.HeaderLen && data[0] == 5 && h.FragLength >= rpc.HeaderLen && int(h.FragLength) <= rpc.MaxPDU {
				t.Fatalf("valid header refused: %v", err)
			}
			return
		}
		if h.Version != 5 || h.FragLength < rpc.HeaderLen || int(h.FragLength) > rpc.MaxPDU {
			t.Fatalf("ParseHeader accepted %+v", h)
		}
		_ = rpc.UnusualFlags(h)
		fuzzBind(t, h, data)
		fuzzBindAck(t, h, data)
		fuzzRequest(t, h, data)
		fuzzResponse(t, h, data)
		fuzzFault(t, h, data)
	})
}

func fuzzBind(t *testing.T, h rpc.Header, data []byte) {
	var b rpc.Bind
	if err := b.Decode(data); err != nil {
		return
	}
	if h.Type != rpc.TypeBind && h.Type != rpc.TypeAlterContext {
		t.Fatalf("type %d decoded as a bind", h.Type)
	}
	for _, n := range []rpc.Negotiation{{}, {NDR64: true}, {BTFN: true}, {NDR64: true, BTFN: true}} {
		res, acc := n.Negotiate(b.Contexts, nil, nil)
		if len(res) != len(b.Contexts) || len(acc) > len(b.Contexts) {
			t.Fatalf("%+v: %d results, %d accepted for %d contexts", n, len(res), len(acc), len(b.Contexts))
		}
		ack := rpc.BindAck{Alter: b.Alter, Flags: rpc.AckFlags(&b), CallID: b.CallID, SecAddr: "1688", Results: res}
		out, err := ack.Encode(nil)
		if err != nil {
			continue // more results than fit in a PDU
		}
		var back rpc.BindAck
		if err := back.Decode(out); err != nil || !slices.Equal(back.Results, res) {
			t.Fatalf("our bind answer does not decode: %v", err)
		}
	}
	out, err := b.Encode(nil)
	if err != nil {
		return
	}
	var again rpc.Bind
	if err := again.Decode(out); err != nil || !reflect.DeepEqual(again, b) {
		t.Fatalf("bind round trip: %+v, %v\nwant %+v", again, err, b)
	}
}

func fuzzBindAck(t *testing.T, h rpc.Header, data []byte) {
	var a rpc.BindAck
	if err := a.Decode(data); err != nil {
		return
	}
	if h.Type != rpc.TypeBindAck && h.Type != rpc.TypeAlterContextResp {
		t.Fatalf("type %d decoded as a bind answer", h.Type)
	}
	out, err := a.Encode(nil)
	if err != nil {
		return
	}
	var again rpc.BindAck
	if err := again.Decode(out); err != nil || !reflect.DeepEqual(again, a) {
		t.Fatalf("bind answer round trip: %+v, %v\nwant %+v", again, err, a)
	}
}

func fuzzRequest(t *testing.T, h rpc.Header, data []byte) {
	var r rpc.Request
	if err := r.Decode(data); err != nil {
		return
	}
	if h.Type != rpc.TypeRequest {
		t.Fatalf("type %d decoded as a request", h.Type)
	}
	for _, s := range []rpc.Syntax{rpc.NDR32, rpc.NDR64} {
		if p, err := rpc.RequestPayload(r.Stub, s); err == nil && len(p) > len(r.Stub) {
			t.Fatal("payload longer than the stub")
		}
	}
	var asm rpc.Reassembler
	whole, err := asm.Add(&r)
	if r.Flags&3 == 3 && (err != nil || whole != &r) {
		t.Fatalf("single fragment not passed through: %v", err)
	}
	if r.Flags&3 == rpc.FlagFirst && (err == nil) != (len(r.Stub) <= rpc.MaxStub) {
		t.Fatalf("first fragment of %d bytes: %v", len(r.Stub), err)
	}
	out, err := r.Encode(nil)
	if err != nil {
		return
	}
	var again rpc.Request
	if err := again.Decode(out); err != nil || !reflect.DeepEqual(again, r) {
		t.Fatalf("request round trip: %+v, %v\nwant %+v", again, err, r)
	}
}

func fuzzResponse(t *testing.T, h rpc.Header, data []byte) {
	var r rpc.Response
	if err := r.Decode(data); err != nil {
		return
	}
	if h.Type != rpc.TypeResponse {
		t.Fatalf("type %d decoded as a response", h.Type)
	}
	for _, s := range []rpc.Syntax{rpc.NDR32, rpc.NDR64} {
		checkStub(t, r.Stub, s)
	}
	out, err := r.Encode(nil)
	if err != nil {
		return
	}
	var again rpc.Response
	if err := again.Decode(out); err != nil || !reflect.DeepEqual(again, r) {
		t.Fatalf("response round trip: %+v, %v\nwant %+v", again, err, r)
	}
}

func fuzzFault(t *testing.T, h rpc.Header, data []byte) {
	var fl rpc.Fault
	if err := fl.Decode(data); err != nil {
		return
	}
	if h.Type != rpc.TypeFault {
		t.Fatalf("type %d decoded as a fault", h.Type)
	}
	out, err := fl.Encode(nil)
	if err != nil || len(out) != 32 {
		t.Fatalf("fault encode: %d bytes, %v", len(out), err)
	}
	var again rpc.Fault
	if err := again.Decode(out); err != nil || again != fl {
		t.Fatalf("fault round trip: %+v, %v", again, err)
	}
}

// checkStub decodes a response stub and checks what it returned against
// the input.
func checkStub(t *testing.T, stub []byte, s rpc.Syntax) {
	st, err := rpc.DecodeResponseStub(stub, s)
	if err != nil {
		return
	}
	if st.Payload == nil {
		head := 12
		if s == rpc.NDR64 {
			head = 20
		}
		if len(stub) < head || binary.LittleEndian.Uint32(stub[head-4:]) != st.ReturnValue {
			t.Fatalf("%v refusal: return value %#x from a %d-byte stub", s, st.ReturnValue, len(stub))
		}
		return
	}
	n := rpc.ResponseStubLen(s, len(st.Payload))
	if n > len(stub) || int(binary.LittleEndian.Uint32(stub)) != len(st.Payload) || binary.LittleEndian.Uint32(stub[n-4:]) != st.ReturnValue {
		t.Fatalf("%v: payload of %d bytes, return %#x from a %d-byte stub", s, len(st.Payload), st.ReturnValue, len(stub))
	}
	if !bytes.Equal(st.Payload, stub[n-4-len(st.Payload)-(4-len(st.Payload)%4)%4:][:len(st.Payload)]) {
		t.Fatalf("%v: payload not taken from its place", s)
	}
}

// FuzzResponseStub decodes arbitrary bytes as a RequestActivation answer
// stub in both syntaxes.
func FuzzResponseStub(f *testing.F) {
	for _, s := range []rpc.Syntax{rpc.NDR32, rpc.NDR64} {
		f.Add(rpc.AppendRefusalStub(nil, s, 0xC004F042))
		f.Add(rpc.AppendResponseStub(nil, s, []byte{1, 2, 3, 4, 5, 6}))
		f.Add(rpc.AppendResponseStub(nil, s, nil))
	}
	addVectorPDUs(f, func(p *vectors.PDU) []byte {
		if p.Type != "response" || len(p.Data) < 24 {
			return nil
		}
		return p.Data[24:]
	})
	f.Fuzz(func(t *testing.T, stub []byte) {
		checkStub(t, stub, rpc.NDR32)
		checkStub(t, stub, rpc.NDR64)
	})
}

// fixedPDUSeeds are PDUs of every type our encoders make, so the target is
// seeded even without the recordings.
func fixedPDUSeeds(f *testing.F) [][]byte {
	var out [][]byte
	add := func(b []byte, err error) {
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, b)
	}
	add((&rpc.Bind{Flags: 0x13, CallID: 2, MaxXmitFrag: 5840, MaxRecvFrag: 5840, Contexts: []rpc.ContextElem{
		elem(0, rpc.KMSInterface, rpc.NDR32Syntax), elem(1, rpc.KMSInterface, rpc.NDR64Syntax), elem(2, rpc.KMSInterface, rpc.BTFNSyntax)}}).Encode(nil))
	add((&rpc.BindAck{Flags: 0x13, CallID: 2, SecAddr: "1688", Results: []rpc.Result{rej22, accNDR64, ack33}}).Encode(nil))
	add((&rpc.Request{Flags: 3, CallID: 2, Stub: rpc.AppendRequestStub(nil, rpc.NDR64, make([]byte, 260))}).Encode(nil))
	add((&rpc.Response{Flags: 3, CallID: 2, Stub: rpc.AppendRefusalStub(nil, rpc.NDR32, 0x8007000D)}).Encode(nil))
	add((&rpc.Fault{CallID: 2, Status: rpc.StatusUnknownInterface}).Encode(nil))
	add((&rpc.BindNak{CallID: 2}).Encode(nil))
	return out
}
