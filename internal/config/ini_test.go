package config

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

var iniTestCSVLKs = []string{"Windows", "Office2010", "Office2013", "Office2016", "Office2019", "Office2021", "Office2024"}

func iniPtr[T any](v T) *T { return &v }

func TestParseINIValues(t *testing.T) {
	text := "\xef\xbb\xbf# comment\r\n" +
		"  ; another comment\n" +
		"\n" +
		"Listen = 127.0.0.1\n" +
		"ListenAddress=[::1]:1800\r\n" + // keyword matched as a prefix
		"port = 1700\n" +
		"FreeBind = yes\n" +
		"PublicIPProtectionLevel = 2\n" +
		"ExitLevel = 1\n" +
		"UseNDR64 = of\n" + // "of" is a prefix of "off"
		"UseBTFN = t\n" +
		"RandomizationLevel = 0\n" +
		"LCID = 1031\n" +
		"HostBuild = 17763\n" +
		"MaxWorkers = 4\n" +
		"ConnectionTimeout = 120\n" +
		"DisconnectClientsImmediately = true\n" +
		"PidFile = /run/kmsd.pid\n" +
		"LogFile = /var/log/kmsd log.txt  \n" + // literal, trailing spaces kept
		"LogDateAndTime = 0\n" +
		"LogVerbose = on\n" +
		"PrivacyMode = no\n" +
		"KmsData = /etc/vlmcsd.kmd\n" +
		"WhiteListingLevel = 3\n" +
		"CheckClientTime = 1\n" +
		"MaintainClients = TRUE\n" +
		"StartEmpty = yes\n" +
		"ActivationInterval = 2h\n" +
		"RenewalInterval = 1w\n" +
		"User = nobody\n" +
		"Group = nogroup\n" +
		"Allow = 10.0.0.0/8\n" +
		"Allow = 192.168.1.7\n" +
		"Deny = 10.1.0.0/16\n" +
		"LogFormat = JSON\n" +
		"\tWindows\t=\t03612-04919-123-456789-03-1033-26100.0000-0452025 / 11 22 33 44 55 66 77 88\n" +
		"office2024 = 03612-00206-654-321098-03-1031-20348.0000-2202024\n" +
		"Office2010 = first\n" +
		"OFFICE2010x = 05426-00096-213-338588-03-1033-9200.0000-0172025\n" // replaces "first"
	ini, warns := ParseINI("v.ini", []byte(text), iniTestCSVLKs)
	for _, w := range warns {
		t.Errorf("unexpected warning %v", w)
	}
	want := INI{
		Listen:             []string{"127.0.0.1", "[::1]:1800"},
		Port:               iniPtr("1700"),
		FreeBind:           iniPtr(true),
		PublicIPLevel:      iniPtr(2),
		ExitLevel:          iniPtr(1),
		NDR64:              iniPtr(false),
		BTFN:               iniPtr(true),
		Randomization:      iniPtr(0),
		LCID:               iniPtr(uint16(1031)),
		HostBuild:          iniPtr(uint32(17763)),
		MaxWorkers:         iniPtr(4),
		Timeout:            iniPtr(120 * time.Second),
		Disconnect:         iniPtr(true),
		PidFile:            iniPtr("/run/kmsd.pid"),
		LogFile:            iniPtr("/var/log/kmsd log.txt  "),
		Timestamps:         iniPtr(false),
		Verbose:            iniPtr(true),
		Privacy:            iniPtr(false),
		KMDFile:            iniPtr("/etc/vlmcsd.kmd"),
		Whitelist:          iniPtr(3),
		CheckTime:          iniPtr(true),
		Maintain:           iniPtr(true),
		StartEmpty:         iniPtr(true),
		ActivationInterval: iniPtr(uint32(120)),
		RenewalInterval:    iniPtr(uint32(10080)),
		User:               iniPtr("nobody"),
		Group:              iniPtr("nogroup"),
		EPIDs: []EPIDOverride{
			{CSVLK: "Windows", EPID: "03612-04919-123-456789-03-1033-26100.0000-0452025",
				HWID: [8]byte{0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88}, HasHWID: true},
			{CSVLK: "Office2024", EPID: "03612-00206-654-321098-03-1031-20348.0000-2202024"},
			{CSVLK: "Office2010", EPID: "05426-00096-213-338588-03-1033-9200.0000-0172025"},
		},
		Allow:     []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.1.7/32")},
		Deny:      []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")},
		LogFormat: iniPtr("json"),
	}
	if !reflect.DeepEqual(ini, want) {
		t.Errorf("ParseINI:\n got %+v\nwant %+v", ini, want)
	}
}

func TestParseINIEmpty(t *testing.T) {
	ini, warns := ParseINI("e.ini", nil, iniTestCSVLKs)
	if !reflect.DeepEqual(ini, INI{}) || warns != nil {
		t.Errorf("empty file: %+v %v", ini, warns)
	}
}

func TestParseINIRepeatedKeyword(t *testing.T) {
	ini, warns := ParseINI("r.ini", []byte("Port=1700\nPort = 1800\nMaxWorkers=2\nMaxWorkers=x\n"), nil)
	if *ini.Port != "1800" || *ini.MaxWorkers != 2 || len(warns) != 1 || warns[0].Line != 4 {
		t.Errorf("got port %v workers %v warnings %v", *ini.Port, *ini.MaxWorkers, warns)
	}
}

func TestParseINIWarnings(t *testing.T) {
	tests := []struct {
		line, reason string
	}{
		{"Bogus = 1", "unknown keyword"},
		{"Por = 1688", "unknown keyword"}, // the keyword must be a prefix of the line
		{"WinChinaGov = 1-2-3", "unknown keyword"},
		{"Port 1688", `expected "=" after the keyword`},
		{"Port =", "missing argument"},
		{"Port = 1688 ", `Port: "1688 " is not a number`},
		{"Port = 0x10", `Port: "0x10" is not a number`},
		{"Port = 70000", "Port: 70000 is out of range 1..65535"},
		{"RandomizationLevel = 3", "out of range 0..2"},
		{"LCID = 40000", "out of range 0..32767"},
		{"ConnectionTimeout = 0", "out of range 1..600"},
		{"UseNDR64 = maybe", "not a boolean"},
		{"UseNDR64 = o", "not a boolean"},
		{"ActivationInterval = 59s", "at least 1 minute"},
		{"ActivationInterval = 1.5h", "not a time span"},
		{"RenewalInterval = 2x", "unknown unit"},
		{"RenewalInterval = 30m ", "unknown unit"},
		{"Listen = 1.2.3.4:99999", "Listen: port"},
		{"Listen = 1.2.3.4 ", "white space"},
		{"Listen = [::1", "missing ]"},
		{"VPN = tap0=10.10.10.1/24", "Windows builds"},
		{"Allow = 300.1.1.1", "not an address"},
		{"LogFormat = xml", "not a log format"},
		{"Windows = ", "missing argument"},
		{"Windows = 0123456789012345678901234567890123456789012345678901234567890123", "1 to 63 characters"},
		{"Windows = EPID / 1122", "16 hex digits"},
		{"Office2010 = EPID x", `unexpected "x"`},
	}
	for _, tc := range tests {
		ini, warns := ParseINI("w.ini", []byte("# first\n"+tc.line+"\r\n"), iniTestCSVLKs)
		if len(warns) != 1 {
			t.Errorf("%q: %d warnings %v, want 1", tc.line, len(warns), warns)
			continue
		}
		w := warns[0]
		if w.File != "w.ini" || w.Line != 2 || w.Text != tc.line || !strings.Contains(w.Reason, tc.reason) {
			t.Errorf("%q: warning %+v, want reason containing %q", tc.line, w, tc.reason)
		}
		if !reflect.DeepEqual(ini, INI{}) {
			t.Errorf("%q: bad line was not skipped: %+v", tc.line, ini)
		}
	}
}

func TestWarningError(t *testing.T) {
	w := Warning{File: "/etc/vlmcsd.ini", Line: 7, Text: `Port = "x"`, Reason: "unknown keyword"}
	want := `/etc/vlmcsd.ini:7: "Port = \"x\"": unknown keyword`
	if got := w.Error(); got != want {
		t.Errorf("Error() = %s, want %s", got, want)
	}
}

func TestParseINILongLines(t *testing.T) {
	// A line of more than 255 bytes is read in pieces of 255, each a line
	// of its own (vlmcsd reads with a 256-byte buffer).
	path := "/" + strings.Repeat("a", 300)
	text := "PidFile = " + path + "\nPort = 1700\n"
	ini, warns := ParseINI("l.ini", []byte(text), nil)
	if want := ("PidFile = " + path)[:255]; ini.PidFile == nil || "PidFile = "+*ini.PidFile != want {
		t.Errorf("PidFile = %v, want the first 255 bytes of the line", ini.PidFile)
	}
	if len(warns) != 1 || warns[0].Line != 2 || warns[0].Reason != "unknown keyword" || !strings.HasPrefix(warns[0].Text, "aaa") {
		t.Errorf("warnings %v, want one for the rest of the long line on line 2", warns)
	}
	if ini.Port == nil || *ini.Port != "1700" {
		t.Errorf("Port after a long line = %v", ini.Port)
	}

	// Exactly 255 bytes and a newline: the newline is read as an empty
	// line of its own, so the next keyword is on line 3.
	line := "LogFile = " + strings.Repeat("b", 245)
	ini, warns = ParseINI("l.ini", []byte(line+"\nBad\n"), nil)
	if ini.LogFile == nil || len(*ini.LogFile) != 245 || len(warns) != 1 || warns[0].Line != 3 {
		t.Errorf("255-byte line: LogFile %v, warnings %v", ini.LogFile, warns)
	}

	// No newline at the end of the file; a NUL ends the line.
	ini, _ = ParseINI("l.ini", []byte("Port = 1700\x00junk"), nil)
	if ini.Port == nil || *ini.Port != "1700" {
		t.Errorf("NUL: Port = %v", ini.Port)
	}
}

func TestParseINIKeywordOrder(t *testing.T) {
	// A line is taken by the first keyword it starts with; the rest of the
	// first token is skipped.
	ini, warns := ParseINI("o.ini", []byte("UserName = root\nLogFileName=/tmp/x\nGroupId = 0\n"), nil)
	if len(warns) != 0 || *ini.User != "root" || *ini.LogFile != "/tmp/x" || *ini.Group != "0" {
		t.Errorf("got %+v %v", ini, warns)
	}
}

func FuzzINI(f *testing.F) {
	f.Add([]byte("Listen = 127.0.0.1:1688\nPort=1700\n# c\nWindows = 03612-04919-123-456789-03-1033-26100.0000-0452025 / 11 22 33 44 55 66 77 88\n"))
	f.Add([]byte("ActivationInterval = 2h\r\nRenewalInterval = 1w\r\nUseNDR64 = of\r\nAllow = 10.0.0.0/8\n"))
	f.Add([]byte("\xef\xbb\xbf" + strings.Repeat("x", 300) + "\nLogFormat = json\nVPN = a\n"))
	f.Add([]byte("Office2024=E/\nListen=[::1\nMaxWorkers=-1\n\x00\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ini, warns := ParseINI("f.ini", data, iniTestCSVLKs)
		last := 0
		for _, w := range warns {
			if w.Line <= last || w.Reason == "" {
				t.Fatalf("bad warning %+v after line %d", w, last)
			}
			last = w.Line
			_ = w.Error()
		}
		for _, l := range ini.Listen {
			if _, err := normalizeListen(l, "1688"); err != nil {
				t.Fatalf("accepted bad Listen %q: %v", l, err)
			}
		}
		for _, e := range ini.EPIDs {
			if e.EPID == "" || len(e.EPID) > 63 {
				t.Fatalf("accepted bad ePID %q", e.EPID)
			}
		}
		// Layering never fails once the file has been read.
		cfg, _, err := LoadServer([]string{"-i", "f.ini", "-P", "1700"}, func(string) ([]byte, error) { return data, nil }, iniTestCSVLKs)
		if err != nil || cfg.Port != "1700" {
			t.Fatalf("LoadServer: %v %q", err, cfg.Port)
		}
	})
}
