package products_test

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"testing"

	"kmsd/internal/products"
	"kmsd/internal/wire"
)

var update = flag.Bool("update", false, "rewrite testdata/products.golden")

// Paths of the shared inputs, relative to this package's directory.
const (
	sharedXML  = "../../../shared/data/KmsDataBase.xml"
	sharedSpec = "../../../shared/spec/kms-products-vlmcsd.md"
)

func TestCounts(t *testing.T) {
	tab := products.Builtin()
	for _, c := range []struct {
		what      string
		got, want int
	}{
		{"products", len(tab.Products), 252},
		{"KMS items", len(tab.KMSItems), 36},
		{"CSVLKs", len(tab.CSVLKs), 7},
		{"apps", len(tab.Apps), 3},
		{"host builds", len(tab.HostBuilds), 3},
		{"XML WinBuilds", len(tab.AllBuilds), 30},
	} {
		if c.got != c.want {
			t.Errorf("%s: got %d, want %d", c.what, c.got, c.want)
		}
	}
}

// TestSummary checks the summary of kms-products-vlmcsd.md §6: V, N and
// application counts over the 252 products.
func TestSummary(t *testing.T) {
	tab := products.Builtin()
	proto, npol, apps := map[uint16]int{}, map[uint32]int{}, map[int]int{}
	for i, p := range tab.Products {
		if p.Number != i+1 {
			t.Errorf("product %d has Number %d", i+1, p.Number)
		}
		k := tab.KMSItems[p.KMS]
		proto[k.Protocol]++
		npol[k.NPolicy]++
		apps[k.App]++
	}
	if want := map[uint16]int{4: 64, 5: 33, 6: 155}; !mapsEqual(proto, want) {
		t.Errorf("protocol counts %v, want %v", proto, want)
	}
	if want := map[uint32]int{25: 82, 5: 168, 1: 2}; !mapsEqual(npol, want) {
		t.Errorf("N policy counts %v, want %v", npol, want)
	}
	if want := map[int]int{0: 134, 1: 19, 2: 99}; !mapsEqual(apps, want) {
		t.Errorf("application counts %v, want %v", apps, want)
	}
}

func mapsEqual[K comparable](a, b map[K]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestProducts spot-checks rows of kms-products-vlmcsd.md §5 and §6.
func TestProducts(t *testing.T) {
	tab := products.Builtin()
	for _, c := range []struct {
		num     int
		name    string
		sku     string
		k       int
		kmsID   string
		app     int
		v       uint16
		n       uint32
		csvlk   int
		preview bool
		gvlk    string
	}{
		{1, "Windows Vista Business", "4f3d1606-3fea-4c01-be3c-8d671c401e3b", 0, "212a64dc-43b1-4d3d-a30c-2fc69d2095c6", 0, 4, 25, 0, false, "YFKBB-PQJJV-G996G-VWGXY-2V3X8"},
		{64, "Windows 10/11 Professional", "2de67392-b7a7-462a-b1ca-108dd189f588", 13, "58e2134f-8e11-4d17-9cb2-91069c151148", 0, 6, 25, 0, false, "W269N-WFGWX-YVC9B-4J6C9-T83GX"},
		{78, "Windows 10/11 Enterprise G", "e0b2d383-d112-413f-8a80-97f373a5820c", 14, "7ba0bf23-d0f5-4072-91d9-d55af5a481b6", 0, 6, 1, 0, false, "YYVX9-NTFWV-6MDM3-9PT4T-4M68B"},
		{80, "Windows 8/10 Preview Enterprise", "cde952c7-2f96-4d9d-8f2b-2d349f64fc51", 15, "5f94a0bb-d5a0-4081-a685-5819418b2fe0", 0, 6, 25, 0, false, ""},
		{133, "Windows Server 2025 Datacenter", "c052f164-cdf6-409a-a0cb-853ba0f0f55a", 28, "907f1f65-adcd-4a2e-95bc-4bf500bc6e58", 0, 6, 5, 0, false, "D764K-2NDRG-47T6Q-P8T8W-YP6DF"},
		{154, "Office Professional Plus 2013 (Preview)", "87d2b5bf-d47b-41fb-af62-71c382f5cc85", 30, "aa4c7968-b9da-4680-92b6-acb25e2f866c", 2, 5, 5, 0, true, ""},
		{170, "Office Professional Plus 2013", "b322da9c-a2e2-4058-9e4e-f59a6970bd69", 31, "e6a6f1bf-9d40-40c3-aa9f-c77ba21578c0", 2, 4, 5, 2, false, ""},
		{238, "Office LTSC Professional Plus 2024", "8d368fc1-9470-4be2-8d66-90e836cbb051", 35, "a8973cb5-bf03-0a4c-9cef-703099645ab3", 2, 6, 5, 6, false, "XJ2XN-FW8RK-P4HMP-DKDBV-GCVGB"},
		{252, "Office Word LTSC 2024", "d0eded01-0881-4b37-9738-190400095098", 35, "a8973cb5-bf03-0a4c-9cef-703099645ab3", 2, 6, 5, 6, false, "MQ84N-7VYDM-FXV7C-6K7CC-VFW9J"},
	} {
		p := tab.Products[c.num-1]
		k := tab.KMSItems[p.KMS]
		if p.Number != c.num || p.Name != c.name || p.SKU != wire.MustGUID(c.sku) || p.KMS != c.k {
			t.Errorf("product %d = %d %q %s k %d, want %q %s k %d", c.num, p.Number, p.Name, p.SKU, p.KMS, c.name, c.sku, c.k)
		}
		if k.ID != wire.MustGUID(c.kmsID) || k.App != c.app || k.Protocol != c.v || k.NPolicy != c.n || k.CSVLK != c.csvlk || k.Preview != c.preview {
			t.Errorf("product %d: KMS item %+v, want %s app %d V%d N %d CSVLK %d preview %t", c.num, k, c.kmsID, c.app, c.v, c.n, c.csvlk, c.preview)
		}
		if c.gvlk != "" && p.GVLK != c.gvlk {
			t.Errorf("product %d: GVLK %q, want %q", c.num, p.GVLK, c.gvlk)
		}
		if c.gvlk == "" && c.num == 80 && p.GVLK != "" {
			t.Errorf("product 80 is not in the XML but has GVLK %q", p.GVLK)
		}
	}
}

func TestKMSItems(t *testing.T) {
	tab := products.Builtin()
	for _, c := range []struct {
		k               int
		id, name        string
		app, csvlk      int
		v               uint16
		n               uint32
		retail, preview bool
	}{
		{0, "212a64dc-43b1-4d3d-a30c-2fc69d2095c6", "Windows Vista", 0, 0, 4, 25, false, false},
		{2, "bbb97b3b-8ca4-4a28-9717-89fabd42c4ac", "Windows 8 (Retail)", 0, 0, 5, 25, true, false},
		{10, "e85ee727-69c4-4528-99d2-216b0f065e38", "Windows 10/11 2024 (Volume)", 0, 0, 6, 25, false, false},
		{14, "7ba0bf23-d0f5-4072-91d9-d55af5a481b6", "Windows 10 Enterprise for Government", 0, 0, 6, 1, false, false},
		{15, "5f94a0bb-d5a0-4081-a685-5819418b2fe0", "Windows Preview", 0, 0, 6, 25, false, false},
		{23, "6d5f5270-31ac-433e-b90a-39892923c657", "Windows Server 2012 R2 Next", 0, 0, 6, 5, false, true},
		{29, "e85af946-2e25-47b7-83e1-bebcebeac611", "Office 2010 (Volume)", 1, 1, 4, 5, false, false},
		{30, "aa4c7968-b9da-4680-92b6-acb25e2f866c", "Office 2013 (Volume, Preview)", 2, 0, 5, 5, false, true},
		{31, "e6a6f1bf-9d40-40c3-aa9f-c77ba21578c0", "Office 2013 (Volume)", 2, 2, 4, 5, false, false},
		{35, "a8973cb5-bf03-0a4c-9cef-703099645ab3", "Office 2024 (Volume)", 2, 6, 6, 5, false, false},
	} {
		got := tab.KMSItems[c.k]
		want := products.KMSItem{ID: wire.MustGUID(c.id), Name: c.name, App: c.app, CSVLK: c.csvlk,
			Protocol: c.v, NPolicy: c.n, Retail: c.retail, Preview: c.preview}
		if got != want {
			t.Errorf("KMS item %d = %+v, want %+v", c.k, got, want)
		}
		if i := tab.KMSByID(want.ID); i != c.k {
			t.Errorf("KMSByID(%s) = %d, want %d", want.ID, i, c.k)
		}
	}
	flagged := 0
	for _, k := range tab.KMSItems {
		if k.Retail || k.Preview {
			flagged++
		}
	}
	if flagged != 5 {
		t.Errorf("%d retail/preview KMS items, want 5 (k 2, 4, 6, 23, 30)", flagged)
	}
}

func TestCSVLKs(t *testing.T) {
	tab := products.Builtin()
	want := []products.CSVLK{
		{"Windows", "Windows Server 2025", 4919, 20000, 20019999, 1714089600, "05426-04919-009-767455-03-1033-9200.0000-0172025"},
		{"Office2010", "Office 2010", 96, 199000000, 217999999, 1279152000, "05426-00096-213-338588-03-1033-9200.0000-0172025"},
		{"Office2013", "Office 2013", 206, 234000000, 255999999, 1359417600, "05426-00206-240-708055-03-1033-9200.0000-0172025"},
		{"Office2016", "Office 2016", 206, 437000000, 458999999, 1442880000, "05426-00206-442-913180-03-1033-9200.0000-0172025"},
		{"Office2019", "Office 2019", 206, 666000000, 685999999, 1537747200, "05426-00206-684-399670-03-1033-9200.0000-0172025"},
		{"Office2021", "Office 2021", 206, 571000000, 590999999, 1631750400, "05426-00206-578-810880-03-1033-9200.0000-0172025"},
		{"Office2024", "Office 2024", 206, 591000000, 610999999, 1726444800, "05426-00206-601-010329-03-1033-9200.0000-0172025"},
	}
	if !slices.Equal(tab.CSVLKs, want) {
		t.Errorf("CSVLKs =\n%+v\nwant\n%+v", tab.CSVLKs, want)
	}
	for i, name := range []string{"windows", "OFFICE2010", "Office2013", "office2016", "Office2019", "office2021", "Office2024"} {
		if got := tab.CSVLKByName(name); got != i {
			t.Errorf("CSVLKByName(%q) = %d, want %d", name, got, i)
		}
	}
	for _, name := range []string{"WinChinaGov", "", "Windows "} {
		if got := tab.CSVLKByName(name); got != -1 {
			t.Errorf("CSVLKByName(%q) = %d, want -1", name, got)
		}
	}
}

func TestProbeProduct(t *testing.T) {
	tab := products.Builtin()
	want := []int{4, 153, 185, 205, 221, 237, 252}
	for slot, num := range want {
		if got := tab.ProbeProduct(slot); got != num-1 {
			t.Errorf("ProbeProduct(%d) = %d, want %d (product %d)", slot, got, num-1, num)
		}
	}
	if got := tab.ProbeProduct(len(tab.CSVLKs)); got != -1 {
		t.Errorf("ProbeProduct(%d) = %d, want -1", len(tab.CSVLKs), got)
	}
}

func TestAppsAndBuilds(t *testing.T) {
	tab := products.Builtin()
	apps := []products.App{
		{wire.MustGUID("55c92734-d682-4d71-983e-d6ec3f16059f"), "Windows", 50},
		{wire.MustGUID("59a52881-a989-479d-af46-f275c6370663"), "Office 2010", 10},
		{wire.MustGUID("0ff1ce15-a989-479d-af46-f275c6370663"), "Office 2013 and later", 10},
	}
	if !slices.Equal(tab.Apps, apps) {
		t.Errorf("Apps = %+v, want %+v", tab.Apps, apps)
	}
	for i, a := range apps {
		if got := tab.AppByID(a.ID); got != i {
			t.Errorf("AppByID(%s) = %d, want %d", a.ID, got, i)
		}
	}
	hosts := []products.HostBuild{
		{20348, 3612, 1629244800, true, true, true, "Windows Server 2022"},
		{17763, 3612, 1538438400, true, true, true, "Windows 10 1809/Windows Server 2019/Windows Server 1809 SAC"},
		{14393, 3612, 1470096000, true, true, true, "Windows 10 1607/Windows Server 2016"},
	}
	if !slices.Equal(tab.HostBuilds, hosts) {
		t.Errorf("HostBuilds = %+v, want %+v", tab.HostBuilds, hosts)
	}
	var epid []uint32
	for i, b := range tab.AllBuilds {
		if i > 0 && b.Build > tab.AllBuilds[i-1].Build {
			t.Errorf("AllBuilds not sorted largest first at %d", i)
		}
		if b.UseForEPID {
			epid = append(epid, b.Build)
		}
	}
	if want := []uint32{26100, 20348, 17763, 14393, 9600, 9200, 7601, 6002}; !slices.Equal(epid, want) {
		t.Errorf("XML UseForEpid builds %v, want %v", epid, want)
	}
}

var gvlkRE = regexp.MustCompile(`^[0-9A-Z]{5}(-[0-9A-Z]{5}){4}$`)

func TestGVLKs(t *testing.T) {
	tab := products.Builtin()
	var missing []int
	for _, p := range tab.Products {
		if p.GVLK == "" {
			missing = append(missing, p.Number)
			continue
		}
		if len(p.GVLK) != 29 || !gvlkRE.MatchString(p.GVLK) {
			t.Errorf("product %d: malformed GVLK %q", p.Number, p.GVLK)
		}
	}
	t.Logf("%d of %d products have no GVLK: %v", len(missing), len(tab.Products), missing)
	// kms-products-vlmcsd.md §7: 80-84 are the only products missing from the XML.
	if want := []int{80, 81, 82, 83, 84}; !slices.Equal(missing, want) {
		t.Errorf("products without GVLK %v, want %v", missing, want)
	}
	for _, e := range tab.Extra {
		if e.GVLK != "" && !gvlkRE.MatchString(e.GVLK) {
			t.Errorf("extra SKU %s: malformed GVLK %q", e.SKU, e.GVLK)
		}
	}
}

// TestExtra checks the XML-only SKUs and KMS items of kms-compat.md §3.6
// and kms-products-vlmcsd.md §7.
func TestExtra(t *testing.T) {
	tab := products.Builtin()
	var skus, kmsOnly []string
	for _, e := range tab.Extra {
		if tab.ProductBySKU(e.SKU) >= 0 {
			t.Errorf("extra SKU %s is also product %d", e.SKU, tab.ProductBySKU(e.SKU)+1)
		}
		if e.SKU.IsZero() {
			kmsOnly = append(kmsOnly, e.KMSID.String())
		} else {
			skus = append(skus, e.SKU.String()[:8])
		}
	}
	slices.Sort(skus)
	want := []string{"075aca1f", "2cc171ef", "34260150", "45b5aff2", "5ca3e488", "8c8f0ad3", "af43f7f0", "b995b62c", "ba947c44", "ff808201"}
	if !slices.Equal(skus, want) {
		t.Errorf("extra SKUs %v, want %v", skus, want)
	}
	if want := []string{"1b4db7eb-4057-5ddf-91e0-36dec72071f5"}; !slices.Equal(kmsOnly, want) {
		t.Errorf("XML-only KMS items without extra SKUs %v, want %v", kmsOnly, want)
	}
}

func TestLookup(t *testing.T) {
	tab := products.Builtin()
	for _, c := range []struct {
		arg  string
		want int // 1-based number, 0 = not found
	}{
		{"64", 64},
		{" 064", 64},
		{"\t\n+64", 64},
		{"+64", 64},
		{"1", 1},
		{"252", 252},
		{"0", 0},
		{"253", 0},
		{"-1", 0},
		{"64x", 0},
		{"64 ", 0},
		{"", 0},
		{"+", 0},
		{"99999999999999999999999", 0},
		{"windows 10/11 professional", 64},
		{"WINDOWS VISTA BUSINESS", 1},
		{"Office Word LTSC 2024", 252},
		{"Windows 10/11 Professional ", 0},
		{"2de67392-b7a7-462a-b1ca-108dd189f588", 64},
		{"{D0EDED01-0881-4B37-9738-190400095098}", 252},
		{"45b5aff2-60a0-42f2-bc4b-ec6e5f7b527e", 0}, // XML-only SKU
	} {
		i, ok := tab.Lookup(c.arg)
		if got := i + 1; ok != (c.want != 0) || got != c.want {
			t.Errorf("Lookup(%q) = %d, %t; want %d", c.arg, i, ok, c.want-1)
		}
	}
}

// TestUnindexed checks that a hand-built table works before Index is called
// and after.
func TestUnindexed(t *testing.T) {
	b := products.Builtin()
	tab := &products.Table{
		Apps:     b.Apps,
		CSVLKs:   b.CSVLKs,
		KMSItems: b.KMSItems,
		Products: []products.Product{
			{Number: 1, Name: "Same", SKU: wire.MustGUID("00000000-0000-0000-0000-000000000001"), KMS: 0},
			{Number: 2, Name: "same", SKU: wire.MustGUID("00000000-0000-0000-0000-000000000002"), KMS: 0},
		},
	}
	for pass := range 2 {
		if i, ok := tab.Lookup("SAME"); !ok || i != 1 {
			t.Errorf("pass %d: Lookup(SAME) = %d, %t; want the last duplicate, 1", pass, i, ok)
		}
		if i := tab.ProductBySKU(wire.MustGUID("00000000-0000-0000-0000-000000000002")); i != 1 {
			t.Errorf("pass %d: ProductBySKU = %d, want 1", pass, i)
		}
		if i := tab.KMSByID(b.KMSItems[35].ID); i != 35 {
			t.Errorf("pass %d: KMSByID = %d, want 35", pass, i)
		}
		if i := tab.AppByID(b.Apps[2].ID); i != 2 {
			t.Errorf("pass %d: AppByID = %d, want 2", pass, i)
		}
		if i := tab.ProbeProduct(0); i != 1 {
			t.Errorf("pass %d: ProbeProduct(0) = %d, want 1", pass, i)
		}
		tab.Index()
	}
	if i := tab.KMSByID(wire.GUID{}); i != -1 {
		t.Errorf("KMSByID(zero) = %d, want -1", i)
	}
}

func TestFilter(t *testing.T) {
	tab := products.Builtin()
	for _, c := range []struct {
		query string
		want  []int // 1-based numbers; nil: only check the count
		count int
	}{
		{"", nil, 252},
		{"office word ltsc 2024", []int{252}, 1},
		{"W269N-WFGWX", []int{64}, 1},
		{"2DE67392", []int{64}, 1},
		{"for government", []int{78, 79}, 2}, // KMS item name
		{"no such product", []int{}, 0},
		{"Windows Server 2025", []int{132, 133, 134}, 3},
	} {
		got := tab.Filter(c.query)
		if len(got) != c.count {
			t.Errorf("Filter(%q) gave %d products, want %d", c.query, len(got), c.count)
			continue
		}
		for j, i := range got {
			if c.want != nil && tab.Products[i].Number != c.want[j] {
				t.Errorf("Filter(%q) = %v, want numbers %v", c.query, got, c.want)
				break
			}
		}
	}
	if got := tab.Filter("25"); !slices.Contains(got, 24) || !slices.Contains(got, 124) {
		t.Errorf("Filter(25) should match products 25 and 125 by number, got %v", got)
	}
}

func TestWriteListGolden(t *testing.T) {
	var b bytes.Buffer
	if err := products.Builtin().WriteList(&b); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "products.golden")
	if *update {
		if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/products -update)", err)
	}
	if !bytes.Equal(b.Bytes(), want) {
		t.Errorf("WriteList output differs from %s (run with -update after checking)", golden)
	}
	lines := bytes.Split(b.Bytes(), []byte("\n"))
	if len(lines) != 2+252+2 || string(lines[0]) != "You may use these product names or numbers:" {
		t.Fatalf("unexpected layout: %d lines, first %q", len(lines), lines[0])
	}
	if got, want := string(lines[2]), "  1 = Windows Vista Business"; got[:len(want)] != want || len(got) != 3+3+74+4 {
		t.Errorf("first product line %q (len %d), want %q padded to 84", got, len(got), want)
	}
}

// TestGenerator checks that gen.go reproduces the committed table_gen.go.
func TestGenerator(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go run")
	}
	out := filepath.Join(t.TempDir(), "table_gen.go")
	if msg, err := runGen(t, "-xml", sharedXML, "-spec", sharedSpec, "-out", out); err != nil {
		t.Fatalf("go run gen.go: %v\n%s", err, msg)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("table_gen.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Error("table_gen.go is stale: run go generate ./internal/products")
	}
}

// runGen runs go run gen.go with args; it skips the test when the go
// command or the shared inputs are missing.
func runGen(t *testing.T, args ...string) ([]byte, error) {
	t.Helper()
	if testing.Short() {
		t.Skip("runs go run")
	}
	for _, f := range []string{sharedXML, sharedSpec} {
		if _, err := os.Stat(f); err != nil {
			t.Skipf("shared input absent: %v", err)
		}
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go command not found")
	}
	return exec.Command(goTool, append([]string{"run", "gen.go"}, args...)...).CombinedOutput()
}

// TestGeneratorFailsLoudly feeds the generator damaged copies of its inputs
// and expects a non-zero exit with a message that names the problem.
func TestGeneratorFailsLoudly(t *testing.T) {
	spec, errS := os.ReadFile(sharedSpec)
	xmlData, errX := os.ReadFile(sharedXML)
	if errS != nil || errX != nil {
		t.Skip("shared inputs absent")
	}
	for _, c := range []struct {
		name, file string
		re, repl   string
		wantMsg    string
	}{
		{"missing product", "spec", `(?m)^\| 100 \| .*\n`, "", `§6, column "#": want 100`},
		{"product V differs from its item", "spec", `(?m)^(\| 64 \| .* \| )6( \| 25 \|)$`, "${1}5${2}", "KMS item 13 of §5 has V 6"},
		{"bad CSVLK group", "spec", "(?m)^(\\| 3 \\| `Office2016` \\| Office 2016 \\| )206", "${1}x206", `§3.1, column "group ID"`},
		{"missing KMS item", "spec", "(?m)^\\| 35 \\| `a8973cb5.*\\n", "", "no KMS item 35 in §5"},
		{"bad XML boolean", "xml", `IsRetail="true"`, `IsRetail="maybe"`, `IsRetail: "maybe" is not a boolean`},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			in := map[string][]byte{"spec": spec, "xml": xmlData}
			damaged := regexp.MustCompile(c.re).ReplaceAll(in[c.file], []byte(c.repl))
			if bytes.Equal(damaged, in[c.file]) {
				t.Fatalf("pattern %q matched nothing", c.re)
			}
			in[c.file] = damaged
			for name, data := range in {
				if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			out := filepath.Join(dir, "out.go")
			msg, err := runGen(t, "-xml", filepath.Join(dir, "xml"), "-spec", filepath.Join(dir, "spec"), "-out", out)
			if err == nil {
				t.Fatalf("generator succeeded on damaged input")
			}
			if !bytes.Contains(msg, []byte(c.wantMsg)) {
				t.Errorf("message %q does not contain %q", msg, c.wantMsg)
			}
			if _, err := os.Stat(out); err == nil {
				t.Error("generator wrote output despite the error")
			}
		})
	}
}
