package rpc_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"slices"
	"testing"

	"kmsd/internal/rpc"
	"kmsd/internal/wire"
)

var (
	foreignIf = rpc.SyntaxID{UUID: wire.MustGUID("12345678-1234-abcd-ef00-0123456789ab"), Version: 1}
	unknownTS = rpc.SyntaxID{UUID: wire.MustGUID("00000000-1111-2222-3333-444444444444"), Version: 1}
)

func btfn(bits ...byte) rpc.SyntaxID {
	s := rpc.BTFNSyntax
	for i := 8; i < 16; i++ {
		s.UUID[i] = 0
	}
	copy(s.UUID[8:], bits)
	return s
}

func elem(id uint16, abstract rpc.SyntaxID, transfer ...rpc.SyntaxID) rpc.ContextElem {
	return rpc.ContextElem{ID: id, Abstract: abstract, Transfer: transfer}
}

var (
	accNDR32 = rpc.Result{Result: rpc.ResultAcceptance, Transfer: rpc.NDR32Syntax}
	accNDR64 = rpc.Result{Result: rpc.ResultAcceptance, Transfer: rpc.NDR64Syntax}
	rej22    = rpc.Result{Result: rpc.ResultProvReject, Reason: rpc.ReasonTransferUnsupported}
	rej21    = rpc.Result{Result: rpc.ResultProvReject, Reason: rpc.ReasonAbstractUnsupported}
	ack33    = rpc.Result{Result: rpc.ResultNegotiateAck, Reason: 3}
	ack31    = rpc.Result{Result: rpc.ResultNegotiateAck, Reason: 1}
)

// TestNegotiate covers every row of the "Consequences" table of
// kms-rpc.md §5.2 and the cases listed below it, plus the rules of the
// algorithm that the table does not show.
func TestNegotiate(t *testing.T) {
	kms := rpc.KMSInterface
	full := []rpc.ContextElem{elem(0, kms, rpc.NDR32Syntax), elem(1, kms, rpc.NDR64Syntax), elem(2, kms, rpc.BTFNSyntax)}
	ndr := []rpc.ContextElem{elem(0, kms, rpc.NDR32Syntax), elem(1, kms, rpc.NDR64Syntax)}
	n32btfn := []rpc.ContextElem{elem(0, kms, rpc.NDR32Syntax), elem(1, kms, rpc.BTFNSyntax)}
	only32 := []rpc.ContextElem{elem(0, kms, rpc.NDR32Syntax)}
	type sw struct{ ndr64, btfn bool }
	all := []sw{{false, false}, {false, true}, {true, false}, {true, true}}
	cases := []struct {
		name     string
		elems    []rpc.ContextElem
		switches []sw
		want     []rpc.Result
		contexts []rpc.Accepted
	}{
		{"table: NDR32,NDR64,BTFN on/on", full, []sw{{true, true}},
			[]rpc.Result{rej22, accNDR64, ack33}, []rpc.Accepted{{0, rpc.NDR32}, {1, rpc.NDR64}}},
		{"table: NDR32,NDR64,BTFN off/on", full, []sw{{false, true}},
			[]rpc.Result{accNDR32, rej22, ack33}, []rpc.Accepted{{0, rpc.NDR32}}},
		{"table: NDR32,NDR64,BTFN on/off", full, []sw{{true, false}},
			[]rpc.Result{rej22, accNDR64, rej22}, []rpc.Accepted{{0, rpc.NDR32}, {1, rpc.NDR64}}},
		{"table: NDR32,NDR64 on/any", ndr, []sw{{true, false}, {true, true}},
			[]rpc.Result{rej22, accNDR64}, []rpc.Accepted{{0, rpc.NDR32}, {1, rpc.NDR64}}},
		{"table: NDR32,BTFN on/on", n32btfn, []sw{{true, true}},
			[]rpc.Result{accNDR32, ack33}, []rpc.Accepted{{0, rpc.NDR32}}},
		{"table: NDR32 only any/any", only32, all,
			[]rpc.Result{accNDR32}, []rpc.Accepted{{0, rpc.NDR32}}},
		{"table: alter_context NDR32 only any/any", only32, all,
			[]rpc.Result{accNDR32}, []rpc.Accepted{{0, rpc.NDR32}}},
		// Cases listed below the table.
		{"BTFN bitmask 0x01", []rpc.ContextElem{elem(2, kms, btfn(0x01))}, []sw{{true, true}, {false, true}},
			[]rpc.Result{ack31}, nil},
		{"BTFN bitmask 0xFFFF", []rpc.ContextElem{elem(2, kms, btfn(0xFF, 0xFF))}, []sw{{true, true}, {false, true}},
			[]rpc.Result{ack33}, nil},
		{"NDR32 with a foreign interface", []rpc.ContextElem{elem(0, foreignIf, rpc.NDR32Syntax)}, all,
			[]rpc.Result{rej21}, nil},
		{"unknown transfer syntax for the KMS interface", []rpc.ContextElem{elem(0, kms, unknownTS)}, all,
			[]rpc.Result{rej22}, nil},
		// Further rules of §5.2.
		{"BTFN with bitmask 0x00", []rpc.ContextElem{elem(2, kms, btfn())}, []sw{{true, true}},
			[]rpc.Result{{Result: rpc.ResultNegotiateAck, Reason: 0}}, nil},
		{"BTFN with bitmask 0x02", []rpc.ContextElem{elem(2, kms, btfn(0x06))}, []sw{{true, true}},
			[]rpc.Result{{Result: rpc.ResultNegotiateAck, Reason: 2}}, nil},
		{"BTFN off", []rpc.ContextElem{elem(2, kms, rpc.BTFNSyntax)}, []sw{{true, false}, {false, false}},
			[]rpc.Result{rej22}, nil},
		{"BTFN with a foreign interface (interface not checked)", []rpc.ContextElem{elem(2, foreignIf, rpc.BTFNSyntax)}, []sw{{true, true}},
			[]rpc.Result{ack33}, nil},
		{"BTFN off with a foreign interface", []rpc.ContextElem{elem(2, foreignIf, rpc.BTFNSyntax)}, []sw{{true, false}},
			[]rpc.Result{rej22}, nil},
		{"NDR64 with a foreign interface, NDR64 on", []rpc.ContextElem{elem(1, foreignIf, rpc.NDR64Syntax)}, []sw{{true, true}},
			[]rpc.Result{rej21}, nil},
		{"NDR64 with a foreign interface, NDR64 off", []rpc.ContextElem{elem(1, foreignIf, rpc.NDR64Syntax)}, []sw{{false, true}},
			[]rpc.Result{rej22}, nil},
		{"NDR64 alone, NDR64 off", []rpc.ContextElem{elem(1, kms, rpc.NDR64Syntax)}, []sw{{false, true}},
			[]rpc.Result{rej22}, nil},
		{"unknown syntax with a foreign interface", []rpc.ContextElem{elem(0, foreignIf, unknownTS)}, all,
			[]rpc.Result{rej21}, nil},
		{"NDR64 offered under a foreign interface still makes NDR64 possible",
			[]rpc.ContextElem{elem(0, kms, rpc.NDR32Syntax), elem(1, foreignIf, rpc.NDR64Syntax)}, []sw{{true, true}},
			[]rpc.Result{rej22, rej21}, []rpc.Accepted{{0, rpc.NDR32}}},
		{"interface version not checked", []rpc.ContextElem{elem(0, rpc.SyntaxID{UUID: kms.UUID, Version: 0x00070009}, rpc.NDR32Syntax)}, all,
			[]rpc.Result{accNDR32}, []rpc.Accepted{{0, rpc.NDR32}}},
		{"transfer syntax version not checked", []rpc.ContextElem{elem(0, kms, rpc.SyntaxID{UUID: rpc.NDR32Syntax.UUID, Version: 9})}, all,
			[]rpc.Result{accNDR32}, []rpc.Accepted{{0, rpc.NDR32}}},
		// Several transfer syntaxes in one element: the first acceptable one.
		{"n_transfer_syn 2: unknown then NDR32", []rpc.ContextElem{elem(0, kms, unknownTS, rpc.NDR32Syntax)}, all,
			[]rpc.Result{accNDR32}, []rpc.Accepted{{0, rpc.NDR32}}},
		{"n_transfer_syn 2: NDR32 then NDR64, NDR64 on", []rpc.ContextElem{elem(0, kms, rpc.NDR32Syntax, rpc.NDR64Syntax)}, []sw{{true, true}},
			[]rpc.Result{accNDR64}, []rpc.Accepted{{0, rpc.NDR64}}},
		{"n_transfer_syn 2: NDR32 then NDR64, NDR64 off", []rpc.ContextElem{elem(0, kms, rpc.NDR32Syntax, rpc.NDR64Syntax)}, []sw{{false, true}},
			[]rpc.Result{accNDR32}, []rpc.Accepted{{0, rpc.NDR32}}},
		{"n_transfer_syn 2: two unknown", []rpc.ContextElem{elem(0, kms, unknownTS, unknownTS)}, all,
			[]rpc.Result{rej22}, nil},
		{"n_transfer_syn 0", []rpc.ContextElem{elem(0, kms)}, all,
			[]rpc.Result{rej22}, nil},
		{"no elements", nil, all, nil, nil},
	}
	for _, c := range cases {
		for _, s := range c.switches {
			n := rpc.Negotiation{NDR64: s.ndr64, BTFN: s.btfn}
			got, ctx := n.Negotiate(c.elems, nil, nil)
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("%s, %+v: results %+v, want %+v", c.name, n, got, c.want)
			}
			if !reflect.DeepEqual(ctx, c.contexts) {
				t.Errorf("%s, %+v: contexts %+v, want %+v", c.name, n, ctx, c.contexts)
			}
			// Appending to existing slices keeps their contents.
			pre := []rpc.Result{{Result: 9}}
			prec := []rpc.Accepted{{ID: 77, Syntax: rpc.NDR64}}
			got2, ctx2 := n.Negotiate(c.elems, pre, prec)
			if !slices.Equal(got2[1:], got) || got2[0] != pre[0] || !slices.Equal(ctx2[1:], ctx) || ctx2[0] != prec[0] {
				t.Errorf("%s, %+v: appending Negotiate: %+v %+v", c.name, n, got2, ctx2)
			}
		}
	}
}

func TestSyntaxIDs(t *testing.T) {
	// Wire bytes of kms-rpc.md §3.
	for _, c := range []struct {
		s    rpc.SyntaxID
		want string
	}{
		{rpc.KMSInterface, "7521c8514e845047b0d8ec255555bc06"},
		{rpc.NDR32Syntax, "045d888aeb1cc9119fe808002b104860"},
		{rpc.NDR64Syntax, "33057171babe37498319b5dbef9ccc36"},
		{rpc.BTFNSyntax, "2c1cb76c129840450300000000000000"},
	} {
		if got := hexs(c.s.UUID[:]); got != c.want {
			t.Errorf("%v: %s, want %s", c.s, got, c.want)
		}
	}
	if !rpc.BTFNSyntax.IsBTFN() || rpc.BTFNSyntax.BTFNBits() != 3 || btfn(0x01).BTFNBits() != 1 || rpc.NDR32Syntax.IsBTFN() {
		t.Error("IsBTFN/BTFNBits")
	}
	for s, want := range map[rpc.Syntax]string{rpc.NDR32: "NDR32", rpc.NDR64: "NDR64", rpc.SyntaxNone: "none"} {
		if s.String() != want {
			t.Errorf("%d.String() = %q", s, s.String())
		}
	}
}

func hexs(b []byte) string {
	const d = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, d[c>>4], d[c&15])
	}
	return string(out)
}

func TestParseHeader(t *testing.T) {
	good := []byte{5, 0, 11, 3, 0x10, 0, 0, 0, 160, 0, 0, 0, 2, 0, 0, 0}
	h, err := rpc.ParseHeader(good)
	if err != nil || h != (rpc.Header{Version: 5, Type: 11, Flags: 3, Drep: rpc.DrepLE, FragLength: 160, CallID: 2}) {
		t.Fatalf("ParseHeader = %+v, %v", h, err)
	}
	mod := func(f func(b []byte)) []byte { b := bytes.Clone(good); f(b); return b }
	var le *rpc.LimitError
	for _, c := range []struct {
		name string
		in   []byte
		is   func(error) bool
	}{
		{"empty", nil, func(e error) bool { return errors.Is(e, rpc.ErrShortPDU) }},
		{"15 bytes", good[:15], func(e error) bool { return errors.Is(e, rpc.ErrShortPDU) }},
		{"version 4", mod(func(b []byte) { b[0] = 4 }), func(e error) bool { return errors.Is(e, rpc.ErrBadVersion) }},
		{"frag_length 15", mod(func(b []byte) { b[8] = 15 }), func(e error) bool { return errors.Is(e, rpc.ErrMalformed) }},
		{"frag_length 5841", mod(func(b []byte) { binary.LittleEndian.PutUint16(b[8:], rpc.MaxPDU+1) }),
			func(e error) bool { return errors.As(e, &le) && le.Got == rpc.MaxPDU+1 }},
	} {
		if _, err := rpc.ParseHeader(c.in); err == nil || !c.is(err) {
			t.Errorf("%s: err = %v", c.name, err)
		}
	}
	// The largest allowed fragment passes.
	if _, err := rpc.ParseHeader(mod(func(b []byte) { binary.LittleEndian.PutUint16(b[8:], rpc.MaxPDU) })); err != nil {
		t.Errorf("frag_length %d: %v", rpc.MaxPDU, err)
	}
}

func TestUnusualFlags(t *testing.T) {
	for _, c := range []struct {
		typ, flags, want uint8
	}{
		{rpc.TypeResponse, 0x03, 0},
		{rpc.TypeResponse, 0x13, 0},
		{rpc.TypeResponse, 0xFF, 0xEC},
		{rpc.TypeFault, 0x23, 0},
		{rpc.TypeFault, 0xFF, 0xCC},
	} {
		if got := rpc.UnusualFlags(rpc.Header{Type: c.typ, Flags: c.flags}); got != c.want {
			t.Errorf("type %d flags %#x: %#x, want %#x", c.typ, c.flags, got, c.want)
		}
	}
}

func TestBindRoundTrip(t *testing.T) {
	for _, b := range []rpc.Bind{
		{Flags: 0x13, CallID: 2, MaxXmitFrag: 5840, MaxRecvFrag: 5840, Contexts: []rpc.ContextElem{
			elem(0, rpc.KMSInterface, rpc.NDR32Syntax), elem(1, rpc.KMSInterface, rpc.NDR64Syntax), elem(2, rpc.KMSInterface, rpc.BTFNSyntax)}},
		{Alter: true, Flags: 0x03, CallID: 7, MaxXmitFrag: 1, MaxRecvFrag: 65535, AssocGroupID: 0xdeadbeef,
			Contexts: []rpc.ContextElem{elem(0, rpc.KMSInterface, rpc.NDR32Syntax)}},
		{Flags: 0x03, CallID: 1, Contexts: []rpc.ContextElem{elem(9, foreignIf, unknownTS, rpc.NDR32Syntax, rpc.NDR64Syntax),
			{ID: 3, Abstract: rpc.KMSInterface, Transfer: []rpc.SyntaxID{}}}},
		{Flags: 0x03, Contexts: []rpc.ContextElem{}},
	} {
		out, err := b.Encode([]byte("prefix"))
		if err != nil || string(out[:6]) != "prefix" {
			t.Fatalf("Encode: %v", err)
		}
		pdu := out[6:]
		size := 28
		for _, c := range b.Contexts {
			size += 24 + 20*len(c.Transfer)
		}
		if len(pdu) != size || int(binary.LittleEndian.Uint16(pdu[8:])) != size {
			t.Errorf("%+v: %d bytes, frag_length %d, want %d", b, len(pdu), binary.LittleEndian.Uint16(pdu[8:]), size)
		}
		var got rpc.Bind
		if err := got.Decode(pdu); err != nil || !reflect.DeepEqual(got, b) {
			t.Errorf("round trip: %+v, %v\nwant %+v", got, err, b)
		}
	}
	if len(fullBind(t)) != 160 {
		t.Errorf("full vlmcs bind is %d bytes, want 160", len(fullBind(t)))
	}
	// Too many elements or syntaxes.
	var le *rpc.LimitError
	big := rpc.Bind{Contexts: make([]rpc.ContextElem, 256)}
	if _, err := big.Encode(nil); !errors.As(err, &le) {
		t.Errorf("256 contexts: %v", err)
	}
	big = rpc.Bind{Contexts: []rpc.ContextElem{{Transfer: make([]rpc.SyntaxID, 256)}}}
	if _, err := big.Encode(nil); !errors.As(err, &le) {
		t.Errorf("256 transfer syntaxes: %v", err)
	}
}

func fullBind(t *testing.T) []byte {
	b := rpc.Bind{Flags: 0x13, CallID: 2, MaxXmitFrag: 5840, MaxRecvFrag: 5840, Contexts: []rpc.ContextElem{
		elem(0, rpc.KMSInterface, rpc.NDR32Syntax), elem(1, rpc.KMSInterface, rpc.NDR64Syntax), elem(2, rpc.KMSInterface, rpc.BTFNSyntax)}}
	out, err := b.Encode(nil)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestBindDecodeMalformed(t *testing.T) {
	full := fullBind(t)
	for _, c := range []struct {
		name string
		in   []byte
	}{
		{"header only", full[:16]},
		{"no count", full[:24]},
		{"one element missing", full[:len(full)-44]},
		{"element cut", full[:len(full)-1]},
		{"count 255", func() []byte { b := bytes.Clone(full); b[24] = 255; return b }()},
		{"n_transfer_syn 200", func() []byte { b := bytes.Clone(full); b[28+2] = 200; return b }()},
		{"not a bind", func() []byte { b := bytes.Clone(full); b[2] = rpc.TypeRequest; return b }()},
	} {
		var b rpc.Bind
		if err := b.Decode(c.in); err == nil {
			t.Errorf("%s: decoded %+v", c.name, b)
		}
	}
}

func TestBindAckRoundTrip(t *testing.T) {
	three := []rpc.Result{rej22, accNDR64, ack33}
	for _, c := range []struct {
		ack       rpc.BindAck
		size, off int // total size, offset of n_results
	}{
		// kms-rpc.md §5.1 examples.
		{rpc.BindAck{Flags: 0x13, CallID: 2, MaxXmitFrag: 5840, MaxRecvFrag: 5840, AssocGroupID: 0x1234, SecAddr: "1688", Results: three}, 108, 32},
		{rpc.BindAck{Flags: 0x03, CallID: 2, SecAddr: "23040", Results: three}, 108, 32},
		{rpc.BindAck{Alter: true, Flags: 0x03, CallID: 2, Results: []rpc.Result{accNDR32}}, 56, 28},
		{rpc.BindAck{Flags: 0x03, SecAddr: "1", Results: nil}, 32, 28},
		{rpc.BindAck{Flags: 0x03, SecAddr: "123", Results: []rpc.Result{accNDR32}}, 60, 32},
		{rpc.BindAck{Flags: 0x03, SecAddr: "65535", Results: []rpc.Result{accNDR32}}, 60, 32},
		{rpc.BindAck{Flags: 0x03, SecAddr: "8", Results: []rpc.Result{accNDR32}}, 56, 28},
	} {
		out, err := c.ack.Encode(nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(out) != c.size || int(binary.LittleEndian.Uint16(out[8:])) != c.size || int(out[c.off]) != len(c.ack.Results) {
			t.Errorf("%+v: %d bytes, want %d with n_results at %d\n% x", c.ack, len(out), c.size, c.off, out)
		}
		if from, to := secAddrPad(out); !bytes.Equal(out[from:to], make([]byte, to-from)) {
			t.Errorf("%+v: padding not zero: % x", c.ack, out[from:to])
		}
		var got rpc.BindAck
		if err := got.Decode(out); err != nil {
			t.Fatal(err)
		}
		want := c.ack
		if want.Results == nil {
			want.Results = []rpc.Result{}
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("round trip: %+v\nwant %+v", got, want)
		}
	}
	// The client's header checks.
	ok, _ := (&rpc.BindAck{Flags: 3, SecAddr: "1688", Results: three}).Encode(nil)
	for name, f := range map[string]func(b []byte){
		"version 5.1":    func(b []byte) { b[1] = 1 },
		"big endian":     func(b []byte) { b[4] = 0 },
		"auth_length":    func(b []byte) { b[10] = 8 },
		"no LAST flag":   func(b []byte) { b[3] = 1 },
		"not an answer":  func(b []byte) { b[2] = rpc.TypeBind },
		"results cut":    nil,
		"too many":       func(b []byte) { b[32] = 4 },
		"address cut":    func(b []byte) { binary.LittleEndian.PutUint16(b[24:], 200) },
		"version 4.0":    func(b []byte) { b[0] = 4 },
		"no FIRST flag":  func(b []byte) { b[3] = 2 },
		"drep byte 1":    func(b []byte) { b[5] = 1 },
		"response type":  func(b []byte) { b[2] = rpc.TypeResponse },
		"header only":    nil,
		"bind_nak type":  func(b []byte) { b[2] = rpc.TypeBindNak },
		"alter type":     func(b []byte) { b[2] = rpc.TypeAlterContext },
		"fault type":     func(b []byte) { b[2] = rpc.TypeFault },
		"request type":   func(b []byte) { b[2] = rpc.TypeRequest },
		"auth_length hi": func(b []byte) { b[11] = 1 },
	} {
		in := bytes.Clone(ok)
		switch name {
		case "results cut":
			in = in[:len(in)-1]
		case "header only":
			in = in[:16]
		default:
			f(in)
		}
		var a rpc.BindAck
		if err := a.Decode(in); err == nil {
			t.Errorf("%s: decoded %+v", name, a)
		}
	}
}

func TestAckFlags(t *testing.T) {
	for _, c := range []struct {
		alter       bool
		flags, want uint8
	}{
		{false, 0x13, 0x13}, {false, 0x03, 0x03}, {false, 0xFF, 0x13}, {false, 0x00, 0x03},
		{true, 0x13, 0x03}, {true, 0x03, 0x03},
	} {
		if got := rpc.AckFlags(&rpc.Bind{Alter: c.alter, Flags: c.flags}); got != c.want {
			t.Errorf("alter %v flags %#x: %#x, want %#x", c.alter, c.flags, got, c.want)
		}
	}
}

func TestRequestRoundTrip(t *testing.T) {
	obj := wire.MustGUID("01234567-89ab-cdef-0123-456789abcdef")
	payload := bytes.Repeat([]byte{0xA5}, 260)
	for _, r := range []rpc.Request{
		{Flags: 0x03, CallID: 2, AllocHint: 268, ContextID: 0, Stub: rpc.AppendRequestStub(nil, rpc.NDR32, payload)},
		{Flags: 0x03, CallID: 3, AllocHint: 276, ContextID: 1, Stub: rpc.AppendRequestStub(nil, rpc.NDR64, payload)},
		{Flags: 0x03 | rpc.FlagObjectUUID, CallID: 4, Opnum: 3, Object: &obj, Stub: []byte{1, 2, 3}},
		{Flags: 0x01, CallID: 5, Stub: []byte{}},
	} {
		out, err := r.Encode(nil)
		if err != nil {
			t.Fatal(err)
		}
		want := 24 + len(r.Stub)
		if r.Object != nil {
			want += 16
		}
		if len(out) != want {
			t.Errorf("%d bytes, want %d", len(out), want)
		}
		var got rpc.Request
		if err := got.Decode(out); err != nil || !reflect.DeepEqual(got, r) {
			t.Errorf("round trip: %+v, %v\nwant %+v", got, err, r)
		}
	}
	// kms-rpc.md §9.1 sizes: NDR32 284/292, NDR64 292/300.
	for _, c := range []struct {
		s    rpc.Syntax
		n    int
		want int
	}{{rpc.NDR32, 252, 284}, {rpc.NDR32, 260, 292}, {rpc.NDR64, 252, 292}, {rpc.NDR64, 260, 300}} {
		stub := rpc.AppendRequestStub(nil, c.s, make([]byte, c.n))
		out, _ := (&rpc.Request{Flags: 3, AllocHint: uint32(len(stub)), Stub: stub}).Encode(nil)
		if len(out) != c.want {
			t.Errorf("%v request with %d-byte payload: %d bytes, want %d", c.s, c.n, len(out), c.want)
		}
		if p, err := rpc.RequestPayload(stub, c.s); err != nil || len(p) != c.n {
			t.Errorf("%v RequestPayload: %d bytes, %v", c.s, len(p), err)
		}
	}
	// An object UUID flag without the UUID, a short header, the wrong type.
	var r rpc.Request
	hdr, _ := (&rpc.Request{Flags: 3}).Encode(nil)
	for name, in := range map[string][]byte{
		"object UUID missing": func() []byte { b := bytes.Clone(hdr); b[3] |= rpc.FlagObjectUUID; return b }(),
		"cut":                 hdr[:20],
		"bind type":           func() []byte { b := bytes.Clone(hdr); b[2] = rpc.TypeBind; return b }(),
	} {
		if err := r.Decode(in); err == nil {
			t.Errorf("%s: decoded %+v", name, r)
		}
	}
}

func TestRequestDecodeStubBounds(t *testing.T) {
	// The stub ends at frag_length − auth_length − 8 (sec_trailer) and
	// never past the input.
	stub := []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	pdu, _ := (&rpc.Request{Flags: 3, Stub: stub}).Encode(nil)
	var r rpc.Request
	withAuth := bytes.Clone(pdu)
	binary.LittleEndian.PutUint16(withAuth[10:], 4)
	if err := r.Decode(withAuth); err != nil || !bytes.Equal(r.Stub, stub[:4]) {
		t.Errorf("auth_length 4: stub % x, %v", r.Stub, err)
	}
	trailing := append(bytes.Clone(pdu), 0xEE, 0xEE)
	if err := r.Decode(trailing); err != nil || !bytes.Equal(r.Stub, stub) {
		t.Errorf("trailing bytes: stub % x, %v", r.Stub, err)
	}
	short := bytes.Clone(pdu)
	binary.LittleEndian.PutUint16(short[8:], 60000)
	if err := r.Decode(short); err != nil || !bytes.Equal(r.Stub, stub) {
		t.Errorf("frag_length past the end: stub % x, %v", r.Stub, err)
	}
}

func TestRequestPayloadNDR64Alignment(t *testing.T) {
	payload := []byte("payload")
	stub := rpc.AppendRequestStub(nil, rpc.NDR64, payload)
	copy(stub[4:8], []byte{0xCE, 0xCE, 0xCE, 0xCE}) // impacket's alignment filler
	if p, err := rpc.RequestPayload(stub, rpc.NDR64); err != nil || string(p) != "payload" {
		t.Errorf("NDR64 with filler: %q, %v", p, err)
	}
	// Length fields are ignored; a longer payload is accepted.
	stub32 := rpc.AppendRequestStub(nil, rpc.NDR32, payload)
	binary.LittleEndian.PutUint32(stub32, 1)
	if p, err := rpc.RequestPayload(append(stub32, 'x'), rpc.NDR32); err != nil || string(p) != "payloadx" {
		t.Errorf("NDR32 with wrong lengths: %q, %v", p, err)
	}
	for _, c := range []struct {
		s rpc.Syntax
		n int
	}{{rpc.NDR32, 7}, {rpc.NDR64, 15}} {
		if _, err := rpc.RequestPayload(make([]byte, c.n), c.s); !errors.Is(err, rpc.ErrShortPDU) {
			t.Errorf("%v stub of %d bytes: %v", c.s, c.n, err)
		}
	}
	if p, err := rpc.RequestPayload(make([]byte, 16), rpc.NDR64); err != nil || len(p) != 0 {
		t.Errorf("empty NDR64 payload: %v %v", p, err)
	}
}

func TestResponseRoundTrip(t *testing.T) {
	for _, r := range []rpc.Response{
		{Flags: 0x03, CallID: 2, AllocHint: 276, ContextID: 0, Stub: rpc.AppendResponseStub(nil, rpc.NDR32, make([]byte, 260))},
		{Flags: 0x13, CallID: 9, AllocHint: 20, ContextID: 1, CancelCount: 3, Stub: rpc.AppendRefusalStub(nil, rpc.NDR64, 0xC004F042)},
		{Flags: 0x03, Stub: []byte{}},
	} {
		out, err := r.Encode(nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(out) != 24+len(r.Stub) {
			t.Errorf("%d bytes for a %d-byte stub", len(out), len(r.Stub))
		}
		var got rpc.Response
		if err := got.Decode(out); err != nil || !reflect.DeepEqual(got, r) {
			t.Errorf("round trip: %+v, %v\nwant %+v", got, err, r)
		}
	}
	var r rpc.Response
	ok, _ := (&rpc.Response{Flags: 3}).Encode(nil)
	for name, f := range map[string]func([]byte) []byte{
		"cut":          func(b []byte) []byte { return b[:23] },
		"version 5.1":  func(b []byte) []byte { b[1] = 1; return b },
		"drep":         func(b []byte) []byte { b[4] = 0; return b },
		"auth":         func(b []byte) []byte { b[10] = 1; return b },
		"no FIRST":     func(b []byte) []byte { b[3] = 2; return b },
		"fault type":   func(b []byte) []byte { b[2] = rpc.TypeFault; return b },
		"request type": func(b []byte) []byte { b[2] = rpc.TypeRequest; return b },
	} {
		if err := r.Decode(f(bytes.Clone(ok))); err == nil {
			t.Errorf("%s: decoded %+v", name, r)
		}
	}
}

func TestFaultRoundTrip(t *testing.T) {
	for _, f := range []rpc.Fault{
		{CallID: 5, ContextID: 0, Status: rpc.StatusUnknownInterface},
		{CallID: 0xFFFFFFFF, ContextID: 7, Status: rpc.StatusOpRangeError},
	} {
		out, err := f.Encode(nil)
		if err != nil {
			t.Fatal(err)
		}
		// kms-rpc.md §10: 32 bytes, flags 0x23, alloc_hint 32, zero reserved bytes.
		h, err := rpc.ParseHeader(out)
		if err != nil || len(out) != 32 || h.FragLength != 32 || h.Type != rpc.TypeFault || h.Flags != 0x23 || h.CallID != f.CallID ||
			binary.LittleEndian.Uint32(out[16:]) != 32 || out[22] != 0 || out[23] != 0 || binary.LittleEndian.Uint32(out[28:]) != 0 {
			t.Errorf("fault PDU % x (%+v, %v)", out, h, err)
		}
		if rpc.UnusualFlags(h) != 0 {
			t.Errorf("fault flags unusual: %#x", rpc.UnusualFlags(h))
		}
		var got rpc.Fault
		if err := got.Decode(out); err != nil || got != f {
			t.Errorf("round trip: %+v, %v", got, err)
		}
		if err := got.Decode(out[:27]); !errors.Is(err, rpc.ErrShortPDU) {
			t.Errorf("cut fault: %v", err)
		}
	}
	var got rpc.Fault
	resp, _ := (&rpc.Response{Flags: 3}).Encode(nil)
	if err := got.Decode(resp); err == nil {
		t.Error("a response decoded as a fault")
	}
}

func TestBindNak(t *testing.T) {
	out, err := (&rpc.BindNak{CallID: 2, Reason: 4}).Encode(nil)
	want := []byte{5, 0, rpc.TypeBindNak, 3, 0x10, 0, 0, 0, 21, 0, 0, 0, 2, 0, 0, 0, 4, 0, 1, 5, 0}
	if err != nil || !bytes.Equal(out, want) {
		t.Errorf("bind_nak % x, %v; want % x", out, err, want)
	}
}

// TestResponseStubSizes checks the sizes of kms-rpc.md §9.2 and §9.3 as
// whole PDUs.
func TestResponseStubSizes(t *testing.T) {
	for _, c := range []struct {
		name      string
		s         rpc.Syntax
		m         int // KMS response size
		pad       int
		allocHint int
		pdu       int
	}{
		{"V4 P=100 NDR32", rpc.NDR32, 60 + 100, 0, 12 + 160 + 4, 200},
		{"V4 P=98 NDR32", rpc.NDR32, 60 + 98, 2, 12 + 158 + 2 + 4, 200},
		{"V4 P=100 NDR64", rpc.NDR64, 160, 0, 24 + 160 + 4, 212},
		{"V4 P=98 NDR64", rpc.NDR64, 158, 2, 24 + 158 + 2 + 4, 212},
		{"V5/V6 260 NDR32", rpc.NDR32, 260, 0, 276, 300},
		{"V5/V6 260 NDR64", rpc.NDR64, 260, 0, 288, 312},
		{"V6 longest ePID NDR64", rpc.NDR64, 292, 0, 320, 344},
		{"odd M=1 NDR32", rpc.NDR32, 1, 3, 20, 44},
		{"M=3 NDR64", rpc.NDR64, 3, 1, 32, 56},
		{"M=0 NDR32", rpc.NDR32, 0, 0, 16, 40},
	} {
		payload := make([]byte, c.m)
		for i := range payload {
			payload[i] = byte(i*7 + 1)
		}
		stub := rpc.AppendResponseStub([]byte("xy"), c.s, payload)[2:]
		if len(stub) != c.allocHint || rpc.ResponseStubLen(c.s, c.m) != c.allocHint {
			t.Errorf("%s: stub %d bytes, ResponseStubLen %d, want %d", c.name, len(stub), rpc.ResponseStubLen(c.s, c.m), c.allocHint)
		}
		hdr := 12
		if c.s == rpc.NDR64 {
			hdr = 24
		}
		if !bytes.Equal(stub[c.allocHint-4-c.pad:c.allocHint-4], make([]byte, c.pad)) || !bytes.Equal(stub[hdr:hdr+c.m], payload) ||
			binary.LittleEndian.Uint32(stub[c.allocHint-4:]) != 0 || binary.LittleEndian.Uint32(stub) != uint32(c.m) {
			t.Errorf("%s: stub layout % x", c.name, stub)
		}
		pdu, err := (&rpc.Response{Flags: 3, CallID: 2, AllocHint: uint32(len(stub)), Stub: stub}).Encode(nil)
		if err != nil || len(pdu) != c.pdu {
			t.Errorf("%s: PDU %d bytes, want %d (%v)", c.name, len(pdu), c.pdu, err)
		}
		st, err := rpc.DecodeResponseStub(stub, c.s)
		if err != nil || !bytes.Equal(st.Payload, payload) || st.Payload == nil || st.ReturnValue != 0 || st.PaddingNonZero {
			t.Errorf("%s: DecodeResponseStub = %+v, %v", c.name, st, err)
		}
	}
	for _, c := range []struct {
		s         rpc.Syntax
		allocHint int
		pdu       int
	}{{rpc.NDR32, 12, 36}, {rpc.NDR64, 20, 44}} {
		for _, hr := range []uint32{0x8007000D, 0xC004F042, 0xC004F06C, 0xC004D104} {
			stub := rpc.AppendRefusalStub(nil, c.s, hr)
			pdu, err := (&rpc.Response{Flags: 3, AllocHint: uint32(len(stub)), Stub: stub}).Encode(nil)
			if err != nil || len(stub) != c.allocHint || len(pdu) != c.pdu || binary.LittleEndian.Uint32(stub[len(stub)-4:]) != hr {
				t.Errorf("%v refusal %#x: stub %d, PDU %d bytes; want %d, %d", c.s, hr, len(stub), len(pdu), c.allocHint, c.pdu)
			}
			var r rpc.Response
			if err := r.Decode(pdu); err != nil {
				t.Fatal(err)
			}
			st, err := rpc.DecodeResponseStub(r.Stub, c.s)
			if err != nil || st.Payload != nil || st.ReturnValue != hr {
				t.Errorf("%v refusal %#x decoded as %+v, %v", c.s, hr, st, err)
			}
		}
	}
}

func TestDecodeResponseStubErrors(t *testing.T) {
	payload := []byte{1, 2, 3, 4, 5, 6}
	for _, s := range []rpc.Syntax{rpc.NDR32, rpc.NDR64} {
		good := rpc.AppendResponseStub(nil, s, payload)
		// Every truncation fails. A cut inside the max count is reported
		// as differing sizes (the sticky reader yields 0 there), so either
		// sentinel is accepted.
		for n := 0; n < len(good); n++ {
			if _, err := rpc.DecodeResponseStub(good[:n], s); !errors.Is(err, rpc.ErrShortPDU) && !errors.Is(err, rpc.ErrMalformed) {
				t.Errorf("%v cut to %d: %v", s, n, err)
			}
		}
		refusal := rpc.AppendRefusalStub(nil, s, 0x8007000D)
		for n := 0; n < len(refusal); n++ {
			if _, err := rpc.DecodeResponseStub(refusal[:n], s); !errors.Is(err, rpc.ErrShortPDU) {
				t.Errorf("%v refusal cut to %d: %v", s, n, err)
			}
		}
		// Size and max count differ.
		bad := bytes.Clone(good)
		bad[0]++
		if _, err := rpc.DecodeResponseStub(bad, s); !errors.Is(err, rpc.ErrMalformed) {
			t.Errorf("%v differing sizes: %v", s, err)
		}
		// Non-zero padding is a warning only.
		bad = bytes.Clone(good)
		bad[len(bad)-5] = 0xAA
		if st, err := rpc.DecodeResponseStub(bad, s); err != nil || !st.PaddingNonZero || !bytes.Equal(st.Payload, payload) {
			t.Errorf("%v padding: %+v, %v", s, st, err)
		}
		// A non-zero return value after a payload is reported as is.
		bad = bytes.Clone(good)
		bad[len(bad)-1] = 0x80
		if st, err := rpc.DecodeResponseStub(bad, s); err != nil || st.ReturnValue != 0x80000000 {
			t.Errorf("%v return value: %+v, %v", s, st, err)
		}
		// Any non-zero referent is accepted.
		bad = bytes.Clone(good)
		bad[s2refOff(s)] = 0x55
		if st, err := rpc.DecodeResponseStub(bad, s); err != nil || !bytes.Equal(st.Payload, payload) {
			t.Errorf("%v referent: %+v, %v", s, st, err)
		}
	}
	// A huge size field must not be trusted.
	huge := []byte{0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 2, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0}
	if _, err := rpc.DecodeResponseStub(huge, rpc.NDR32); !errors.Is(err, rpc.ErrShortPDU) {
		t.Errorf("huge size: %v", err)
	}
}

func s2refOff(s rpc.Syntax) int {
	if s == rpc.NDR64 {
		return 8
	}
	return 4
}

func frag(flags uint8, call uint32, ctx uint16, stub string) *rpc.Request {
	return &rpc.Request{Flags: flags, CallID: call, ContextID: ctx, Opnum: 0, Stub: []byte(stub)}
}

func TestReassembler(t *testing.T) {
	var a rpc.Reassembler
	// A single-fragment request passes through unchanged.
	one := frag(rpc.FlagFirst|rpc.FlagLast, 1, 0, "whole")
	if got, err := a.Add(one); err != nil || got != one {
		t.Fatalf("FIRST|LAST: %v, %v", got, err)
	}
	// FIRST + middle + LAST.
	first := frag(rpc.FlagFirst, 2, 1, "abc")
	first.Opnum = 0
	if got, err := a.Add(first); got != nil || err != nil {
		t.Fatalf("FIRST: %v, %v", got, err)
	}
	if got, err := a.Add(frag(0, 2, 9, "def")); got != nil || err != nil {
		t.Fatalf("middle: %v, %v", got, err)
	}
	got, err := a.Add(frag(rpc.FlagLast, 2, 9, "gh"))
	if err != nil || got == nil || string(got.Stub) != "abcdefgh" || got.ContextID != 1 || got.CallID != 2 || got.Flags&3 != 3 {
		t.Fatalf("LAST: %+v, %v", got, err)
	}
	// The assembler is reusable.
	if got, err := a.Add(frag(rpc.FlagFirst, 3, 0, "x")); got != nil || err != nil {
		t.Fatal(got, err)
	}
	if got, err := a.Add(frag(rpc.FlagLast, 3, 0, "y")); err != nil || string(got.Stub) != "xy" {
		t.Fatalf("second call: %+v, %v", got, err)
	}

	var le *rpc.LimitError
	// Cap exceeded by the middle fragments.
	var b rpc.Reassembler
	half := string(make([]byte, rpc.MaxStub/2))
	if _, err := b.Add(frag(rpc.FlagFirst, 4, 0, half)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Add(frag(0, 4, 0, half)); err != nil {
		t.Fatalf("exactly MaxStub: %v", err)
	}
	if _, err := b.Add(frag(rpc.FlagLast, 4, 0, "z")); !errors.As(err, &le) || le.Max != rpc.MaxStub {
		t.Fatalf("past MaxStub: %v", err)
	}
	// After the failure a new request is accepted.
	if got, err := b.Add(frag(3, 5, 0, "ok")); err != nil || string(got.Stub) != "ok" {
		t.Fatalf("after limit: %+v, %v", got, err)
	}
	// A first fragment alone bigger than the cap.
	var c rpc.Reassembler
	if _, err := c.Add(frag(rpc.FlagFirst, 6, 0, string(make([]byte, rpc.MaxStub+1)))); !errors.As(err, &le) {
		t.Fatalf("oversized first: %v", err)
	}

	// Fragments out of order.
	for name, seq := range map[string][]*rpc.Request{
		"middle without first": {frag(0, 7, 0, "m")},
		"last without first":   {frag(rpc.FlagLast, 7, 0, "m")},
		"other call inside":    {frag(rpc.FlagFirst, 7, 0, "a"), frag(rpc.FlagLast, 8, 0, "b")},
		"new first inside":     {frag(rpc.FlagFirst, 7, 0, "a"), frag(rpc.FlagFirst, 8, 0, "b")},
		"whole inside":         {frag(rpc.FlagFirst, 7, 0, "a"), frag(3, 8, 0, "b")},
	} {
		var r rpc.Reassembler
		var err error
		for _, f := range seq {
			if _, err = r.Add(f); err != nil {
				break
			}
		}
		if !errors.Is(err, rpc.ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestBindReservedCountBytes: n_context_elem is one byte and the reserved
// bytes after it are ignored (kms-rpc.md §4 allows ignoring or closing).
func TestBindReservedCountBytes(t *testing.T) {
	for _, off := range []int{25, 26, 27} {
		b := fullBind(t)
		b[off] = 1
		var got rpc.Bind
		if err := got.Decode(b); err != nil || len(got.Contexts) != 3 {
			t.Errorf("reserved byte %d set: %d contexts, %v; want 3 and no error", off, len(got.Contexts), err)
		}
	}
}
