package main

import (
	"bytes"
	"encoding/hex"
	"os"
	"slices"
	"strings"
	"testing"

	"kmsd/internal/config"
)

// pykmsOptions is what a py-kms container environment means to the host.
type pykmsOptions struct {
	Listen             []string
	Port               string
	EPIDs              []config.EPIDOverride
	LCID               uint16
	HWID               string // hex, "" when not set
	ClientCount        uint32
	ActivationInterval uint32
	RenewalInterval    uint32
	Verbose            bool
	LogStdout          bool
	LogFile            string
}

func optionsOf(c config.Server) pykmsOptions {
	o := pykmsOptions{Listen: c.Listen, Port: c.Port, EPIDs: c.EPIDs, LCID: c.LCID,
		ClientCount: c.ClientCount, ActivationInterval: c.ActivationInterval,
		RenewalInterval: c.RenewalInterval, Verbose: c.Verbose, LogStdout: c.LogStdout, LogFile: c.LogFile}
	if c.HWID != nil {
		o.HWID = strings.ToUpper(hex.EncodeToString(c.HWID[:]))
	}
	return o
}

// defaults returns kmsd's defaults with f applied.
func defaults(f func(o *pykmsOptions)) pykmsOptions {
	o := optionsOf(config.DefaultServer())
	if f != nil {
		f(&o)
	}
	return o
}

func envFunc(env map[string]string) func(string) string {
	return func(k string) string { return env[k] }
}

// fixedRandom makes HWID=RANDOM reproducible: 01 02 03 … 08.
func fixedRandom() *bytes.Reader { return bytes.NewReader([]byte{1, 2, 3, 4, 5, 6, 7, 8}) }

func TestPykmsEnvArgs(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want pykmsOptions
	}{
		{name: "no py-kms variables", env: map[string]string{"TZ": "Europe/Berlin", "HOME": "/"},
			args: nil, want: defaults(nil)},
		{
			// The environment of ghcr.io/py-kms-organization/py-kms.
			name: "py-kms image defaults",
			env: map[string]string{"IP": "::", "DUALSTACK": "1", "PORT": "1688", "EPID": "", "LCID": "1033",
				"CLIENT_COUNT": "26", "ACTIVATION_INTERVAL": "120", "RENEWAL_INTERVAL": "10080", "HWID": "RANDOM",
				"LOGLEVEL": "INFO", "LOGFILE": "STDOUT", "LOGSIZE": "", "WEBUI": "0", "TZ": "Europe/Berlin"},
			args: []string{"-P", "1688", "-C", "1033", "--hwid", "0102030405060708", "--client-count", "26",
				"-A", "120", "-R", "10080", "-e"},
			want: defaults(func(o *pykmsOptions) {
				o.LCID, o.HWID, o.ClientCount = 1033, "0102030405060708", 26
				o.ActivationInterval, o.RenewalInterval, o.LogStdout = 120, 10080, true
			}),
		},
		{
			// SystemRage's older image listens on IPv4 only.
			name: "IPv4 wildcard",
			env:  map[string]string{"IP": "0.0.0.0", "PORT": "1688"},
			args: []string{"-P", "1688", "-L", "0.0.0.0"},
			want: defaults(func(o *pykmsOptions) { o.Listen = []string{"0.0.0.0:1688"} }),
		},
		{
			name: "several addresses on another port",
			env:  map[string]string{"IP": " 192.0.2.10  fd00::10 ", "PORT": "1700"},
			args: []string{"-P", "1700", "-L", "192.0.2.10", "-L", "fd00::10"},
			want: defaults(func(o *pykmsOptions) {
				o.Port, o.Listen = "1700", []string{"192.0.2.10:1700", "[fd00::10]:1700"}
			}),
		},
		{
			name: "IPv6 wildcard without dual stack",
			env:  map[string]string{"IP": "::", "DUALSTACK": "false"},
			args: []string{"-L", "::"},
			want: defaults(func(o *pykmsOptions) { o.Listen = []string{"[::]:1688"} }),
		},
		{
			name: "port alone keeps the default addresses",
			env:  map[string]string{"PORT": "11688"},
			args: []string{"-P", "11688"},
			want: defaults(func(o *pykmsOptions) { o.Port = "11688" }),
		},
		{
			name: "fixed ePID and HWID, debug log to a file",
			env: map[string]string{"EPID": "06401-00206-471-111111-03-1033-17763.0000-2822018",
				"HWID": "0x364F463A8863D35F", "LOGLEVEL": "DEBUG", "LOGFILE": "/var/log/py-kms/server.log"},
			args: []string{"-a", "06401-00206-471-111111-03-1033-17763.0000-2822018", "--hwid", "0x364F463A8863D35F",
				"-v", "-l", "/var/log/py-kms/server.log"},
			want: defaults(func(o *pykmsOptions) {
				o.EPIDs = []config.EPIDOverride{{CSVLK: config.AllCSVLKs, EPID: "06401-00206-471-111111-03-1033-17763.0000-2822018"}}
				o.HWID, o.Verbose, o.LogFile = "364F463A8863D35F", true, "/var/log/py-kms/server.log"
			}),
		},
		{
			name: "minimal log level and no log",
			env:  map[string]string{"LOGLEVEL": "MININFO", "LOGFILE": "FILEOFF"},
			args: []string{"-l", os.DevNull},
			want: defaults(func(o *pykmsOptions) { o.LogFile = os.DevNull }),
		},
		{
			name: "file and stdout",
			env:  map[string]string{"LOGLEVEL": "warning", "LOGFILE": "FILESTDOUT"},
			args: []string{"-e"},
			want: defaults(func(o *pykmsOptions) { o.LogStdout = true }),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args, err := pykmsEnvArgsRand(envFunc(tt.env), fixedRandom())
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(args, tt.args) {
				t.Fatalf("args\n got %q\nwant %q", args, tt.args)
			}
			cfg, err := config.ParseServer(args)
			if err != nil {
				t.Fatalf("kmsd refuses %q: %v", args, err)
			}
			if got := optionsOf(cfg); !equalOptions(got, tt.want) {
				t.Errorf("options\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func equalOptions(a, b pykmsOptions) bool {
	return slices.Equal(a.Listen, b.Listen) && slices.Equal(a.EPIDs, b.EPIDs) && a.Port == b.Port &&
		a.LCID == b.LCID && a.HWID == b.HWID && a.ClientCount == b.ClientCount &&
		a.ActivationInterval == b.ActivationInterval && a.RenewalInterval == b.RenewalInterval &&
		a.Verbose == b.Verbose && a.LogStdout == b.LogStdout && a.LogFile == b.LogFile
}

func TestPykmsEnvRandomHWID(t *testing.T) {
	a, err := pykmsEnvArgs(envFunc(map[string]string{"HWID": "random"}))
	if err != nil {
		t.Fatal(err)
	}
	b, err := pykmsEnvArgs(envFunc(map[string]string{"HWID": "RANDOM"}))
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != 2 || a[0] != "--hwid" || len(a[1]) != 16 || slices.Equal(a, b) {
		t.Fatalf("HWID=RANDOM gave %q and %q; want two different random HWIDs", a, b)
	}
}

func TestPykmsEnvErrors(t *testing.T) {
	for _, tt := range []struct{ name, value string }{
		{"PORT", "http"}, {"PORT", "70000"}, {"DUALSTACK", "maybe"}, {"LCID", "99999"},
		{"HWID", "12345"}, {"CLIENT_COUNT", "0"}, {"ACTIVATION_INTERVAL", "soon"},
		{"RENEWAL_INTERVAL", "-5"}, {"LOGLEVEL", "LOUD"}, {"IP", "[::1"},
	} {
		_, err := pykmsEnvArgsRand(envFunc(map[string]string{tt.name: tt.value}), fixedRandom())
		if err == nil || !strings.Contains(err.Error(), tt.name+"=") {
			t.Errorf("%s=%q: error %v, want one naming the variable", tt.name, tt.value, err)
		}
	}
}

func TestContainerServeArgs(t *testing.T) {
	env := map[string]string{"PORT": "1700", "ACTIVATION_INTERVAL": "120", "LOGLEVEL": "DEBUG"}
	cmdline := []string{"-A", "60", "-K3"}

	// Outside the image the variables mean nothing.
	args, err := containerServeArgs(cmdline, envFunc(env))
	if err != nil || !slices.Equal(args, cmdline) {
		t.Fatalf("outside a container: %q, %v; want %q", args, err, cmdline)
	}

	env[containerEnv] = "1"
	args, err = containerServeArgs(cmdline, envFunc(env))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"-P", "1700", "-A", "120", "-v", "-A", "60", "-K3"}
	if !slices.Equal(args, want) {
		t.Fatalf("in a container: %q, want %q", args, want)
	}
	cfg, err := config.ParseServer(args)
	if err != nil {
		t.Fatal(err)
	}
	// The command line wins over the variables.
	if cfg.ActivationInterval != 60 || cfg.Port != "1700" || !cfg.Verbose || cfg.Whitelist != 3 {
		t.Errorf("got -A %d -P %s -v %v -K %d; want 60, 1700, true, 3",
			cfg.ActivationInterval, cfg.Port, cfg.Verbose, cfg.Whitelist)
	}

	// Without py-kms variables the arguments are untouched, even empty ones.
	args, err = containerServeArgs(nil, envFunc(map[string]string{containerEnv: "1"}))
	if err != nil || len(args) != 0 {
		t.Fatalf("no variables: %q, %v", args, err)
	}
	if _, err := containerServeArgs(nil, envFunc(map[string]string{containerEnv: "1", "PORT": "x"})); err == nil {
		t.Fatal("PORT=x accepted")
	}
}
