package products

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"kmsd/internal/wire"
)

func sharedXML(t testing.TB) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "..", "shared", "data", "KmsDataBase.xml"))
	if err != nil {
		t.Skipf("KmsDataBase.xml not available: %v", err)
	}
	return data
}

func TestReadXMLShared(t *testing.T) {
	tab, err := ReadXML(sharedXML(t))
	if err != nil {
		t.Fatal(err)
	}
	// kms-data.md §1: 30 WinBuild, 47 CsvlkItem, 3 AppItem, 33 KmsItem,
	// 257 SkuItem; 8 builds are marked UseForEpid.
	if len(tab.Apps) != 3 || len(tab.KMSItems) != 33 || len(tab.Products) != 257 ||
		len(tab.AllBuilds) != 30 || len(tab.HostBuilds) != 8 || len(tab.CSVLKs) != 7 || len(tab.Extra) != 0 {
		t.Fatalf("counts: %d apps, %d KMS items, %d products, %d builds, %d host builds, %d CSVLKs, %d extra",
			len(tab.Apps), len(tab.KMSItems), len(tab.Products), len(tab.AllBuilds), len(tab.HostBuilds), len(tab.CSVLKs), len(tab.Extra))
	}
	var ini []string
	for _, c := range tab.CSVLKs {
		ini = append(ini, c.IniName)
	}
	// The XML's slots follow the older layout; slot 6 is taken by its first
	// CsvlkItem, Office LTSC 2024 (kms-products-vlmcsd.md §7).
	if want := []string{"Windows", "Office2010", "Office2013", "Office2016", "WinChinaGov", "Office2019", "Office2024"}; !reflect.DeepEqual(ini, want) {
		t.Errorf("CSVLK ini names %v, want %v", ini, want)
	}
	if c := tab.CSVLKs[0]; c.DisplayName != "Windows Server 2025" || c.GroupID != 4918 || c.ReleaseUnix != 1730419200 {
		t.Errorf("slot 0 = %+v, want the first CsvlkItem with VlmcsdIndex 0", c)
	}
	for _, c := range []struct {
		kms   string
		csvlk int
		app   int
	}{
		{"7ba0bf23-d0f5-4072-91d9-d55af5a481b6", 4, 0}, // WinChinaGov activates it
		{"e85af946-2e25-47b7-83e1-bebcebeac611", 1, 1},
		{"617d9eb1-ef36-4f82-86e0-a65ae07b96c6", 5, 2},
		{"1b4db7eb-4057-5ddf-91e0-36dec72071f5", 6, 2},
		{"58e2134f-8e11-4d17-9cb2-91069c151148", 0, 0},
	} {
		k := tab.KMSByID(wire.MustGUID(c.kms))
		if k < 0 || tab.KMSItems[k].CSVLK != c.csvlk || tab.KMSItems[k].App != c.app {
			t.Errorf("KMS item %s: index %d, want CSVLK %d, app %d", c.kms, k, c.csvlk, c.app)
		}
	}
	// The misspelt DefaultKmsprotocol and "True" booleans are read; the
	// Office 2013 item has protocol 5.
	if k := tab.KMSByID(wire.MustGUID("e6a6f1bf-9d40-40c3-aa9f-c77ba21578c0")); tab.KMSItems[k].Protocol != 5 {
		t.Errorf("Office 2013 protocol %d", tab.KMSItems[k].Protocol)
	}
	for i, a := range tab.Apps {
		if want := []int{50, 10, 10}[i]; a.ClientSlots != want {
			t.Errorf("app %d client slots %d, want %d", i, a.ClientSlots, want)
		}
	}
	// The built-in table took its GVLKs, WinBuilds and extra SKUs from this
	// file: they must agree.
	b := Builtin()
	if !reflect.DeepEqual(tab.AllBuilds, b.AllBuilds) {
		t.Errorf("WinBuilds differ from the built-in AllBuilds")
	}
	for _, p := range b.Products {
		if i := tab.ProductBySKU(p.SKU); i >= 0 && p.GVLK != "" && tab.Products[i].GVLK != p.GVLK {
			t.Errorf("product %s: GVLK %s, built-in %s", p.SKU, tab.Products[i].GVLK, p.GVLK)
		}
	}
	for _, e := range b.Extra {
		if e.SKU.IsZero() {
			continue
		}
		i := tab.ProductBySKU(e.SKU)
		if i < 0 || tab.Products[i].Name != e.Name || tab.Products[i].GVLK != e.GVLK {
			t.Errorf("extra SKU %s (%s) not read as a product", e.SKU, e.Name)
		}
	}
	for i := 1; i < len(tab.Products); i++ {
		if tab.Products[i].Number != i+1 || tab.Products[i].KMS < tab.Products[i-1].KMS {
			t.Fatalf("product %d numbered %d, KMS %d", i, tab.Products[i].Number, tab.Products[i].KMS)
		}
	}
	// A table read from the XML encodes to KMD, XML and JSON.
	if _, err := tab.EncodeKMD(); err != nil {
		t.Error(err)
	}
	x, err := tab.EncodeXML()
	if err != nil {
		t.Fatal(err)
	}
	again, err := ReadXML(x)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(unindexed(again), unindexed(tab)) {
		t.Errorf("EncodeXML/ReadXML changed the table read from KmsDataBase.xml")
	}
}

func TestReadXMLSharedErrorLine(t *testing.T) {
	data := sharedXML(t)
	bad := bytes.Replace(data, []byte(`Id="4b83307d-7788-50ff-8d1f-1861915bdb9d" DefaultKmsProtocol="6.0" NCountPolicy="5"`),
		[]byte(`Id="4b83307d-7788-50ff-8d1f-1861915bdb9d" DefaultKmsProtocol="6.0" NCountPolicy="-5"`), 1)
	_, err := ReadXML(bad)
	var xe *XMLError
	if !errors.As(err, &xe) || xe.Line != 370 || xe.Element != "KmsItem" || xe.Attr != "NCountPolicy" {
		t.Errorf("got %v, want line 370 <KmsItem NCountPolicy>", err)
	}
}

func TestXMLRoundTripBuiltin(t *testing.T) {
	b := Builtin()
	x, err := b.EncodeXML()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ReadXML(x)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(unindexed(got), unindexed(b)) {
		for _, f := range []struct {
			name      string
			got, want any
		}{
			{"Apps", got.Apps, b.Apps}, {"CSVLKs", got.CSVLKs, b.CSVLKs}, {"KMSItems", got.KMSItems, b.KMSItems},
			{"Products", got.Products, b.Products}, {"HostBuilds", got.HostBuilds, b.HostBuilds},
			{"AllBuilds", got.AllBuilds, b.AllBuilds}, {"Extra", got.Extra, b.Extra},
		} {
			if !reflect.DeepEqual(f.got, f.want) {
				t.Errorf("%s differ:\n got %+v\nwant %+v", f.name, f.got, f.want)
			}
		}
	}
	if !bytes.Contains(x, []byte("<"+xmlHostBuildsExt+">")) || !bytes.Contains(x, []byte("<"+xmlExtraExt+">")) {
		t.Errorf("the built-in table needs both extensions")
	}
	x2, err := got.EncodeXML()
	if err != nil || !bytes.Equal(x, x2) {
		t.Errorf("re-encoding differs (%v)", err)
	}
}

// xmlTable is a small table that XML can carry, with edge values.
func xmlTable() *Table {
	t := smallTable()
	t.HostBuilds[0].ReleaseUnix = 4102444800
	t.CSVLKs = append(t.CSVLKs, CSVLK{IniName: "Second", DisplayName: "a \"quoted\" <name> & 'more'\n\ttab", MinKeyID: 5, MaxKeyID: 6, ReleaseUnix: 1})
	t.KMSItems = append(t.KMSItems, KMSItem{ID: wire.MustGUID("00000000-0000-0000-0000-000000000002"), Name: " spaces ", App: 1, CSVLK: 1, Protocol: 4, NPolicy: 1 << 31})
	t.Products = []Product{
		{Number: 1, Name: "p1", SKU: wire.MustGUID("10000000-0000-0000-0000-000000000000"), KMS: 0, GVLK: "AAAAA-BBBBB-CCCCC-DDDDD-EEEEE"},
		{Number: 2, Name: "", SKU: wire.GUID{}, KMS: 1},
		{Number: 3, Name: "p3", SKU: wire.MustGUID("10000000-0000-0000-0000-000000000000"), KMS: 1},
	}
	t.AllBuilds = []HostBuild{{Build: 26100, PlatformID: 3612, UseForEPID: true, Name: "x"}, {Build: 9600, Name: "y", ReleaseUnix: -1}}
	t.Extra = []ExtraSKU{{Name: "e", SKU: wire.MustGUID("20000000-0000-0000-0000-000000000000"), KMSID: wire.MustGUID("00000000-0000-0000-0000-000000000002"), KMSName: "k", GVLK: "g", App: 1},
		{App: 0}}
	return t
}

func TestXMLRoundTripSmall(t *testing.T) {
	for name, tab := range map[string]*Table{"xmlTable": xmlTable(), "KMD-like": func() *Table {
		t := smallTable()
		t.HostBuilds[0].ReleaseUnix = 0
		return t
	}()} {
		x, err := tab.EncodeXML()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got, err := ReadXML(x)
		if err != nil {
			t.Fatalf("%s: %v\n%s", name, err, x)
		}
		if !reflect.DeepEqual(unindexed(got), unindexed(tab)) {
			t.Errorf("%s: round trip:\n got %+v\nwant %+v", name, unindexed(got), unindexed(tab))
		}
	}
}

func TestReadXMLErrors(t *testing.T) {
	const head = `<?xml version="1.0" encoding="utf-8"?>` + "\n"
	const builds = `<WinBuilds><WinBuild BuildNumber="9600" UseForEpid="true"/></WinBuilds>` + "\n"
	const csvlk = `<CsvlkItems><CsvlkItem VlmcsdIndex="0" IniFileName="Windows" MaxKeyId="5"/></CsvlkItems>` + "\n"
	doc := func(body string) string {
		return head + `<KmsData Version="2.0">` + "\n" + body + "</KmsData>\n"
	}
	good := doc(builds + csvlk + `<AppItems><AppItem Id="55c92734-d682-4d71-983e-d6ec3f16059f" VlmcsdIndex="0"/></AppItems>` + "\n")
	if _, err := ReadXML([]byte(good)); err != nil {
		t.Fatalf("minimal document: %v", err)
	}
	app := `<AppItems><AppItem Id="55c92734-d682-4d71-983e-d6ec3f16059f" VlmcsdIndex="0">` + "\n"
	tests := []struct {
		name, xml     string
		line          int
		element, attr string
		substr        string
	}{
		{"empty", "", 1, "", "", "no <KmsData>"},
		{"syntax", head + "<KmsData Version=\"2.0\">\n<WinBuilds>\n</KmsData>\n", 4, "", "", "element <WinBuilds> closed by </KmsData>"},
		{"encoding", `<?xml version="1.0" encoding="utf-16"?><KmsData/>`, 1, "", "", "utf-16"},
		{"root", head + "<Kms/>", 2, "Kms", "", "must be <KmsData>"},
		{"second root", good + "<KmsData Version=\"2.0\"/>", 7, "KmsData", "", "second document element"},
		{"version missing", head + "<KmsData>\n</KmsData>", 2, "KmsData", "", "Version attribute missing"},
		{"version", head + "<KmsData\n  Version='3.0'>\n</KmsData>", 3, "KmsData", "Version", `"3.0" is not supported`},
		{"unknown element", doc("<WinBuilds>\n<Build/></WinBuilds>"), 4, "Build", "", "unexpected element inside <WinBuilds> (allowed: <WinBuild>)"},
		{"no build number", doc("<WinBuilds>\n<WinBuild PlatformId=\"1\"/></WinBuilds>"), 4, "WinBuild", "", "BuildNumber attribute missing"},
		{"bad build number", doc("<WinBuilds>\n<WinBuild\n\tPlatformId=\"1\"\n\tBuildNumber=\"-1\"/></WinBuilds>"), 6, "WinBuild", "BuildNumber", `"-1" is not a whole number from 0 to 2147483647`},
		{"bool", doc("<WinBuilds>\n<WinBuild BuildNumber=\"1\" UsesNDR64=\"yes\"/></WinBuilds>"), 4, "WinBuild", "UsesNDR64", "not a boolean"},
		{"date", doc("<WinBuilds>\n<WinBuild BuildNumber=\"1\" ReleaseDate=\"2020-13-01\"/></WinBuilds>"), 4, "WinBuild", "ReleaseDate", "not a date"},
		{"duplicate attribute", doc(builds + csvlk + app + "<KmsItem Id=\"212a64dc-43b1-4d3d-a30c-2fc69d2095c6\" DefaultKmsProtocol=\"6.0\"\n DefaultKmsprotocol=\"5.0\"/></AppItem></AppItems>"),
			7, "KmsItem", "DefaultKmsprotocol", "given twice"},
		{"protocol", doc(builds + csvlk + app + "<KmsItem Id=\"212a64dc-43b1-4d3d-a30c-2fc69d2095c6\" DefaultKmsProtocol=\"six\"/></AppItem></AppItems>"),
			6, "KmsItem", "DefaultKmsProtocol", `"six" is not a protocol version`},
		{"guid", doc(builds + csvlk + app + "<KmsItem Id=\"{212a64dc-43b1-4d3d-a30c-2fc69d2095c}\"/></AppItem></AppItems>"),
			6, "KmsItem", "Id", "not a GUID"},
		{"sku id missing", doc(builds + csvlk + app + "<KmsItem Id=\"212a64dc-43b1-4d3d-a30c-2fc69d2095c6\">\n<SkuItem Id=\"\"/></KmsItem></AppItem></AppItems>"),
			7, "SkuItem", "", "Id attribute missing"},
		{"sku in sku", doc(builds + csvlk + app + "<KmsItem Id=\"212a64dc-43b1-4d3d-a30c-2fc69d2095c6\">\n<SkuItem Id=\"212a64dc-43b1-4d3d-a30c-2fc69d2095c6\"><SkuItem/></SkuItem></KmsItem></AppItem></AppItems>"),
			7, "SkuItem", "", "unexpected element inside <SkuItem> (allowed: none)"},
		{"activate", doc(builds + "<CsvlkItems><CsvlkItem VlmcsdIndex=\"0\" IniFileName=\"Windows\" MaxKeyId=\"5\">\n<Activate/></CsvlkItem></CsvlkItems>"),
			5, "Activate", "", "KmsItem attribute missing"},
		{"ini name", doc(builds + "<CsvlkItems>\n<CsvlkItem VlmcsdIndex=\"0\" MaxKeyId=\"5\"/></CsvlkItems>"), 5, "CsvlkItem", "", "IniFileName attribute missing"},
		{"key range", doc(builds + "<CsvlkItems>\n<CsvlkItem VlmcsdIndex=\"0\" IniFileName=\"W\" MinKeyId=\"5\"\nMaxKeyId=\"5\"/></CsvlkItems>"), 6, "CsvlkItem", "MaxKeyId", "5 is not above MinKeyId 5"},
		{"slot range", doc(builds + "<CsvlkItems>\n<CsvlkItem VlmcsdIndex=\"255\"/></CsvlkItems>"), 5, "CsvlkItem", "VlmcsdIndex", "from 0 to 254"},
		{"slot gap", doc(builds + "<CsvlkItems>\n<CsvlkItem VlmcsdIndex=\"1\" IniFileName=\"W\" MaxKeyId=\"5\"/></CsvlkItems>"), 4, "CsvlkItems", "", "no CsvlkItem has VlmcsdIndex 0, but slot 1 is used"},
		{"no slots", doc(builds + "<CsvlkItems>\n<CsvlkItem IniFileName=\"W\"/></CsvlkItems>"), 4, "CsvlkItems", "", "no CsvlkItem has a VlmcsdIndex"},
		{"no slots, no container", doc(builds), 2, "KmsData", "", "no CsvlkItem has a VlmcsdIndex"},
		{"no apps", doc(builds + csvlk), 2, "KmsData", "", "no AppItem"},
		{"app slot", doc(builds + csvlk + "<AppItems>\n<AppItem Id=\"55c92734-d682-4d71-983e-d6ec3f16059f\" VlmcsdIndex=\"1\"/></AppItems>"), 6, "AppItem", "VlmcsdIndex", "slot 1 does not exist"},
		{"kms without slot", doc(builds + csvlk + "<AppItems><AppItem Id=\"55c92734-d682-4d71-983e-d6ec3f16059f\">\n<KmsItem Id=\"212a64dc-43b1-4d3d-a30c-2fc69d2095c6\"/></AppItem></AppItems>"),
			6, "KmsItem", "", "no CsvlkItem with a VlmcsdIndex activates KMS ID 212a64dc-43b1-4d3d-a30c-2fc69d2095c6"},
		{"no host build", doc("<WinBuilds>\n<WinBuild BuildNumber=\"9600\"/></WinBuilds>" + csvlk + app + "</AppItem></AppItems>"), 3, "WinBuilds", "", `no WinBuild has UseForEpid="true"`},
		{"empty host extension", doc(builds + csvlk + app + "</AppItem></AppItems>\n<KmsdHostBuilds/>"), 7, "KmsdHostBuilds", "", "no WinBuild"},
		{"extra app", doc(builds + csvlk + app + "</AppItem></AppItems>\n<KmsdExtraSkus><SkuItem AppIndex=\"1\"/></KmsdExtraSkus>"), 7, "SkuItem", "AppIndex", "application 1 does not exist"},
		{"extra app missing", doc(builds + csvlk + app + "</AppItem></AppItems>\n<KmsdExtraSkus><SkuItem/></KmsdExtraSkus>"), 7, "SkuItem", "", "AppIndex attribute missing"},
	}
	for _, tc := range tests {
		_, err := ReadXML([]byte(tc.xml))
		var xe *XMLError
		if !errors.As(err, &xe) {
			t.Errorf("%s: error %v, want an *XMLError", tc.name, err)
			continue
		}
		if xe.Line != tc.line || xe.Element != tc.element || xe.Attr != tc.attr || !strings.Contains(xe.Msg, tc.substr) {
			t.Errorf("%s: got %+v (%v), want line %d <%s %s> %q", tc.name, *xe, err, tc.line, tc.element, tc.attr, tc.substr)
		}
	}
}

func TestXMLErrorText(t *testing.T) {
	for _, c := range []struct {
		e    XMLError
		want string
	}{
		{XMLError{Line: 3, Msg: "m"}, "line 3: m"},
		{XMLError{Line: 3, Element: "KmsItem", Msg: "m"}, "line 3: <KmsItem>: m"},
		{XMLError{Line: 3, Element: "KmsItem", Attr: "Id", Msg: "m"}, "line 3: <KmsItem Id>: m"},
	} {
		if got := c.e.Error(); got != c.want {
			t.Errorf("%q, want %q", got, c.want)
		}
	}
}

func TestEncodeXMLErrors(t *testing.T) {
	tests := []struct {
		name   string
		mod    func(*Table)
		substr string
	}{
		{"invalid table", func(t *Table) { t.CSVLKs = nil }, "at least one CSVLK"},
		{"items not grouped", func(t *Table) { t.KMSItems[0].App, t.KMSItems[1].App = 1, 0 }, "KMS item 1 (application 0) follows one of application 1"},
		{"products not grouped", func(t *Table) { t.Products[0].KMS = 1; t.Products[2].KMS = 0 }, "product 3 (KMS item 0) follows one of KMS item 1"},
		{"shared ID", func(t *Table) { t.KMSItems[1].ID = t.KMSItems[0].ID }, "shares its ID"},
		{"control character", func(t *Table) { t.Products[0].Name = "a\x01b" }, `<SkuItem DisplayName="a\x01b">`},
		{"date", func(t *Table) { t.CSVLKs[0].ReleaseUnix = 1 << 40 }, "outside the years 1 to 9999"},
	}
	for _, tc := range tests {
		tab := xmlTable()
		tc.mod(tab)
		_, err := tab.EncodeXML()
		if err == nil || !strings.Contains(err.Error(), tc.substr) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.substr)
		}
	}
}

func TestJSONRoundTrip(t *testing.T) {
	for name, tab := range map[string]*Table{"builtin": Builtin(), "small": smallTable(), "xmlTable": xmlTable()} {
		j, err := tab.EncodeJSON()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got, err := ReadJSON(j)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(unindexed(got), unindexed(tab)) {
			t.Errorf("%s: JSON round trip changed the table", name)
		}
		if got.idx == nil {
			t.Errorf("%s: not indexed", name)
		}
	}
	j, err := Builtin().EncodeJSON()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(j, []byte(`"sku": "4f3d1606-3fea-4c01-be3c-8d671c401e3b"`)) {
		t.Errorf("GUIDs not in text form")
	}
}

func TestReadJSONErrors(t *testing.T) {
	j, err := smallTable().EncodeJSON()
	if err != nil {
		t.Fatal(err)
	}
	s := string(j)
	for _, c := range []struct {
		name, doc, substr string
	}{
		{"syntax", s[:len(s)/2], "unexpected EOF"},
		{"trailing", s + "{}", "data after the table"},
		{"unknown field", strings.Replace(s, `"apps"`, `"applications"`, 1), `unknown field "applications"`},
		{"guid", strings.Replace(s, "55c92734-d682-4d71-983e-d6ec3f16059f", "55c92734", 1), `"55c92734" is not a GUID`},
		{"type", strings.Replace(s, `"client_slots": 255`, `"client_slots": "x"`, 1), "client_slots"},
		{"index", strings.Replace(s, `"csvlk": 0`, `"csvlk": 3`, 1), "points to CSVLK 3, table has 1"},
		{"number", strings.Replace(s, `"products": []`, `"products": [{"number": 2, "name": "", "sku": "00000000-0000-0000-0000-000000000000", "kms": 0, "gvlk": ""}]`, 1), "products[0] has number 2"},
	} {
		_, err := ReadJSON([]byte(c.doc))
		if err == nil || !strings.Contains(err.Error(), c.substr) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.substr)
		}
	}
}

func FuzzReadXML(f *testing.F) {
	x, err := xmlTable().EncodeXML()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(x)
	f.Add([]byte(`<KmsData Version="2.0"><WinBuilds><WinBuild BuildNumber="9600" UseForEpid="TRUE"/></WinBuilds>` +
		`<CsvlkItems><CsvlkItem VlmcsdIndex="0" IniFileName="Windows" MaxKeyId="5"><Activate KmsItem="{212a64dc-43b1-4d3d-a30c-2fc69d2095c6}"/></CsvlkItem></CsvlkItems>` +
		`<AppItems><AppItem Id="55c92734-d682-4d71-983e-d6ec3f16059f"><KmsItem Id="212a64dc-43b1-4d3d-a30c-2fc69d2095c6" DefaultKmsprotocol="4.0">` +
		`<SkuItem Id="4f3d1606-3fea-4c01-be3c-8d671c401e3b" DisplayName="x" Gvlk="y"/></KmsItem></AppItem></AppItems></KmsData>`))
	f.Add([]byte("<KmsData Version='2.0'>\n<!-- c -->\n</KmsData>"))
	f.Fuzz(func(t *testing.T, data []byte) {
		tab, err := ReadXML(data)
		if err != nil {
			var xe *XMLError
			if !errors.As(err, &xe) || xe.Line < 1 {
				t.Fatalf("error %v is not an *XMLError with a line", err)
			}
			_ = err.Error()
			return
		}
		x, err := tab.EncodeXML()
		if err != nil {
			return // e.g. a year-0 date or KMS items sharing an ID with different CSVLKs
		}
		again, err := ReadXML(x)
		if err != nil {
			t.Fatalf("ReadXML(EncodeXML): %v\n%s", err, x)
		}
		if !reflect.DeepEqual(unindexed(again), unindexed(tab)) {
			t.Fatalf("XML round trip changed the table")
		}
		if _, err := tab.EncodeJSON(); err != nil {
			t.Fatalf("EncodeJSON of a table ReadXML accepted: %v", err)
		}
	})
}
