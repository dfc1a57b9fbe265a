//go:build ignore

// Gen writes table_gen.go, the built-in product table of package products.
//
// It reads two sources and merges them as shared/spec/kms-compat.md §3.8
// recommends (vlmcsd parity wins on the wire):
//
//   - the markdown tables of shared/spec/kms-products-vlmcsd.md, which list
//     vlmcsd's current built-in tables: host builds (§2.1), CSVLK slots
//     (§3.1) and their built-in ePIDs (§3.3), applications (§4), KMS items
//     (§5) and the numbered products of vlmcs -x (§6). These give the product
//     list, numbering and names, the KMS items, slots, host builds and
//     applications;
//   - shared/data/KmsDataBase.xml (kms-data.md §1), which adds each product's
//     GVLK (matched by SKU ID), the full WinBuild list, and the SKUs and KMS
//     items vlmcsd lacks (Table.Extra). Its known defects are tolerated:
//     booleans in any case, attribute names in any case (DefaultKmsprotocol),
//     braces around GUIDs, an empty CsvlkItem Id (kms-compat.md §3.7).
//
// Any malformed table, unexpected count or inconsistency between the
// tables ends the program with a message naming the place and status 1.
//
// Usage (from internal/products): go run gen.go [-xml file] [-spec file] [-out file]
package main

import (
	"bytes"
	"encoding/xml"
	"flag"
	"fmt"
	"go/format"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"kmsd/internal/wire"
)

// Expected sizes of vlmcsd's current tables (kms-products-vlmcsd.md §1).
const (
	wantProducts = 252
	wantKMS      = 36
	wantCSVLKs   = 7
	wantApps     = 3
	wantHosts    = 3
)

func main() {
	xmlPath := flag.String("xml", "../../../shared/data/KmsDataBase.xml", "KmsDataBase.xml to read")
	specPath := flag.String("spec", "../../../shared/spec/kms-products-vlmcsd.md", "kms-products-vlmcsd.md to read")
	outPath := flag.String("out", "table_gen.go", "Go file to write")
	flag.Parse()

	tab := readSpec(*specPath)
	db := readXML(*xmlPath)
	merge(tab, db)
	src, err := format.Source(render(tab))
	if err != nil {
		die("formatting the generated code: %v", err)
	}
	if err := os.WriteFile(*outPath, src, 0o644); err != nil {
		die("%v", err)
	}
}

func die(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "gen: "+format+"\n", args...)
	os.Exit(1)
}

// ---------------------------------------------------------------------------
// The merged table, as the generator builds it.

type gApp struct {
	id    wire.GUID
	name  string
	slots int
}

type gCSVLK struct {
	ini, display     string
	group, min, max  uint32
	release          int64
	epid             string
	probe, probeName string // -G probe product number (1-based) and name, as text
}

type gKMS struct {
	id              wire.GUID
	name            string
	app, csvlk      int
	proto           uint16
	n               uint32
	retail, preview bool
	span            string // "products" column of §5
}

type gProduct struct {
	num  int
	name string
	sku  wire.GUID
	kms  int
	gvlk string
}

type gBuild struct {
	build, platform     uint32
	release             int64
	ndr64, epid, server bool
	name                string
}

type gExtra struct {
	name       string
	sku, kmsID wire.GUID
	kmsName    string
	gvlk       string
	app        int
}

type table struct {
	apps      []gApp
	csvlks    []gCSVLK
	kms       []gKMS
	products  []gProduct
	hosts     []gBuild
	allBuilds []gBuild
	extra     []gExtra
	overrides []string
}

// ---------------------------------------------------------------------------
// Markdown tables.

type mdRow struct {
	line  int
	cells []string
}

type mdTable struct {
	file    string
	section string // heading number, e.g. "2.1" or "4"
	line    int    // line of the header row
	before  string // nearest non-blank line above the table
	header  []string
	rows    []mdRow
}

var (
	headingRE   = regexp.MustCompile(`^#{1,6}\s+(\d+(?:\.\d+)*)\.?\s`)
	separatorRE = regexp.MustCompile(`^\|(\s*:?-+:?\s*\|)+$`)
)

// parseMarkdown returns every pipe table of text with the number of the
// heading it appears under.
func parseMarkdown(file, text string) []*mdTable {
	var tables []*mdTable
	var cur *mdTable
	section, before, fenced := "", "", false
	lines := strings.Split(text, "\n")
	for i := 0; i < len(lines); i++ {
		l := strings.TrimSpace(lines[i])
		if strings.HasPrefix(l, "```") {
			fenced = !fenced
		}
		if fenced || !strings.HasPrefix(l, "|") {
			cur = nil
			if m := headingRE.FindStringSubmatch(l); m != nil && !fenced {
				section = m[1]
			}
			if l != "" {
				before = l
			}
			continue
		}
		if cur == nil {
			if i+1 >= len(lines) || !separatorRE.MatchString(strings.TrimSpace(lines[i+1])) {
				die("%s:%d: table header without a separator line", file, i+1)
			}
			cur = &mdTable{file: file, section: section, line: i + 1, before: before, header: splitRow(file, i+1, l)}
			tables = append(tables, cur)
			i++ // skip the separator
			continue
		}
		cells := splitRow(file, i+1, l)
		if len(cells) != len(cur.header) {
			die("%s:%d: row has %d cells, the table header (line %d) has %d", file, i+1, len(cells), cur.line, len(cur.header))
		}
		cur.rows = append(cur.rows, mdRow{line: i + 1, cells: cells})
	}
	return tables
}

func splitRow(file string, line int, l string) []string {
	if len(l) < 2 || !strings.HasSuffix(l, "|") {
		die("%s:%d: table row does not end with '|'", file, line)
	}
	if strings.Contains(l, `\|`) {
		die("%s:%d: escaped '|' in a table cell is not supported", file, line)
	}
	cells := strings.Split(l[1:len(l)-1], "|")
	for i, c := range cells {
		cells[i] = strings.TrimSpace(c)
	}
	return cells
}

// findTable returns the one table under section whose header is exactly
// header and, if before is not empty, whose preceding line is before.
func findTable(tables []*mdTable, section string, before string, header ...string) *mdTable {
	var found []*mdTable
	for _, t := range tables {
		if t.section == section && slices.Equal(t.header, header) && (before == "" || t.before == before) {
			found = append(found, t)
		}
	}
	if len(found) != 1 {
		file := "spec"
		if len(tables) > 0 {
			file = tables[0].file
		}
		die("%s: §%s: found %d tables with header | %s | (preceded by %q), want exactly 1",
			file, section, len(found), strings.Join(header, " | "), before)
	}
	return found[0]
}

// cell gives typed access to one cell, with errors that name the place.
type cell struct {
	t   *mdTable
	r   mdRow
	col string
}

func (t *mdTable) cell(r mdRow, col string) cell {
	if !slices.Contains(t.header, col) {
		die("%s:%d: §%s table has no column %q", t.file, t.line, t.section, col)
	}
	return cell{t, r, col}
}

func (c cell) fail(format string, args ...any) {
	die("%s:%d: §%s, column %q: %s", c.t.file, c.r.line, c.t.section, c.col, fmt.Sprintf(format, args...))
}

// text is the cell without bold markers and enclosing back-quotes.
func (c cell) text() string {
	s := strings.TrimSpace(strings.ReplaceAll(c.r.cells[slices.Index(c.t.header, c.col)], "**", ""))
	if len(s) >= 2 && s[0] == '`' && s[len(s)-1] == '`' {
		s = s[1 : len(s)-1]
	}
	if s == "" {
		c.fail("empty cell")
	}
	return s
}

func (c cell) uint(bits int) uint64 {
	v, err := strconv.ParseUint(c.text(), 10, bits)
	if err != nil {
		c.fail("%v", err)
	}
	return v
}

func (c cell) int() int { return int(c.uint(31)) }

func (c cell) guid() wire.GUID {
	g, err := wire.ParseGUID(c.text())
	if err != nil {
		c.fail("%v", err)
	}
	return g
}

func (c cell) yesNo() bool {
	switch c.text() {
	case "yes":
		return true
	case "no":
		return false
	}
	c.fail("want yes or no, got %q", c.text())
	return false
}

// date parses YYYY-MM-DD (UTC midnight) and returns Unix seconds.
func (c cell) date() int64 {
	d, err := time.Parse(time.DateOnly, c.text())
	if err != nil {
		c.fail("%v", err)
	}
	return d.Unix()
}

// numberAndName splits "0 Windows" or "4 (Windows Vista Enterprise N)".
func (c cell) numberAndName() (int, string) {
	num, name, ok := strings.Cut(c.text(), " ")
	n, err := strconv.Atoi(num)
	if !ok || err != nil {
		c.fail("want a number followed by a name, got %q", c.text())
	}
	if strings.HasPrefix(name, "(") && strings.HasSuffix(name, ")") {
		name = name[1 : len(name)-1]
	}
	return n, name
}

// position checks that an index column counts 0, 1, 2, ... (or from 1).
func (c cell) position(want int) {
	if c.int() != want {
		c.fail("want %d (rows must be in order), got %s", want, c.text())
	}
}

// ---------------------------------------------------------------------------
// vlmcsd's tables from kms-products-vlmcsd.md.

func readSpec(path string) *table {
	text, err := os.ReadFile(path)
	if err != nil {
		die("%v", err)
	}
	tables := parseMarkdown(path, string(text))
	tab := &table{}
	tab.hosts = specHosts(findTable(tables, "2.1", "",
		"#", "build", "platform ID", "release date (UTC)", "Unix seconds", "uses NDR64", "use for ePID", "may be server", "display name"))
	tab.csvlks = specCSVLKs(findTable(tables, "3.1", "",
		"slot", "ini name", "display name", "group ID", "MinKeyId", "MaxKeyId", "release date (UTC)", "Unix seconds", "-G probe product"))
	specEPIDs(tab, findTable(tables, "3.3", "Current build:", "slot", "ini name", "built-in ePID (`-r0`)", "HWID"))
	tab.apps = specApps(findTable(tables, "4", "",
		"app", "Application ID", "name (current)", "name (older vlmcs)", "client-list size", "pre-filled slots", "default CSVLK field (current / older)"))
	tab.kms = specKMS(tab, findTable(tables, "5", "",
		"k", "KMS ID", "name", "app", "CSVLK", "V", "N", "retail", "preview", "products"))
	tab.products = specProducts(tab, findTable(tables, "6", "",
		"#", "product name (`vlmcs -x`, `-l`)", "SKU ID (ActID)", "k", "KMS ID", "app", "V", "N"))
	checkCount(path, "§2.1 host builds", len(tab.hosts), wantHosts)
	checkCount(path, "§3.1 CSVLK slots", len(tab.csvlks), wantCSVLKs)
	checkCount(path, "§4 applications", len(tab.apps), wantApps)
	checkCount(path, "§5 KMS items", len(tab.kms), wantKMS)
	checkCount(path, "§6 products", len(tab.products), wantProducts)
	checkSpans(path, tab)
	checkProbes(path, tab)
	return tab
}

func checkCount(file, what string, got, want int) {
	if got != want {
		die("%s: %s: found %d, want %d", file, what, got, want)
	}
}

func specHosts(t *mdTable) []gBuild {
	var out []gBuild
	for i, r := range t.rows {
		t.cell(r, "#").position(i)
		b := gBuild{
			build:    uint32(t.cell(r, "build").uint(32)),
			platform: uint32(t.cell(r, "platform ID").uint(32)),
			release:  int64(t.cell(r, "Unix seconds").uint(63)),
			ndr64:    t.cell(r, "uses NDR64").yesNo(),
			epid:     t.cell(r, "use for ePID").yesNo(),
			server:   t.cell(r, "may be server").yesNo(),
			name:     t.cell(r, "display name").text(),
		}
		if d := t.cell(r, "release date (UTC)"); d.date() != b.release {
			d.fail("date %s is not Unix seconds %d", d.text(), b.release)
		}
		if i > 0 && b.build >= out[i-1].build {
			t.cell(r, "build").fail("builds must be sorted largest first")
		}
		out = append(out, b)
	}
	return out
}

func specCSVLKs(t *mdTable) []gCSVLK {
	var out []gCSVLK
	for i, r := range t.rows {
		t.cell(r, "slot").position(i)
		c := gCSVLK{
			ini:     t.cell(r, "ini name").text(),
			display: t.cell(r, "display name").text(),
			group:   uint32(t.cell(r, "group ID").uint(32)),
			min:     uint32(t.cell(r, "MinKeyId").uint(32)),
			max:     uint32(t.cell(r, "MaxKeyId").uint(32)),
			release: int64(t.cell(r, "Unix seconds").uint(63)),
		}
		if d := t.cell(r, "release date (UTC)"); d.date() != c.release {
			d.fail("date %s is not Unix seconds %d", d.text(), c.release)
		}
		if c.min >= c.max {
			t.cell(r, "MaxKeyId").fail("key range %d-%d is empty", c.min, c.max)
		}
		n, name := t.cell(r, "-G probe product").numberAndName()
		c.probe, c.probeName = strconv.Itoa(n), name
		out = append(out, c)
	}
	return out
}

var epidRE = regexp.MustCompile(`^\d{5}-\d{5}-\d{3}-\d{6}-\d{2}-\d{4}-\d{4,5}\.\d{4}-\d{7}$`)

func specEPIDs(tab *table, t *mdTable) {
	if len(t.rows) != len(tab.csvlks) {
		die("%s:%d: §3.3 lists %d built-in ePIDs for %d CSVLK slots", t.file, t.line, len(t.rows), len(tab.csvlks))
	}
	for i, r := range t.rows {
		t.cell(r, "slot").position(i)
		if c := t.cell(r, "ini name"); c.text() != tab.csvlks[i].ini {
			c.fail("slot %d is %q in §3.1", i, tab.csvlks[i].ini)
		}
		c := t.cell(r, "built-in ePID (`-r0`)")
		if !epidRE.MatchString(c.text()) {
			c.fail("malformed ePID %q", c.text())
		}
		tab.csvlks[i].epid = c.text()
	}
}

func specApps(t *mdTable) []gApp {
	var out []gApp
	for i, r := range t.rows {
		t.cell(r, "app").position(i)
		out = append(out, gApp{
			id:    t.cell(r, "Application ID").guid(),
			name:  t.cell(r, "name (current)").text(),
			slots: t.cell(r, "client-list size").int(),
		})
	}
	return out
}

func specKMS(tab *table, t *mdTable) []gKMS {
	var out []gKMS
	for i, r := range t.rows {
		t.cell(r, "k").position(i)
		k := gKMS{
			id:      t.cell(r, "KMS ID").guid(),
			name:    t.cell(r, "name").text(),
			app:     t.cell(r, "app").int(),
			proto:   uint16(t.cell(r, "V").uint(16)),
			n:       uint32(t.cell(r, "N").uint(32)),
			retail:  t.cell(r, "retail").yesNo(),
			preview: t.cell(r, "preview").yesNo(),
			span:    t.cell(r, "products").text(),
		}
		c := t.cell(r, "CSVLK")
		slot, ini := c.numberAndName()
		if slot < 0 || slot >= len(tab.csvlks) || tab.csvlks[slot].ini != ini {
			c.fail("%q is not a CSVLK slot of §3.1", c.text())
		}
		k.csvlk = slot
		if k.app >= len(tab.apps) {
			t.cell(r, "app").fail("no application %d in §4", k.app)
		}
		if k.proto < 4 || k.proto > 6 {
			t.cell(r, "V").fail("protocol %d is not 4, 5 or 6", k.proto)
		}
		for _, o := range out {
			if o.id == k.id {
				t.cell(r, "KMS ID").fail("duplicate KMS ID %s", k.id)
			}
		}
		out = append(out, k)
	}
	return out
}

func specProducts(tab *table, t *mdTable) []gProduct {
	var out []gProduct
	seen := map[wire.GUID]int{}
	for i, r := range t.rows {
		t.cell(r, "#").position(i + 1)
		p := gProduct{
			num:  i + 1,
			name: t.cell(r, "product name (`vlmcs -x`, `-l`)").text(),
			sku:  t.cell(r, "SKU ID (ActID)").guid(),
			kms:  t.cell(r, "k").int(),
		}
		if n, dup := seen[p.sku]; dup {
			t.cell(r, "SKU ID (ActID)").fail("SKU ID %s already used by product %d", p.sku, n)
		}
		seen[p.sku] = p.num
		if p.kms >= len(tab.kms) {
			t.cell(r, "k").fail("no KMS item %d in §5", p.kms)
		}
		k := tab.kms[p.kms]
		if c := t.cell(r, "KMS ID"); c.guid() != k.id {
			c.fail("KMS item %d of §5 has KMS ID %s", p.kms, k.id)
		}
		if c := t.cell(r, "app"); c.int() != k.app {
			c.fail("KMS item %d of §5 has app %d", p.kms, k.app)
		}
		if c := t.cell(r, "V"); c.uint(16) != uint64(k.proto) {
			c.fail("KMS item %d of §5 has V %d", p.kms, k.proto)
		}
		if c := t.cell(r, "N"); c.uint(32) != uint64(k.n) {
			c.fail("KMS item %d of §5 has N %d", p.kms, k.n)
		}
		out = append(out, p)
	}
	return out
}

// checkSpans compares the "products" column of §5 with the k column of §6.
func checkSpans(file string, tab *table) {
	for k, item := range tab.kms {
		var nums []int
		for _, p := range tab.products {
			if p.kms == k {
				nums = append(nums, p.num)
			}
		}
		got := "—"
		if len(nums) == 1 {
			got = strconv.Itoa(nums[0])
		} else if len(nums) > 1 {
			got = fmt.Sprintf("%d–%d", nums[0], nums[len(nums)-1])
			if nums[len(nums)-1]-nums[0] != len(nums)-1 {
				got += " (not contiguous)"
			}
		}
		if got != item.span {
			die("%s: §5 KMS item %d lists products %q but §6 gives %q", file, k, item.span, got)
		}
	}
}

// checkProbes compares the "-G probe product" column of §3.1 with the
// product vlmcs -G derives (kms-client.md §8).
func checkProbes(file string, tab *table) {
	for slot, c := range tab.csvlks {
		got, name := "none", ""
		for k, item := range tab.kms {
			if item.csvlk != slot {
				continue
			}
			for _, p := range tab.products {
				if p.kms == k {
					got, name = strconv.Itoa(p.num), p.name
				}
			}
			break
		}
		if got != c.probe || name != c.probeName {
			die("%s: §3.1 slot %d names probe product %s (%s) but §5/§6 give %s (%s)", file, slot, c.probe, c.probeName, got, name)
		}
	}
}

// ---------------------------------------------------------------------------
// KmsDataBase.xml.

type xNode struct {
	name  string
	file  string
	line  int
	attrs []xml.Attr
	kids  []*xNode
}

// parseXML reads the document into a tree that remembers line numbers.
func parseXML(file string, r io.Reader) *xNode {
	d := xml.NewDecoder(r)
	var root *xNode
	var stack []*xNode
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			die("%s: %v", file, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			line, _ := d.InputPos()
			n := &xNode{name: t.Name.Local, file: file, line: line, attrs: t.Copy().Attr}
			if len(stack) == 0 {
				root = n
			} else {
				p := stack[len(stack)-1]
				p.kids = append(p.kids, n)
			}
			stack = append(stack, n)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		}
	}
	if root == nil || root.name != "KmsData" {
		die("%s: root element is not <KmsData>", file)
	}
	return root
}

func (n *xNode) fail(format string, args ...any) {
	what := n.name
	if v, ok := n.attr("DisplayName"); ok {
		what += fmt.Sprintf(" %q", v)
	}
	die("%s:%d: <%s>: %s", n.file, n.line, what, fmt.Sprintf(format, args...))
}

// attr looks an attribute up ignoring case (the XML misspells
// DefaultKmsProtocol once) and namespace.
func (n *xNode) attr(name string) (string, bool) {
	for _, a := range n.attrs {
		if strings.EqualFold(a.Name.Local, name) {
			return strings.TrimSpace(a.Value), true
		}
	}
	return "", false
}

func (n *xNode) children(name string) []*xNode {
	var out []*xNode
	for _, k := range n.kids {
		if k.name == name {
			out = append(out, k)
		}
	}
	return out
}

func (n *xNode) text(name string) string {
	v, ok := n.attr(name)
	if !ok || v == "" {
		n.fail("attribute %s is missing or empty", name)
	}
	return v
}

// guid parses a GUID attribute (braces allowed); ok is false when it is
// absent or empty.
func (n *xNode) guid(name string) (wire.GUID, bool) {
	v, _ := n.attr(name)
	if v == "" {
		return wire.GUID{}, false
	}
	g, err := wire.ParseGUID(v)
	if err != nil {
		n.fail("attribute %s: %v", name, err)
	}
	return g, true
}

func (n *xNode) mustGUID(name string) wire.GUID {
	g, ok := n.guid(name)
	if !ok {
		n.fail("attribute %s is missing or empty", name)
	}
	return g
}

// boolean reads an xs:boolean ignoring case; absent or empty gives def.
func (n *xNode) boolean(name string, def bool) bool {
	v, _ := n.attr(name)
	switch strings.ToLower(v) {
	case "":
		return def
	case "true", "1":
		return true
	case "false", "0":
		return false
	}
	n.fail("attribute %s: %q is not a boolean", name, v)
	return false
}

// uint reads an unsigned attribute; absent or empty gives def, ok false.
func (n *xNode) uint(name string, bits int, def uint64) (uint64, bool) {
	v, _ := n.attr(name)
	if v == "" {
		return def, false
	}
	u, err := strconv.ParseUint(v, 10, bits)
	if err != nil {
		n.fail("attribute %s: %v", name, err)
	}
	return u, true
}

// date reads an xs:dateTime attribute as Unix seconds, 0 if absent.
func (n *xNode) date(name string) int64 {
	v, _ := n.attr(name)
	if v == "" {
		return 0
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		n.fail("attribute %s: %v", name, err)
	}
	return t.Unix()
}

type xCSVLK struct {
	ini             string
	group, min, max uint32
	hasRange        bool
	release         int64
	activates       []wire.GUID
}

type xSKU struct {
	id         wire.GUID
	name, gvlk string
}

type xKMS struct {
	id              wire.GUID
	name            string
	retail, preview bool
	proto           uint16
	n               uint32
	skus            []xSKU
}

type xApp struct {
	id    wire.GUID
	name  string
	slots int
	kms   []xKMS
}

type xDB struct {
	builds []gBuild
	csvlks []xCSVLK
	apps   []xApp
}

func readXML(path string) *xDB {
	f, err := os.Open(path)
	if err != nil {
		die("%v", err)
	}
	defer f.Close()
	root := parseXML(path, f)
	if v, _ := root.attr("Version"); v != "2.0" {
		root.fail("Version is %q, want 2.0", v)
	}
	db := &xDB{}
	for _, s := range root.children("WinBuilds") {
		for _, n := range s.children("WinBuild") {
			db.builds = append(db.builds, xmlBuild(n))
		}
	}
	for _, s := range root.children("CsvlkItems") {
		for _, n := range s.children("CsvlkItem") {
			db.csvlks = append(db.csvlks, xmlCSVLK(n))
		}
	}
	for _, s := range root.children("AppItems") {
		for _, n := range s.children("AppItem") {
			db.apps = append(db.apps, xmlApp(n))
		}
	}
	if len(db.builds) == 0 || len(db.apps) == 0 {
		root.fail("no WinBuild or no AppItem elements")
	}
	return db
}

func xmlBuild(n *xNode) gBuild {
	build, ok := n.uint("BuildNumber", 32, 0)
	if !ok {
		n.fail("attribute BuildNumber is missing")
	}
	platform, _ := n.uint("PlatformId", 32, 0)
	return gBuild{
		build:    uint32(build),
		platform: uint32(platform),
		release:  n.date("ReleaseDate"),
		ndr64:    n.boolean("UsesNDR64", false),
		epid:     n.boolean("UseForEpid", false),
		server:   n.boolean("MayBeServer", false),
		name:     n.text("DisplayName"),
	}
}

func xmlCSVLK(n *xNode) xCSVLK {
	c := xCSVLK{release: n.date("ReleaseDate")}
	c.ini, _ = n.attr("IniFileName")
	group, okG := n.uint("GroupId", 32, 0)
	lo, okLo := n.uint("MinKeyId", 32, 0)
	hi, okHi := n.uint("MaxKeyId", 32, 0)
	c.group, c.min, c.max, c.hasRange = uint32(group), uint32(lo), uint32(hi), okG && okLo && okHi
	n.guid("Id") // validate; an empty Id is tolerated (kms-compat.md §3.7)
	for _, a := range n.children("Activate") {
		c.activates = append(c.activates, a.mustGUID("KmsItem"))
	}
	return c
}

func xmlApp(n *xNode) xApp {
	slots, _ := n.uint("MinActiveClients", 31, 0)
	a := xApp{id: n.mustGUID("Id"), name: n.text("DisplayName"), slots: int(slots)}
	for _, k := range n.children("KmsItem") {
		a.kms = append(a.kms, xmlKMS(k))
	}
	return a
}

func xmlKMS(n *xNode) xKMS {
	k := xKMS{
		id:      n.mustGUID("Id"),
		name:    n.text("DisplayName"),
		retail:  n.boolean("IsRetail", false),
		preview: n.boolean("IsPreview", false),
	}
	proto, _ := n.attr("DefaultKmsProtocol")
	switch proto {
	case "", "6.0":
		k.proto = 6
	case "4.0", "5.0":
		k.proto = uint16(proto[0] - '0')
	default:
		n.fail("DefaultKmsProtocol %q is not 4.0, 5.0 or 6.0", proto)
	}
	np, _ := n.uint("NCountPolicy", 32, 25)
	k.n = uint32(np)
	for _, s := range n.children("SkuItem") {
		gvlk, _ := s.attr("Gvlk")
		if gvlk != "" && !gvlkRE.MatchString(gvlk) {
			s.fail("malformed Gvlk %q", gvlk)
		}
		k.skus = append(k.skus, xSKU{id: s.mustGUID("Id"), name: s.text("DisplayName"), gvlk: gvlk})
	}
	return k
}

var gvlkRE = regexp.MustCompile(`^[0-9A-Z]{5}(-[0-9A-Z]{5}){4}$`)

// ---------------------------------------------------------------------------
// Merging.

// merge adds the XML's GVLKs, WinBuilds and extra SKUs to tab and records
// where the XML's values were overridden by vlmcsd's.
func merge(tab *table, db *xDB) {
	type skuRef struct {
		sku  xSKU
		kms  *xKMS
		app  int
		seen bool
	}
	skus := map[wire.GUID]*skuRef{}
	for ai := range db.apps {
		app := vlmcsdApp(tab, db.apps[ai])
		for ki := range db.apps[ai].kms {
			k := &db.apps[ai].kms[ki]
			for _, s := range k.skus {
				if _, dup := skus[s.id]; dup {
					die("KmsDataBase.xml: SKU %s (%s) appears twice", s.id, s.name)
				}
				skus[s.id] = &skuRef{sku: s, kms: k, app: app}
			}
		}
	}
	for i := range tab.products {
		if ref, ok := skus[tab.products[i].sku]; ok {
			tab.products[i].gvlk = ref.sku.gvlk
			ref.seen = true
		}
	}
	known := map[wire.GUID]bool{}
	for _, k := range tab.kms {
		known[k.id] = true
	}
	for ai, a := range db.apps {
		for _, k := range a.kms {
			extra := 0
			for _, s := range k.skus {
				if !skus[s.id].seen {
					tab.extra = append(tab.extra, gExtra{s.name, s.id, k.id, k.name, s.gvlk, skus[s.id].app})
					extra++
				}
			}
			if extra == 0 && !known[k.id] {
				tab.extra = append(tab.extra, gExtra{kmsID: k.id, kmsName: k.name, app: vlmcsdApp(tab, db.apps[ai])})
			}
		}
	}
	tab.allBuilds = slices.Clone(db.builds)
	slices.SortStableFunc(tab.allBuilds, func(a, b gBuild) int { return int(b.build) - int(a.build) })
	tab.overrides = overrides(tab, db)
}

func vlmcsdApp(tab *table, a xApp) int {
	for i, v := range tab.apps {
		if v.id == a.id {
			return i
		}
	}
	die("KmsDataBase.xml: AppItem %s (%s) is not an application of vlmcsd's table", a.id, a.name)
	return -1
}

// overrides lists every value where the XML differs from vlmcsd's table
// and vlmcsd's was taken (kms-compat.md §3.8 item 7).
func overrides(tab *table, db *xDB) []string {
	var out []string
	add := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	for i, a := range tab.apps {
		for _, x := range db.apps {
			if x.id == a.id && x.name != a.name {
				add("app %d name %q (XML %q)", i, a.name, x.name)
			}
			if x.id == a.id && x.slots != a.slots {
				add("app %d client-list size %d (XML %d)", i, a.slots, x.slots)
			}
		}
	}
	out = append(out, buildOverrides(tab, db)...)
	out = append(out, csvlkOverrides(tab, db)...)
	out = append(out, kmsOverrides(tab, db)...)
	out = append(out, productOverrides(tab, db)...)
	return out
}

func buildOverrides(tab *table, db *xDB) []string {
	var out []string
	for _, h := range tab.hosts {
		i := slices.IndexFunc(db.builds, func(b gBuild) bool { return b.build == h.build })
		if i < 0 {
			out = append(out, fmt.Sprintf("host build %d: not in the XML", h.build))
			continue
		}
		x := db.builds[i]
		if got, xml := buildFlags(h), buildFlags(x); got != xml {
			out = append(out, fmt.Sprintf("host build %d: %s (XML %s)", h.build, got, xml))
		}
		if x.name != h.name {
			out = append(out, fmt.Sprintf("host build %d name %q (XML %q)", h.build, h.name, x.name))
		}
	}
	for _, x := range db.builds {
		if x.epid && !slices.ContainsFunc(tab.hosts, func(h gBuild) bool { return h.build == x.build }) {
			out = append(out, fmt.Sprintf("host build %d: UseForEpid in the XML, not a vlmcsd host build", x.build))
		}
	}
	return out
}

func buildFlags(b gBuild) string {
	return fmt.Sprintf("platform %d, released %s, NDR64 %t, ePID %t, server %t",
		b.platform, time.Unix(b.release, 0).UTC().Format(time.DateOnly), b.ndr64, b.epid, b.server)
}

func csvlkOverrides(tab *table, db *xDB) []string {
	var out []string
	date := func(u int64) string {
		if u == 0 {
			return "none"
		}
		return time.Unix(u, 0).UTC().Format(time.DateOnly)
	}
	desc := func(group, lo, hi uint32, release int64) string {
		return fmt.Sprintf("group %d, keys %d-%d, released %s", group, lo, hi, date(release))
	}
	for i, c := range tab.csvlks {
		var xs []string
		match := false
		for _, x := range db.csvlks {
			if x.ini == c.ini && x.hasRange {
				xs = append(xs, desc(x.group, x.min, x.max, x.release))
				match = match || (x.group == c.group && x.min == c.min && x.max == c.max && x.release == c.release)
			}
		}
		switch {
		case match:
		case len(xs) == 1:
			out = append(out, fmt.Sprintf("CSVLK %d %s: %s (XML %s)", i, c.ini, desc(c.group, c.min, c.max, c.release), xs[0]))
		default:
			out = append(out, fmt.Sprintf("CSVLK %d %s: %s (none of the XML's %d CsvlkItems named %s)", i, c.ini, desc(c.group, c.min, c.max, c.release), len(xs), c.ini))
		}
	}
	return out
}

func kmsOverrides(tab *table, db *xDB) []string {
	var out []string
	for i, k := range tab.kms {
		x, app := findXMLKMS(db, k.id)
		if x == nil {
			out = append(out, fmt.Sprintf("KMS %d %s %q: not a KmsItem of the XML", i, k.id, k.name))
			continue
		}
		pre := fmt.Sprintf("KMS %d %s", i, k.id)
		if x.name != k.name {
			out = append(out, fmt.Sprintf("%s name %q (XML %q)", pre, k.name, x.name))
		}
		if app != k.app {
			out = append(out, fmt.Sprintf("%s app %d (XML %d)", pre, k.app, app))
		}
		if x.proto != k.proto {
			out = append(out, fmt.Sprintf("%s V%d (XML %d.0)", pre, k.proto, x.proto))
		}
		if x.n != k.n {
			out = append(out, fmt.Sprintf("%s N %d (XML %d)", pre, k.n, x.n))
		}
		if x.retail != k.retail || x.preview != k.preview {
			out = append(out, fmt.Sprintf("%s retail %t preview %t (XML %t %t)", pre, k.retail, k.preview, x.retail, x.preview))
		}
		var inis []string
		for _, c := range db.csvlks {
			if c.ini != "" && slices.Contains(c.activates, k.id) && !slices.Contains(inis, c.ini) {
				inis = append(inis, c.ini)
			}
		}
		if len(inis) > 0 && !slices.Contains(inis, tab.csvlks[k.csvlk].ini) {
			out = append(out, fmt.Sprintf("%s CSVLK %s (XML %s)", pre, tab.csvlks[k.csvlk].ini, strings.Join(inis, ", ")))
		}
	}
	return out
}

func findXMLKMS(db *xDB, id wire.GUID) (*xKMS, int) {
	for ai := range db.apps {
		for ki := range db.apps[ai].kms {
			if db.apps[ai].kms[ki].id == id {
				return &db.apps[ai].kms[ki], ai
			}
		}
	}
	return nil, -1
}

func productOverrides(tab *table, db *xDB) []string {
	var out []string
	for _, p := range tab.products {
		var x *xSKU
		var xk *xKMS
		for ai := range db.apps {
			for ki := range db.apps[ai].kms {
				for si, s := range db.apps[ai].kms[ki].skus {
					if s.id == p.sku {
						x, xk = &db.apps[ai].kms[ki].skus[si], &db.apps[ai].kms[ki]
					}
				}
			}
		}
		pre := fmt.Sprintf("product %d %s", p.num, p.sku)
		switch {
		case x == nil:
			out = append(out, fmt.Sprintf("%s %q: not a SkuItem of the XML (no GVLK)", pre, p.name))
			continue
		case x.name != p.name:
			out = append(out, fmt.Sprintf("%s name %q (XML %q)", pre, p.name, x.name))
		}
		if k := tab.kms[p.kms]; xk.id != k.id {
			out = append(out, fmt.Sprintf("%s KMS %s (XML %s)", pre, k.id, xk.id))
		}
	}
	return out
}

// ---------------------------------------------------------------------------
// Output.

func render(tab *table) []byte {
	var b bytes.Buffer
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("// Code generated by gen.go; DO NOT EDIT.\n\n")
	p("// Sources: shared/spec/kms-products-vlmcsd.md (vlmcsd's current tables,\n")
	p("// §2.1, §3.1, §3.3, §4, §5, §6) and shared/data/KmsDataBase.xml (GVLKs,\n")
	p("// WinBuilds, XML-only SKUs), merged as kms-compat.md §3.8 recommends.\n\n")
	p("package products\n\nimport \"kmsd/internal/wire\"\n\n")
	p("// builtinTable is the table Builtin returns (after indexing it).\n")
	p("var builtinTable = Table{\n")
	p("Apps: []App{\n")
	for _, a := range tab.apps {
		p("{ID: %s, Name: %q, ClientSlots: %d},\n", goGUID(a.id), a.name, a.slots)
	}
	p("},\nCSVLKs: []CSVLK{\n")
	for _, c := range tab.csvlks {
		p("{IniName: %q, DisplayName: %q, GroupID: %d, MinKeyID: %d, MaxKeyID: %d, ReleaseUnix: %d, BuiltinEPID: %q},\n",
			c.ini, c.display, c.group, c.min, c.max, c.release, c.epid)
	}
	p("},\nKMSItems: []KMSItem{\n")
	for i, k := range tab.kms {
		p("{ID: %s, Name: %q, App: %d, CSVLK: %d, Protocol: %d, NPolicy: %d, Retail: %t, Preview: %t}, // %d\n",
			goGUID(k.id), k.name, k.app, k.csvlk, k.proto, k.n, k.retail, k.preview, i)
	}
	p("},\nProducts: []Product{\n")
	for _, x := range tab.products {
		p("{Number: %d, Name: %q, SKU: %s, KMS: %d, GVLK: %q},\n", x.num, x.name, goGUID(x.sku), x.kms, x.gvlk)
	}
	p("},\nHostBuilds: []HostBuild{\n")
	renderBuilds(p, tab.hosts)
	p("},\nAllBuilds: []HostBuild{\n")
	renderBuilds(p, tab.allBuilds)
	p("},\nExtra: []ExtraSKU{\n")
	for _, e := range tab.extra {
		p("{Name: %q, SKU: %s, KMSID: %s, KMSName: %q, GVLK: %q, App: %d},\n",
			e.name, goGUID(e.sku), goGUID(e.kmsID), e.kmsName, e.gvlk, e.app)
	}
	p("},\n}\n\n")
	p("// xmlOverrides lists where KmsDataBase.xml differs from vlmcsd's tables\n")
	p("// and vlmcsd's value was taken (kms-compat.md §3.8 item 7).\n")
	p("var xmlOverrides = []string{\n")
	for _, o := range tab.overrides {
		p("%q,\n", o)
	}
	p("}\n")
	return b.Bytes()
}

func renderBuilds(p func(string, ...any), builds []gBuild) {
	for _, h := range builds {
		p("{Build: %d, PlatformID: %d, ReleaseUnix: %d, UsesNDR64: %t, UseForEPID: %t, MayBeServer: %t, Name: %q},\n",
			h.build, h.platform, h.release, h.ndr64, h.epid, h.server, h.name)
	}
}

func goGUID(g wire.GUID) string {
	var b strings.Builder
	b.WriteString("wire.GUID{")
	for i, c := range g {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "0x%02x", c)
	}
	fmt.Fprintf(&b, "} /* %s */", g)
	return b.String()
}
