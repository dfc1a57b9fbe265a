//go:build unix

// Package testpg gives tests a real PostgreSQL server. It is imported by
// tests only.
//
// Start uses the server named by KMSD_TEST_POSTGRES (a DSN of a role that
// may create databases) when it is set; otherwise it starts a private
// server from Debian's postgresql packages (/usr/lib/postgresql/N/bin, or
// initdb and postgres on PATH): initdb into a new directory under the
// temporary directory, then postgres listening only on a unix socket in
// that directory (no TCP port), with fsync off. Running as root, the
// server runs as the postgres user (or nobody), since PostgreSQL refuses
// to run as root; the directory is theirs, so only they and root can reach
// the socket. The server is stopped and its directory removed when the
// test ends.
//
// Without the binaries the test is skipped, unless KMSD_REQUIRE_POSTGRES
// is set (as CI sets it), when it fails.
package testpg

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"kmsd/internal/syncbuf"
)

// EnvDSN names an existing server to use instead of a private one.
const EnvDSN = "KMSD_TEST_POSTGRES"

// EnvRequire makes missing PostgreSQL binaries a failure instead of a skip.
const EnvRequire = "KMSD_REQUIRE_POSTGRES"

// role is the superuser the private server is initialized with.
const role = "kmsd"

// socketPort names the socket file (.s.PGSQL.5432); nothing listens on TCP.
const socketPort = 5432

// Server is a PostgreSQL server to create test databases in.
type Server struct {
	admin string   // DSN of the maintenance database
	priv  *private // nil for a server from KMSD_TEST_POSTGRES
	// StartTime is how long initdb and the first start took (zero for a
	// server from KMSD_TEST_POSTGRES).
	StartTime time.Duration
}

// private is a server this package started.
type private struct {
	dir, data string // the socket directory, and the data directory in it
	postgres  string // the server binary
	cred      *syscall.Credential
	mu        sync.Mutex
	cmd       *exec.Cmd
	log       *syncbuf.Buffer
	exited    chan struct{}
}

var dbSeq atomic.Int64

// Start returns the server of KMSD_TEST_POSTGRES, or a private server
// that runs until t ends.
func Start(t testing.TB) *Server {
	t.Helper()
	if dsn := os.Getenv(EnvDSN); dsn != "" {
		return &Server{admin: dsn}
	}
	return StartPrivate(t)
}

// StartPrivate starts a private server (whatever KMSD_TEST_POSTGRES says),
// one that Stop and Restart may control.
func StartPrivate(t testing.TB) *Server {
	t.Helper()
	bin, err := findBinaries()
	if err != nil {
		if os.Getenv(EnvRequire) != "" {
			t.Fatalf("PostgreSQL is required (%s is set): %v", EnvRequire, err)
		}
		t.Skipf("PostgreSQL not installed (apt-get install postgresql): %v", err)
	}
	begin := time.Now()
	p, err := initCluster(bin)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.stop()
		os.RemoveAll(p.dir)
	})
	s := &Server{priv: p, admin: p.dsn("postgres")}
	if err := p.start(); err != nil {
		t.Fatal(err)
	}
	if err := s.waitReady(); err != nil {
		t.Fatal(err)
	}
	s.StartTime = time.Since(begin)
	t.Logf("private PostgreSQL (%s) ready in %v", bin, s.StartTime.Round(time.Millisecond))
	return s
}

// DSN is a new empty database on Start's server.
func DSN(t testing.TB) string {
	t.Helper()
	return Start(t).NewDatabase(t)
}

// NewDatabase creates an empty database and returns its DSN, a postgres://
// URL for a private server. A database on a KMSD_TEST_POSTGRES server is
// dropped when the test ends.
func (s *Server) NewDatabase(t testing.TB) string {
	t.Helper()
	return s.NewDatabaseWith(t, "")
}

// NewDatabaseWith is NewDatabase with options for CREATE DATABASE, such as
// "ENCODING 'LATIN1' TEMPLATE template0".
func (s *Server) NewDatabaseWith(t testing.TB, options string) string {
	t.Helper()
	name := fmt.Sprintf("kmsd_test_%d_%d_%d", os.Getpid(), dbSeq.Add(1), rand.IntN(1_000_000))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.admin)
	if err != nil {
		t.Fatalf("testpg: %v", err)
	}
	defer conn.Close(context.Background())
	create := "CREATE DATABASE " + name + " " + options
	if s.priv != nil {
		// Copying the template's files is faster than logging it, with
		// fsync off (PostgreSQL 15 and later).
		var v int
		if err := conn.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&v); err == nil && v >= 150000 {
			create += " STRATEGY FILE_COPY"
		}
	}
	if _, err := conn.Exec(ctx, create); err != nil {
		t.Fatalf("testpg: %s: %v", create, err)
	}
	if s.priv == nil {
		t.Cleanup(func() { s.drop(name) })
	}
	dsn, err := withDatabase(s.admin, name)
	if err != nil {
		t.Fatal(err)
	}
	return dsn
}

func (s *Server) drop(name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.admin)
	if err != nil {
		return
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
		conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name) // before PostgreSQL 13
	}
}

// withDatabase returns dsn naming another database.
func withDatabase(dsn, name string) (string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", fmt.Errorf("testpg: %s: %v", EnvDSN, err)
		}
		u.Path, u.RawPath = "/"+name, ""
		return u.String(), nil
	}
	return dsn + " dbname=" + name, nil // key=value: the last setting wins
}

// Private reports whether the server was started by this package (so
// Stop and Restart work).
func (s *Server) Private() bool { return s.priv != nil }

// SocketDir is the private server's socket directory.
func (s *Server) SocketDir() string { return s.priv.dir }

// Log is what the private server logged.
func (s *Server) Log() string { return s.priv.log.String() }

// Stop shuts the private server down the way `pg_ctl stop -m fast` does
// (SIGINT: sessions are ended, open transactions rolled back) and waits
// for it to exit.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	if s.priv == nil {
		t.Fatal("testpg: Stop needs a private server")
	}
	if err := s.priv.stop(); err != nil {
		t.Fatal(err)
	}
}

// Restart starts the stopped private server again on the same data and
// socket, and waits until it accepts connections.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	if s.priv == nil {
		t.Fatal("testpg: Restart needs a private server")
	}
	if err := s.priv.start(); err != nil {
		t.Fatal(err)
	}
	if err := s.waitReady(); err != nil {
		t.Fatal(err)
	}
}

// waitReady polls until the server accepts a connection.
func (s *Server) waitReady() error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn, err := pgx.Connect(ctx, s.admin)
		cancel()
		if err == nil {
			conn.Close(context.Background())
			return nil
		}
		select {
		case <-s.priv.exitedChan():
			return fmt.Errorf("testpg: postgres exited: %s", s.priv.log)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("testpg: postgres not ready after 30 s: %v\n%s", err, s.priv.log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// findBinaries returns the directory of initdb and postgres: the newest
// /usr/lib/postgresql/N/bin, else PATH's.
func findBinaries() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int { return version(b) - version(a) })
	for _, d := range dirs {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	initdb, err := exec.LookPath("initdb")
	if err != nil {
		return "", fmt.Errorf("no /usr/lib/postgresql/*/bin/initdb and no initdb on PATH")
	}
	d := filepath.Dir(initdb)
	if !isExec(filepath.Join(d, "postgres")) {
		return "", fmt.Errorf("no postgres beside %s", initdb)
	}
	return d, nil
}

func version(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

func isExec(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// initCluster creates the directory and runs initdb in it.
func initCluster(bin string) (*private, error) {
	cred, err := serverCredential()
	if err != nil {
		return nil, err
	}
	// A short path: a unix socket path is limited to about 100 bytes.
	dir, err := os.MkdirTemp("", "kmsd-pg-")
	if err != nil {
		return nil, err
	}
	p := &private{dir: dir, data: filepath.Join(dir, "data"), postgres: filepath.Join(bin, "postgres"),
		cred: cred, log: syncbuf.New(1 << 20)}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	cmd := p.command(filepath.Join(bin, "initdb"), "-D", p.data, "-U", role, "--auth=trust", "-E", "UTF8",
		"--locale=C", "--no-sync", "--no-instructions")
	if out, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("testpg: initdb: %v\n%s", err, out)
	}
	return p, nil
}

// command runs a PostgreSQL binary as the server's user, in its
// directory, with no PG* variables from the environment.
func (p *private) command(path string, args ...string) *exec.Cmd {
	cmd := exec.Command(path, args...)
	cmd.Dir = p.dir
	cmd.Env = []string{"LC_ALL=C", "PATH=/usr/bin:/bin", "TZ=UTC"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
	return cmd
}

// start runs postgres; it returns without waiting for it to be ready.
func (p *private) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return fmt.Errorf("testpg: postgres already running")
	}
	cmd := p.command(p.postgres, "-D", p.data, "-p", strconv.Itoa(socketPort), "-k", p.dir,
		"-c", "listen_addresses=", "-c", "unix_socket_permissions=0700",
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_parallel_workers_per_gather=0", "-c", "shared_buffers=32MB",
		"-c", "log_min_messages=warning", "-c", "log_min_error_statement=panic")
	cmd.Stdout, cmd.Stderr = p.log, p.log
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("testpg: postgres: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	p.cmd, p.exited = cmd, exited
	return nil
}

func (p *private) exitedChan() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exited
}

// stop sends SIGINT (fast shutdown), then SIGKILL after 30 s, and waits.
func (p *private) stop() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return nil
	}
	cmd, exited := p.cmd, p.exited
	p.cmd = nil
	cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-exited:
		return nil
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-exited
		return fmt.Errorf("testpg: postgres did not stop within 30 s: %s", p.log)
	}
}

// dsn is a URL for database db on the private server's socket.
func (p *private) dsn(db string) string {
	q := url.Values{"host": {p.dir}, "port": {strconv.Itoa(socketPort)}, "sslmode": {"disable"}}
	return (&url.URL{Scheme: "postgres", User: url.User(role), Path: "/" + db, RawQuery: q.Encode()}).String()
}
