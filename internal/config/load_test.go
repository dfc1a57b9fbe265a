package config

import (
	"encoding/json"
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// iniFiles returns a readFile serving the given files.
func iniFiles(files map[string]string) func(string) ([]byte, error) {
	return func(name string) ([]byte, error) {
		if s, ok := files[name]; ok {
			return []byte(s), nil
		}
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
}

func TestLoadServerPrecedence(t *testing.T) {
	hwid := [8]byte{1, 2, 3, 4, 5, 6, 7, 8}
	tests := []struct {
		name string
		args []string
		ini  string
		want func(*Server)
	}{
		{"no ini", nil, "", func(*Server) {}},
		{"ini - is not read", []string{"-i", "-"}, "", func(s *Server) { s.IniFile = "-" }},
		{"listen lines with the ini port",
			[]string{"-i", "v.ini"},
			"Listen = 127.0.0.1\nListen = [::1]:1800\nListen = ::2\nPort = 1700\n",
			func(s *Server) {
				s.Port = "1700"
				s.Listen = []string{"127.0.0.1:1700", "[::1]:1800", "[::2]:1700"}
			}},
		{"-L discards the Listen lines but takes the ini port",
			[]string{"-L", "10.0.0.1", "-L", "10.0.0.2:99", "-i", "v.ini"},
			"Listen = 127.0.0.1\nPort = 1700\n",
			func(s *Server) {
				s.Port = "1700"
				s.Listen = []string{"10.0.0.1:1700", "10.0.0.2:99"}
			}},
		{"-P discards the Listen lines and the ini port",
			[]string{"-P", "1800", "-i", "v.ini"},
			"Listen = 127.0.0.1\nPort = 1700\n",
			func(s *Server) { s.Port = "1800" }},
		{"-L before -P keeps the default port",
			[]string{"-L", "10.0.0.1", "-P", "1800", "-L", "10.0.0.2", "-i", "v.ini"},
			"Port = 1700\nListen = 127.0.0.1\n",
			func(s *Server) {
				s.Port = "1800"
				s.Listen = []string{"10.0.0.1:1688", "10.0.0.2:1800"}
			}},
		{"every ini keyword",
			[]string{"-i", "v.ini"},
			"FreeBind=1\nPublicIPProtectionLevel=3\nExitLevel=1\nUseNDR64=0\nUseBTFN=0\n" +
				"RandomizationLevel=2\nLCID=1031\nHostBuild=14393\nMaxWorkers=8\nConnectionTimeout=5\n" +
				"DisconnectClientsImmediately=yes\nPidFile=/run/p\nLogFile=/tmp/l\nLogDateAndTime=off\n" +
				"LogVerbose=1\nPrivacyMode=1\nKmsData=/x.kmd\nWhiteListingLevel=1\nCheckClientTime=1\n" +
				"MaintainClients=1\nStartEmpty=1\nActivationInterval=3d\nRenewalInterval=90s\n" +
				"User=u\nGroup=g\nAllow=10.0.0.0/8\nDeny=10.9.0.0/16\nLogFormat=json\n",
			func(s *Server) {
				s.FreeBind, s.PublicIPLevel, s.ExitLevel = true, 3, 1
				s.NDR64 = iniPtr(false)
				s.BTFN, s.Randomization, s.LCID, s.HostBuild = false, 2, 1031, 14393
				s.MaxWorkers, s.Timeout, s.Disconnect = 8, 5*time.Second, true
				s.PidFile, s.LogFile, s.Timestamps, s.Verbose, s.Privacy = "/run/p", "/tmp/l", false, true, true
				s.KMDFile, s.Whitelist, s.CheckTime, s.Maintain, s.StartEmpty = "/x.kmd", 1, true, true, true
				s.ActivationInterval, s.RenewalInterval = 4320, 1
				s.User, s.Group, s.LogFormat = "u", "g", "json"
				s.Allow = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
				s.Deny = []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16")}
			}},
		{"the command line wins",
			[]string{"-F0", "-o1", "-x0", "-N1", "-B1", "-r0", "-C", "1033", "-H", "17763", "-m", "2",
				"-t", "9", "-k", "-p", "/a", "-l", "/b", "-T1", "-q", "-j", "-", "-K2", "-c0", "-M0",
				"-E0", "-A", "5", "-R", "6", "-u", "x", "-g", "y", "--log-format=text",
				"--allow", "192.168.0.0/16", "--deny", "192.168.9.9", "-i", "v.ini"},
			"FreeBind=1\nPublicIPProtectionLevel=3\nExitLevel=1\nUseNDR64=0\nUseBTFN=0\n" +
				"RandomizationLevel=2\nLCID=1031\nHostBuild=14393\nMaxWorkers=8\nConnectionTimeout=5\n" +
				"DisconnectClientsImmediately=yes\nPidFile=/run/p\nLogFile=/tmp/l\nLogDateAndTime=off\n" +
				"LogVerbose=1\nPrivacyMode=1\nKmsData=/x.kmd\nWhiteListingLevel=1\nCheckClientTime=1\n" +
				"MaintainClients=1\nStartEmpty=1\nActivationInterval=3d\nRenewalInterval=90s\n" +
				"User=u\nGroup=g\nAllow=10.0.0.0/8\nDeny=10.9.0.0/16\nLogFormat=json\n",
			func(s *Server) {
				s.NDR64 = iniPtr(true)
				s.PublicIPLevel, s.Randomization, s.LCID, s.HostBuild = 1, 0, 1033, 17763
				s.MaxWorkers, s.Timeout = 2, 9*time.Second
				s.PidFile, s.LogFile, s.KMDFile, s.Whitelist = "/a", "/b", "-", 2
				s.ActivationInterval, s.RenewalInterval, s.User, s.Group = 5, 6, "x", "y"
				s.Allow = []netip.Prefix{netip.MustParsePrefix("192.168.0.0/16")}
				s.Deny = []netip.Prefix{netip.MustParsePrefix("192.168.9.9/32")}
				// The ini privacy mode applies: -X was not given.
				s.Privacy = true
			}},
		{"-d and -v win over the ini",
			[]string{"-d", "-v", "-i", "v.ini"},
			"DisconnectClientsImmediately=no\nLogVerbose=no\n",
			func(s *Server) { s.Disconnect, s.Verbose = true, true },
		},
		{"-d -k and -v -q",
			[]string{"-d", "-k", "-v", "-q", "-i", "v.ini"},
			"DisconnectClientsImmediately=yes\nLogVerbose=yes\n",
			func(s *Server) {},
		},
		{"-a wins per CSVLK",
			[]string{"-a", "windows=A/0102030405060708", "-a", "Office2013=C", "-i", "v.ini"},
			"Windows = B / 1111111111111111\nOffice2010 = D\nOFFICE2013 = E\nOffice2024 = F\n",
			func(s *Server) {
				s.EPIDs = []EPIDOverride{
					{CSVLK: "windows", EPID: "A", HWID: hwid, HasHWID: true},
					{CSVLK: "Office2013", EPID: "C"},
					{CSVLK: "Office2010", EPID: "D"},
					{CSVLK: "Office2024", EPID: "F"},
				}
			}},
		{"long options count as the short ones",
			[]string{"--randomization=0", "--ini", "v.ini"},
			"RandomizationLevel = 2\nLCID = 7\n",
			func(s *Server) { s.Randomization, s.LCID = 0, 7 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want := DefaultServer()
			for i, a := range tc.args {
				if i > 0 && (tc.args[i-1] == "-i" || tc.args[i-1] == "--ini") {
					want.IniFile = a
				}
			}
			tc.want(&want)
			read := iniFiles(map[string]string{"v.ini": tc.ini})
			got, warns, err := LoadServer(tc.args, read, iniTestCSVLKs)
			if err != nil {
				t.Fatal(err)
			}
			if len(warns) > 0 {
				t.Errorf("warnings: %v", warns)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("LoadServer(%q):\n got %+v\nwant %+v", tc.args, got, want)
			}
		})
	}
}

func TestLoadServerErrors(t *testing.T) {
	read := iniFiles(map[string]string{"v.ini": "Port = x\nBogus\n"})
	_, warns, err := LoadServer([]string{"-i", "v.ini"}, read, nil)
	if err != nil || len(warns) != 2 || warns[0].File != "v.ini" || warns[1].Line != 2 {
		t.Errorf("warnings %v, err %v", warns, err)
	}

	_, _, err = LoadServer([]string{"-i", "/nonexistent/vlmcsd.ini"}, read, nil)
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/vlmcsd.ini") {
		t.Errorf("missing ini file: %v", err)
	}
	if err != nil && strings.Count(err.Error(), "/nonexistent/vlmcsd.ini") != 1 {
		t.Errorf("file named more than once: %v", err)
	}

	dir := t.TempDir()
	_, _, err = LoadServer([]string{"-i", dir}, nil, nil) // a directory: os.ReadFile fails
	if err == nil || !strings.Contains(err.Error(), dir) {
		t.Errorf("unreadable ini file: %v", err)
	}
	file := filepath.Join(dir, "ok.ini")
	if err := os.WriteFile(file, []byte("LCID = 1031\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, _, err := LoadServer([]string{"-i", file}, nil, nil)
	if err != nil || cfg.LCID != 1031 {
		t.Errorf("os.ReadFile: %v %d", err, cfg.LCID)
	}

	// A bad command line is reported before the file is read.
	_, _, err = LoadServer([]string{"-r9", "-i", "v.ini"}, func(string) ([]byte, error) {
		t.Error("file read despite a bad command line")
		return nil, nil
	}, nil)
	var ue *UsageError
	if !errors.As(err, &ue) {
		t.Errorf("bad command line: %v", err)
	}
	// -h does not read the file.
	if _, _, err := LoadServer([]string{"-h", "-i", "missing.ini"}, read, nil); err != nil {
		t.Errorf("-h: %v", err)
	}
}

// TestLoadServerVectorINI replays the recorded scenario server-ini-epid:
// vlmcsd was started with an ini file holding two CSVLK lines.
func TestLoadServerVectorINI(t *testing.T) {
	dir := os.Getenv("KMSD_VECTORS")
	if dir == "" {
		dir = filepath.Join("..", "..", "..", "shared", "testdata", "vectors")
	}
	data, err := os.ReadFile(filepath.Join(dir, "server-ini-epid.json"))
	if errors.Is(err, fs.ErrNotExist) {
		t.Skipf("recorded vectors not found at %s (set KMSD_VECTORS)", dir)
	}
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		ServerArgs  []string          `json:"server_args"`
		ServerFiles map[string]string `json:"server_files"`
		ServerLog   string            `json:"server_log"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.ServerArgs) < 1 || len(v.ServerFiles) == 0 {
		t.Fatalf("vector has no server arguments or files")
	}
	cfg, warns, err := LoadServer(v.ServerArgs[1:], iniFiles(v.ServerFiles), iniTestCSVLKs)
	if err != nil || len(warns) > 0 {
		t.Fatalf("LoadServer: %v %v", err, warns)
	}
	want := []EPIDOverride{
		{CSVLK: "Windows", EPID: "03612-04919-123-456789-03-1033-26100.0000-0452025",
			HWID: [8]byte{0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88}, HasHWID: true},
		{CSVLK: "Office2024", EPID: "03612-00206-654-321098-03-1031-20348.0000-2202024"},
	}
	if !reflect.DeepEqual(cfg.EPIDs, want) {
		t.Errorf("EPIDs = %+v, want %+v", cfg.EPIDs, want)
	}
	// vlmcsd's start-up log names these as the fixed ePIDs.
	for _, e := range want {
		if line := "Using CSVLK " + e.CSVLK + " "; !strings.Contains(v.ServerLog, "with fixed ePID "+e.EPID) || !strings.Contains(v.ServerLog, line) {
			t.Errorf("server log does not show %s with fixed ePID %s", e.CSVLK, e.EPID)
		}
	}
	if cfg.Listen[0] != "127.0.0.1:21442" || !cfg.Verbose || !cfg.LogStdout {
		t.Errorf("command line lost: %+v", cfg)
	}
}

func TestPyKMSStyleOptions(t *testing.T) {
	cfg, err := ParseServer([]string{"-a", "03612-00206-471-111111-03-1033-17763.0000-2822018", "--hwid", "0x364F463A8863D35F", "--client-count", "26"})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.EPIDs) != 1 || cfg.EPIDs[0].CSVLK != AllCSVLKs || cfg.EPIDs[0].EPID != "03612-00206-471-111111-03-1033-17763.0000-2822018" {
		t.Errorf("EPIDs %+v", cfg.EPIDs)
	}
	if cfg.HWID == nil || *cfg.HWID != [8]byte{0x36, 0x4F, 0x46, 0x3A, 0x88, 0x63, 0xD3, 0x5F} {
		t.Errorf("HWID %x", cfg.HWID)
	}
	if cfg.ClientCount != 26 {
		t.Errorf("ClientCount %d", cfg.ClientCount)
	}
	for _, bad := range [][]string{{"--client-count", "0"}, {"--hwid", "12"}} {
		if _, err := ParseServer(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}
