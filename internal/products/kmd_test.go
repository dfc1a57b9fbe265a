package products

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"strings"
	"testing"

	"kmsd/internal/wire"
)

// kmdCarried returns a copy of t reduced to what a KMD file carries.
func kmdCarried(t *Table) Table {
	c := Table{
		Apps:       append([]App{}, t.Apps...),
		CSVLKs:     append([]CSVLK{}, t.CSVLKs...),
		KMSItems:   append([]KMSItem{}, t.KMSItems...),
		Products:   append([]Product{}, t.Products...),
		HostBuilds: append([]HostBuild{}, t.HostBuilds...),
	}
	for i := range c.Products {
		c.Products[i].GVLK = ""
	}
	return c
}

func unindexed(t *Table) Table {
	c := *t
	c.idx = nil
	return c
}

func TestKMDRoundTripBuiltin(t *testing.T) {
	b := Builtin()
	data, err := b.EncodeKMD()
	if err != nil {
		t.Fatal(err)
	}
	got, info, err := DecodeKMD(data)
	if err != nil {
		t.Fatal(err)
	}
	if !info.NDR64 || info.MinorVersion != 0 {
		t.Errorf("header info %+v, want NDR64 on, minor 0", info)
	}
	want := kmdCarried(b)
	g := unindexed(got)
	for _, f := range []struct {
		name      string
		got, want any
	}{
		{"Apps", g.Apps, want.Apps},
		{"CSVLKs", g.CSVLKs, want.CSVLKs},
		{"KMSItems", g.KMSItems, want.KMSItems},
		{"Products", g.Products, want.Products},
		{"HostBuilds", g.HostBuilds, want.HostBuilds},
	} {
		if !reflect.DeepEqual(f.got, f.want) {
			t.Errorf("%s differ after the round trip:\n got %+v\nwant %+v", f.name, f.got, f.want)
		}
	}
	if g.AllBuilds != nil || g.Extra != nil {
		t.Errorf("AllBuilds/Extra are not in the format but were read")
	}
	if got.KMSByID(b.KMSItems[30].ID) != 30 || got.ProductBySKU(b.Products[251].SKU) != 251 {
		t.Errorf("the table read is not indexed")
	}
	again, err := got.EncodeKMD()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, data) {
		t.Errorf("EncodeKMD(ReadKMD(EncodeKMD(builtin))) differs from EncodeKMD(builtin)")
	}
}

// TestKMDBuiltinLayout compares the encoded built-in table with vlmcsd's
// embedded copy (kms-products-vlmcsd.md §1, kms-data.md §2.5).
func TestKMDBuiltinLayout(t *testing.T) {
	data, err := Builtin().EncodeKMD()
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	for _, c := range []struct {
		name   string
		at     int
		want   uint64
		width  int
		isByte bool
	}{
		{"CsvlkCount", kmdOffCSVLKCount, 7, 1, true},
		{"Flags", kmdOffFlags, 1, 1, true},
		{"AppItemCount", kmdOffAppCount, 3, 4, false},
		{"KmsItemCount", kmdOffKMSCount, 36, 4, false},
		{"SkuItemCount", kmdOffSKUCount, 252, 4, false},
		{"HostBuildCount", kmdOffHostCount, 3, 4, false},
		{"AppItemOffset", kmdOffAppTable, 0x128, 8, false},
		{"KmsItemOffset", kmdOffKMSTable, 0x188, 8, false},
		{"SkuItemOffset", kmdOffSKUTable, 0x608, 8, false},
		{"HostBuildOffset", kmdOffHostTable, 0x2588, 8, false},
	} {
		var got uint64
		switch c.width {
		case 1:
			got = uint64(data[c.at])
		case 4:
			got = uint64(le.Uint32(data[c.at:]))
		case 8:
			got = le.Uint64(data[c.at:])
		}
		if got != c.want {
			t.Errorf("%s = %#x, vlmcsd's table has %#x", c.name, got, c.want)
		}
	}
	if first := le.Uint64(data[kmdHeaderSize:]); first != 0x25e8 {
		t.Errorf("strings start at %#x, vlmcsd's at 0x25e8", first)
	}
	if len(data) != 18723 {
		t.Errorf("encoded size %d, vlmcsd's table has 18723 bytes", len(data))
	}
	// Application default CSVLKs as in vlmcsd's table (0, 1, 2).
	for i, want := range []byte{0, 1, 2} {
		if got := data[0x128+32*i+30]; got != want {
			t.Errorf("application %d default CSVLK %d, want %d", i, got, want)
		}
	}
	// SKU records repeat their KMS item's flags: product 14 is Windows 8
	// Professional (Retail), product 106 is under the preview item 23.
	if data[0x608+32*13+28] != 1 || data[0x608+32*105+29] != 1 {
		t.Errorf("SKU records do not repeat the retail/preview flags of their KMS item")
	}
}

// smallTable is a hand-made table with edge values.
func smallTable() *Table {
	g := func(s string) wire.GUID { return wire.MustGUID(s) }
	return &Table{
		Apps: []App{{ID: g("55c92734-d682-4d71-983e-d6ec3f16059f"), Name: "Windows", ClientSlots: 255},
			{ID: g("0ff1ce15-a989-479d-af46-f275c6370663"), Name: "", ClientSlots: 0}},
		CSVLKs: []CSVLK{{IniName: "Windows", DisplayName: "Ünïcode ✓", GroupID: 0xFFFFFFFF, MinKeyID: 0, MaxKeyID: 1,
			ReleaseUnix: -86400, BuiltinEPID: ""}},
		KMSItems: []KMSItem{{ID: g("00000000-0000-0000-0000-000000000001"), Name: "k0", App: 1, CSVLK: 0, Protocol: 255, NPolicy: 0, Retail: true, Preview: true}},
		Products: []Product{},
		HostBuilds: []HostBuild{{Build: 0x7FFFFFFF, PlatformID: 0, ReleaseUnix: 1 << 40, UseForEPID: true, Name: "max"},
			{Build: 0x7FFFFFFF, PlatformID: 0x7FFFFFFF, MayBeServer: true, Name: ""},
			{Build: 0, UsesNDR64: true, Name: "zero"}},
	}
}

func TestKMDRoundTripSmall(t *testing.T) {
	tab := smallTable()
	data, err := tab.EncodeKMD()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ReadKMD(data)
	if err != nil {
		t.Fatal(err)
	}
	want := *tab
	want.Index()
	if !reflect.DeepEqual(*got, want) {
		t.Errorf("round trip:\n got %+v\nwant %+v", *got, want)
	}
	// An empty SKU table shares its offset with the host builds, as in
	// vlmcsd's reduced table.
	le := binary.LittleEndian
	if le.Uint64(data[kmdOffSKUTable:]) != le.Uint64(data[kmdOffHostTable:]) {
		t.Errorf("empty SKU table not at the host-build offset")
	}
}

func TestEncodeKMDErrors(t *testing.T) {
	tests := []struct {
		name   string
		mod    func(*Table)
		substr string
	}{
		{"empty", func(t *Table) { *t = Table{} }, "at least one CSVLK"},
		{"no host builds", func(t *Table) { t.HostBuilds = nil }, "at least one"},
		{"N policy", func(t *Table) { t.KMSItems[0].NPolicy = 256 }, "N policy 256 does not fit"},
		{"protocol", func(t *Table) { t.KMSItems[0].Protocol = 300 }, "protocol 300"},
		{"client slots", func(t *Table) { t.Apps[0].ClientSlots = 256 }, "client-list size 256"},
		{"app index", func(t *Table) { t.KMSItems[0].App = 2 }, "points to application 2, table has 2"},
		{"csvlk index", func(t *Table) { t.KMSItems[0].CSVLK = 1 }, "points to CSVLK 1, table has 1"},
		{"kms index", func(t *Table) { t.Products = []Product{{Name: "p", KMS: 1}} }, "product 1 (p) points to KMS item 1"},
		{"NUL", func(t *Table) { t.Apps[1].Name = "a\x00b" }, "NUL"},
		{"UTF-8", func(t *Table) { t.CSVLKs[0].IniName = "\xff" }, "UTF-8"},
		{"key range", func(t *Table) { t.CSVLKs[0].MaxKeyID = 0 }, "MaxKeyID 0 is not above MinKeyID 0"},
		{"unsorted", func(t *Table) { t.HostBuilds[2].Build = 1 << 31 }, "sorted largest first"},
		{"build too large", func(t *Table) {
			t.HostBuilds = []HostBuild{{Build: 1 << 31}}
		}, "does not fit in 31 bits"},
	}
	for _, tc := range tests {
		tab := smallTable()
		tc.mod(tab)
		_, err := tab.EncodeKMD()
		if err == nil || !strings.Contains(err.Error(), tc.substr) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.substr)
		}
	}
}

func TestReadKMDErrors(t *testing.T) {
	good, err := Builtin().EncodeKMD()
	if err != nil {
		t.Fatal(err)
	}
	n := len(good)
	le := binary.LittleEndian
	const app, kms, sku, host = 0x128, 0x188, 0x608, 0x2588
	u32 := func(at int, v uint32) func([]byte) []byte {
		return func(b []byte) []byte { le.PutUint32(b[at:], v); return b }
	}
	u64 := func(at int, v uint64) func([]byte) []byte {
		return func(b []byte) []byte { le.PutUint64(b[at:], v); return b }
	}
	u8 := func(at int, v byte) func([]byte) []byte {
		return func(b []byte) []byte { b[at] = v; return b }
	}
	tests := []struct {
		name   string
		mod    func([]byte) []byte
		offset int
		substr string
	}{
		{"short", func(b []byte) []byte { return b[:71] }, 0, "header alone needs 72"},
		{"magic", u8(2, 'X'), 0, "not a KMS data file"},
		{"major", u8(6, 3), 6, "major version 3"},
		{"last byte", func(b []byte) []byte { return append(b, 'x') }, n, "not the NUL"},
		{"no CSVLKs", u8(8, 0), 8, "CsvlkCount is 0"},
		{"CSVLKs beyond the end", func(b []byte) []byte { b[8] = 255; b[99] = 0; return b[:100] }, 8, "beyond the end"},
		{"negative count", u32(12, 0xFFFFFFFF), 12, "AppItemCount is -1"},
		{"no apps", u32(12, 0), 12, "at least one application"},
		{"no host builds", u32(24, 0), 24, "at least one host build"},
		{"app offset in header", u64(32, 0x40), 32, "points into the header"},
		{"huge offset", u64(56, 1<<63), 56, "beyond the end of the file"},
		{"huge count", u32(20, 0x7FFFFFFF), 48, "SKU table (2147483647 records at 0x608)"},
		{"not contiguous", u64(40, kms+32), 40, "must follow the App table at 0x188"},
		{"sku not contiguous", u64(48, sku-32), 48, "must follow the KMS table at 0x608"},
		{"host overlaps", u64(56, kms), 56, "overlaps"},
		{"csvlk string", u64(72+32*2, uint64(n)), 72 + 32*2, "CSVLK 2 ePID: string offset"},
		{"csvlk last string", u64(72, uint64(n-1)), 72, "CSVLK 0 ini name (after its ePID): string offset"},
		{"key range", u32(72+32*3+24, 437000000), 72 + 32*3 + 24, "CSVLK 3 (Office2016): MaxKeyId 437000000 is not above MinKeyId 437000000"},
		{"app default CSVLK", u8(app+32+30, 7), app + 32 + 30, "application 1 (Office 2010) points to CSVLK 7, table has 7"},
		{"KMS CSVLK", u8(kms+3*32+30, 9), kms + 3*32 + 30, "KMS item 3 (Windows 8 (Volume)) points to CSVLK 9, table has 7"},
		{"KMS app", u8(kms+31*32+24, 3), kms + 31*32 + 24, "KMS item 31 (Office 2013 (Volume)) points to application 3, table has 3"},
		{"KMS name", u64(kms+32+16, 1<<40), kms + 32 + 16, "KMS item 1 name: string offset 0x10000000000"},
		{"SKU KMS", u8(sku+10*32+25, 36), sku + 10*32 + 25, "SKU 10 (Windows 7 Embedded POSReady) points to KMS item 36, table has 36"},
		{"SKU app", u8(sku+32+24, 200), sku + 32 + 24, "points to application 200"},
		{"SKU CSVLK", u8(sku+30, 255), sku + 30, "SKU 0 (Windows Vista Business) points to CSVLK 255"},
		{"UTF-8", func(b []byte) []byte {
			off := le.Uint64(b[app+16:])
			b[off] = 0xFF
			return b
		}, -1, "application 0 name is not valid UTF-8"},
		{"unsorted builds", u32(host+2*32+16, 20349), host + 2*32 + 16, "host build 2 (20349) is larger than host build 1 (17763)"},
		{"negative build", u32(host+16, 0x80000000), host + 16, "build number -2147483648 is negative"},
		{"negative platform", u32(host+32+20, 0xFFFFFFFF), host + 32 + 20, "platform ID -1 is negative"},
		{"host name", u64(host+64, uint64(n)), host + 64, "host build 2 name"},
	}
	for _, tc := range tests {
		data := tc.mod(bytes.Clone(good))
		_, err := ReadKMD(data)
		var ke *KMDError
		if !errors.As(err, &ke) {
			t.Errorf("%s: error %v, want a *KMDError", tc.name, err)
			continue
		}
		if (tc.offset >= 0 && ke.Offset != tc.offset) || !strings.Contains(ke.What, tc.substr) {
			t.Errorf("%s: got %q (offset %#x), want offset %#x and %q", tc.name, err, ke.Offset, tc.offset, tc.substr)
		}
	}
}

func FuzzReadKMD(f *testing.F) {
	b, err := Builtin().EncodeKMD()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	s, err := smallTable().EncodeKMD()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(s)
	f.Add(b[:200])
	f.Fuzz(func(t *testing.T, data []byte) {
		tab, err := ReadKMD(data)
		if err != nil {
			var ke *KMDError
			if !errors.As(err, &ke) || ke.Offset < 0 || ke.Offset > len(data) {
				t.Fatalf("error %v is not a *KMDError inside the file", err)
			}
			return
		}
		// Whatever ReadKMD accepts, EncodeKMD writes back, and that reads
		// back equal and re-encodes byte-identically.
		enc, err := tab.EncodeKMD()
		if err != nil {
			t.Fatalf("EncodeKMD of an accepted file: %v", err)
		}
		again, err := ReadKMD(enc)
		if err != nil {
			t.Fatalf("ReadKMD(EncodeKMD): %v", err)
		}
		if !reflect.DeepEqual(unindexed(again), unindexed(tab)) {
			t.Fatalf("round trip changed the table")
		}
		enc2, err := again.EncodeKMD()
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("re-encoding differs: %v", err)
		}
	})
}
