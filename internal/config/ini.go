package config

import (
	"bytes"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Warning is a vlmcsd.ini line that was skipped (kms-data.md §3.1). vlmcsd
// prints `Warning: <file> line <n>: "<line>". <reason>`; kmsd's Error is
// `<file>:<n>: "<line>": <reason>`.
type Warning struct {
	File   string
	Line   int    // 1-based; a line longer than 255 bytes counts as several
	Text   string // the line without its CR/LF
	Reason string
}

func (w Warning) Error() string {
	return fmt.Sprintf("%s:%d: %q: %s", w.File, w.Line, w.Text, w.Reason)
}

// INI holds what a vlmcsd.ini file set. Every scalar is a pointer that is
// nil when the file did not set the keyword, so that LoadServer can apply
// the command-line precedence of kms-data.md §3.3.
type INI struct {
	Listen             []string // Listen lines as written, in order (validated)
	Port               *string  // decimal 1..65535
	FreeBind           *bool
	PublicIPLevel      *int // PublicIPProtectionLevel
	ExitLevel          *int
	NDR64              *bool // UseNDR64
	BTFN               *bool // UseBTFN
	Randomization      *int  // RandomizationLevel
	LCID               *uint16
	HostBuild          *uint32
	MaxWorkers         *int
	Timeout            *time.Duration // ConnectionTimeout
	Disconnect         *bool          // DisconnectClientsImmediately
	PidFile            *string
	LogFile            *string
	Timestamps         *bool // LogDateAndTime
	Verbose            *bool // LogVerbose
	Privacy            *bool // PrivacyMode
	KMDFile            *string
	Whitelist          *int // WhiteListingLevel
	CheckTime          *bool
	Maintain           *bool
	StartEmpty         *bool
	ActivationInterval *uint32 // minutes
	RenewalInterval    *uint32 // minutes
	User, Group        *string

	// EPIDs are the CSVLK lines, one per CSVLK (a later line for the same
	// CSVLK replaces the earlier one), named with the CSVLK's ini name as
	// passed to ParseINI.
	EPIDs []EPIDOverride

	// kmsd extensions.
	Allow, Deny []netip.Prefix // Allow / Deny, repeatable
	LogFormat   *string        // "text" or "json"
}

// iniKeyword is one keyword of kms-data.md §3.2, in vlmcsd's order (a line
// is taken by the first keyword it starts with), followed by kmsd's.
type iniKeyword struct {
	name  string
	apply func(ini *INI, arg string) error
}

// iniMaxLine is vlmcsd's line limit: longer lines are read in pieces of
// 255 bytes, each handled (and counted) as a line of its own.
const iniMaxLine = 255

var iniKeywords = []iniKeyword{
	{"Listen", func(ini *INI, a string) error {
		if strings.ContainsAny(a, " \t") {
			return fmt.Errorf("an address may not contain white space")
		}
		if _, err := normalizeListen(a, "1688"); err != nil {
			return err
		}
		ini.Listen = append(ini.Listen, a)
		return nil
	}},
	{"Port", func(ini *INI, a string) error {
		n, err := iniNumber(a, 1, 65535)
		s := strconv.FormatInt(n, 10)
		return iniSet(&ini.Port, s, err)
	}},
	{"FreeBind", iniBool(func(ini *INI) **bool { return &ini.FreeBind })},
	{"PublicIPProtectionLevel", iniInt(0, 3, func(ini *INI) **int { return &ini.PublicIPLevel })},
	{"VPN", func(*INI, string) error {
		return fmt.Errorf("adapters exist only in vlmcsd's Windows builds; ignored")
	}},
	{"ExitLevel", iniInt(0, 1, func(ini *INI) **int { return &ini.ExitLevel })},
	{"UseNDR64", iniBool(func(ini *INI) **bool { return &ini.NDR64 })},
	{"UseBTFN", iniBool(func(ini *INI) **bool { return &ini.BTFN })},
	{"RandomizationLevel", iniInt(0, 2, func(ini *INI) **int { return &ini.Randomization })},
	{"LCID", func(ini *INI, a string) error {
		n, err := iniNumber(a, 0, 32767)
		return iniSet(&ini.LCID, uint16(n), err)
	}},
	{"HostBuild", func(ini *INI, a string) error {
		n, err := iniNumber(a, 0, 65535)
		return iniSet(&ini.HostBuild, uint32(n), err)
	}},
	{"MaxWorkers", iniInt(1, 1<<20, func(ini *INI) **int { return &ini.MaxWorkers })},
	{"ConnectionTimeout", func(ini *INI, a string) error {
		n, err := iniNumber(a, 1, 600)
		return iniSet(&ini.Timeout, time.Duration(n)*time.Second, err)
	}},
	{"DisconnectClientsImmediately", iniBool(func(ini *INI) **bool { return &ini.Disconnect })},
	{"PidFile", iniString(func(ini *INI) **string { return &ini.PidFile })},
	{"LogFile", iniString(func(ini *INI) **string { return &ini.LogFile })},
	{"LogDateAndTime", iniBool(func(ini *INI) **bool { return &ini.Timestamps })},
	{"LogVerbose", iniBool(func(ini *INI) **bool { return &ini.Verbose })},
	{"PrivacyMode", iniBool(func(ini *INI) **bool { return &ini.Privacy })},
	{"KmsData", iniString(func(ini *INI) **string { return &ini.KMDFile })},
	{"WhiteListingLevel", iniInt(0, 3, func(ini *INI) **int { return &ini.Whitelist })},
	{"CheckClientTime", iniBool(func(ini *INI) **bool { return &ini.CheckTime })},
	{"MaintainClients", iniBool(func(ini *INI) **bool { return &ini.Maintain })},
	{"StartEmpty", iniBool(func(ini *INI) **bool { return &ini.StartEmpty })},
	{"ActivationInterval", func(ini *INI, a string) error {
		v, err := ParseInterval(a)
		return iniSet(&ini.ActivationInterval, v, err)
	}},
	{"RenewalInterval", func(ini *INI, a string) error {
		v, err := ParseInterval(a)
		return iniSet(&ini.RenewalInterval, v, err)
	}},
	{"User", iniString(func(ini *INI) **string { return &ini.User })},
	{"Group", iniString(func(ini *INI) **string { return &ini.Group })},
	// kmsd extensions (--allow, --deny, --log-format).
	{"Allow", func(ini *INI, a string) error {
		p, err := ParsePrefix(a)
		if err == nil {
			ini.Allow = append(ini.Allow, p)
		}
		return err
	}},
	{"Deny", func(ini *INI, a string) error {
		p, err := ParsePrefix(a)
		if err == nil {
			ini.Deny = append(ini.Deny, p)
		}
		return err
	}},
	{"LogFormat", func(ini *INI, a string) error {
		l := strings.ToLower(a)
		if l != "text" && l != "json" {
			return fmt.Errorf("%q is not a log format (text or json)", a)
		}
		return iniSet(&ini.LogFormat, l, nil)
	}},
}

// iniSet stores v in *p unless err is set.
func iniSet[T any](p **T, v T, err error) error {
	if err != nil {
		return err
	}
	*p = &v
	return nil
}

func iniBool(field func(*INI) **bool) func(*INI, string) error {
	return func(ini *INI, a string) error {
		b, err := parseBool(a)
		return iniSet(field(ini), b, err)
	}
}

func iniInt(lo, hi int64, field func(*INI) **int) func(*INI, string) error {
	return func(ini *INI, a string) error {
		n, err := iniNumber(a, lo, hi)
		return iniSet(field(ini), int(n), err)
	}
}

func iniString(field func(*INI) **string) func(*INI, string) error {
	return func(ini *INI, a string) error { return iniSet(field(ini), a, nil) }
}

// iniNumber parses a numeric argument, which must be nothing but the number
// (no trailing spaces, kms-data.md §3.1).
func iniNumber(a string, lo, hi int64) (int64, error) {
	n, err := strconv.ParseInt(a, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number (nothing may follow it, not even a space)", a)
	}
	if n < lo || n > hi {
		return 0, fmt.Errorf("%d is out of range %d..%d", n, lo, hi)
	}
	return n, nil
}

// iniHasPrefixFold reports whether s starts with prefix, ignoring ASCII
// case only (as C's strncasecmp).
func iniHasPrefixFold(s, prefix string) bool {
	if len(s) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		a, b := s[i], prefix[i]
		if 'A' <= a && a <= 'Z' {
			a += 'a' - 'A'
		}
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		if a != b {
			return false
		}
	}
	return true
}

// iniMatchCSVLK returns the first of csvlks that s starts with (ignoring
// ASCII case), or "".
func iniMatchCSVLK(s string, csvlks []string) string {
	for _, c := range csvlks {
		if c != "" && iniHasPrefixFold(s, c) {
			return c
		}
	}
	return ""
}

// iniLines splits data as vlmcsd reads it: pieces of at most 255 bytes,
// each ending after a '\n' or at the limit, without trailing CR/LF, and cut
// at a NUL byte (C strings end there).
func iniLines(data []byte) []string {
	var lines []string
	for len(data) > 0 {
		n := bytes.IndexByte(data, '\n') + 1
		if n == 0 || n > iniMaxLine {
			n = min(len(data), iniMaxLine)
		}
		line := data[:n]
		data = data[n:]
		if i := bytes.IndexByte(line, 0); i >= 0 {
			line = line[:i]
		}
		lines = append(lines, string(bytes.TrimRight(line, "\r\n")))
	}
	return lines
}

func isIniSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\v' || c == '\f' }

// ParseINI parses a vlmcsd.ini file (kms-data.md §3). name is used in the
// warnings; csvlks are the CSVLK ini names of the product table (Windows,
// Office2010, ...), which are keywords for ePID lines. Bad lines are
// skipped with a warning; a keyword given again replaces the earlier value
// except Listen, Allow and Deny, which accumulate. A UTF-8 byte order mark
// at the start is ignored.
func ParseINI(name string, data []byte, csvlks []string) (INI, []Warning) {
	var ini INI
	var warns []Warning
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	for i, text := range iniLines(data) {
		warn := func(format string, a ...any) {
			warns = append(warns, Warning{File: name, Line: i + 1, Text: text, Reason: fmt.Sprintf(format, a...)})
		}
		line := strings.TrimLeftFunc(text, func(r rune) bool { return r < 0x80 && isIniSpace(byte(r)) })
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		var kw *iniKeyword
		for k := range iniKeywords {
			if iniHasPrefixFold(line, iniKeywords[k].name) {
				kw = &iniKeywords[k]
				break
			}
		}
		csvlk := ""
		klen := 0
		if kw != nil {
			klen = len(kw.name)
		} else if csvlk = iniMatchCSVLK(line, csvlks); csvlk != "" {
			klen = len(csvlk)
		} else {
			warn("unknown keyword")
			continue
		}
		// Skip the rest of the first token, white space, '=', white space.
		j := klen
		for j < len(line) && line[j] != '=' && !isIniSpace(line[j]) {
			j++
		}
		for j < len(line) && isIniSpace(line[j]) {
			j++
		}
		if j >= len(line) || line[j] != '=' {
			warn("expected \"=\" after the keyword")
			continue
		}
		j++
		for j < len(line) && isIniSpace(line[j]) {
			j++
		}
		arg := line[j:]
		if arg == "" {
			warn("missing argument")
			continue
		}
		if kw != nil {
			if err := kw.apply(&ini, arg); err != nil {
				warn("%s: %v", kw.name, err)
			}
			continue
		}
		e, err := parseEPIDValue(arg)
		if err != nil {
			warn("%s: %v", csvlk, err)
			continue
		}
		e.CSVLK = csvlk
		ini.setEPID(e)
	}
	return ini, warns
}

// setEPID stores e, replacing an earlier entry for the same CSVLK.
func (ini *INI) setEPID(e EPIDOverride) {
	for i := range ini.EPIDs {
		if strings.EqualFold(ini.EPIDs[i].CSVLK, e.CSVLK) {
			ini.EPIDs[i] = e
			return
		}
	}
	ini.EPIDs = append(ini.EPIDs, e)
}
