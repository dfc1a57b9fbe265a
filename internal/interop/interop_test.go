// Package interop holds a live interoperability test of kmsd against the
// vlmcsd and py-kms reference programs. It needs those programs installed
// and is skipped unless the environment points at them:
//
//	VLMCS         vlmcs client executable   (suites 1, 2, 3)
//	VLMCSD        vlmcsd host executable    (suites 3, 4)
//	PYKMS_CLIENT  py-kms client script     (suite 5a)
//	PYKMS_SERVER  py-kms server script     (suite 5b)
//	PYKMS_PYTHON  python interpreter for py-kms (default /usr/bin/python3)
//
// Every process listens on and connects to 127.0.0.1 only, on free ports
// picked at run time. Example:
//
//	VLMCS=... VLMCSD=... PYKMS_CLIENT=... PYKMS_SERVER=... \
//	  go test -run TestInterop -v -count=1 -timeout 30m ./internal/interop/
package interop

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"kmsd/internal/syncbuf"
)

const (
	runTimeout   = 10 * time.Second // one vlmcs / kmsd client run
	pyTimeout    = 20 * time.Second // one py-kms client run
	readyTimeout = 20 * time.Second // a host must accept connections within this
	parallelRuns = 8                // concurrent client runs in the big suites
)

// ---------------------------------------------------------------------------
// environment

type env struct {
	vlmcs, vlmcsd      string
	pyClient, pyServer string
	python             string
	kmsd               string // built binary
}

// executableEnv returns the value of name if it names an executable file.
func executableEnv(name string) string {
	p := os.Getenv(name)
	if p == "" {
		return ""
	}
	st, err := os.Stat(p)
	if err != nil || !st.Mode().IsRegular() || st.Mode().Perm()&0o111 == 0 {
		return ""
	}
	return p
}

// scriptEnv returns the value of name if it names a regular file (py-kms
// scripts are run through the interpreter, they need not be executable).
func scriptEnv(name string) string {
	p := os.Getenv(name)
	if p == "" {
		return ""
	}
	st, err := os.Stat(p)
	if err != nil || !st.Mode().IsRegular() {
		return ""
	}
	return p
}

// ---------------------------------------------------------------------------
// pass counting

type tally struct {
	mu    sync.Mutex
	order []string
	pass  map[string]int
	total map[string]int
	note  map[string]string
}

func newTally() *tally {
	return &tally{pass: map[string]int{}, total: map[string]int{}, note: map[string]string{}}
}

func (c *tally) suite(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.total[name]; !ok {
		c.order = append(c.order, name)
		c.total[name] = 0
	}
}

func (c *tally) add(name string, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.total[name]++
	if ok {
		c.pass[name]++
	}
}

func (c *tally) setNote(name, note string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.note[name] = note
}

// count registers t's outcome in suite name when t finishes.
func (c *tally) count(t *testing.T, name string) {
	t.Cleanup(func() { c.add(name, !t.Failed()) })
}

func (c *tally) table() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "\n%-52s %s\n", "suite", "passed/total")
	for _, n := range c.order {
		res := fmt.Sprintf("%d/%d", c.pass[n], c.total[n])
		if c.note[n] != "" {
			res += "  (" + c.note[n] + ")"
		}
		fmt.Fprintf(&b, "%-52s %s\n", n+":", res)
	}
	return b.String()
}

// ---------------------------------------------------------------------------
// processes

type server struct {
	name string
	addr string // 127.0.0.1:port
	argv []string
	out  *syncbuf.Buffer
}

// freePort asks the kernel for an unused loopback port.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startServer starts argv(port) on a free port and waits until it accepts
// connections. The process is stopped when t finishes: SIGTERM, then
// SIGKILL after 3 s. (vlmcsd -M1 holds a 768 MiB System V shared memory
// segment that only a clean exit removes; SIGKILL leaked one per run.)
func startServer(t *testing.T, name string, argv func(port int) []string) *server {
	t.Helper()
	var lastErr string
	for attempt := 0; attempt < 5; attempt++ {
		port := freePort(t)
		args := argv(port)
		out := syncbuf.New(4 << 20) // bounded
		ctx, cancel := context.WithCancel(context.Background())
		cmd := exec.CommandContext(ctx, args[0], args[1:]...)
		cmd.Dir = t.TempDir()
		cmd.Stdout = out
		cmd.Stderr = out
		cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
		cmd.WaitDelay = 3 * time.Second
		if err := cmd.Start(); err != nil {
			cancel()
			t.Fatalf("start %s: %v", name, err)
		}
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		stop := func() {
			cancel()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
			}
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		t0 := time.Now()
		if waitReady(addr, done) {
			t.Logf("%s ready on %s after %s", name, addr, time.Since(t0).Round(time.Millisecond))
			t.Cleanup(func() {
				t1 := time.Now()
				stop()
				if d := time.Since(t1); d > time.Second {
					t.Logf("%s took %s to stop", name, d.Round(time.Millisecond))
				}
			})
			return &server{name: name, addr: addr, argv: args, out: out}
		}
		stop()
		t.Logf("%s attempt %d on %s not ready after %s", name, attempt+1, addr, time.Since(t0).Round(time.Millisecond))
		lastErr = fmt.Sprintf("%s did not become ready on %s; output:\n%s", strings.Join(args, " "), addr, head(out.String(), 20))
	}
	t.Fatalf("start %s: %s", name, lastErr)
	return nil
}

// waitReady polls addr until it accepts a connection; false if the process
// ended or readyTimeout passed. After a successful connect it checks that
// the process is still alive, so a port taken by someone else is noticed.
func waitReady(addr string, done <-chan struct{}) bool {
	deadline := time.Now().Add(readyTimeout)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return false
		default:
		}
		c, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
		if err == nil {
			c.Close()
			select {
			case <-done:
				return false
			case <-time.After(100 * time.Millisecond):
				return true
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

type result struct {
	argv     []string
	out      string
	rc       int
	timedOut bool
	err      error // start failure and similar
}

func (r result) cmdline() string {
	q := make([]string, len(r.argv))
	for i, a := range r.argv {
		if a == "" || strings.ContainsAny(a, " \t'\"") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		q[i] = a
	}
	return strings.Join(q, " ")
}

// run executes argv with a timeout and returns its combined output.
func run(timeout time.Duration, dir string, argv ...string) result {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.WaitDelay = 2 * time.Second
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	r := result{argv: argv, out: out.String()}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		r.timedOut = true
		r.rc = -1
	case errors.As(err, &ee):
		r.rc = ee.ExitCode()
	case err != nil:
		r.rc = -1
		r.err = err
	}
	return r
}

// runAll runs every job with at most parallelRuns at a time.
func runAll(timeout time.Duration, dir string, jobs [][]string) []result {
	res := make([]result, len(jobs))
	sem := make(chan struct{}, parallelRuns)
	var wg sync.WaitGroup
	for i, argv := range jobs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			res[i] = run(timeout, dir, argv...)
		}()
	}
	wg.Wait()
	return res
}

func head(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append(lines[:n], fmt.Sprintf("... (%d more lines)", len(lines)-n))
	}
	return strings.Join(lines, "\n")
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// report formats a failed run for the test log.
func report(r result, problems []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "command: %s\n", r.cmdline())
	fmt.Fprintf(&b, "exit: %d", r.rc)
	if r.timedOut {
		b.WriteString(" (killed after timeout)")
	}
	if r.err != nil {
		fmt.Fprintf(&b, " (%v)", r.err)
	}
	fmt.Fprintf(&b, "\nproblems: %s\noutput:\n%s", strings.Join(problems, "; "), relevant(r.out))
	return b.String()
}

// relevant returns the start of a client's output from its first connection
// on (vlmcs -v prints the request parameters first), without BEL characters.
func relevant(out string) string {
	out = strings.ReplaceAll(out, "\a", "")
	if i := strings.Index(out, "Connecting to"); i > 0 {
		out = out[i:]
	}
	return head(out, 30)
}

// ---------------------------------------------------------------------------
// vlmcs output

var (
	ansiRe  = regexp.MustCompile(`\x1b\[[0-9;]*[A-Za-z]`)
	epidRe  = regexp.MustCompile(`^\d{5}-\d{5}-\d{3}-\d{6}-\d{2}-\d{4,5}-\d{4,5}\.\d{4}-\d{7}$`)
	arrowRe = regexp.MustCompile(`->\s+(\S+)(?:\s+\(([0-9A-Fa-f]{16})\))?`)
	hrRe    = regexp.MustCompile(`Error 0x([0-9A-Fa-f]{8}) while sending request`)
	fieldRe = regexp.MustCompile(`^([A-Za-z][A-Za-z ()/]*?)\s*:\s*(.*)$`)
)

var badWords = []string{"error", "warning", "fatal", "timed out", "refused"}

// badLines returns the output lines that mention an error or warning and do
// not contain one of the allowed substrings.
func badLines(out string, allow []string, skip *regexp.Regexp) []string {
	var bad []string
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(strings.ReplaceAll(l, "\a", ""))
		low := strings.ToLower(l)
		hit := false
		for _, w := range badWords {
			if strings.Contains(low, w) {
				hit = true
				break
			}
		}
		if !hit || (skip != nil && skip.MatchString(l)) {
			continue
		}
		ok := false
		for _, a := range allow {
			if strings.Contains(l, a) {
				ok = true
				break
			}
		}
		if !ok {
			bad = append(bad, l)
		}
	}
	return bad
}

// answer is one request's outcome as vlmcs prints it.
type answer struct {
	ok                  bool
	hr                  string // HRESULT of a refusal
	epid, hwid          string
	count, renew, activ int
}

func (a answer) String() string {
	if !a.ok {
		if a.hr != "" {
			return "error 0x" + a.hr
		}
		return "no answer"
	}
	s := a.epid
	if a.hwid != "" {
		s += " (" + a.hwid + ")"
	}
	if a.count != 0 || a.renew != 0 || a.activ != 0 {
		s += fmt.Sprintf(" count=%d renew=%d act=%d", a.count, a.renew, a.activ)
	}
	return s
}

// parseAnswers reads vlmcs output (plain or -v) into one answer per
// "Sending activation request" line.
func parseAnswers(out string) []answer {
	var as []answer
	last := func() *answer {
		if len(as) == 0 {
			as = append(as, answer{})
		}
		return &as[len(as)-1]
	}
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(strings.ReplaceAll(l, "\a", ""))
		if strings.Contains(l, "Sending activation request") {
			as = append(as, answer{})
		}
		if m := arrowRe.FindStringSubmatch(l); m != nil {
			a := last()
			a.ok, a.epid, a.hwid = true, m[1], strings.ToUpper(m[2])
		}
		if m := hrRe.FindStringSubmatch(l); m != nil {
			last().hr = strings.ToUpper(m[1])
		}
		m := fieldRe.FindStringSubmatch(l)
		if m == nil || len(as) == 0 {
			continue
		}
		a := last()
		n, _ := strconv.Atoi(strings.TrimSpace(m[2]))
		switch m[1] {
		case "KMS host extended PID":
			a.ok, a.epid = true, m[2]
		case "KMS host Hardware ID":
			a.hwid = strings.ToUpper(m[2])
		case "KMS host current active clients":
			a.count = n
		case "Renewal interval policy":
			a.renew = n
		case "Activation interval policy":
			a.activ = n
		}
	}
	return as
}

type vlmcsCheck struct {
	allow []string // accepted warning lines (substrings)
	want  int      // exact number of requests, 0 = at least one
}

// checkVLMCS applies the pass rule for a vlmcs run that must activate.
func checkVLMCS(r result, c vlmcsCheck) []string {
	var p []string
	if r.timedOut {
		p = append(p, "timed out")
	}
	if r.err != nil {
		p = append(p, r.err.Error())
	}
	if r.rc != 0 {
		p = append(p, fmt.Sprintf("exit status %d", r.rc))
	}
	if bad := badLines(r.out, c.allow, nil); len(bad) > 0 {
		p = append(p, "error/warning lines: "+strings.Join(bad, " | "))
	}
	verbose := false
	for _, a := range r.argv {
		if a == "-v" {
			verbose = true
		}
	}
	sends := strings.Count(r.out, "Sending activation request")
	if sends == 0 {
		p = append(p, "no \"Sending activation request\" line")
	}
	if c.want > 0 && sends != c.want {
		p = append(p, fmt.Sprintf("%d requests, want %d", sends, c.want))
	}
	if verbose {
		if n := strings.Count(r.out, "Response from KMS server"); n != sends {
			p = append(p, fmt.Sprintf("%d response blocks for %d requests", n, sends))
		}
	} else {
		arrows := arrowRe.FindAllStringSubmatch(r.out, -1)
		if len(arrows) != sends {
			p = append(p, fmt.Sprintf("%d \"->\" answers for %d requests", len(arrows), sends))
		}
	}
	for i, a := range parseAnswers(r.out) {
		if !a.ok {
			p = append(p, fmt.Sprintf("request %d: no answer", i+1))
		} else if !epidRe.MatchString(a.epid) {
			p = append(p, fmt.Sprintf("request %d: malformed ePID %q", i+1, a.epid))
		}
	}
	return p
}

// ---------------------------------------------------------------------------
// the test

var versions = []struct{ name, flag string }{
	{"default", ""}, {"v4", "-4"}, {"v5", "-5"}, {"v6", "-6"},
}

func withVersion(args []string, flag string) []string {
	out := append([]string(nil), args...)
	if flag != "" {
		out = append(out, flag)
	}
	return out
}

func TestInterop(t *testing.T) {
	e := env{
		vlmcs:    executableEnv("VLMCS"),
		vlmcsd:   executableEnv("VLMCSD"),
		pyClient: scriptEnv("PYKMS_CLIENT"),
		pyServer: scriptEnv("PYKMS_SERVER"),
		python:   os.Getenv("PYKMS_PYTHON"),
	}
	if e.python == "" {
		e.python = "/usr/bin/python3"
	}
	if e.pyClient != "" || e.pyServer != "" {
		if _, err := exec.LookPath(e.python); err != nil {
			t.Logf("py-kms suites skipped: no interpreter %s", e.python)
			e.pyClient, e.pyServer = "", ""
		}
	}
	if e.vlmcs == "" && e.vlmcsd == "" && e.pyClient == "" && e.pyServer == "" {
		t.Skip("set VLMCS, VLMCSD, PYKMS_CLIENT and/or PYKMS_SERVER to run the live interop test")
	}

	start := time.Now()
	e.kmsd = filepath.Join(t.TempDir(), "kmsd")
	if r := run(5*time.Minute, "", "go", "build", "-o", e.kmsd, "kmsd/cmd/kmsd"); r.rc != 0 || r.err != nil || r.timedOut {
		t.Fatalf("go build failed:\n%s", report(r, nil))
	}

	c := newTally()
	t.Run("1_vlmcs_to_kmsd_products", func(t *testing.T) { suiteProducts(t, e, c) })
	t.Run("2_vlmcs_to_kmsd_options", func(t *testing.T) { suiteOptions(t, e, c) })
	t.Run("3_vlmcs_kmsd_vs_vlmcsd_host_options", func(t *testing.T) { suiteHostOptions(t, e, c) })
	t.Run("4_kmsd_client_to_vlmcsd", func(t *testing.T) { suiteClientToVlmcsd(t, e, c) })
	t.Run("5a_py-kms_client_to_kmsd", func(t *testing.T) { suitePyClient(t, e, c) })
	t.Run("5b_kmsd_client_to_py-kms_server", func(t *testing.T) { suitePyServer(t, e, c) })
	t.Logf("summary (wall time %s):%s", time.Since(start).Round(time.Second), c.table())
}

// kmsdServe starts kmsd with its records in memory: a host of the tests
// must neither read nor write the machine's default database (whose stored
// clients would also count with -M1).
func kmsdServe(e env, opts ...string) func(int) []string {
	return func(port int) []string {
		return append([]string{e.kmsd, "serve", "--db", "memory", "-L", fmt.Sprintf("127.0.0.1:%d", port)}, opts...)
	}
}

func vlmcsdServe(e env, opts ...string) func(int) []string {
	return func(port int) []string {
		return append([]string{e.vlmcsd, "-D", "-e", "-L", fmt.Sprintf("127.0.0.1:%d", port)}, opts...)
	}
}

// productNumbers returns the product numbers vlmcs -x lists.
func productNumbers(t *testing.T, argv ...string) []int {
	t.Helper()
	r := run(runTimeout, "", append(argv, "-x")...)
	re := regexp.MustCompile(`(?m)^\s*(\d+) = \S`)
	var ns []int
	for _, m := range re.FindAllStringSubmatch(r.out, -1) {
		n, _ := strconv.Atoi(m[1])
		ns = append(ns, n)
	}
	if len(ns) == 0 {
		t.Fatalf("no products in %s output:\n%s", r.cmdline(), head(r.out, 10))
	}
	return ns
}

// suite 1: every product with its default protocol and with -4, -5, -6.
func suiteProducts(t *testing.T, e env, c *tally) {
	if e.vlmcs == "" {
		t.Skip("VLMCS not set")
	}
	const name = "1 vlmcs -> kmsd, products x versions"
	c.suite(name)
	srv := startServer(t, "kmsd", kmsdServe(e))
	products := productNumbers(t, e.vlmcs)
	t.Logf("vlmcs -x lists %d products (%d..%d)", len(products), products[0], products[len(products)-1])
	var jobs [][]string
	var names []string
	for _, p := range products {
		for _, v := range versions {
			jobs = append(jobs, withVersion([]string{e.vlmcs, srv.addr, "-l", strconv.Itoa(p)}, v.flag))
			names = append(names, fmt.Sprintf("p%03d/%s", p, v.name))
		}
	}
	res := runAll(runTimeout, t.TempDir(), jobs)
	for i, r := range res {
		t.Run(names[i], func(t *testing.T) {
			c.count(t, name)
			if p := checkVLMCS(r, vlmcsCheck{}); len(p) > 0 {
				t.Errorf("FAIL\n%s", report(r, p))
			}
		})
	}
}

// suite 2: vlmcs options on three products.
func suiteOptions(t *testing.T, e env, c *tally) {
	if e.vlmcs == "" {
		t.Skip("VLMCS not set")
	}
	const name = "2 vlmcs -> kmsd, client option matrix"
	c.suite(name)
	srv := startServer(t, "kmsd", kmsdServe(e))

	name63 := "ws-" + strings.Repeat("abcdefghij", 6) // 63 characters
	name80 := "ws-" + strings.Repeat("klmnopqrst", 7) + "-overlong"
	const cmid = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
	const prev = "6ba7b810-9dad-11d1-80b4-00c04fd430c8"
	truncWarn := []string{"Truncating workstation name to 63 characters"}
	type opt struct {
		name  string
		args  []string
		check vlmcsCheck
	}
	opts := []opt{
		{"N0", []string{"-N0"}, vlmcsCheck{}},
		{"N1", []string{"-N1"}, vlmcsCheck{}},
		{"B0", []string{"-B0"}, vlmcsCheck{}},
		{"B1", []string{"-B1"}, vlmcsCheck{}},
		{"p", []string{"-p"}, vlmcsCheck{}},
		{"T_n3", []string{"-T", "-n", "3"}, vlmcsCheck{want: 3}},
		{"m", []string{"-m"}, vlmcsCheck{}},
	}
	for s := 0; s <= 6; s++ {
		opts = append(opts, opt{fmt.Sprintf("t%d", s), []string{"-t", strconv.Itoa(s)}, vlmcsCheck{}})
	}
	opts = append(opts,
		opt{"g1", []string{"-g", "1"}, vlmcsCheck{}},
		opt{"g43200", []string{"-g", "43200"}, vlmcsCheck{}},
		opt{"w63", []string{"-w", name63}, vlmcsCheck{}},
		opt{"w_over63", []string{"-w", name80}, vlmcsCheck{allow: truncWarn}},
		opt{"w_nonascii", []string{"-w", "Prüfstand-Ωmega.例え.test"}, vlmcsCheck{}},
		opt{"d", []string{"-d"}, vlmcsCheck{}},
		opt{"c", []string{"-c", cmid}, vlmcsCheck{}},
		opt{"o", []string{"-o", prev}, vlmcsCheck{}},
		opt{"c_o", []string{"-c", cmid, "-o", prev}, vlmcsCheck{}},
		opt{"n5", []string{"-n", "5"}, vlmcsCheck{want: 5}},
		opt{"r0", []string{"-r", "0"}, vlmcsCheck{}},
		opt{"r1000", []string{"-r", "1000"}, vlmcsCheck{}},
		opt{"K4.0", []string{"-K", "4.0"}, vlmcsCheck{}},
		opt{"K5.0", []string{"-K", "5.0"}, vlmcsCheck{}},
		opt{"K6.0", []string{"-K", "6.0"}, vlmcsCheck{}},
		opt{"v", []string{"-v"}, vlmcsCheck{}},
	)
	if len(name63) != 63 || len(name80) <= 63 {
		t.Fatalf("bad test names: %d %d", len(name63), len(name80))
	}

	var jobs [][]string
	var names []string
	var checks []vlmcsCheck
	for _, p := range []int{64, 238, 133} {
		for _, o := range opts {
			for _, v := range versions {
				args := append([]string{e.vlmcs, srv.addr, "-l", strconv.Itoa(p)}, o.args...)
				jobs = append(jobs, withVersion(args, v.flag))
				names = append(names, fmt.Sprintf("p%03d/%s/%s", p, o.name, v.name))
				checks = append(checks, o.check)
			}
		}
	}
	res := runAll(runTimeout, t.TempDir(), jobs)
	for i, r := range res {
		t.Run(names[i], func(t *testing.T) {
			c.count(t, name)
			if p := checkVLMCS(r, checks[i]); len(p) > 0 {
				t.Errorf("FAIL\n%s", report(r, p))
			}
		})
	}
}

// compare modes for suite 3
const (
	cmpEPID  = 1 << iota // whole ePID and HWID
	cmpLCID              // ePID LCID field
	cmpBuild             // ePID host build field
)

func epidField(epid string, i int) string {
	f := strings.Split(epid, "-")
	if len(f) != 8 {
		return "?" + epid
	}
	if i == 6 {
		return strings.SplitN(f[6], ".", 2)[0]
	}
	return f[i]
}

// compareAnswers compares the deterministic fields of kmsd's and vlmcsd's
// answers.
func compareAnswers(k, v []answer, mode int) []string {
	var p []string
	if len(k) != len(v) {
		p = append(p, fmt.Sprintf("kmsd: %d requests, vlmcsd: %d", len(k), len(v)))
	}
	for i := 0; i < len(k) && i < len(v); i++ {
		a, b := k[i], v[i]
		diff := func(what string, x, y any) {
			p = append(p, fmt.Sprintf("request %d %s: kmsd %v, vlmcsd %v", i+1, what, x, y))
		}
		if a.ok != b.ok || a.hr != b.hr {
			diff("result", a, b)
			continue
		}
		if !a.ok {
			continue
		}
		if a.count != b.count {
			diff("active clients", a.count, b.count)
		}
		if a.renew != b.renew {
			diff("renewal interval", a.renew, b.renew)
		}
		if a.activ != b.activ {
			diff("activation interval", a.activ, b.activ)
		}
		if a.hwid != b.hwid {
			diff("HWID", a.hwid, b.hwid)
		}
		if mode&cmpEPID != 0 && a.epid != b.epid {
			diff("ePID", a.epid, b.epid)
		}
		if mode&cmpLCID != 0 && epidField(a.epid, 5) != epidField(b.epid, 5) {
			diff("ePID LCID", epidField(a.epid, 5), epidField(b.epid, 5))
		}
		if mode&cmpBuild != 0 && epidField(a.epid, 6) != epidField(b.epid, 6) {
			diff("ePID build", epidField(a.epid, 6), epidField(b.epid, 6))
		}
	}
	return p
}

// minus returns the lines of a that are not in b.
func minus(a, b []string) []string {
	in := map[string]bool{}
	for _, l := range b {
		in[l] = true
	}
	var out []string
	for _, l := range a {
		if !in[l] {
			out = append(out, l)
		}
	}
	return out
}

func summarize(as []answer) string {
	if len(as) == 0 {
		return "(none)"
	}
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	if len(s) > 4 {
		s = append(s[:2], fmt.Sprintf("... %d more ...", len(s)-3), s[len(s)-1])
	}
	return strings.Join(s, "; ")
}

// suite 3: kmsd and vlmcsd started with the same host options, same vlmcs run.
func suiteHostOptions(t *testing.T, e env, c *tally) {
	if e.vlmcs == "" || e.vlmcsd == "" {
		t.Skip("VLMCS and VLMCSD needed")
	}
	const name = "3 vlmcs -> kmsd vs vlmcsd, host option matrix"
	c.suite(name)
	const (
		unknownKMS = "d9c2a7e4-1b6f-4a83-9e5d-7f0b3c8a2e61"
		wrongApp   = "0ff1ce15-a989-479d-af46-f275c6370663"
		fixedEPID  = "03612-00206-471-111111-03-1033-17763.0000-2822018"
		fixedHWID  = "0102030405060708"
	)
	type crun struct {
		name       string
		args       []string // vlmcs arguments after host:port
		mode       int
		allow      []string
		wantCounts []int // exact active-client counts expected from both hosts
		wantEPID   string
		wantHWID   string
		refRetries int // rerun vlmcsd up to this many times if its run is unclean
	}
	type hcase struct {
		name string
		opts []string
		runs []crun
	}
	perVersion := func(prefix string, args []string, mode int) []crun {
		var rs []crun
		for _, v := range versions {
			rs = append(rs, crun{name: prefix + "/" + v.name, args: withVersion(args, v.flag), mode: mode})
		}
		return rs
	}
	whitelist := func() []crun {
		return []crun{
			{name: "p064_volume", args: []string{"-l", "64"}},
			{name: "p045_retail", args: []string{"-l", "45"}},
			{name: "p154_preview", args: []string{"-l", "154"}},
			{name: "unknown_kms_id", args: []string{"-l", "64", "-k", unknownKMS}},
			{name: "wrong_app_id", args: []string{"-l", "64", "-a", wrongApp}},
		}
	}
	var r0 []crun
	for _, p := range []int{64, 135, 154, 180, 200, 220, 234, 238} {
		r0 = append(r0, crun{name: fmt.Sprintf("p%03d", p), args: []string{"-l", strconv.Itoa(p)}, mode: cmpEPID})
	}
	r0 = append(r0, perVersion("p064", []string{"-l", "64"}, cmpEPID)[1:]...)
	fixed := perVersion("p064", []string{"-l", "64"}, cmpEPID)
	for i := range fixed {
		fixed[i].wantEPID = fixedEPID
		if versions[i].flag != "-4" && versions[i].flag != "-5" { // only V6 answers carry a HWID
			fixed[i].wantHWID = fixedHWID
		}
	}
	counts := func(from, to int) []int {
		var cs []int
		for i := from; i <= to; i++ {
			cs = append(cs, i)
		}
		return cs
	}
	cases := []hcase{
		{"N0_H7601", []string{"-N0", "-H", "7601"}, perVersion("p064", []string{"-l", "64"}, cmpBuild)},
		{"B0", []string{"-B0"}, perVersion("p064", []string{"-l", "64"}, 0)},
		{"K1", []string{"-K", "1"}, whitelist()},
		{"K2", []string{"-K", "2"}, whitelist()},
		{"K3", []string{"-K", "3"}, whitelist()},
		{"M1", []string{"-M1"}, []crun{{name: "p064_n4", args: []string{"-l", "64", "-n", "4"}, wantCounts: counts(25, 28)}}},
		{"E1_M1", []string{"-E1", "-M1"}, []crun{{name: "p064_until_25", args: []string{"-l", "64"}, wantCounts: counts(1, 25)}}},
		{"r0", []string{"-r0"}, r0},
		{"a_Windows_fixed", []string{"-a", "Windows=" + fixedEPID + "/" + fixedHWID}, fixed},
		{"A2h_R1w", []string{"-A", "2h", "-R", "1w"}, perVersion("p064", []string{"-l", "64"}, 0)},
		{"C1031", []string{"-C", "1031"}, append(perVersion("p064", []string{"-l", "64"}, cmpLCID),
			crun{name: "p238", args: []string{"-l", "238"}, mode: cmpLCID})},
		{"H14393", []string{"-H", "14393"}, append(perVersion("p064", []string{"-l", "64"}, cmpBuild),
			crun{name: "p238", args: []string{"-l", "238"}, mode: cmpBuild})},
		{"d", []string{"-d"}, []crun{{name: "p064_n2", args: []string{"-l", "64", "-n", "2"},
			allow: []string{"Server closed RPC connection"}, refRetries: 5}}},
	}

	errLine := regexp.MustCompile(`^Error 0x[0-9A-Fa-f]{8} while sending request`)
	dir := t.TempDir()
	for _, hc := range cases {
		t.Run(hc.name, func(t *testing.T) {
			ks := startServer(t, "kmsd", kmsdServe(e, hc.opts...))
			vs := startServer(t, "vlmcsd", vlmcsdServe(e, hc.opts...))
			t.Logf("hosts: %s | %s", strings.Join(ks.argv[1:], " "), strings.Join(vs.argv[1:], " "))
			for _, cr := range hc.runs {
				t.Run(cr.name, func(t *testing.T) {
					c.count(t, name)
					args := append(append([]string(nil), cr.args...), "-v")
					kr := run(runTimeout, dir, append([]string{e.vlmcs, ks.addr}, args...)...)
					vr := run(runTimeout, dir, append([]string{e.vlmcs, vs.addr}, args...)...)
					vbad := badLines(vr.out, cr.allow, errLine)
					for i := 0; i < cr.refRetries && (len(vbad) > 0 || vr.rc != 0); i++ {
						t.Logf("reference vlmcsd run %d unclean (%s); retrying", i+1, strings.Join(vbad, " | "))
						vr = run(runTimeout, dir, append([]string{e.vlmcs, vs.addr}, args...)...)
						vbad = badLines(vr.out, cr.allow, errLine)
					}
					ka, va := parseAnswers(kr.out), parseAnswers(vr.out)
					var p []string
					if kr.timedOut || kr.rc != 0 || kr.err != nil {
						p = append(p, fmt.Sprintf("kmsd run: exit %d timedOut=%v err=%v", kr.rc, kr.timedOut, kr.err))
					}
					// Warnings vlmcs prints for both hosts alike are part of
					// the emulated behaviour; only kmsd's extra ones count.
					kbad := badLines(kr.out, cr.allow, errLine)
					kextra, vextra := minus(kbad, vbad), minus(vbad, kbad)
					if len(kbad) > 0 && len(kextra) == 0 {
						t.Logf("warning printed for both hosts alike: %s", strings.Join(kbad, " | "))
					}
					if len(kextra) > 0 {
						p = append(p, "kmsd run error/warning lines not seen with vlmcsd: "+strings.Join(kextra, " | "))
					}
					if len(ka) == 0 {
						p = append(p, "kmsd run: no request sent")
					}
					refBroken := vr.rc != 0 || vr.timedOut
					for _, a := range va {
						if !a.ok && a.hr == "" {
							refBroken = true
						}
					}
					if len(vextra) > 0 || refBroken {
						t.Logf("reference vlmcsd run unclean: %s", strings.Join(vextra, " | "))
					}
					if refBroken {
						// The reference itself misbehaved: nothing to compare with.
						t.Logf("kmsd judged alone; vlmcsd:\n%s", report(vr, vextra))
					} else {
						p = append(p, compareAnswers(ka, va, cr.mode)...)
					}
					if cr.wantCounts != nil {
						var got []int
						for _, a := range ka {
							got = append(got, a.count)
						}
						if fmt.Sprint(got) != fmt.Sprint(cr.wantCounts) {
							p = append(p, fmt.Sprintf("kmsd counts %v, want %v", got, cr.wantCounts))
						}
					}
					for i, a := range ka {
						if cr.wantEPID != "" && a.epid != cr.wantEPID {
							p = append(p, fmt.Sprintf("request %d ePID %s, want %s", i+1, a.epid, cr.wantEPID))
						}
						if cr.wantHWID != "" && a.hwid != cr.wantHWID {
							p = append(p, fmt.Sprintf("request %d HWID %s, want %s", i+1, a.hwid, cr.wantHWID))
						}
					}
					t.Logf("kmsd:   %s", summarize(ka))
					t.Logf("vlmcsd: %s", summarize(va))
					if len(p) > 0 {
						t.Errorf("FAIL\n%s\nvlmcsd side: %s\n%s", report(kr, p), vr.cmdline(), relevant(vr.out))
					}
				})
			}
		})
	}
}

// checkKmsdClient: exit want and, for 0, one "->" answer per request.
func checkKmsdClient(r result, wantRC, wantAnswers int) []string {
	var p []string
	if r.timedOut {
		p = append(p, "timed out")
	}
	if r.err != nil {
		p = append(p, r.err.Error())
	}
	if r.rc != wantRC {
		p = append(p, fmt.Sprintf("exit status %d, want %d", r.rc, wantRC))
	}
	if wantRC == 0 {
		arrows := arrowRe.FindAllStringSubmatch(r.out, -1)
		if len(arrows) == 0 {
			p = append(p, "no \"->\" answer")
		}
		if wantAnswers > 0 && len(arrows) != wantAnswers {
			p = append(p, fmt.Sprintf("%d answers, want %d", len(arrows), wantAnswers))
		}
		for _, m := range arrows {
			if !epidRe.MatchString(m[1]) {
				p = append(p, fmt.Sprintf("malformed ePID %q", m[1]))
			}
		}
	}
	return p
}

// suite 4: kmsd's client against vlmcsd.
func suiteClientToVlmcsd(t *testing.T, e env, c *tally) {
	if e.vlmcsd == "" {
		t.Skip("VLMCSD not set")
	}
	const name = "4 kmsd client -> vlmcsd"
	c.suite(name)
	srv := startServer(t, "vlmcsd", vlmcsdServe(e))
	products := productNumbers(t, e.kmsd, "client")
	type job struct {
		name    string
		argv    []string
		rc      int
		answers int
	}
	var jobs []job
	for _, p := range products {
		for _, v := range versions {
			jobs = append(jobs, job{fmt.Sprintf("p%03d/%s", p, v.name),
				withVersion([]string{e.kmsd, "client", srv.addr, "-l", strconv.Itoa(p)}, v.flag), 0, 0})
		}
	}
	for _, p := range []int{64, 133, 238} {
		for _, o := range []struct {
			name    string
			args    []string
			answers int
		}{{"N0", []string{"-N", "0"}, 0}, {"B0", []string{"-B", "0"}, 0}, {"p", []string{"-p"}, 0}, {"T_n3", []string{"-T", "-n", "3"}, 3}} {
			jobs = append(jobs, job{fmt.Sprintf("opt/p%03d/%s", p, o.name),
				append([]string{e.kmsd, "client", srv.addr, "-l", strconv.Itoa(p)}, o.args...), 0, o.answers})
		}
	}
	jobs = append(jobs, job{"refuse/r1001", []string{e.kmsd, "client", srv.addr, "-l", "64", "-r", "1001"}, 4, 0})

	argvs := make([][]string, len(jobs))
	for i, j := range jobs {
		argvs[i] = j.argv
	}
	res := runAll(runTimeout, t.TempDir(), argvs)

	// refusals by a whitelisting vlmcsd (-K 3): retail and preview products
	ref := startServer(t, "vlmcsd-K3", vlmcsdServe(e, "-K", "3"))
	for _, p := range []string{"45", "154"} {
		argv := []string{e.kmsd, "client", ref.addr, "-l", p}
		jobs = append(jobs, job{"refuse/K3_p" + p, argv, 4, 0})
		res = append(res, run(runTimeout, t.TempDir(), argv...))
	}

	for i, r := range res {
		j := jobs[i]
		t.Run(j.name, func(t *testing.T) {
			c.count(t, name)
			if p := checkKmsdClient(r, j.rc, j.answers); len(p) > 0 {
				t.Errorf("FAIL\n%s", report(r, p))
			}
		})
	}
}

// suite 5a: py-kms's client against kmsd.
func suitePyClient(t *testing.T, e env, c *tally) {
	if e.pyClient == "" {
		t.Skip("PYKMS_CLIENT not set")
	}
	const name = "5a py-kms client -> kmsd"
	c.suite(name)
	modes := pyModes(t, e)
	t.Logf("py-kms client modes: %s", strings.Join(modes, ", "))
	srv := startServer(t, "kmsd", kmsdServe(e))
	_, port, _ := net.SplitHostPort(srv.addr)
	dir := t.TempDir()
	resp := regexp.MustCompile(`Received V[456] response`)
	epid := regexp.MustCompile(`KMS Host ePID: (\S+)`)
	for _, m := range modes {
		t.Run(m, func(t *testing.T) {
			c.count(t, name)
			r := run(pyTimeout, dir, e.python, e.pyClient, "127.0.0.1", port, "-m", m,
				"-F", "STDOUT", "-V", "INFO", "-t0", "5", "-t1", "5")
			r.out = ansiRe.ReplaceAllString(r.out, "")
			var p []string
			if r.timedOut || r.rc != 0 || r.err != nil {
				p = append(p, fmt.Sprintf("exit %d timedOut=%v err=%v", r.rc, r.timedOut, r.err))
			}
			if strings.Contains(r.out, "Traceback") {
				p = append(p, "traceback")
			}
			if bad := badLines(r.out, nil, nil); len(bad) > 0 {
				p = append(p, "error/warning lines: "+strings.Join(bad, " | "))
			}
			if !resp.MatchString(r.out) {
				p = append(p, "no \"Received Vn response\" line")
			}
			if mm := epid.FindStringSubmatch(r.out); mm == nil || !epidRe.MatchString(mm[1]) {
				p = append(p, "no valid \"KMS Host ePID\" line")
			}
			if len(p) > 0 {
				t.Errorf("FAIL\n%s", report(r, p))
				return
			}
			t.Logf("%s: %s, %s", m, resp.FindString(r.out), epid.FindString(r.out))
		})
	}
}

// pyModes reads the -m choices from py-kms's client --help.
func pyModes(t *testing.T, e env) []string {
	t.Helper()
	r := run(pyTimeout, t.TempDir(), e.python, e.pyClient, "--help")
	m := regexp.MustCompile(`-m \{([^}]+)\}`).FindStringSubmatch(r.out)
	if m == nil {
		t.Fatalf("cannot read -m choices from py-kms client --help:\n%s", head(r.out, 20))
	}
	return strings.Split(m[1], ",")
}

// suite 5b: kmsd's client against py-kms's host; information only.
func suitePyServer(t *testing.T, e env, c *tally) {
	if e.pyServer == "" {
		t.Skip("PYKMS_SERVER not set")
	}
	const name = "5b kmsd client -> py-kms server"
	c.suite(name)
	c.setNote(name, "informational, failures do not fail the test")
	srv := startServer(t, "py-kms", func(port int) []string {
		return []string{e.python, e.pyServer, "127.0.0.1", strconv.Itoa(port), "-F", "STDOUT", "-V", "INFO"}
	})
	dir := t.TempDir()
	for _, p := range []int{64, 133, 238} {
		for _, v := range versions[1:] {
			t.Run(fmt.Sprintf("p%03d/%s", p, v.name), func(t *testing.T) {
				r := run(runTimeout, dir, e.kmsd, "client", srv.addr, "-l", strconv.Itoa(p), v.flag)
				probs := checkKmsdClient(r, 0, 0)
				c.add(name, len(probs) == 0)
				if len(probs) > 0 {
					t.Logf("INFO (not a test failure): py-kms host\n%s\npy-kms server log tail:\n%s", report(r, probs), tail(ansiRe.ReplaceAllString(srv.out.String(), ""), 15))
					return
				}
				t.Logf("ok: %s", strings.TrimSpace(arrowRe.FindString(r.out)))
			})
		}
	}
}
