package products

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
)

// TestOverrides pins where the built-in table departs from KmsDataBase.xml
// (kms-compat.md §3.8 item 7), so that a new XML or spec release that
// changes any of them is noticed. Display-name differences are only
// counted; every other override is listed.
func TestOverrides(t *testing.T) {
	tab := Builtin()
	var want []string
	add := func(format string, args ...any) { want = append(want, fmt.Sprintf(format, args...)) }
	for _, b := range []int{6002, 7601, 9200, 9600, 26100} {
		add("host build %d: UseForEpid in the XML, not a vlmcsd host build", b)
	}
	add("CSVLK 0 Windows: group 4919, keys 20000-20019999, released 2024-04-26 (none of the XML's 36 CsvlkItems named Windows)")
	add("CSVLK 6 Office2024: group 206, keys 591000000-610999999, released 2024-09-16 (XML group 206, keys 666000000-685999999, released none)")
	kms := func(k int) string { return fmt.Sprintf("KMS %d %s", k, tab.KMSItems[k].ID) }
	add("%s %q: not a KmsItem of the XML", kms(10), "Windows 10/11 2024 (Volume)")
	add("%s %q: not a KmsItem of the XML", kms(11), "Windows 10/11 2021 (Volume)")
	add("%s N 25 (XML 5)", kms(12))
	add("%s N 1 (XML 25)", kms(14))
	add("%s CSVLK Windows (XML WinChinaGov)", kms(14))
	add("%s %q: not a KmsItem of the XML", kms(15), "Windows Preview")
	add("%s %q: not a KmsItem of the XML", kms(28), "Windows Server 2025")
	add("%s V4 (XML 5.0)", kms(31))
	add("%s %q: not a KmsItem of the XML", kms(35), "Office 2024 (Volume)")
	prod := func(n int) string { return fmt.Sprintf("product %d %s", n, tab.Products[n-1].SKU) }
	for _, n := range []int{52, 53} {
		add("%s KMS d27cd636-1962-44e9-8b4f-27b6c23efb85 (XML 58e2134f-8e11-4d17-9cb2-91069c151148)", prod(n))
	}
	for n := 80; n <= 84; n++ {
		add("%s %q: not a SkuItem of the XML (no GVLK)", prod(n), tab.Products[n-1].Name)
	}
	for n := 132; n <= 134; n++ {
		add("%s KMS 907f1f65-adcd-4a2e-95bc-4bf500bc6e58 (XML 4b83307d-7788-50ff-8d1f-1861915bdb9d)", prod(n))
	}
	for n := 238; n <= 252; n++ {
		add("%s KMS a8973cb5-bf03-0a4c-9cef-703099645ab3 (XML 1b4db7eb-4057-5ddf-91e0-36dec72071f5)", prod(n))
	}

	var got []string
	names := map[string]int{}
	for _, o := range xmlOverrides {
		kind, _, _ := strings.Cut(o, " ")
		if strings.Contains(o, " name \"") {
			names[kind]++
			continue
		}
		got = append(got, o)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		for _, o := range got {
			if !slices.Contains(want, o) {
				t.Errorf("unexpected override: %s", o)
			}
		}
		for _, o := range want {
			if !slices.Contains(got, o) {
				t.Errorf("missing override: %s", o)
			}
		}
	}
	// kms-compat.md §3.6: 59 of the 247 shared SKUs have other names.
	if wantNames := map[string]int{"app": 2, "host": 3, "KMS": 14, "product": 59}; fmt.Sprint(names) != fmt.Sprint(wantNames) {
		t.Errorf("name overrides %v, want %v", names, wantNames)
	}
}

// TestWriteListColumns compares the multi-column layout with the `vlmcs -x`
// output on a 168-column terminal quoted in seed 001 (whose trailing spaces
// were partly stripped, so lines are compared without them).
func TestWriteListColumns(t *testing.T) {
	seed, err := os.ReadFile("../../../shared/seeds/001_698c03cb06d6359f.txt")
	if err != nil {
		t.Skipf("seed absent: %v", err)
	}
	_, after, ok := strings.Cut(string(seed), "$ ./vlmcs -x\n")
	want, _, ok2 := strings.Cut(after, "```")
	if !ok || !ok2 {
		t.Fatal("seed 001 no longer quotes vlmcs -x")
	}
	var b bytes.Buffer
	if err := Builtin().writeList(&b, 168); err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	wantLines := strings.Split(strings.TrimSuffix(want, "\n"), "\n")
	if len(got) != len(wantLines)+1 { // the seed drops the final empty line
		t.Fatalf("%d lines, seed has %d", len(got), len(wantLines))
	}
	for i, w := range wantLines {
		if g := strings.TrimRight(got[i], " "); g != strings.TrimRight(w, " ") {
			t.Errorf("line %d:\n got %q\nwant %q", i+1, g, w)
		}
	}
	if l := got[2]; len(l) != 2*84 {
		t.Errorf("two-column line has %d characters, want 168: %q", len(l), l)
	}
}
