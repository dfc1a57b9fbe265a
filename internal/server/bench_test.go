package server_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"

	"kmsd/internal/client"
	"kmsd/internal/kms"
	"kmsd/internal/logfmt"
	"kmsd/internal/products"
	"kmsd/internal/rpc"
	"kmsd/internal/server"
)

// BenchmarkActivationLoopback measures one V6 activation over a kept-alive
// loopback connection: request PDU out, host work, response PDU back,
// with the host logging one info line per activation (to io.Discard).
func BenchmarkActivationLoopback(b *testing.B) {
	addr, bindPDU, pdu := benchHost(b)
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	roundTripB(b, nc, bindPDU)
	buf := make([]byte, 512)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := nc.Write(pdu); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(nc, buf[:16]); err != nil {
			b.Fatal(err)
		}
		n := int(buf[8]) | int(buf[9])<<8
		if _, err := io.ReadFull(nc, buf[16:n]); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	_ = context.Background()
}

func roundTripB(b *testing.B, nc net.Conn, pdu []byte) {
	nc.Write(pdu)
	hdr := make([]byte, 16)
	io.ReadFull(nc, hdr)
	body := make([]byte, int(hdr[8])|int(hdr[9])<<8-16)
	io.ReadFull(nc, body)
}

// BenchmarkNewConnectionLoopback is what Windows clients do: connect, bind,
// one request, close; the host logs each activation as it does by default.
func BenchmarkNewConnectionLoopback(b *testing.B) {
	addr, bindPDU, reqPDU := benchHost(b)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		roundTripB(b, nc, bindPDU)
		roundTripB(b, nc, reqPDU)
		nc.Close()
	}
}

// benchHost starts a host logging one info line per activation (to
// io.Discard), without a per-address cap, and returns its address, a bind
// PDU and a V6 request PDU for Windows 10/11 Professional.
func benchHost(b *testing.B) (addr string, bindPDU, reqPDU []byte) {
	addr, _ = start(b, func(s *server.Server) {
		s.Logger = slog.New(logfmt.New(io.Discard, logfmt.Options{Timestamps: true})) // as kmsd serve
		s.MaxPerAddr = 0
	})
	opt := client.DefaultOptions(products.Builtin(), testEnv(9))
	opt.Product = 63
	c := &client.Client{Opt: opt}
	base, _ := c.BuildBase()
	payload := kms.EncodeRequest(nil, &base, [16]byte{1})
	bind := rpc.Bind{Flags: 3, CallID: 1, MaxXmitFrag: 5840, MaxRecvFrag: 5840,
		Contexts: []rpc.ContextElem{{ID: 0, Abstract: rpc.KMSInterface, Transfer: []rpc.SyntaxID{rpc.NDR32Syntax}}}}
	bindPDU, _ = bind.Encode(nil)
	stub := rpc.AppendRequestStub(nil, rpc.NDR32, payload)
	req := rpc.Request{Flags: 3, CallID: 2, AllocHint: uint32(len(stub)), Stub: stub}
	reqPDU, _ = req.Encode(nil)
	return addr, bindPDU, reqPDU
}
