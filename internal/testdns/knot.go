package testdns

import (
	crand "crypto/rand"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"kmsd/internal/syncbuf"
)

// Key is a TSIG key the authoritative server knows.
type Key struct {
	Name, Algorithm, Secret string
}

// String is the key in nsupdate -y form: algorithm:name:secret.
func (k Key) String() string { return k.Algorithm + ":" + k.Name + ":" + k.Secret }

// BindFile is the key as bind's tsig-keygen writes it.
func (k Key) BindFile() string {
	return fmt.Sprintf("key \"%s\" {\n\talgorithm %s;\n\tsecret \"%s\";\n};\n", k.Name, k.Algorithm, k.Secret)
}

// Auth is a running authoritative DNS server (Knot DNS) that accepts
// TSIG-signed dynamic updates (RFC 2136).
type Auth struct {
	Addr     string   // host:port, UDP and TCP
	Zone     string   // "kms.test": ns.kms.test and kms1.kms.test have A records (127.0.0.1)
	Zones    []string // every zone served: kms.test, other.test
	Key      Key      // allowed to update every zone
	WrongKey Key      // known to the server but not allowed to update
	Token    string   // TXT of token.<zone>, unique to this server
	log      *syncbuf.Buffer
}

// Log is what the server has logged so far.
func (a *Auth) Log() string { return a.log.String() }

func knotd() (string, bool) {
	if p, err := exec.LookPath("knotd"); err == nil {
		return p, true
	}
	if _, err := os.Stat("/usr/sbin/knotd"); err == nil {
		return "/usr/sbin/knotd", true
	}
	return "", false
}

func newKey(name string) Key {
	b := make([]byte, 32)
	if _, err := crand.Read(b); err != nil {
		panic(err)
	}
	return Key{Name: name, Algorithm: "hmac-sha256", Secret: base64.StdEncoding.EncodeToString(b)}
}

// loopback picks a random address of 127.0.0.0/8 on Linux (every one is
// local there), so parallel test processes never share a server even
// though Knot binds with SO_REUSEPORT; 127.0.0.1 elsewhere.
func loopback() string {
	if runtime.GOOS != "linux" {
		return "127.0.0.1"
	}
	return fmt.Sprintf("127.%d.%d.%d", 1+rand.IntN(254), rand.IntN(256), 1+rand.IntN(254))
}

// freeDNSPort returns a port free for both UDP and TCP on ip.
func freeDNSPort(ip string) (int, error) {
	for i := 0; i < 20; i++ {
		l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", net.JoinHostPort(ip, fmt.Sprint(port)))
		l.Close()
		if err == nil {
			u.Close()
			return port, nil
		}
	}
	return 0, fmt.Errorf("no free port on %s", ip)
}

// StartAuthoritative starts knotd on a loopback port, authoritative for
// kms.test and other.test, accepting updates signed with Key. It skips
// when Knot DNS is missing, unless KMSD_REQUIRE_DNS is set (CI installs
// it). The server stops when the test ends.
func StartAuthoritative(t testing.TB) *Auth {
	t.Helper()
	bin, ok := knotd()
	if !ok {
		if os.Getenv("KMSD_REQUIRE_DNS") != "" {
			t.Fatal("knotd is required (KMSD_REQUIRE_DNS is set) but not installed (Debian package knot)")
		}
		t.Skip("knotd not installed (Debian package knot)")
	}
	a := &Auth{
		Zone:     "kms.test",
		Zones:    []string{"kms.test", "other.test"},
		Key:      newKey("kmsd-update"),
		WrongKey: newKey("kmsd-other"),
		Token:    newKey("t").Secret,
		log:      &syncbuf.Buffer{},
	}
	data := t.TempDir()
	for _, z := range a.Zones {
		zone := fmt.Sprintf(`$ORIGIN %s.
$TTL 3600
@	SOA	ns hostmaster 1 3600 600 86400 300
@	NS	ns
ns	A	127.0.0.1
kms1	A	127.0.0.1
token	TXT	"%s"
`, z, a.Token)
		if err := os.WriteFile(filepath.Join(data, z+".zone"), []byte(zone), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The control socket lives in rundir; keep its path short (sun_path).
	run, err := os.MkdirTemp("", "knot")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(run) })
	for attempt := 0; attempt < 3; attempt++ {
		ip := loopback()
		port, err := freeDNSPort(ip)
		if err != nil {
			ip = "127.0.0.1"
			if port, err = freeDNSPort(ip); err != nil {
				t.Fatal(err)
			}
		}
		a.Addr = net.JoinHostPort(ip, fmt.Sprint(port))
		conf := filepath.Join(data, "knot.conf")
		if err := os.WriteFile(conf, []byte(a.config(run, data, ip, port)), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "-c", conf)
		cmd.Stdout, cmd.Stderr = a.log, a.log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		stop := func() {
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(3 * time.Second):
				cmd.Process.Kill()
				<-exited
			}
		}
		if a.ready(exited) {
			t.Cleanup(func() {
				stop()
				if t.Failed() {
					t.Logf("knotd log:\n%s", a.Log())
				}
			})
			return a
		}
		stop()
		t.Logf("knotd on %s did not start:\n%s", a.Addr, a.Log())
	}
	t.Fatal("could not start knotd")
	return nil
}

// ready waits until the server answers with this server's token for every
// zone.
func (a *Auth) ready(exited <-chan struct{}) bool {
	c := &dns.Client{Timeout: 200 * time.Millisecond}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return false
		default:
		}
		ok := true
		for _, z := range a.Zones {
			q := new(dns.Msg)
			q.SetQuestion("token."+z+".", dns.TypeTXT)
			r, _, err := c.Exchange(q, a.Addr)
			if err != nil || len(r.Answer) != 1 {
				ok = false
				break
			}
			if txt, isTXT := r.Answer[0].(*dns.TXT); !isTXT || strings.Join(txt.Txt, "") != a.Token {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

func (a *Auth) config(run, data, ip string, port int) string {
	var b strings.Builder
	fmt.Fprintf(&b, `server:
    rundir: "%s"
    listen: %s@%d
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
database:
    storage: "%s"
    journal-db-max-size: 64M
    kasp-db-max-size: 8M
    timer-db-max-size: 8M
    catalog-db-max-size: 8M
log:
  - target: stderr
    any: info
key:
`, run, ip, port, data)
	for _, k := range []Key{a.Key, a.WrongKey} {
		fmt.Fprintf(&b, "  - id: %s\n    algorithm: %s\n    secret: %s\n", k.Name, k.Algorithm, k.Secret)
	}
	fmt.Fprintf(&b, `acl:
  - id: update
    key: %s
    action: update
template:
  - id: default
    storage: "%s"
    zonefile-sync: -1
    acl: update
zone:
`, a.Key.Name, data)
	for _, z := range a.Zones {
		fmt.Fprintf(&b, "  - domain: %s\n    file: %s.zone\n", z, z)
	}
	return b.String()
}
