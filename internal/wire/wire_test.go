package wire_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"kmsd/internal/wire"
)

func TestGUID(t *testing.T) {
	// kms-protocol.md §2: the KMS interface on the wire.
	g, err := wire.ParseGUID("51c82175-844e-4750-b0d8-ec255555bc06")
	want := []byte{0x75, 0x21, 0xc8, 0x51, 0x4e, 0x84, 0x50, 0x47, 0xb0, 0xd8, 0xec, 0x25, 0x55, 0x55, 0xbc, 0x06}
	if err != nil || !bytes.Equal(g[:], want) || g.String() != "51c82175-844e-4750-b0d8-ec255555bc06" {
		t.Fatalf("%x %v", g, err)
	}
	if b, err := wire.ParseGUID("{51C82175-844E-4750-B0D8-EC255555BC06}"); err != nil || b != g {
		t.Errorf("braces/upper case: %v %v", b, err)
	}
	for _, bad := range []string{"", "51c82175844e4750b0d8ec255555bc06", "51c82175-844e-4750-b0d8-ec255555bc0g", "51c82175-844e-4750-b0d8ec255555bc06-"} {
		if _, err := wire.ParseGUID(bad); !errors.Is(err, wire.ErrBadGUID) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestFileTime(t *testing.T) {
	// 2026-11-22 15:17:25 UTC, as recorded in v6-win10-pro.
	ft := wire.FileTimeSeconds(1795360645)
	if wire.UnixSeconds(ft) != 1795360645 || !wire.Time(ft).Equal(time.Unix(1795360645, 0)) {
		t.Errorf("round trip of %d", ft)
	}
	if wire.FileTime(time.Unix(0, 0)) != 116444736000000000 {
		t.Errorf("Unix epoch is %d", wire.FileTime(time.Unix(0, 0)))
	}
}

func TestUTF16(t *testing.T) {
	var field [128]byte
	long := "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	if n := wire.PutUTF16(field[:], long); n != 63 || len(wire.UTF16String(field[:])) != 63 {
		t.Errorf("truncation kept %d units", n)
	}
	for _, s := range []string{"Prüfstand-Ωmega.例え.test", "emoji 😀 pair", ""} {
		wire.PutUTF16(field[:], s)
		if got := wire.UTF16String(field[:]); got != s {
			t.Errorf("%q came back as %q", s, got)
		}
		if got := wire.UTF16String(wire.AppendUTF16Z(nil, s)); got != s {
			t.Errorf("AppendUTF16Z %q: %q", s, got)
		}
	}
	if wire.UTF16Len("a😀") != 3 {
		t.Error("UTF16Len counts surrogate pairs as two units")
	}
}

func TestReaderSticky(t *testing.T) {
	r := wire.NewReader([]byte{1, 2, 3})
	if r.U16() != 0x0201 || r.U32() != 0 || !errors.Is(r.Err(), wire.ErrShort) || r.U8() != 0 {
		t.Error("reader error is not sticky")
	}
}
