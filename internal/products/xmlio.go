package products

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"kmsd/internal/wire"
)

// XMLError is an error in a KmsDataBase.xml file: the line, the element
// and (when one is at fault) the attribute.
type XMLError struct {
	Line    int    // 1-based
	Element string // "" for a syntax error
	Attr    string // "" when the element as a whole is at fault
	Msg     string
}

func (e *XMLError) Error() string {
	switch {
	case e.Element == "":
		return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
	case e.Attr == "":
		return fmt.Sprintf("line %d: <%s>: %s", e.Line, e.Element, e.Msg)
	}
	return fmt.Sprintf("line %d: <%s %s>: %s", e.Line, e.Element, e.Attr, e.Msg)
}

// The kmsd extensions of KmsData 2.0 that EncodeXML writes when the table
// needs them; other readers ignore or reject unknown elements.
const (
	xmlHostBuildsExt = "KmsdHostBuilds" // vlmcsd's ePID host builds when they are not the UseForEpid WinBuilds
	xmlExtraExt      = "KmsdExtraSkus"  // Table.Extra
)

// xmlChildren lists the elements allowed inside each element ("" is the
// document); names are matched ignoring case.
var xmlChildren = map[string][]string{
	"":               {"KmsData"},
	"KmsData":        {"WinBuilds", "CsvlkItems", "AppItems", xmlHostBuildsExt, xmlExtraExt},
	"WinBuilds":      {"WinBuild"},
	xmlHostBuildsExt: {"WinBuild"},
	"CsvlkItems":     {"CsvlkItem"},
	"CsvlkItem":      {"Activate"},
	"AppItems":       {"AppItem"},
	"AppItem":        {"KmsItem"},
	"KmsItem":        {"SkuItem"},
	xmlExtraExt:      {"SkuItem"},
}

// xmlElem is one start tag: its canonical name, where it is, and its
// attributes without a namespace, by lower-case name.
type xmlElem struct {
	name       string
	start, end int
	attrs      map[string]string
}

type xmlCsvlk struct {
	el        *xmlElem
	slot      int // -1: no VlmcsdIndex
	c         CSVLK
	activates []wire.GUID
}

type xmlApp struct {
	el       *xmlElem
	app      App
	slot     int // VlmcsdIndex, -1 if none
	hasSlots bool
}

type xmlKMS struct {
	el   *xmlElem
	item KMSItem
}

type xmlReader struct {
	data       []byte
	root       *xmlElem
	containers map[string]*xmlElem // first WinBuilds, CsvlkItems, ...
	builds     []HostBuild
	hostExt    []HostBuild
	hostExtEl  *xmlElem
	csvlks     []xmlCsvlk
	apps       []xmlApp
	kms        []xmlKMS
	products   []Product
	extra      []ExtraSKU
	extraEls   []*xmlElem
}

// ReadXML builds a Table from a KmsDataBase.xml (KmsData 2.0) file as
// kms-data.md §1.6 describes:
//
//   - one application per AppItem (client-list size MinActiveClients, by
//     default twice the largest N policy of its KMS items);
//   - one KMS item per KmsItem (protocol = major of DefaultKmsProtocol,
//     default 6; NCountPolicy, default 25; IsRetail, IsPreview); its CSVLK
//     is the VlmcsdIndex of the first CsvlkItem with a VlmcsdIndex that
//     activates it, else its AppItem's VlmcsdIndex;
//   - one product per SkuItem, numbered in document order, with its GVLK;
//   - CSVLK slot n from the first CsvlkItem with VlmcsdIndex n; the slots
//     must run from 0 without gaps, and each needs an IniFileName and a
//     MaxKeyId above its MinKeyId;
//   - AllBuilds from every WinBuild and HostBuilds from those with
//     UseForEpid (at least one), both sorted by build number, largest
//     first.
//
// Booleans (true/false/1/0), attribute and element names are matched
// ignoring case; GUIDs may have braces; an empty attribute counts as
// absent; unknown attributes are ignored, unknown elements are errors.
// The kmsd extensions written by EncodeXML are read back. Errors are
// *XMLError values naming the line, element and attribute.
func ReadXML(data []byte) (*Table, error) {
	r := &xmlReader{data: data, containers: map[string]*xmlElem{}}
	if err := r.parse(); err != nil {
		return nil, err
	}
	return r.table()
}

// lineAt returns the 1-based line of byte offset off.
func (r *xmlReader) lineAt(off int) int {
	off = min(max(off, 0), len(r.data))
	return 1 + bytes.Count(r.data[:off], []byte{'\n'})
}

func (r *xmlReader) elemErr(el *xmlElem, format string, a ...any) error {
	return &XMLError{Line: r.lineAt(el.start), Element: el.name, Msg: fmt.Sprintf(format, a...)}
}

// attrErr reports a bad attribute, on the line where the attribute is.
func (r *xmlReader) attrErr(el *xmlElem, attr, format string, a ...any) error {
	return r.attrErrN(el, attr, 0, format, a...)
}

// attrErrN is attrErr for the attribute's (skip+1)th occurrence.
func (r *xmlReader) attrErrN(el *xmlElem, attr string, skip int, format string, a ...any) error {
	return &XMLError{Line: r.lineAt(r.attrOffset(el, attr, skip)), Element: el.name, Attr: attr, Msg: fmt.Sprintf(format, a...)}
}

// attrOffset finds the (skip+1)th attribute called name (ignoring case)
// in the start tag of el; it returns el.start if it is not there.
func (r *xmlReader) attrOffset(el *xmlElem, name string, skip int) int {
	tag := r.data[el.start:min(el.end, len(r.data))]
	isSpace := func(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
	i := 1
	for i < len(tag) && !isSpace(tag[i]) && tag[i] != '/' && tag[i] != '>' {
		i++
	}
	for i < len(tag) {
		for i < len(tag) && isSpace(tag[i]) {
			i++
		}
		at := i
		for i < len(tag) && !isSpace(tag[i]) && tag[i] != '=' && tag[i] != '/' && tag[i] != '>' {
			i++
		}
		attr := string(tag[at:i])
		for i < len(tag) && isSpace(tag[i]) {
			i++
		}
		if attr == "" || i >= len(tag) || tag[i] != '=' {
			break
		}
		i++
		for i < len(tag) && isSpace(tag[i]) {
			i++
		}
		if i >= len(tag) || (tag[i] != '"' && tag[i] != '\'') {
			break
		}
		end := bytes.IndexByte(tag[i+1:], tag[i])
		if strings.EqualFold(attr, name) {
			if skip == 0 {
				return el.start + at
			}
			skip--
		}
		if end < 0 {
			break
		}
		i += end + 2
	}
	return el.start
}

func (r *xmlReader) parse() error {
	d := xml.NewDecoder(bytes.NewReader(r.data))
	var stack []*xmlElem
	for {
		start := int(d.InputOffset())
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			var se *xml.SyntaxError
			if errors.As(err, &se) {
				return &XMLError{Line: se.Line, Msg: se.Msg}
			}
			return &XMLError{Line: r.lineAt(int(d.InputOffset())), Msg: err.Error()}
		}
		switch tk := tok.(type) {
		case xml.StartElement:
			parent := ""
			if len(stack) > 0 {
				parent = stack[len(stack)-1].name
			}
			el := &xmlElem{name: tk.Name.Local, start: start, end: int(d.InputOffset())}
			canon := ""
			for _, c := range xmlChildren[parent] {
				if strings.EqualFold(c, tk.Name.Local) {
					canon = c
				}
			}
			if canon == "" {
				if parent == "" {
					return r.elemErr(el, "the document element must be <KmsData>")
				}
				return r.elemErr(el, "unexpected element inside <%s> (allowed: %s)", parent, xmlAllowed(parent))
			}
			el.name = canon
			if parent == "" && r.root != nil {
				return r.elemErr(el, "a second document element")
			}
			el.attrs = make(map[string]string, len(tk.Attr))
			for _, a := range tk.Attr {
				if a.Name.Space != "" {
					continue
				}
				k := strings.ToLower(a.Name.Local)
				if _, dup := el.attrs[k]; dup {
					return r.attrErrN(el, a.Name.Local, 1, "given twice (attribute names are compared ignoring case)")
				}
				el.attrs[k] = a.Value
			}
			stack = append(stack, el)
			if err := r.element(el, parent); err != nil {
				return err
			}
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		}
	}
	if r.root == nil {
		return &XMLError{Line: r.lineAt(len(r.data)), Msg: "no <KmsData> element"}
	}
	return nil
}

func xmlAllowed(parent string) string {
	if c := xmlChildren[parent]; len(c) > 0 {
		return "<" + strings.Join(c, ">, <") + ">"
	}
	return "none"
}

// element handles one start tag.
func (r *xmlReader) element(el *xmlElem, parent string) error {
	switch el.name {
	case "KmsData":
		r.root = el
		v, ok := r.attr(el, "Version")
		if !ok {
			return r.elemErr(el, `Version attribute missing (KmsData files have Version="2.0")`)
		}
		if major, _, _ := strings.Cut(strings.TrimSpace(v), "."); major != "2" {
			return r.attrErr(el, "Version", "version %q is not supported (kmsd reads KmsData 2.x)", v)
		}
	case "WinBuilds", "CsvlkItems", "AppItems", xmlExtraExt:
		if r.containers[el.name] == nil {
			r.containers[el.name] = el
		}
	case xmlHostBuildsExt:
		if r.hostExtEl == nil {
			r.hostExtEl = el
		}
	case "WinBuild":
		b, err := r.winBuild(el)
		if err != nil {
			return err
		}
		if parent == xmlHostBuildsExt {
			r.hostExt = append(r.hostExt, b)
		} else {
			r.builds = append(r.builds, b)
		}
	case "CsvlkItem":
		return r.csvlkItem(el)
	case "Activate":
		id, _, err := r.guid(el, "KmsItem", true)
		if err != nil {
			return err
		}
		c := &r.csvlks[len(r.csvlks)-1]
		c.activates = append(c.activates, id)
	case "AppItem":
		return r.appItem(el)
	case "KmsItem":
		return r.kmsItem(el)
	case "SkuItem":
		if parent == xmlExtraExt {
			return r.extraItem(el)
		}
		id, _, err := r.guid(el, "Id", true)
		if err != nil {
			return err
		}
		name, _ := r.attr(el, "DisplayName")
		gvlk, _ := r.attr(el, "Gvlk")
		r.products = append(r.products, Product{Number: len(r.products) + 1, Name: name, SKU: id, KMS: len(r.kms) - 1, GVLK: gvlk})
	}
	return nil
}

// attr returns an attribute's value; an empty value counts as absent.
func (r *xmlReader) attr(el *xmlElem, name string) (string, bool) {
	v, ok := el.attrs[strings.ToLower(name)]
	return v, ok && v != ""
}

func (r *xmlReader) uintAttr(el *xmlElem, name string, def, maxv uint64) (uint64, bool, error) {
	v, ok := r.attr(el, name)
	if !ok {
		return def, false, nil
	}
	n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
	if err != nil || n > maxv {
		return 0, false, r.attrErr(el, name, "%q is not a whole number from 0 to %d", v, maxv)
	}
	return n, true, nil
}

func (r *xmlReader) boolAttr(el *xmlElem, name string) (bool, error) {
	v, ok := r.attr(el, name)
	if !ok {
		return false, nil
	}
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "true", "1":
		return true, nil
	case "false", "0":
		return false, nil
	}
	return false, r.attrErr(el, name, "%q is not a boolean (true or false)", v)
}

func (r *xmlReader) guid(el *xmlElem, name string, required bool) (wire.GUID, bool, error) {
	v, ok := r.attr(el, name)
	if !ok {
		if required {
			return wire.GUID{}, false, r.elemErr(el, "%s attribute missing", name)
		}
		return wire.GUID{}, false, nil
	}
	g, err := wire.ParseGUID(strings.TrimSpace(v))
	if err != nil {
		return g, false, r.attrErr(el, name, "%q is not a GUID (8-4-4-4-12 hex digits, braces allowed)", v)
	}
	return g, true, nil
}

// date reads an xs:dateTime as Unix seconds (0 if absent).
func (r *xmlReader) date(el *xmlElem, name string) (int64, error) {
	v, ok := r.attr(el, name)
	if !ok {
		return 0, nil
	}
	s := strings.TrimSpace(v)
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.Unix(), nil
		}
	}
	return 0, r.attrErr(el, name, "%q is not a date and time (YYYY-MM-DDThh:mm:ssZ)", v)
}

func (r *xmlReader) winBuild(el *xmlElem) (HostBuild, error) {
	var b HostBuild
	build, ok, err := r.uintAttr(el, "BuildNumber", 0, math.MaxInt32)
	if err != nil {
		return b, err
	}
	if !ok {
		return b, r.elemErr(el, "BuildNumber attribute missing")
	}
	platform, _, err := r.uintAttr(el, "PlatformId", 0, math.MaxInt32)
	if err != nil {
		return b, err
	}
	b = HostBuild{Build: uint32(build), PlatformID: uint32(platform)}
	b.Name, _ = r.attr(el, "DisplayName")
	if b.ReleaseUnix, err = r.date(el, "ReleaseDate"); err != nil {
		return b, err
	}
	for _, f := range []struct {
		name string
		dst  *bool
	}{{"UseForEpid", &b.UseForEPID}, {"MayBeServer", &b.MayBeServer}, {"UsesNDR64", &b.UsesNDR64}} {
		if *f.dst, err = r.boolAttr(el, f.name); err != nil {
			return b, err
		}
	}
	return b, nil
}

func (r *xmlReader) csvlkItem(el *xmlElem) error {
	x := xmlCsvlk{el: el, slot: -1}
	if _, _, err := r.guid(el, "Id", false); err != nil {
		return err
	}
	slot, ok, err := r.uintAttr(el, "VlmcsdIndex", 0, math.MaxUint8-1)
	if err != nil {
		return err
	}
	if ok {
		x.slot = int(slot)
	}
	c := &x.c
	c.DisplayName, _ = r.attr(el, "DisplayName")
	c.IniName, _ = r.attr(el, "IniFileName")
	c.BuiltinEPID, _ = r.attr(el, "EPid")
	for _, f := range []struct {
		name string
		dst  *uint32
	}{{"GroupId", &c.GroupID}, {"MinKeyId", &c.MinKeyID}, {"MaxKeyId", &c.MaxKeyID}} {
		v, _, err := r.uintAttr(el, f.name, 0, math.MaxUint32)
		if err != nil {
			return err
		}
		*f.dst = uint32(v)
	}
	if c.ReleaseUnix, err = r.date(el, "ReleaseDate"); err != nil {
		return err
	}
	if x.slot >= 0 {
		if c.IniName == "" {
			return r.elemErr(el, "IniFileName attribute missing (a CsvlkItem with a VlmcsdIndex needs one)")
		}
		if c.MaxKeyID <= c.MinKeyID {
			return r.attrErr(el, "MaxKeyId", "%d is not above MinKeyId %d (a CSVLK slot needs a key range)", c.MaxKeyID, c.MinKeyID)
		}
	}
	r.csvlks = append(r.csvlks, x)
	return nil
}

func (r *xmlReader) appItem(el *xmlElem) error {
	x := xmlApp{el: el, slot: -1}
	var err error
	if x.app.ID, _, err = r.guid(el, "Id", true); err != nil {
		return err
	}
	x.app.Name, _ = r.attr(el, "DisplayName")
	slot, ok, err := r.uintAttr(el, "VlmcsdIndex", 0, math.MaxUint8-1)
	if err != nil {
		return err
	}
	if ok {
		x.slot = int(slot)
	}
	n, ok, err := r.uintAttr(el, "MinActiveClients", 0, math.MaxInt32)
	if err != nil {
		return err
	}
	x.app.ClientSlots, x.hasSlots = int(n), ok
	r.apps = append(r.apps, x)
	return nil
}

func (r *xmlReader) kmsItem(el *xmlElem) error {
	k := KMSItem{App: len(r.apps) - 1, Protocol: 6, NPolicy: 25}
	var err error
	if k.ID, _, err = r.guid(el, "Id", true); err != nil {
		return err
	}
	k.Name, _ = r.attr(el, "DisplayName")
	if k.Retail, err = r.boolAttr(el, "IsRetail"); err != nil {
		return err
	}
	if k.Preview, err = r.boolAttr(el, "IsPreview"); err != nil {
		return err
	}
	if v, ok := r.attr(el, "DefaultKmsProtocol"); ok {
		major, minor, _ := strings.Cut(strings.TrimSpace(v), ".")
		p, err := strconv.ParseUint(major, 10, 16)
		if err == nil && minor != "" {
			_, err = strconv.ParseUint(minor, 10, 16)
		}
		if err != nil {
			return r.attrErr(el, "DefaultKmsProtocol", "%q is not a protocol version such as 6.0", v)
		}
		k.Protocol = uint16(p)
	}
	n, _, err := r.uintAttr(el, "NCountPolicy", 25, math.MaxUint32)
	if err != nil {
		return err
	}
	k.NPolicy = uint32(n)
	r.kms = append(r.kms, xmlKMS{el: el, item: k})
	return nil
}

func (r *xmlReader) extraItem(el *xmlElem) error {
	var e ExtraSKU
	var err error
	if e.SKU, _, err = r.guid(el, "Id", false); err != nil {
		return err
	}
	if e.KMSID, _, err = r.guid(el, "KmsItem", false); err != nil {
		return err
	}
	e.Name, _ = r.attr(el, "DisplayName")
	e.KMSName, _ = r.attr(el, "KmsName")
	e.GVLK, _ = r.attr(el, "Gvlk")
	app, ok, err := r.uintAttr(el, "AppIndex", 0, math.MaxInt32)
	if err != nil {
		return err
	}
	if !ok {
		return r.elemErr(el, "AppIndex attribute missing")
	}
	e.App = int(app)
	r.extra = append(r.extra, e)
	r.extraEls = append(r.extraEls, el)
	return nil
}

// table assembles the Table from what parse collected.
func (r *xmlReader) table() (*Table, error) {
	place := func(name string) *xmlElem {
		if el := r.containers[name]; el != nil {
			return el
		}
		return r.root
	}
	t := &Table{}

	// CSVLK slots: the first CsvlkItem with each VlmcsdIndex.
	nslots := 0
	for _, c := range r.csvlks {
		nslots = max(nslots, c.slot+1)
	}
	if nslots == 0 {
		return nil, r.elemErr(place("CsvlkItems"), "no CsvlkItem has a VlmcsdIndex; at least CSVLK slot 0 is needed")
	}
	t.CSVLKs = make([]CSVLK, nslots)
	filled := make([]bool, nslots)
	for _, c := range r.csvlks {
		if c.slot >= 0 && !filled[c.slot] {
			t.CSVLKs[c.slot], filled[c.slot] = c.c, true
		}
	}
	if i := slices.Index(filled, false); i >= 0 {
		return nil, r.elemErr(place("CsvlkItems"), "no CsvlkItem has VlmcsdIndex %d, but slot %d is used: slots must be numbered from 0 without gaps", i, nslots-1)
	}
	activator := map[wire.GUID]int{}
	for _, c := range r.csvlks {
		if c.slot < 0 {
			continue
		}
		for _, id := range c.activates {
			if _, seen := activator[id]; !seen {
				activator[id] = c.slot
			}
		}
	}

	if len(r.apps) == 0 {
		return nil, r.elemErr(place("AppItems"), "no AppItem; at least one application is needed")
	}
	t.Apps = make([]App, len(r.apps))
	for i, a := range r.apps {
		if a.slot >= nslots {
			return nil, r.attrErr(a.el, "VlmcsdIndex", "CSVLK slot %d does not exist (slots 0 to %d)", a.slot, nslots-1)
		}
		t.Apps[i] = a.app
	}
	t.KMSItems = make([]KMSItem, len(r.kms))
	for i, x := range r.kms {
		k := x.item
		if s, ok := activator[k.ID]; ok {
			k.CSVLK = s
		} else if a := r.apps[k.App]; a.slot >= 0 {
			k.CSVLK = a.slot
		} else {
			return nil, r.elemErr(x.el, "no CsvlkItem with a VlmcsdIndex activates KMS ID %s, and its AppItem has no VlmcsdIndex", k.ID)
		}
		t.KMSItems[i] = k
		if a := &r.apps[k.App]; !a.hasSlots {
			t.Apps[k.App].ClientSlots = max(t.Apps[k.App].ClientSlots, 2*int(min(k.NPolicy, math.MaxInt32/2)))
		}
	}
	t.Products = r.products
	if t.Products == nil {
		t.Products = []Product{}
	}

	desc := func(a, b HostBuild) int {
		switch {
		case a.Build > b.Build:
			return -1
		case a.Build < b.Build:
			return 1
		}
		return 0
	}
	t.AllBuilds = r.builds
	slices.SortStableFunc(t.AllBuilds, desc)
	if r.hostExtEl != nil {
		t.HostBuilds = r.hostExt
		slices.SortStableFunc(t.HostBuilds, desc)
		if len(t.HostBuilds) == 0 {
			return nil, r.elemErr(r.hostExtEl, "no WinBuild; at least one host build is needed")
		}
	} else {
		t.HostBuilds = useForEPID(t.AllBuilds)
		if len(t.HostBuilds) == 0 {
			return nil, r.elemErr(place("WinBuilds"), `no WinBuild has UseForEpid="true"; ePIDs need at least one host build`)
		}
	}
	for i, e := range r.extra {
		if e.App >= len(t.Apps) {
			return nil, r.attrErr(r.extraEls[i], "AppIndex", "application %d does not exist (%d AppItems)", e.App, len(t.Apps))
		}
	}
	t.Extra = r.extra
	if err := t.check(); err != nil {
		return nil, &XMLError{Line: r.lineAt(r.root.start), Element: "KmsData", Msg: err.Error()}
	}
	t.Index()
	return t, nil
}

// useForEPID returns the builds marked for ePIDs, or nil.
func useForEPID(builds []HostBuild) []HostBuild {
	var out []HostBuild
	for _, b := range builds {
		if b.UseForEPID {
			out = append(out, b)
		}
	}
	return out
}

// xmlText reports whether s can be written to XML unchanged.
func xmlText(s string) bool {
	for _, r := range s {
		switch {
		case r == 0x9 || r == 0xA || r == 0xD:
		case r >= 0x20 && r <= 0xD7FF:
		case r >= 0xE000 && r <= 0xFFFD:
		case r >= 0x10000 && r <= 0x10FFFF:
		default:
			return false
		}
	}
	return true
}

// xmlWriter writes indented elements with escaped attributes.
type xmlWriter struct {
	buf bytes.Buffer
	err error
}

// open writes <name a="v" ...> (or <name .../> when empty) at depth.
func (w *xmlWriter) open(depth int, name string, empty bool, attrs ...string) {
	w.buf.WriteString(strings.Repeat("\t", depth))
	w.buf.WriteString("<" + name)
	for i := 0; i+1 < len(attrs); i += 2 {
		if !xmlText(attrs[i+1]) && w.err == nil {
			w.err = fmt.Errorf("cannot encode XML: <%s %s=%q> holds a character XML cannot carry", name, attrs[i], attrs[i+1])
		}
		w.buf.WriteString(" " + attrs[i] + `="`)
		_ = xml.EscapeText(&w.buf, []byte(attrs[i+1])) // a bytes.Buffer does not fail
		w.buf.WriteString(`"`)
	}
	if empty {
		w.buf.WriteString(" />\n")
	} else {
		w.buf.WriteString(">\n")
	}
}

func (w *xmlWriter) close(depth int, name string) {
	w.buf.WriteString(strings.Repeat("\t", depth) + "</" + name + ">\n")
}

func xmlDate(unix int64) (string, error) {
	t := time.Unix(unix, 0).UTC()
	if t.Year() < 1 || t.Year() > 9999 {
		return "", fmt.Errorf("cannot encode XML: date %d (Unix seconds) is outside the years 1 to 9999", unix)
	}
	return t.Format("2006-01-02T15:04:05Z"), nil
}

func xmlBool(attrs []string, name string, v bool) []string {
	if v {
		return append(attrs, name, "true")
	}
	return attrs
}

// EncodeXML writes t as a KmsData 2.0 file that ReadXML reads back into
// an equal table (product numbers are positions). KMS items must be
// grouped by application in application order and products by KMS item
// in KMS item order, as the XML nests them; KMS items sharing an ID must
// share their CSVLK. Each CSVLK slot becomes one CsvlkItem (with an
// all-zero Id: the table has no CSVLK activation IDs) that activates the
// KMS items using it; an AppItem's VlmcsdIndex is chosen as in EncodeKMD.
// AllBuilds are the WinBuilds; two kmsd extension elements carry what
// KmsData cannot: KmsdHostBuilds (when HostBuilds are not the WinBuilds
// with UseForEpid) and KmsdExtraSkus (Table.Extra).
func (t *Table) EncodeXML() ([]byte, error) {
	if err := t.check(); err != nil {
		return nil, fmt.Errorf("cannot encode XML: %w", err)
	}
	for i := 1; i < len(t.KMSItems); i++ {
		if t.KMSItems[i].App < t.KMSItems[i-1].App {
			return nil, fmt.Errorf("cannot encode XML: KMS item %d (application %d) follows one of application %d; the XML nests KMS items in their application",
				i, t.KMSItems[i].App, t.KMSItems[i-1].App)
		}
	}
	for i := 1; i < len(t.Products); i++ {
		if t.Products[i].KMS < t.Products[i-1].KMS {
			return nil, fmt.Errorf("cannot encode XML: product %d (KMS item %d) follows one of KMS item %d; the XML nests products in their KMS item",
				i+1, t.Products[i].KMS, t.Products[i-1].KMS)
		}
	}
	slotOf := map[wire.GUID]int{}
	for i, k := range t.KMSItems {
		if s, ok := slotOf[k.ID]; ok && s != k.CSVLK {
			return nil, fmt.Errorf("cannot encode XML: KMS item %d (%s) shares its ID with another item but not its CSVLK", i, k.Name)
		}
		slotOf[k.ID] = k.CSVLK
	}
	zero := wire.GUID{}.String()
	w := &xmlWriter{}
	w.buf.WriteString(`<?xml version="1.0" encoding="utf-8"?>` + "\n")
	w.buf.WriteString("<!-- KmsData 2.0 written by kmsd. " + xmlHostBuildsExt + " and " + xmlExtraExt + " are kmsd extensions. -->\n")
	w.open(0, "KmsData", false, "Version", "2.0", "Author", "kmsd",
		"xmlns:xsi", "http://www.w3.org/2001/XMLSchema-instance", "xsi:noNamespaceSchemaLocation", "KmsDataBase.xsd")

	builds := func(depth int, list []HostBuild) error {
		for _, b := range list {
			a := []string{"BuildNumber", strconv.FormatUint(uint64(b.Build), 10), "DisplayName", b.Name,
				"PlatformId", strconv.FormatUint(uint64(b.PlatformID), 10)}
			if b.ReleaseUnix != 0 {
				d, err := xmlDate(b.ReleaseUnix)
				if err != nil {
					return err
				}
				a = append(a, "ReleaseDate", d)
			}
			a = xmlBool(a, "UseForEpid", b.UseForEPID)
			a = xmlBool(a, "MayBeServer", b.MayBeServer)
			a = xmlBool(a, "UsesNDR64", b.UsesNDR64)
			w.open(depth, "WinBuild", true, a...)
		}
		return nil
	}
	w.open(1, "WinBuilds", false)
	if err := builds(2, t.AllBuilds); err != nil {
		return nil, err
	}
	w.close(1, "WinBuilds")

	w.open(1, "CsvlkItems", false)
	for s, c := range t.CSVLKs {
		a := []string{"Id", zero, "DisplayName", c.DisplayName, "VlmcsdIndex", strconv.Itoa(s), "IniFileName", c.IniName,
			"GroupId", strconv.FormatUint(uint64(c.GroupID), 10), "MinKeyId", strconv.FormatUint(uint64(c.MinKeyID), 10),
			"MaxKeyId", strconv.FormatUint(uint64(c.MaxKeyID), 10)}
		if c.ReleaseUnix != 0 {
			d, err := xmlDate(c.ReleaseUnix)
			if err != nil {
				return nil, err
			}
			a = append(a, "ReleaseDate", d)
		}
		if c.BuiltinEPID != "" {
			a = append(a, "EPid", c.BuiltinEPID)
		}
		w.open(2, "CsvlkItem", false, a...)
		done := map[wire.GUID]bool{}
		for _, k := range t.KMSItems {
			if k.CSVLK == s && !done[k.ID] {
				done[k.ID] = true
				w.open(3, "Activate", true, "KmsItem", k.ID.String())
			}
		}
		w.close(2, "CsvlkItem")
	}
	w.close(1, "CsvlkItems")

	w.open(1, "AppItems", false)
	ki, pi := 0, 0
	for ai, app := range t.Apps {
		w.open(2, "AppItem", false, "Id", app.ID.String(), "DisplayName", app.Name,
			"VlmcsdIndex", strconv.Itoa(t.appDefaultCSVLK(ai)), "MinActiveClients", strconv.Itoa(app.ClientSlots))
		for ; ki < len(t.KMSItems) && t.KMSItems[ki].App == ai; ki++ {
			k := t.KMSItems[ki]
			a := []string{"Id", k.ID.String(), "DisplayName", k.Name}
			a = xmlBool(a, "IsRetail", k.Retail)
			a = xmlBool(a, "IsPreview", k.Preview)
			a = append(a, "DefaultKmsProtocol", strconv.Itoa(int(k.Protocol))+".0", "NCountPolicy", strconv.FormatUint(uint64(k.NPolicy), 10))
			w.open(3, "KmsItem", false, a...)
			for ; pi < len(t.Products) && t.Products[pi].KMS == ki; pi++ {
				p := t.Products[pi]
				a := []string{"Id", p.SKU.String(), "DisplayName", p.Name}
				if p.GVLK != "" {
					a = append(a, "Gvlk", p.GVLK)
				}
				w.open(4, "SkuItem", true, a...)
			}
			w.close(3, "KmsItem")
		}
		w.close(2, "AppItem")
	}
	w.close(1, "AppItems")

	if !slices.Equal(t.HostBuilds, useForEPID(t.AllBuilds)) {
		w.open(1, xmlHostBuildsExt, false)
		if err := builds(2, t.HostBuilds); err != nil {
			return nil, err
		}
		w.close(1, xmlHostBuildsExt)
	}
	if len(t.Extra) > 0 {
		w.open(1, xmlExtraExt, false)
		for _, e := range t.Extra {
			a := []string{"Id", e.SKU.String(), "DisplayName", e.Name}
			if e.GVLK != "" {
				a = append(a, "Gvlk", e.GVLK)
			}
			a = append(a, "KmsItem", e.KMSID.String(), "KmsName", e.KMSName, "AppIndex", strconv.Itoa(e.App))
			w.open(2, "SkuItem", true, a...)
		}
		w.close(1, xmlExtraExt)
	}
	w.close(0, "KmsData")
	if w.err != nil {
		return nil, w.err
	}
	return w.buf.Bytes(), nil
}

// textGUID is a GUID in its 8-4-4-4-12 text form in JSON.
type textGUID wire.GUID

func (g textGUID) MarshalText() ([]byte, error) { return []byte(wire.GUID(g).String()), nil }

func (g *textGUID) UnmarshalText(b []byte) error {
	v, err := wire.ParseGUID(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a GUID", b)
	}
	*g = textGUID(v)
	return nil
}

// The JSON form of a Table (EncodeJSON, ReadJSON).
type (
	jsonTable struct {
		Apps       []jsonApp     `json:"apps"`
		CSVLKs     []jsonCSVLK   `json:"csvlks"`
		KMSItems   []jsonKMSItem `json:"kms_items"`
		Products   []jsonProduct `json:"products"`
		HostBuilds []jsonBuild   `json:"host_builds"`
		AllBuilds  []jsonBuild   `json:"all_builds"`
		Extra      []jsonExtra   `json:"extra"`
	}
	jsonApp struct {
		ID          textGUID `json:"id"`
		Name        string   `json:"name"`
		ClientSlots int      `json:"client_slots"`
	}
	jsonCSVLK struct {
		IniName     string `json:"ini_name"`
		DisplayName string `json:"display_name"`
		GroupID     uint32 `json:"group_id"`
		MinKeyID    uint32 `json:"min_key_id"`
		MaxKeyID    uint32 `json:"max_key_id"`
		ReleaseUnix int64  `json:"release_unix"`
		BuiltinEPID string `json:"builtin_epid"`
	}
	jsonKMSItem struct {
		ID       textGUID `json:"id"`
		Name     string   `json:"name"`
		App      int      `json:"app"`
		CSVLK    int      `json:"csvlk"`
		Protocol uint16   `json:"protocol"`
		NPolicy  uint32   `json:"n_policy"`
		Retail   bool     `json:"retail"`
		Preview  bool     `json:"preview"`
	}
	jsonProduct struct {
		Number int      `json:"number"`
		Name   string   `json:"name"`
		SKU    textGUID `json:"sku"`
		KMS    int      `json:"kms"`
		GVLK   string   `json:"gvlk"`
	}
	jsonBuild struct {
		Build       uint32 `json:"build"`
		PlatformID  uint32 `json:"platform_id"`
		ReleaseUnix int64  `json:"release_unix"`
		UsesNDR64   bool   `json:"uses_ndr64"`
		UseForEPID  bool   `json:"use_for_epid"`
		MayBeServer bool   `json:"may_be_server"`
		Name        string `json:"name"`
	}
	jsonExtra struct {
		Name    string   `json:"name"`
		SKU     textGUID `json:"sku"`
		KMSID   textGUID `json:"kms_id"`
		KMSName string   `json:"kms_name"`
		GVLK    string   `json:"gvlk"`
		App     int      `json:"app"`
	}
)

// convSlice maps s through f, keeping nil as nil.
func convSlice[S, D any](s []S, f func(S) D) []D {
	if s == nil {
		return nil
	}
	d := make([]D, len(s))
	for i := range s {
		d[i] = f(s[i])
	}
	return d
}

// EncodeJSON writes t as indented JSON (GUIDs in text form, dates in Unix
// seconds) that ReadJSON reads back into an equal table.
func (t *Table) EncodeJSON() ([]byte, error) {
	if err := t.check(); err != nil {
		return nil, fmt.Errorf("cannot encode JSON: %w", err)
	}
	j := jsonTable{
		Apps:   convSlice(t.Apps, func(a App) jsonApp { return jsonApp{textGUID(a.ID), a.Name, a.ClientSlots} }),
		CSVLKs: convSlice(t.CSVLKs, func(c CSVLK) jsonCSVLK { return jsonCSVLK(c) }),
		KMSItems: convSlice(t.KMSItems, func(k KMSItem) jsonKMSItem {
			return jsonKMSItem{textGUID(k.ID), k.Name, k.App, k.CSVLK, k.Protocol, k.NPolicy, k.Retail, k.Preview}
		}),
		Products: convSlice(t.Products, func(p Product) jsonProduct {
			return jsonProduct{p.Number, p.Name, textGUID(p.SKU), p.KMS, p.GVLK}
		}),
		HostBuilds: convSlice(t.HostBuilds, func(b HostBuild) jsonBuild { return jsonBuild(b) }),
		AllBuilds:  convSlice(t.AllBuilds, func(b HostBuild) jsonBuild { return jsonBuild(b) }),
		Extra: convSlice(t.Extra, func(e ExtraSKU) jsonExtra {
			return jsonExtra{e.Name, textGUID(e.SKU), textGUID(e.KMSID), e.KMSName, e.GVLK, e.App}
		}),
	}
	out, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// ReadJSON reads the JSON form written by EncodeJSON into an indexed
// Table. Unknown fields, trailing data, product numbers other than their
// positions and the inconsistencies EncodeKMD refuses are errors.
func ReadJSON(data []byte) (*Table, error) {
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	var j jsonTable
	if err := d.Decode(&j); err != nil {
		return nil, fmt.Errorf("product table JSON: %w", err)
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, fmt.Errorf("product table JSON: data after the table at byte %d", d.InputOffset())
	}
	t := &Table{
		Apps:   convSlice(j.Apps, func(a jsonApp) App { return App{wire.GUID(a.ID), a.Name, a.ClientSlots} }),
		CSVLKs: convSlice(j.CSVLKs, func(c jsonCSVLK) CSVLK { return CSVLK(c) }),
		KMSItems: convSlice(j.KMSItems, func(k jsonKMSItem) KMSItem {
			return KMSItem{wire.GUID(k.ID), k.Name, k.App, k.CSVLK, k.Protocol, k.NPolicy, k.Retail, k.Preview}
		}),
		Products: convSlice(j.Products, func(p jsonProduct) Product {
			return Product{p.Number, p.Name, wire.GUID(p.SKU), p.KMS, p.GVLK}
		}),
		HostBuilds: convSlice(j.HostBuilds, func(b jsonBuild) HostBuild { return HostBuild(b) }),
		AllBuilds:  convSlice(j.AllBuilds, func(b jsonBuild) HostBuild { return HostBuild(b) }),
		Extra: convSlice(j.Extra, func(e jsonExtra) ExtraSKU {
			return ExtraSKU{e.Name, wire.GUID(e.SKU), wire.GUID(e.KMSID), e.KMSName, e.GVLK, e.App}
		}),
	}
	for i, p := range t.Products {
		if p.Number != i+1 {
			return nil, fmt.Errorf("product table JSON: products[%d] has number %d; products are numbered by position (%d)", i, p.Number, i+1)
		}
	}
	if err := t.check(); err != nil {
		return nil, fmt.Errorf("product table JSON: %w", err)
	}
	t.Index()
	return t, nil
}
