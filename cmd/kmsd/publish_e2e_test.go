//go:build unix

package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"kmsd/internal/client"
	"kmsd/internal/syncbuf"
	"kmsd/internal/testdns"
)

// lookupSRV returns the _vlmcs._tcp records of domain at server.
func lookupSRV(server, domain string) ([]client.SRVRecord, error) {
	look := client.SRVLookup{Servers: []string{server}, Timeout: time.Second}
	recs, _, err := look.Lookup(context.Background(), domain)
	return recs, err
}

func waitSRV(t *testing.T, server, domain string, present bool, limit time.Duration) []client.SRVRecord {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		recs, err := lookupSRV(server, domain)
		if present && err == nil && len(recs) > 0 {
			return recs
		}
		if !present && errors.Is(err, client.ErrNoHosts) {
			return nil
		}
		if time.Now().After(deadline) {
			t.Fatalf("_vlmcs._tcp.%s present=%v not reached in %v: %v %v", domain, present, limit, recs, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestStartPublisher drives startPublisher in process: it returns at once,
// publishes, and stop withdraws; a refused key is logged with its rcode
// and never blocks.
func TestStartPublisher(t *testing.T) {
	var logbuf syncbuf.Buffer
	logger := slog.New(slog.NewTextHandler(&logbuf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	bad := []struct {
		opts publishOptions
		want string
	}{
		{publishOptions{Server: "127.0.0.1:53"}, "need --publish-domain"},
		{publishOptions{Domains: []string{"kms.test"}, TSIG: "k:c2VjcmV0", TSIGFile: "f"}, "not both"},
		{publishOptions{Domains: []string{"kms.test"}, TSIG: "nonsense"}, "--publish-tsig: TSIG key: expected"},
		{publishOptions{Domains: []string{"kms.test"}, TSIGFile: filepath.Join(t.TempDir(), "none")}, "--publish-tsig-file"},
		{publishOptions{Domains: []string{"bad domain"}, Target: "h.kms.test"}, "not a valid DNS name"},
	}
	for _, b := range bad {
		if _, err := startPublisher(b.opts, 1688, logger); err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%+v: %v, want %q", b.opts, err, b.want)
		}
	}
	if stop, err := startPublisher(publishOptions{}, 1688, logger); err != nil {
		t.Fatal(err)
	} else {
		stop() // nothing to publish
	}
	if h, err := defaultTarget("kms.test"); err != nil || !strings.HasSuffix(h, ".") || !strings.Contains(strings.TrimSuffix(h, "."), ".") {
		t.Errorf("default target %q %v", h, err)
	}

	a := testdns.StartAuthoritative(t)
	start := time.Now()
	stop, err := startPublisher(publishOptions{Domains: []string{"kms.test", "other.test"}, Server: a.Addr,
		Target: "kms1.kms.test", Priority: 3, Weight: 7, TSIG: a.Key.String()}, 1688, logger)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("startPublisher took %v; it must not wait on DNS", d)
	}
	for _, d := range []string{"kms.test", "other.test"} {
		recs := waitSRV(t, a.Addr, d, true, 5*time.Second)
		if len(recs) != 1 || recs[0] != (client.SRVRecord{Target: "kms1.kms.test.", Port: 1688, Priority: 3, Weight: 7}) {
			t.Errorf("%s: %+v", d, recs)
		}
	}
	stop()
	for _, d := range []string{"kms.test", "other.test"} {
		waitSRV(t, a.Addr, d, false, time.Second)
	}
	if strings.Contains(logbuf.String(), a.Key.Secret) {
		t.Error("the log shows the TSIG secret")
	}

	// A key the server does not allow: logged with the rcode, retried, and
	// neither start nor stop waits.
	start = time.Now()
	stop, err = startPublisher(publishOptions{Domains: []string{"kms.test"}, Server: a.Addr,
		Target: "kms1.kms.test", TSIG: a.WrongKey.String()}, 1688, logger)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for !strings.Contains(logbuf.String(), "publishing the KMS SRV record in DNS failed") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("a refused publisher took %v to start and stop", d)
	}
	out := logbuf.String()
	if !strings.Contains(out, "publishing the KMS SRV record in DNS failed") || !strings.Contains(out, "NOTAUTH") ||
		!strings.Contains(out, `\"kmsd-other\"`) {
		t.Errorf("log lacks the refusal:\n%s", out)
	}
}

// TestPublishEndToEnd: `kmsd serve --publish-*` publishes itself in a real
// authoritative server, `kmsd client .kms.test` finds it through SRV and
// activates, and after SIGTERM the record is gone.
func TestPublishEndToEnd(t *testing.T) {
	help, _ := exec.Command(kmsdBinary, "serve", "--help").CombinedOutput()
	if !strings.Contains(string(help), "--publish-domain") {
		t.Skip("kmsd serve has no --publish-domain option yet")
	}
	a := testdns.StartAuthoritative(t)
	keyFile := filepath.Join(t.TempDir(), "kmsd.key")
	if err := os.WriteFile(keyFile, []byte(a.Key.BindFile()), 0o600); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	cmd, logbuf := host(t, "kmsd", port, "serve", "-L", fmt.Sprintf("127.0.0.1:%d", port), "-r0", "--db", "memory",
		"--publish-domain", "kms.test", "--publish-server", a.Addr, "--publish-name", "localhost",
		"--publish-priority", "2", "--publish-weight", "50", "--publish-tsig-file", keyFile)
	recs := waitSRV(t, a.Addr, "kms.test", true, 5*time.Second)
	if len(recs) != 1 || recs[0] != (client.SRVRecord{Target: "localhost.", Port: uint16(port), Priority: 2, Weight: 50}) {
		t.Fatalf("published %+v\nhost log:\n%s", recs, logbuf.String())
	}
	out, code := runClient(t, ".kms.test", "--dns-server", a.Addr, "-l", "64")
	if code != 0 || !strings.Contains(out, "05426-04919-009-767455") {
		t.Fatalf("client: exit %d:\n%s\nhost log:\n%s", code, out, logbuf.String())
	}
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v\n%s", err, logbuf.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no exit after SIGTERM:\n%s", logbuf.String())
	}
	if recs, err := lookupSRV(a.Addr, "kms.test"); !errors.Is(err, client.ErrNoHosts) {
		t.Fatalf("after SIGTERM the record is still there: %+v %v\nhost log:\n%s", recs, err, logbuf.String())
	}
	log := logbuf.String()
	if !strings.Contains(log, "published the KMS SRV record") || !strings.Contains(log, "withdrew the KMS SRV record") {
		t.Errorf("host log lacks the publish and withdraw lines:\n%s", log)
	}
}
