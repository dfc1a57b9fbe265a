package config

import (
	"strings"
	"testing"
)

// FuzzCommandLine feeds arbitrary argument lists (NUL-separated) to both
// command-line parsers: they must return a configuration or an error,
// never panic.
func FuzzCommandLine(f *testing.F) {
	for _, s := range []string{
		"-L\x00127.0.0.1:1688\x00-K3\x00-v",
		"-L[::1]:1688\x00-P\x001700\x00-A\x002h\x00-R\x001w",
		"-a\x00Windows=03612-00206-471-111111-03-1033-17763.0000-2822018/0102030405060708",
		"-De\x00-T0\x00-N1\x00-B0\x00-r2\x00-C\x001031\x00-H\x0014393",
		"--allow\x0010.0.0.0/8\x00--deny\x0010.9.0.0/16\x00--max-per-address=3",
		"-l\x0064\x00-6\x00-n\x003\x00-T\x00-c\x006f1c2b8e-4d3a-4c5b-9a7e-2e8d1f0c3b4a\x00127.0.0.1:1688",
		"-K\x00255.255\x00-w\x00Prüfstand-Ωmega\x00.example.test\x00-P",
		"--timeout=-1s\x00--dns-server\x00[::1]",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		args := strings.Split(s, "\x00")
		if c, err := ParseServer(args); err == nil {
			c.ListenAddrs()
		}
		ParseClient(args)
		LoadServer(args, func(string) ([]byte, error) { return []byte(s), nil }, []string{"Windows", "Office2010"})
	})
}
