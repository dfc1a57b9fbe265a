//go:build unix

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"kmsd/internal/syncbuf"
	"kmsd/internal/testdns"
)

var kmsdBinary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kmsd-cmd-test")
	if err != nil {
		panic(err)
	}
	kmsdBinary = filepath.Join(dir, "kmsd")
	out, err := exec.Command("go", "build", "-o", kmsdBinary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build failed: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// host starts `kmsdBinary args...` and waits until port accepts connections.
func host(t *testing.T, name string, port int, args ...string) (*exec.Cmd, *syncbuf.Buffer) {
	t.Helper()
	path := kmsdBinary
	if name != "kmsd" {
		path = filepath.Join(t.TempDir(), name)
		if err := os.Symlink(kmsdBinary, path); err != nil {
			t.Fatal(err)
		}
	}
	// Tests never touch the machine's default database.
	if !slices.Contains(args, "--db") {
		args = append(args, "--db", "memory")
	}
	var logbuf syncbuf.Buffer
	cmd := exec.Command(path, args...)
	cmd.Stderr, cmd.Stdout = &logbuf, &logbuf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	for i := 0; i < 100; i++ {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			c.Close()
			return cmd, &logbuf
		}
		time.Sleep(30 * time.Millisecond)
	}
	t.Fatalf("host did not start: %s", logbuf.String())
	return nil, nil
}

func runClient(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(kmsdBinary, append([]string{"client"}, args...)...)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

func TestClientExitCodes(t *testing.T) {
	port := freePort(t)
	host(t, "kmsd", port, "serve", "-L", fmt.Sprintf("127.0.0.1:%d", port), "-K", "3", "-M1", "-E1")
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cases := []struct {
		args []string
		code int
		text string
	}{
		{[]string{addr, "-l", "64", "-n", "1"}, 7, "->"},               // count 1 of 25
		{[]string{addr, "-l", "238"}, 0, "5 of 5"},                     // charges to 5
		{[]string{addr, "-l", "45"}, 4, "0xC004F042"},                  // retail refused
		{[]string{addr, "-l", "64", "-r", "1001"}, 4, "0x8007000D"},    // N policy
		{[]string{"127.0.0.1:1", "-l", "64"}, 3, "cannot connect"},     // nothing listens
		{[]string{addr, "-l", "999"}, 2, "Invalid client application"}, // unknown product
		{[]string{addr, "-c", "not-a-guid"}, 2, "GUID"},
		{[]string{addr, "--bogus"}, 2, "unknown option --bogus"},
	}
	for _, tc := range cases {
		out, code := runClient(t, tc.args...)
		if code != tc.code || !strings.Contains(out, tc.text) {
			t.Errorf("kmsd client %v: exit %d (want %d), output:\n%s", tc.args, code, tc.code, out)
		}
	}
}

func TestClientJSON(t *testing.T) {
	port := freePort(t)
	host(t, "kmsd", port, "-L", fmt.Sprintf("127.0.0.1:%d", port), "-r0")
	out, code := runClient(t, fmt.Sprintf("127.0.0.1:%d", port), "-l", "133", "--json", "-n", "2")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 JSON lines, got:\n%s", out)
	}
	for _, l := range lines {
		var v struct {
			Result   string `json:"result"`
			Verified bool   `json:"verified"`
			Response struct {
				EPID  string `json:"epid"`
				Count int    `json:"active_clients"`
			} `json:"response_fields"`
		}
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatal(err)
		}
		if v.Result != "activated" || !v.Verified || v.Response.Count != 10 ||
			v.Response.EPID != "05426-04919-009-767455-03-1033-9200.0000-0172025" {
			t.Errorf("unexpected result %s", l)
		}
	}
}

func TestServeSignalsAndPidFile(t *testing.T) {
	port := freePort(t)
	pid := filepath.Join(t.TempDir(), "kmsd.pid")
	logf := filepath.Join(t.TempDir(), "kmsd.log")
	cmd, _ := host(t, "vlmcsd", port, "-D", "-L", fmt.Sprintf("127.0.0.1:%d", port), "-p", pid, "-l", logf)
	b, err := os.ReadFile(pid)
	if err != nil || strings.TrimSpace(string(b)) != fmt.Sprint(cmd.Process.Pid) {
		t.Fatalf("pid file %q, %v", b, err)
	}
	// logrotate: move the file away, SIGHUP, and the next line lands in a new file.
	os.Rename(logf, logf+".1")
	cmd.Process.Signal(syscall.SIGHUP)
	time.Sleep(300 * time.Millisecond)
	if out, code := runClient(t, fmt.Sprintf("127.0.0.1:%d", port), "-l", "64"); code != 0 {
		t.Fatalf("after SIGHUP: %d %s", code, out)
	}
	cur, _ := os.ReadFile(logf)
	if !strings.Contains(string(cur), "configuration reloaded") || !strings.Contains(string(cur), "msg=activation") {
		t.Errorf("new log file lacks the reload and activation lines:\n%s", cur)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no exit after SIGTERM")
	}
	if _, err := os.Stat(pid); !os.IsNotExist(err) {
		t.Errorf("pid file left behind")
	}
}

func TestBadServeOptions(t *testing.T) {
	cases := []struct {
		name string
		args []string
		code int
		text string
	}{
		{"kmsd", []string{"serve", "-K", "7"}, 1, "option -K"},
		{"kmsd", []string{"serve", "-A", "59s"}, 1, "at least 1 minute"},
		{"kmsd", []string{"serve", "--nope"}, 1, "unknown option --nope"},
		{"kmsd", []string{"serve", "-a", "Nope=123"}, 1, "no CSVLK"},
		{"vlmcsd", []string{"-t", "0"}, 22, "option -t"},
	}
	for _, tc := range cases {
		path := kmsdBinary
		if tc.name != "kmsd" {
			path = filepath.Join(t.TempDir(), tc.name)
			os.Symlink(kmsdBinary, path)
		}
		out, err := exec.Command(path, tc.args...).CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		if code != tc.code || !strings.Contains(string(out), tc.text) {
			t.Errorf("%s %v: exit %d (want %d):\n%s", tc.name, tc.args, code, tc.code, out)
		}
	}
}

func TestProductsCommand(t *testing.T) {
	out, err := exec.Command(kmsdBinary, "products", "--json").Output()
	if err != nil {
		t.Fatal(err)
	}
	var rows []map[string]any
	if err := json.Unmarshal(out, &rows); err != nil || len(rows) != 252 {
		t.Fatalf("%d rows, %v", len(rows), err)
	}
	out, _ = exec.Command(kmsdBinary, "products", "Office LTSC Professional Plus 2024").Output()
	if !strings.Contains(string(out), "238") || !strings.Contains(string(out), "XJ2XN-FW8RK-P4HMP-DKDBV-GCVGB") {
		t.Errorf("filter output:\n%s", out)
	}
	out, _ = exec.Command(kmsdBinary, "client", "-x").Output()
	if !strings.HasPrefix(string(out), "You may use these product names or numbers:") {
		t.Errorf("client -x output starts %q", string(out)[:40])
	}
}

func TestSocketActivation(t *testing.T) {
	sa, err := exec.LookPath("systemd-socket-activate")
	if err != nil {
		t.Skip("systemd-socket-activate not installed")
	}
	port := freePort(t)
	cmd := exec.Command(sa, "-l", fmt.Sprintf("127.0.0.1:%d", port), kmsdBinary, "serve", "-r0", "--db", "memory")
	var logbuf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logbuf, &logbuf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	time.Sleep(300 * time.Millisecond)
	out, code := runClient(t, fmt.Sprintf("127.0.0.1:%d", port), "-l", "64")
	if code != 0 || !strings.Contains(out, "05426-04919-009-767455") {
		t.Fatalf("exit %d: %s\nhost log:\n%s", code, out, logbuf.String())
	}
}

// TestSRVDiscoveryFailover: the client finds hosts through SRV records of a
// real DNS server; the preferred one is down, so it moves to the next.
func TestSRVDiscoveryFailover(t *testing.T) {
	port := freePort(t)
	dead := freePort(t)
	host(t, "kmsd", port, "-L", fmt.Sprintf("127.0.0.1:%d", port), "-r0")
	dns := testdns.Start(t,
		fmt.Sprintf("_vlmcs._tcp.kms.test,127.0.0.1,%d,0,100", dead),
		fmt.Sprintf("_vlmcs._tcp.kms.test,127.0.0.1,%d,10,100", port),
	)
	out, code := runClient(t, ".kms.test", "--dns-server", dns, "-l", "64")
	if code != 0 || !strings.Contains(out, "trying the next host") || !strings.Contains(out, "05426-04919-009-767455") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	// -P keeps the DNS order; dnsmasq answers in its configured order here,
	// so the dead host is still tried first and the live one answers.
	out, code = runClient(t, ".kms.test", "--dns-server", dns, "-l", "64", "-P")
	if code != 0 {
		t.Fatalf("-P: exit %d:\n%s", code, out)
	}
	out, code = runClient(t, ".nothing.test", "--dns-server", dns)
	if code != 3 || !strings.Contains(out, "no KMS servers found") {
		t.Fatalf("no records: exit %d:\n%s", code, out)
	}
}

func TestIniAndProductFiles(t *testing.T) {
	dir := t.TempDir()
	kmd := filepath.Join(dir, "vlmcsd.kmd")
	if out, err := exec.Command(kmsdBinary, "products", "--export", "kmd", "-o", kmd).CombinedOutput(); err != nil {
		t.Fatalf("export: %v %s", err, out)
	}
	for _, format := range []string{"xml", "json"} {
		f := filepath.Join(dir, "table."+format)
		if out, err := exec.Command(kmsdBinary, "products", "--export", format, "-o", f).CombinedOutput(); err != nil {
			t.Fatalf("export %s: %v %s", format, err, out)
		}
		back, err := exec.Command(kmsdBinary, "products", "-j", f, "--export", "kmd").Output()
		want, _ := os.ReadFile(kmd)
		if err != nil || !bytes.Equal(back, want) {
			t.Errorf("%s does not round-trip to the same kmd (%v)", format, err)
		}
	}
	port := freePort(t)
	ini := filepath.Join(dir, "vlmcsd.ini")
	os.WriteFile(ini, []byte(fmt.Sprintf("# test\nListen = 127.0.0.1:%d\nWindows = 03612-00206-471-111111-03-1033-17763.0000-2822018 / 01 02 03 04 05 06 07 08\nNoSuchKeyword = 1\nRenewalInterval = 3d\n", port)), 0o644)
	_, logs := host(t, "vlmcsd", port, "-D", "-i", ini, "-j", kmd, "-e", "-v")
	out, code := runClient(t, fmt.Sprintf("127.0.0.1:%d", port), "-l", "64", "-v")
	if code != 0 || !strings.Contains(out, "03612-00206-471-111111-03-1033-17763.0000-2822018") ||
		!strings.Contains(out, "0102030405060708") || !strings.Contains(out, "Renewal interval policy         : 4320") {
		t.Errorf("answer does not follow the ini file (exit %d):\n%s", code, out)
	}
	if !strings.Contains(logs.String(), "vlmcsd.ini:4") || !strings.Contains(logs.String(), "unknown keyword") {
		t.Errorf("no warning naming file:line for the bad line:\n%s", logs.String())
	}
	// A corrupt product file is refused with a message naming it.
	bad := filepath.Join(dir, "bad.kmd")
	os.WriteFile(bad, []byte("KMD\x00\x00\x00\x02\x00short"), 0o644)
	res, err := exec.Command(kmsdBinary, "serve", "-j", bad).CombinedOutput()
	if err == nil || !strings.Contains(string(res), "bad.kmd") {
		t.Errorf("corrupt kmd accepted or unnamed: %v %s", err, res)
	}
	// A missing ini file named with -i is an error.
	res, err = exec.Command(kmsdBinary, "serve", "-i", filepath.Join(dir, "missing.ini")).CombinedOutput()
	if err == nil || !strings.Contains(string(res), "missing.ini") {
		t.Errorf("missing ini accepted: %v %s", err, res)
	}
}

// TestVlmcsdDetaches: run as vlmcsd without -D, the command returns once
// the detached host listens; the pid file names the detached process.
func TestVlmcsdDetaches(t *testing.T) {
	port := freePort(t)
	dir := t.TempDir()
	link := filepath.Join(dir, "vlmcsd")
	os.Symlink(kmsdBinary, link)
	pid := filepath.Join(dir, "vlmcsd.pid")
	out, err := exec.Command(link, "-L", fmt.Sprintf("127.0.0.1:%d", port), "-p", pid).CombinedOutput()
	if err != nil {
		t.Fatalf("vlmcsd: %v %s", err, out)
	}
	b, err := os.ReadFile(pid)
	if err != nil {
		t.Fatal(err)
	}
	var p int
	fmt.Sscan(string(b), &p)
	defer syscall.Kill(p, syscall.SIGTERM)
	if out, code := runClient(t, fmt.Sprintf("127.0.0.1:%d", port), "-l", "64"); code != 0 {
		t.Fatalf("detached host did not answer: %d %s", code, out)
	}
	// A start-up failure of the detached process is reported by the parent.
	res, err := exec.Command(link, "-L", fmt.Sprintf("127.0.0.1:%d", port)).CombinedOutput()
	if err == nil || !strings.Contains(string(res), "cannot listen") {
		t.Errorf("second host on the same port: %v %s", err, res)
	}
}

// TestPrivilegeDrop runs as root only: the host binds, then runs as nobody.
func TestPrivilegeDrop(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root")
	}
	port := freePort(t)
	cmd, _ := host(t, "kmsd", port, "-L", fmt.Sprintf("127.0.0.1:%d", port), "-u", "nobody")
	// The port accepts connections as soon as it is bound; the drop
	// follows right after, so poll (bounded) for the new user id.
	uid := ""
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
		if err != nil {
			t.Skip("no /proc")
		}
		for _, l := range strings.Split(string(status), "\n") {
			if strings.HasPrefix(l, "Uid:") {
				uid = l
			}
		}
		if f := strings.Fields(uid); len(f) > 2 && f[1] != "0" && f[2] != "0" {
			break
		}
	}
	if f := strings.Fields(uid); len(f) < 3 || f[1] == "0" || f[2] == "0" {
		t.Errorf("still root: %s", uid)
	}
	if out, code := runClient(t, fmt.Sprintf("127.0.0.1:%d", port), "-l", "64"); code != 0 {
		t.Errorf("after dropping privileges: %d %s", code, out)
	}
}

// TestCPUProfile: --cpu-profile writes a gzip-compressed pprof profile of
// the run when the host stops; an unwritable path fails at start.
func TestCPUProfile(t *testing.T) {
	port := freePort(t)
	prof := filepath.Join(t.TempDir(), "cpu.pprof")
	cmd, logs := host(t, "kmsd", port, "serve", "-L", fmt.Sprintf("127.0.0.1:%d", port), "--cpu-profile", prof)
	if out, code := runClient(t, fmt.Sprintf("127.0.0.1:%d", port), "-l", "64", "-n", "20"); code != 0 {
		t.Fatalf("client: %d %s", code, out)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v\n%s", err, logs.String())
	}
	b, err := os.ReadFile(prof)
	if err != nil || len(b) < 100 || b[0] != 0x1f || b[1] != 0x8b {
		t.Fatalf("profile: %d bytes, %v", len(b), err)
	}
	if !strings.Contains(logs.String(), "cpu profile written") {
		t.Errorf("no log line for the profile:\n%s", logs.String())
	}
	out, err := exec.Command(kmsdBinary, "serve", "-L", fmt.Sprintf("127.0.0.1:%d", freePort(t)), "--db", "none",
		"--cpu-profile", filepath.Join(t.TempDir(), "missing", "cpu.pprof")).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "cpu profile") {
		t.Errorf("unwritable profile path: err %v, output %s", err, out)
	}
}
