// Package testdns starts a real DNS server (dnsmasq) on loopback for
// tests. It is imported by tests only.
package testdns

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"kmsd/internal/client"
)

// Start starts dnsmasq on a loopback port with the given SRV records
// (dnsmasq's --srv-host syntax) and returns its address. It skips when
// dnsmasq is missing, unless KMSD_REQUIRE_DNS is set (CI installs it).
func Start(t testing.TB, records ...string) string {
	t.Helper()
	bin, err := exec.LookPath("dnsmasq")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/dnsmasq"); serr == nil {
			bin = "/usr/sbin/dnsmasq"
		} else if os.Getenv("KMSD_REQUIRE_DNS") != "" {
			t.Fatal("dnsmasq is required (KMSD_REQUIRE_DNS is set) but not installed")
		} else {
			t.Skip("dnsmasq not installed")
		}
	}
	for attempt := 0; attempt < 5; attempt++ {
		port := freeUDPPort(t)
		args := []string{"--no-daemon", "--port", fmt.Sprint(port), "--listen-address=127.0.0.1",
			"--bind-interfaces", "--no-resolv", "--no-hosts", "--conf-file=/dev/null", "--user=" + currentUser(),
			"--pid-file=", "--log-facility=-"}
		for _, r := range records {
			args = append(args, "--srv-host="+r)
		}
		cmd := exec.Command(bin, args...)
		var out strings.Builder
		cmd.Stderr = &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		for i := 0; i < 50; i++ {
			look := client.SRVLookup{Servers: []string{addr}, Timeout: 200 * time.Millisecond}
			if _, _, err := look.Lookup(context.Background(), "ready.invalid"); err != nil && !strings.Contains(err.Error(), "timeout") && !strings.Contains(err.Error(), "refused") {
				t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
				return addr
			}
			if cmd.ProcessState != nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		cmd.Process.Kill()
		cmd.Wait()
		t.Logf("dnsmasq on port %d did not start: %s", port, out.String())
	}
	t.Fatal("could not start dnsmasq")
	return ""
}

func currentUser() string {
	if os.Getuid() == 0 {
		return "root"
	}
	return os.Getenv("USER")
}

// freeUDPPort asks the kernel for a UDP port that is free on 127.0.0.1 (and
// checks TCP too), instead of guessing one that may collide with outgoing
// connections.
func freeUDPPort(t testing.TB) int {
	for i := 0; i < 20; i++ {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		pc.Close()
		if err == nil {
			l.Close()
			return port
		}
	}
	t.Fatal("no free port for dnsmasq")
	return 0
}
