package products

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"unicode/utf8"
)

// KMD file layout (kms-data.md §2).
const (
	kmdHeaderSize = 72
	kmdRecordSize = 32
	kmdMajor      = 2
	kmdFlagNDR64  = 1 // header flag: NDR64 on by default
)

// Header fields (offsets).
const (
	kmdOffMinor      = 4
	kmdOffMajor      = 6
	kmdOffCSVLKCount = 8
	kmdOffFlags      = 9
	kmdOffAppCount   = 12
	kmdOffKMSCount   = 16
	kmdOffSKUCount   = 20
	kmdOffHostCount  = 24
	kmdOffAppTable   = 32
	kmdOffKMSTable   = 40
	kmdOffSKUTable   = 48
	kmdOffHostTable  = 56
)

// Host-build record flags (kms-data.md §2.4).
const (
	kmdBuildNDR64  = 1 << 0
	kmdBuildEPID   = 1 << 1
	kmdBuildServer = 1 << 2
)

// KMDError is a malformed KMD file: Offset is the byte offset of the field
// at fault, What says what is wrong with it.
type KMDError struct {
	Offset int
	What   string
}

func (e *KMDError) Error() string { return fmt.Sprintf("offset %#x: %s", e.Offset, e.What) }

func kmdErr(off int, format string, a ...any) error {
	return &KMDError{Offset: off, What: fmt.Sprintf(format, a...)}
}

// KMDInfo holds the header fields of a KMD file that Table does not carry.
type KMDInfo struct {
	MinorVersion uint16
	NDR64        bool // header flag bit 0: NDR64 on by default
}

// ReadKMD decodes a vlmcsd.kmd file (kms-data.md §2, version 2.x) into an
// indexed Table. See DecodeKMD.
func ReadKMD(data []byte) (*Table, error) {
	t, _, err := DecodeKMD(data)
	return t, err
}

// DecodeKMD decodes a vlmcsd.kmd file and also returns the header fields
// Table lacks. It checks everything vlmcsd's loader checks and more
// (kms-data.md §2.5): every table, record and string lies inside the file,
// counts are not negative, there is at least one CSVLK, application and
// host build, the App, KMS and SKU tables are contiguous and in that order
// after the CSVLK records, the host-build table does not overlap them and
// is sorted by build number (largest first), every index is in range,
// strings are UTF-8 and each CSVLK's key range is not empty. The first
// failure is returned as a *KMDError.
//
// What a Table cannot hold is dropped: the CSVLKs' MinActiveClients byte,
// the applications' default CSVLK, and the application, protocol, N
// policy, flags and CSVLK that SKU records repeat from their KMS item
// (the Table takes them from the KMS item). Product numbers are positions.
func DecodeKMD(data []byte) (*Table, KMDInfo, error) {
	var info KMDInfo
	n := len(data)
	if n < kmdHeaderSize {
		return nil, info, kmdErr(0, "file has %d bytes; the header alone needs %d", n, kmdHeaderSize)
	}
	if !bytes.Equal(data[:4], []byte("KMD\x00")) {
		return nil, info, kmdErr(0, "magic is % x, not 4b 4d 44 00 (\"KMD\\0\"): not a KMS data file", data[:4])
	}
	le := binary.LittleEndian
	info.MinorVersion = le.Uint16(data[kmdOffMinor:])
	if v := le.Uint16(data[kmdOffMajor:]); v != kmdMajor {
		return nil, info, kmdErr(kmdOffMajor, "major version %d; only version 2 is supported", v)
	}
	if data[n-1] != 0 {
		return nil, info, kmdErr(n-1, "last byte is %#02x, not the NUL that ends the last string", data[n-1])
	}
	info.NDR64 = data[kmdOffFlags]&kmdFlagNDR64 != 0

	nCSVLK := int(data[kmdOffCSVLKCount])
	if nCSVLK == 0 {
		return nil, info, kmdErr(kmdOffCSVLKCount, "CsvlkCount is 0; at least one CSVLK is needed")
	}
	csvlkEnd := kmdHeaderSize + kmdRecordSize*nCSVLK
	if csvlkEnd > n {
		return nil, info, kmdErr(kmdOffCSVLKCount, "%d CSVLK records end at %#x, beyond the end of the file (%d bytes)", nCSVLK, csvlkEnd, n)
	}

	type table struct {
		name            string
		countAt, offAt  int
		count           int
		off             int
		countF, offsetF string
	}
	tabs := [4]table{
		{name: "App", countAt: kmdOffAppCount, offAt: kmdOffAppTable, countF: "AppItemCount", offsetF: "AppItemOffset"},
		{name: "KMS", countAt: kmdOffKMSCount, offAt: kmdOffKMSTable, countF: "KmsItemCount", offsetF: "KmsItemOffset"},
		{name: "SKU", countAt: kmdOffSKUCount, offAt: kmdOffSKUTable, countF: "SkuItemCount", offsetF: "SkuItemOffset"},
		{name: "host-build", countAt: kmdOffHostCount, offAt: kmdOffHostTable, countF: "HostBuildCount", offsetF: "HostBuildOffset"},
	}
	for i := range tabs {
		tb := &tabs[i]
		c := int32(le.Uint32(data[tb.countAt:]))
		if c < 0 {
			return nil, info, kmdErr(tb.countAt, "%s is %d", tb.countF, c)
		}
		off := le.Uint64(data[tb.offAt:])
		size := uint64(c) * kmdRecordSize
		if off < uint64(csvlkEnd) {
			return nil, info, kmdErr(tb.offAt, "%s %#x points into the header or the CSVLK records, which end at %#x", tb.offsetF, off, csvlkEnd)
		}
		if off > uint64(n) || size > uint64(n)-off {
			return nil, info, kmdErr(tb.offAt, "%s table (%d records at %#x) ends at %#x, beyond the end of the file (%d bytes)", tb.name, c, off, off+size, n)
		}
		tb.count, tb.off = int(c), int(off)
	}
	app, kms, sku, host := tabs[0], tabs[1], tabs[2], tabs[3]
	if app.count == 0 {
		return nil, info, kmdErr(kmdOffAppCount, "AppItemCount is 0; at least one application is needed")
	}
	if host.count == 0 {
		return nil, info, kmdErr(kmdOffHostCount, "HostBuildCount is 0; at least one host build is needed")
	}
	if want := app.off + kmdRecordSize*app.count; kms.off != want {
		return nil, info, kmdErr(kmdOffKMSTable, "KmsItemOffset is %#x; the KMS table must follow the App table at %#x", kms.off, want)
	}
	if want := kms.off + kmdRecordSize*kms.count; sku.off != want {
		return nil, info, kmdErr(kmdOffSKUTable, "SkuItemOffset is %#x; the SKU table must follow the KMS table at %#x", sku.off, want)
	}
	// vlmcsd also refuses 104 + 32 × (apps + KMS items + SKUs) ≥ file size;
	// that follows from the checks above and the one below (the host
	// builds lie before or after the items).
	itemsEnd := app.off + kmdRecordSize*(app.count+kms.count+sku.count)
	if hostEnd := host.off + kmdRecordSize*host.count; host.off < itemsEnd && hostEnd > app.off {
		return nil, info, kmdErr(kmdOffHostTable, "host-build table %#x..%#x overlaps the App, KMS and SKU tables %#x..%#x", host.off, hostEnd, app.off, itemsEnd)
	}

	// str reads the NUL-terminated string at off; at is where off was read.
	str := func(off uint64, at int, what string) (string, uint64, error) {
		if off >= uint64(n) {
			return "", 0, kmdErr(at, "%s: string offset %#x is beyond the end of the file (%d bytes)", what, off, n)
		}
		end := uint64(bytes.IndexByte(data[off:], 0)) + off // found: the last byte is NUL
		s := data[off:end]
		if !utf8.Valid(s) {
			return "", 0, kmdErr(int(off), "%s is not valid UTF-8", what)
		}
		return string(s), end + 1, nil
	}

	t := &Table{
		Apps:       make([]App, app.count),
		CSVLKs:     make([]CSVLK, nCSVLK),
		KMSItems:   make([]KMSItem, kms.count),
		Products:   make([]Product, sku.count),
		HostBuilds: make([]HostBuild, host.count),
	}
	for i := range t.CSVLKs {
		r := kmdHeaderSize + kmdRecordSize*i
		what := fmt.Sprintf("CSVLK %d", i)
		c := &t.CSVLKs[i]
		var next uint64
		var err error
		if c.BuiltinEPID, next, err = str(le.Uint64(data[r:]), r, what+" ePID"); err != nil {
			return nil, info, err
		}
		if c.IniName, next, err = str(next, r, what+" ini name (after its ePID)"); err != nil {
			return nil, info, err
		}
		if c.DisplayName, _, err = str(next, r, what+" display name (after its ini name)"); err != nil {
			return nil, info, err
		}
		c.ReleaseUnix = int64(le.Uint64(data[r+8:]))
		c.GroupID = le.Uint32(data[r+16:])
		c.MinKeyID = le.Uint32(data[r+20:])
		c.MaxKeyID = le.Uint32(data[r+24:])
		if c.MaxKeyID <= c.MinKeyID {
			return nil, info, kmdErr(r+24, "CSVLK %d (%s): MaxKeyId %d is not above MinKeyId %d", i, c.IniName, c.MaxKeyID, c.MinKeyID)
		}
	}

	// item reads the common part of an item record.
	type rec struct {
		guid                             [16]byte
		name                             string
		app, kms, proto, n, ret, pre, cs int
	}
	item := func(r int, what string) (rec, error) {
		var x rec
		copy(x.guid[:], data[r:r+16])
		var err error
		if x.name, _, err = str(le.Uint64(data[r+16:]), r+16, what+" name"); err != nil {
			return x, err
		}
		x.app, x.kms, x.proto, x.n = int(data[r+24]), int(data[r+25]), int(data[r+26]), int(data[r+27])
		x.ret, x.pre, x.cs = int(data[r+28]), int(data[r+29]), int(data[r+30])
		if x.cs >= nCSVLK {
			return x, kmdErr(r+30, "%s (%s) points to CSVLK %d, table has %d", what, x.name, x.cs, nCSVLK)
		}
		return x, nil
	}
	for i := range t.Apps {
		x, err := item(app.off+kmdRecordSize*i, fmt.Sprintf("application %d", i))
		if err != nil {
			return nil, info, err
		}
		t.Apps[i] = App{ID: x.guid, Name: x.name, ClientSlots: x.n}
	}
	for i := range t.KMSItems {
		r := kms.off + kmdRecordSize*i
		what := fmt.Sprintf("KMS item %d", i)
		x, err := item(r, what)
		if err != nil {
			return nil, info, err
		}
		if x.app >= app.count {
			return nil, info, kmdErr(r+24, "%s (%s) points to application %d, table has %d", what, x.name, x.app, app.count)
		}
		t.KMSItems[i] = KMSItem{ID: x.guid, Name: x.name, App: x.app, CSVLK: x.cs,
			Protocol: uint16(x.proto), NPolicy: uint32(x.n), Retail: x.ret != 0, Preview: x.pre != 0}
	}
	for i := range t.Products {
		r := sku.off + kmdRecordSize*i
		what := fmt.Sprintf("SKU %d", i)
		x, err := item(r, what)
		if err != nil {
			return nil, info, err
		}
		if x.app >= app.count {
			return nil, info, kmdErr(r+24, "%s (%s) points to application %d, table has %d", what, x.name, x.app, app.count)
		}
		if x.kms >= kms.count {
			return nil, info, kmdErr(r+25, "%s (%s) points to KMS item %d, table has %d", what, x.name, x.kms, kms.count)
		}
		t.Products[i] = Product{Number: i + 1, Name: x.name, SKU: x.guid, KMS: x.kms}
	}
	for i := range t.HostBuilds {
		r := host.off + kmdRecordSize*i
		what := fmt.Sprintf("host build %d", i)
		name, _, err := str(le.Uint64(data[r:]), r, what+" name")
		if err != nil {
			return nil, info, err
		}
		build := int32(le.Uint32(data[r+16:]))
		platform := int32(le.Uint32(data[r+20:]))
		if build < 0 {
			return nil, info, kmdErr(r+16, "%s (%s): build number %d is negative", what, name, build)
		}
		if platform < 0 {
			return nil, info, kmdErr(r+20, "%s (%s): platform ID %d is negative", what, name, platform)
		}
		if i > 0 && uint32(build) > t.HostBuilds[i-1].Build {
			return nil, info, kmdErr(r+16, "%s (%d) is larger than host build %d (%d): builds must be sorted largest first",
				what, build, i-1, t.HostBuilds[i-1].Build)
		}
		flags := le.Uint32(data[r+24:])
		t.HostBuilds[i] = HostBuild{Build: uint32(build), PlatformID: uint32(platform),
			ReleaseUnix: int64(le.Uint64(data[r+8:])), Name: name,
			UsesNDR64: flags&kmdBuildNDR64 != 0, UseForEPID: flags&kmdBuildEPID != 0, MayBeServer: flags&kmdBuildServer != 0}
	}
	t.Index()
	return t, info, nil
}

// EncodeKMD writes t as a vlmcsd.kmd file (kms-data.md §2) that vlmcsd,
// vlmcs and ReadKMD accept: header (NDR64 flag set, as in vlmcsd's tables),
// CSVLK records, then the App, KMS, SKU and host-build tables and the
// string pool (the CSVLKs' ePID, ini name and display name, then the
// names of applications, KMS items, SKUs and host builds, in table order,
// not shared). SKU records repeat the application, protocol, N policy,
// retail/preview flags and CSVLK of their KMS item; an application's
// default CSVLK (which Table does not hold and vlmcsd never reads) is the
// CSVLK of its first KMS item with a CSVLK other than 0, else 0 — this
// reproduces vlmcsd's 0, 1, 2. It fails, naming the entry, when t does
// not fit the format (a value too large for its field, an index out of
// range, a NUL or invalid UTF-8 in a string, host builds not sorted).
func (t *Table) EncodeKMD() ([]byte, error) {
	if err := t.check(); err != nil {
		return nil, fmt.Errorf("cannot encode KMD: %w", err)
	}
	fail := func(format string, a ...any) ([]byte, error) {
		return nil, fmt.Errorf("cannot encode KMD: "+format, a...)
	}
	if len(t.CSVLKs) > math.MaxUint8 {
		return fail("%d CSVLKs; the format holds at most 255", len(t.CSVLKs))
	}
	items := len(t.Apps) + len(t.KMSItems) + len(t.Products)
	if items+len(t.HostBuilds) > (math.MaxInt32-kmdHeaderSize)/kmdRecordSize {
		return fail("too many records")
	}
	for i, a := range t.Apps {
		if a.ClientSlots < 0 || a.ClientSlots > math.MaxUint8 {
			return fail("application %d (%s): client-list size %d does not fit in a byte", i, a.Name, a.ClientSlots)
		}
	}
	for i, k := range t.KMSItems {
		switch {
		case k.App > math.MaxUint8:
			return fail("KMS item %d (%s): application index %d does not fit in a byte", i, k.Name, k.App)
		case k.Protocol > math.MaxUint8:
			return fail("KMS item %d (%s): protocol %d does not fit in a byte", i, k.Name, k.Protocol)
		case k.NPolicy > math.MaxUint8:
			return fail("KMS item %d (%s): N policy %d does not fit in a byte", i, k.Name, k.NPolicy)
		}
	}
	for i, p := range t.Products {
		if p.KMS > math.MaxUint8 {
			return fail("product %d (%s): KMS item index %d does not fit in a byte", i+1, p.Name, p.KMS)
		}
	}
	for i, h := range t.HostBuilds {
		if h.Build > math.MaxInt32 || h.PlatformID > math.MaxInt32 {
			return fail("host build %d (%s): build %d or platform ID %d does not fit in 31 bits", i, h.Name, h.Build, h.PlatformID)
		}
	}
	strs := func(ss ...string) error {
		for _, s := range ss {
			if bytes.IndexByte([]byte(s), 0) >= 0 {
				return fmt.Errorf("cannot encode KMD: string %q contains a NUL byte", s)
			}
		}
		return nil
	}
	for _, c := range t.CSVLKs {
		if err := strs(c.BuiltinEPID, c.IniName, c.DisplayName); err != nil {
			return nil, err
		}
	}
	for _, a := range t.Apps {
		if err := strs(a.Name); err != nil {
			return nil, err
		}
	}
	for _, k := range t.KMSItems {
		if err := strs(k.Name); err != nil {
			return nil, err
		}
	}
	for _, p := range t.Products {
		if err := strs(p.Name); err != nil {
			return nil, err
		}
	}
	for _, h := range t.HostBuilds {
		if err := strs(h.Name); err != nil {
			return nil, err
		}
	}

	le := binary.LittleEndian
	appOff := kmdHeaderSize + kmdRecordSize*len(t.CSVLKs)
	kmsOff := appOff + kmdRecordSize*len(t.Apps)
	skuOff := kmsOff + kmdRecordSize*len(t.KMSItems)
	hostOff := skuOff + kmdRecordSize*len(t.Products)
	poolOff := hostOff + kmdRecordSize*len(t.HostBuilds)
	buf := make([]byte, poolOff, poolOff+64*(items+len(t.HostBuilds)+len(t.CSVLKs)))
	add := func(s string) uint64 {
		off := uint64(len(buf))
		buf = append(buf, s...)
		buf = append(buf, 0)
		return off
	}

	copy(buf, "KMD\x00")
	le.PutUint16(buf[kmdOffMinor:], 0)
	le.PutUint16(buf[kmdOffMajor:], kmdMajor)
	buf[kmdOffCSVLKCount] = byte(len(t.CSVLKs))
	buf[kmdOffFlags] = kmdFlagNDR64
	le.PutUint32(buf[kmdOffAppCount:], uint32(len(t.Apps)))
	le.PutUint32(buf[kmdOffKMSCount:], uint32(len(t.KMSItems)))
	le.PutUint32(buf[kmdOffSKUCount:], uint32(len(t.Products)))
	le.PutUint32(buf[kmdOffHostCount:], uint32(len(t.HostBuilds)))
	le.PutUint64(buf[kmdOffAppTable:], uint64(appOff))
	le.PutUint64(buf[kmdOffKMSTable:], uint64(kmsOff))
	le.PutUint64(buf[kmdOffSKUTable:], uint64(skuOff))
	le.PutUint64(buf[kmdOffHostTable:], uint64(hostOff))

	for i, c := range t.CSVLKs {
		r := kmdHeaderSize + kmdRecordSize*i
		le.PutUint64(buf[r:], add(c.BuiltinEPID))
		add(c.IniName)
		add(c.DisplayName)
		le.PutUint64(buf[r+8:], uint64(c.ReleaseUnix))
		le.PutUint32(buf[r+16:], c.GroupID)
		le.PutUint32(buf[r+20:], c.MinKeyID)
		le.PutUint32(buf[r+24:], c.MaxKeyID)
	}
	putItem := func(r int, id [16]byte, name string, app, kms, proto, n int, retail, preview bool, csvlk int) {
		copy(buf[r:], id[:])
		le.PutUint64(buf[r+16:], add(name))
		buf[r+24], buf[r+25], buf[r+26], buf[r+27] = byte(app), byte(kms), byte(proto), byte(n)
		buf[r+28], buf[r+29], buf[r+30] = b2u8(retail), b2u8(preview), byte(csvlk)
	}
	for i, a := range t.Apps {
		putItem(appOff+kmdRecordSize*i, a.ID, a.Name, 0, 0, 0, a.ClientSlots, false, false, t.appDefaultCSVLK(i))
	}
	for i, k := range t.KMSItems {
		putItem(kmsOff+kmdRecordSize*i, k.ID, k.Name, k.App, 0, int(k.Protocol), int(k.NPolicy), k.Retail, k.Preview, k.CSVLK)
	}
	for i, p := range t.Products {
		k := t.KMSItems[p.KMS]
		putItem(skuOff+kmdRecordSize*i, p.SKU, p.Name, k.App, p.KMS, int(k.Protocol), int(k.NPolicy), k.Retail, k.Preview, k.CSVLK)
	}
	for i, h := range t.HostBuilds {
		r := hostOff + kmdRecordSize*i
		le.PutUint64(buf[r:], add(h.Name))
		le.PutUint64(buf[r+8:], uint64(h.ReleaseUnix))
		le.PutUint32(buf[r+16:], h.Build)
		le.PutUint32(buf[r+20:], h.PlatformID)
		var f uint32
		if h.UsesNDR64 {
			f |= kmdBuildNDR64
		}
		if h.UseForEPID {
			f |= kmdBuildEPID
		}
		if h.MayBeServer {
			f |= kmdBuildServer
		}
		le.PutUint32(buf[r+24:], f)
	}
	if len(buf) > math.MaxInt32 {
		return fail("the file would exceed 2 GiB")
	}
	return buf, nil
}

func b2u8(b bool) byte {
	if b {
		return 1
	}
	return 0
}

// appDefaultCSVLK is the default-CSVLK byte written for application i: the
// CSVLK of its first KMS item whose CSVLK is not 0, else 0.
func (t *Table) appDefaultCSVLK(i int) int {
	for _, k := range t.KMSItems {
		if k.App == i && k.CSVLK != 0 {
			return k.CSVLK
		}
	}
	return 0
}

// check reports the first inconsistency that every file format refuses: a
// table without CSVLKs, applications or host builds, an index out of range,
// a CSVLK whose key range is empty, host builds (and AllBuilds) not sorted
// largest first, or a string that is not UTF-8.
func (t *Table) check() error {
	if len(t.CSVLKs) == 0 || len(t.Apps) == 0 || len(t.HostBuilds) == 0 {
		return fmt.Errorf("a table needs at least one CSVLK, application and host build (has %d, %d, %d)",
			len(t.CSVLKs), len(t.Apps), len(t.HostBuilds))
	}
	bad := func(s string) bool { return !utf8.ValidString(s) }
	for i, c := range t.CSVLKs {
		if c.MaxKeyID <= c.MinKeyID {
			return fmt.Errorf("CSVLK %d (%s): MaxKeyID %d is not above MinKeyID %d", i, c.IniName, c.MaxKeyID, c.MinKeyID)
		}
		if bad(c.IniName) || bad(c.DisplayName) || bad(c.BuiltinEPID) {
			return fmt.Errorf("CSVLK %d: a string is not valid UTF-8", i)
		}
	}
	for i, a := range t.Apps {
		if bad(a.Name) {
			return fmt.Errorf("application %d: name is not valid UTF-8", i)
		}
	}
	for i, k := range t.KMSItems {
		switch {
		case k.App < 0 || k.App >= len(t.Apps):
			return fmt.Errorf("KMS item %d (%s) points to application %d, table has %d", i, k.Name, k.App, len(t.Apps))
		case k.CSVLK < 0 || k.CSVLK >= len(t.CSVLKs):
			return fmt.Errorf("KMS item %d (%s) points to CSVLK %d, table has %d", i, k.Name, k.CSVLK, len(t.CSVLKs))
		case bad(k.Name):
			return fmt.Errorf("KMS item %d: name is not valid UTF-8", i)
		}
	}
	for i, p := range t.Products {
		switch {
		case p.KMS < 0 || p.KMS >= len(t.KMSItems):
			return fmt.Errorf("product %d (%s) points to KMS item %d, table has %d", i+1, p.Name, p.KMS, len(t.KMSItems))
		case bad(p.Name) || bad(p.GVLK):
			return fmt.Errorf("product %d: a string is not valid UTF-8", i+1)
		}
	}
	for _, list := range []struct {
		name   string
		builds []HostBuild
	}{{"host build", t.HostBuilds}, {"AllBuilds entry", t.AllBuilds}} {
		for i, h := range list.builds {
			if i > 0 && h.Build > list.builds[i-1].Build {
				return fmt.Errorf("%s %d (%d) is larger than the one before it (%d): builds must be sorted largest first",
					list.name, i, h.Build, list.builds[i-1].Build)
			}
			if bad(h.Name) {
				return fmt.Errorf("%s %d: name is not valid UTF-8", list.name, i)
			}
		}
	}
	for i, e := range t.Extra {
		if e.App < 0 || e.App >= len(t.Apps) {
			return fmt.Errorf("extra SKU %d (%s) points to application %d, table has %d", i, e.Name, e.App, len(t.Apps))
		}
		if bad(e.Name) || bad(e.KMSName) || bad(e.GVLK) {
			return fmt.Errorf("extra SKU %d: a string is not valid UTF-8", i)
		}
	}
	return nil
}
