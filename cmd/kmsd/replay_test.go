package main

import (
	"bytes"
	crand "crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"kmsd/internal/config"
	"kmsd/internal/kms"
	"kmsd/internal/products"
	"kmsd/internal/rpc"
	"kmsd/internal/server"
	"kmsd/internal/vectors"
	"kmsd/internal/wire"
)

// TestReplayRecordedConversations sends every recorded client PDU, in
// order, to a host configured from the recording's vlmcsd command line
// (and ini file), and compares every answer with vlmcsd's: PDU type and
// size, return code, and for V4 the response bytes. The host uses the
// ePID vlmcsd answered with, so sizes can match.
func TestReplayRecordedConversations(t *testing.T) {
	files := vectors.Load(t)
	var pdus, v4Identical, files1 int
	for fi := range files {
		f := &files[fi]
		if f.ServerBuild != "current" {
			continue // the older vlmcsd has another product table and intervals
		}
		files1++
		n, v4 := replayFile(t, f)
		pdus += n
		v4Identical += v4
	}
	t.Logf("%d recordings, %d answers compared, %d V4 responses byte-identical", files1, pdus, v4Identical)
	if pdus == 0 || v4Identical == 0 {
		t.Fatal("nothing compared")
	}
}

func replayFile(t *testing.T, f *vectors.File) (compared, v4Identical int) {
	t.Helper()
	args := f.ServerArgs[1:]
	cfg, warns, err := config.LoadServer(args, func(name string) ([]byte, error) {
		if text, ok := f.ServerFiles[name]; ok {
			return []byte(text), nil
		}
		return nil, os.ErrNotExist
	}, csvlkIniNames(products.Builtin()))
	if err != nil || len(warns) > 0 {
		t.Fatalf("%s: server args %v: %v %v", f.Name, args, err, warns)
	}
	var mu sync.Mutex
	var now time.Time
	var epid string
	env := kms.Env{Rand: zeroReader{}, Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return now }}
	logger := slog.New(slog.DiscardHandler)
	host, ndr64, err := buildHost(&cfg, products.Builtin(), true, env, logger)
	if err != nil {
		t.Fatalf("%s: %v", f.Name, err)
	}
	host.Env.Rand = crand.Reader
	host.FreshEPID = func(int) string { mu.Lock(); defer mu.Unlock(); return epid }
	srv := &server.Server{Host: host, Negotiation: rpc.Negotiation{NDR64: ndr64, BTFN: cfg.BTFN},
		IdleTimeout: 5 * time.Second, Disconnect: cfg.Disconnect, Logger: logger}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	defer l.Close()

	calls, err := f.Calls()
	if err != nil {
		t.Fatal(err)
	}
	call := 0
	for ci, conn := range f.Connections {
		nc, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		pdus := conn.PDUs
		for i := 0; i < len(pdus); i++ {
			p := &pdus[i]
			if p.Dir != "c2s" {
				continue
			}
			var want *vectors.PDU
			if i+1 < len(pdus) && pdus[i+1].Dir == "s2c" {
				want = &pdus[i+1]
			}
			if p.Type == "request" {
				ex := calls[call].Exchange
				call++
				mu.Lock()
				epid = ""
				if ex.Response != nil {
					epid = ex.Response.EPID
				}
				now = requestTime(ex.KMSRequest, f.ClientClockShiftSeconds)
				mu.Unlock()
			}
			got := roundTrip(t, nc, p.Data)
			if want == nil {
				continue
			}
			where := fmt.Sprintf("%s conn %d pdu %d (%s)", f.Name, ci, i, p.Type)
			if got == nil {
				t.Errorf("%s: no answer, vlmcsd sent %s", where, want.Type)
				break
			}
			compared++
			if got[2] != want.Data[2] || len(got) != len(want.Data) {
				t.Errorf("%s: answer type %d size %d, vlmcsd type %d size %d", where, got[2], len(got), want.Data[2], len(want.Data))
				continue
			}
			if got[2] == rpc.TypeResponse {
				v4Identical += compareResponse(t, where, got, want.Data)
			}
		}
		nc.Close()
	}
	return compared, v4Identical
}

// compareResponse checks the return code, and for V4 payloads the bytes.
func compareResponse(t *testing.T, where string, got, want []byte) int {
	rc := func(b []byte) uint32 { return binary.LittleEndian.Uint32(b[len(b)-4:]) }
	if rc(got) != rc(want) {
		t.Errorf("%s: return code 0x%08X, vlmcsd 0x%08X", where, rc(got), rc(want))
		return 0
	}
	// Success stubs hold the payload right after the 12- or 24-byte NDR
	// head; a V4 payload starts with version 4.0.
	for _, head := range []int{36, 48} {
		if len(want) > head+4 && binary.LittleEndian.Uint16(want[head+2:]) == 4 && rc(want) == 0 &&
			binary.LittleEndian.Uint32(want[24:]) == uint32(len(want)-head-4-(4-(len(want)-head-4)%4)%4) {
			if !bytes.Equal(got, want) {
				t.Errorf("%s: V4 response differs from vlmcsd's\n got %x\nwant %x", where, got, want)
				return 0
			}
			return 1
		}
	}
	return 0
}

func roundTrip(t *testing.T, nc net.Conn, pdu []byte) []byte {
	nc.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := nc.Write(pdu); err != nil {
		return nil
	}
	hdr := make([]byte, 16)
	if _, err := io.ReadFull(nc, hdr); err != nil {
		return nil
	}
	n := int(binary.LittleEndian.Uint16(hdr[8:]))
	body := make([]byte, n-16)
	if _, err := io.ReadFull(nc, body); err != nil {
		return nil
	}
	return append(hdr, body...)
}

// requestTime is the host's clock when vlmcsd saw the request: the client's
// time stamp minus the clock shift applied to vlmcs.
func requestTime(req []byte, shift int64) time.Time {
	var r kms.Request
	if err := r.Decode(req); err != nil {
		return time.Now()
	}
	return wire.Time(r.Base.ClientTime).Add(-time.Duration(shift) * time.Second)
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(i)
	}
	return len(p), nil
}
