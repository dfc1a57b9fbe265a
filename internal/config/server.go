package config

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"kmsd/internal/wire"
)

// EPIDOverride is a fixed ePID (and optional HWID) for one CSVLK
// (vlmcsd -a, or an ini CSVLK line).
type EPIDOverride struct {
	CSVLK   string
	EPID    string
	HWID    [8]byte
	HasHWID bool
}

// Publish configures DNS SRV publishing (RFC 2136 with TSIG).
type Publish struct {
	Domains          []string
	Server           string
	Name             string
	TTL              time.Duration
	Priority, Weight uint16
	TSIG, TSIGFile   string
}

// Server is the whole host configuration, built once by ParseServer.
type Server struct {
	Listen             []string // host:port; empty means the defaults
	Port               string
	PublicIPLevel      int  // -o
	FreeBind           bool // -F
	ExitLevel          int  // -x
	MaxWorkers         int  // -m, 0 = unlimited
	Timeout            time.Duration
	Disconnect         bool  // -d / -k
	NDR64              *bool // -N; nil = the table's default (on)
	BTFN               bool  // -B
	EPIDs              []EPIDOverride
	Randomization      int            // -r
	LCID               uint16         // -C
	HostBuild          uint32         // -H
	Whitelist          int            // -K
	CheckTime          bool           // -c
	Maintain           bool           // -M
	StartEmpty         bool           // -E
	ActivationInterval uint32         // minutes
	RenewalInterval    uint32         // minutes
	IniFile            string         // -i
	KMDFile            string         // -j
	LogFile            string         // -l
	LogStdout          bool           // -e
	Timestamps         bool           // -T
	Verbose            bool           // -v / -q
	Privacy            bool           // -X
	Foreground         bool           // -D
	PidFile            string         // -p
	User, Group        string         // -u, -g
	LogFormat          string         // text or json
	CPUProfile         string         // --cpu-profile FILE
	Allow, Deny        []netip.Prefix // --allow / --deny
	MaxPerAddress      int            // --max-per-address, 0 = unlimited
	HWID               *[8]byte       // --hwid: default HWID of every CSVLK
	ClientCount        uint32         // --client-count (py-kms -c), 0 = off
	DB                 string         // --db: "", "memory", "sqlite:PATH", PATH, "none"
	Retention          time.Duration  // --retention
	CountSync          time.Duration  // --count-sync: shared database, -M1 counts
	HTTP               string         // --http ADDR, "" = off
	HTTPAuth           string         // --http-auth (or $KMSD_HTTP_AUTH)
	Publish            Publish        // --publish-*
	Help, Version      bool
}

// DefaultServer returns vlmcsd's defaults (current build behaviour).
func DefaultServer() Server {
	return Server{Port: "1688", Timeout: 30 * time.Second, BTFN: true, Randomization: 1,
		ActivationInterval: 1440, RenewalInterval: 20160, Timestamps: true, LogFormat: "text",
		MaxPerAddress: DefaultMaxPerAddress, Retention: 90 * 24 * time.Hour, CountSync: 30 * time.Second}
}

// ServerOptions lists every host option with its vlmcsd letter.
var ServerOptions = []Option{
	{Short: 'L', Long: "listen", HasArg: true, ArgName: "ADDR[:PORT]", Help: "listen on ADDR (repeatable; IPv6 in brackets with a port)", Default: "all IPv4 and IPv6 addresses"},
	{Short: 'P', Long: "port", HasArg: true, ArgName: "PORT", Help: "port for the -L options that follow without a port", Default: "1688"},
	{Short: 'o', Long: "public-ip-protection", HasArg: true, ArgName: "0-3", Help: "public address protection: 1 listen on private addresses only, 2 drop public clients, 3 both", Default: "0"},
	{Short: 'F', Long: "freebind", HasArg: true, ArgName: "0|1", Help: "allow binding to addresses not yet configured", Default: "0"},
	{Short: 'x', Long: "exit-level", HasArg: true, ArgName: "0|1", Help: "1: exit when any listener fails", Default: "0"},
	{Short: 'm', Long: "max-clients", HasArg: true, ArgName: "N", Help: "maximum simultaneous clients", Default: "unlimited"},
	{Short: 't', Long: "timeout", HasArg: true, ArgName: "SECONDS", Help: "idle timeout of a connection, 1-600", Default: "30"},
	{Short: 'd', Long: "disconnect", Help: "disconnect each client after its answer"},
	{Short: 'k', Long: "keep-connection", Help: "keep connections open (undo -d)", Default: "on"},
	{Short: 'N', Long: "ndr64", HasArg: true, ArgName: "0|1", Help: "accept NDR64", Default: "1"},
	{Short: 'B', Long: "btfn", HasArg: true, ArgName: "0|1", Help: "acknowledge bind time feature negotiation", Default: "1"},
	{Short: 'a', Long: "epid", HasArg: true, ArgName: "CSVLK=EPID[/HWID]", Help: "fixed ePID and HWID for a CSVLK (repeatable); without CSVLK= for every CSVLK"},
	{Long: "hwid", HasArg: true, ArgName: "HEX16", Help: "HWID of every CSVLK without its own (py-kms -w)", Default: "3A1C049600B60076"},
	{Long: "client-count", HasArg: true, ArgName: "N", Help: "answer counts as py-kms -c does: N+1 below N policy, C between N and 2N, 2N above", Default: "off (2N)"},
	{Short: 'r', Long: "randomization", HasArg: true, ArgName: "0-2", Help: "ePIDs: 0 built-in, 1 random at start, 2 random per request", Default: "1"},
	{Short: 'C', Long: "lcid", HasArg: true, ArgName: "LCID", Help: "LCID of generated ePIDs, 0 = random", Default: "0"},
	{Short: 'H', Long: "host-build", HasArg: true, ArgName: "BUILD", Help: "host build of generated ePIDs, 0 = random", Default: "0"},
	{Short: 'K', Long: "whitelist", HasArg: true, ArgName: "0-3", Help: "whitelisting: 1 known KMS IDs with their application only, 2 refuse retail/preview, 3 both", Default: "0"},
	{Short: 'c', Long: "check-time", HasArg: true, ArgName: "0|1", Help: "refuse clients whose clock is more than 4 hours off", Default: "0"},
	{Short: 'M', Long: "maintain-clients", HasArg: true, ArgName: "0|1", Help: "count distinct clients", Default: "0"},
	{Short: 'E', Long: "start-empty", HasArg: true, ArgName: "0|1", Help: "start client lists empty (with -M1)", Default: "0"},
	{Short: 'A', Long: "activation-interval", HasArg: true, ArgName: "SPAN", Help: "retry interval sent to clients (s/m/h/d/w, default unit minutes)", Default: "1440m"},
	{Short: 'R', Long: "renewal-interval", HasArg: true, ArgName: "SPAN", Help: "renewal interval sent to clients", Default: "20160m"},
	{Short: 'i', Long: "ini", HasArg: true, ArgName: "FILE", Help: "vlmcsd.ini configuration file (- for none)"},
	{Short: 'j', Long: "kmd", HasArg: true, ArgName: "FILE", Help: "product data file (- for the built-in table)"},
	{Short: 'l', Long: "log", HasArg: true, ArgName: "FILE", Help: "log file"},
	{Short: 'e', Long: "log-stdout", Help: "log to standard output"},
	{Short: 'T', Long: "timestamps", HasArg: true, ArgName: "0|1", Help: "date and time in log lines", Default: "1"},
	{Short: 'v', Long: "verbose", Help: "log every request and response field"},
	{Short: 'q', Long: "quiet", Help: "log one line per activation (undo -v)"},
	{Short: 'X', Long: "privacy", Help: "hide client names and addresses in logs"},
	{Short: 'D', Long: "foreground", Help: "stay in the foreground (kmsd serve always does; run as vlmcsd it detaches without -D)"},
	{Short: 'Z', Help: "accepted for vlmcsd compatibility (its restart marker); no effect"},
	{Short: 'p', Long: "pid-file", HasArg: true, ArgName: "FILE", Help: "write the process id to FILE"},
	{Short: 'u', Long: "user", HasArg: true, ArgName: "USER", Help: "drop to USER after binding"},
	{Short: 'g', Long: "group", HasArg: true, ArgName: "GROUP", Help: "drop to GROUP after binding"},
	{Long: "allow", HasArg: true, ArgName: "CIDR", Help: "accept clients only from these networks (repeatable)", Default: "everyone"},
	{Long: "deny", HasArg: true, ArgName: "CIDR", Help: "refuse clients from these networks (repeatable; wins over --allow)"},
	{Long: "max-per-address", HasArg: true, ArgName: "N", Help: "simultaneous connections from one address, 0 = unlimited", Default: "256"},
	{Long: "db", HasArg: true, ArgName: "DSN", Help: "activation records: sqlite:PATH or PATH, memory, postgres://USER:PASS@HOST/DB, or none", Default: "sqlite in the state directory (memory when run as vlmcsd)"},
	{Long: "retention", HasArg: true, ArgName: "AGE", Help: "keep activation records this long (e.g. 90d, 12h)", Default: "90d"},
	{Long: "count-sync", HasArg: true, ArgName: "AGE", Help: "with a PostgreSQL database and -M1, add the clients other hosts served to the counts this often", Default: "30s"},
	{Long: "http", HasArg: true, ArgName: "ADDR", Help: "serve the dashboard, /metrics, /healthz and /readyz on ADDR", Default: "off"},
	{Long: "http-auth", HasArg: true, ArgName: "TOKEN", Help: "password or bearer token for the dashboard (required off loopback; also $KMSD_HTTP_AUTH)"},
	{Long: "publish-domain", HasArg: true, ArgName: "DOMAIN", Help: "publish _vlmcs._tcp.DOMAIN SRV by RFC 2136 dynamic update (repeatable)", Default: "off"},
	{Long: "publish-server", HasArg: true, ArgName: "HOST[:PORT]", Help: "DNS server to update", Default: "the zone's primary (SOA)"},
	{Long: "publish-name", HasArg: true, ArgName: "FQDN", Help: "host name in the SRV record", Default: "this machine's name"},
	{Long: "publish-ttl", HasArg: true, ArgName: "AGE", Help: "TTL of the record; refreshed every TTL/2", Default: "1h"},
	{Long: "publish-priority", HasArg: true, ArgName: "N", Help: "SRV priority", Default: "0"},
	{Long: "publish-weight", HasArg: true, ArgName: "N", Help: "SRV weight", Default: "0"},
	{Long: "publish-tsig", HasArg: true, ArgName: "[ALG:]NAME:SECRET", Help: "TSIG key for the updates"},
	{Long: "publish-tsig-file", HasArg: true, ArgName: "FILE", Help: "TSIG key file (bind tsig-keygen or knot keymgr format)"},
	{Long: "log-format", HasArg: true, ArgName: "text|json", Help: "log line format", Default: "text"},
	{Long: "cpu-profile", HasArg: true, ArgName: "FILE", Help: "write a CPU profile of the run to FILE for go tool pprof", Default: "off"},
	{Short: 'V', Long: "version", Help: "print the version"},
	{Short: 'h', Long: "help", Help: "print this help"},
	{Short: '?', Help: "print this help"},
}

// ParseServer builds a Server from vlmcsd-style arguments.
func ParseServer(args []string) (Server, error) {
	cfg := DefaultServer()
	opts, pos, err := getopt(args, ServerOptions)
	if err != nil {
		return cfg, err
	}
	if len(pos) > 0 {
		return cfg, usagef("unexpected argument %q", pos[0])
	}
	for _, p := range opts {
		if err := cfg.apply(p.opt, p.val); err != nil {
			return cfg, usagef("option %s %q: %v", p.opt.name(), p.val, err)
		}
	}
	return cfg, nil
}

func (c *Server) apply(o *Option, v string) error {
	var err error
	var n int64
	var b bool
	switch o.Short {
	case 'L':
		var a string
		a, err = normalizeListen(v, c.Port)
		c.Listen = append(c.Listen, a)
	case 'P':
		_, err = parseInt(v, 1, 65535)
		c.Port = v
	case 'o':
		n, err = parseInt(v, 0, 3)
		c.PublicIPLevel = int(n)
	case 'F':
		c.FreeBind, err = parseBool(v)
	case 'x':
		n, err = parseInt(v, 0, 1)
		c.ExitLevel = int(n)
	case 'm':
		n, err = parseInt(v, 1, 1<<20)
		c.MaxWorkers = int(n)
	case 't':
		n, err = parseInt(v, 1, 600)
		c.Timeout = time.Duration(n) * time.Second
	case 'd':
		c.Disconnect = true
	case 'k':
		c.Disconnect = false
	case 'N':
		b, err = parseBool(v)
		c.NDR64 = &b
	case 'B':
		c.BTFN, err = parseBool(v)
	case 'a':
		var e EPIDOverride
		e, err = ParseEPIDOverride(v)
		c.EPIDs = append(c.EPIDs, e)
	case 'r':
		n, err = parseInt(v, 0, 2)
		c.Randomization = int(n)
	case 'C':
		n, err = parseInt(v, 0, 32767)
		c.LCID = uint16(n)
	case 'H':
		n, err = parseInt(v, 0, 65535)
		c.HostBuild = uint32(n)
	case 'K':
		n, err = parseInt(v, 0, 3)
		c.Whitelist = int(n)
	case 'c':
		c.CheckTime, err = parseBool(v)
	case 'M':
		c.Maintain, err = parseBool(v)
	case 'E':
		c.StartEmpty, err = parseBool(v)
	case 'A':
		c.ActivationInterval, err = ParseInterval(v)
	case 'R':
		c.RenewalInterval, err = ParseInterval(v)
	case 'i':
		c.IniFile = v
	case 'j':
		c.KMDFile = v
	case 'l':
		c.LogFile = v
	case 'e':
		c.LogStdout = true
	case 'T':
		c.Timestamps, err = parseBool(v)
	case 'v':
		c.Verbose = true
	case 'q':
		c.Verbose = false
	case 'X':
		c.Privacy = true
	case 'D':
		c.Foreground = true
	case 'p':
		c.PidFile = v
	case 'u':
		c.User = v
	case 'g':
		c.Group = v
	case 'V':
		c.Version = true
	case 'h', '?':
		c.Help = true
	case 0:
		switch o.Long {
		case "log-format":
			if v != "text" && v != "json" {
				err = fmt.Errorf("use text or json")
			}
			c.LogFormat = v
		case "cpu-profile":
			c.CPUProfile = v
		case "allow", "deny":
			var p netip.Prefix
			p, err = ParsePrefix(v)
			if o.Long == "allow" {
				c.Allow = append(c.Allow, p)
			} else {
				c.Deny = append(c.Deny, p)
			}
		case "db":
			c.DB = v
		case "retention":
			c.Retention, err = ParseAge(v)
		case "count-sync":
			c.CountSync, err = ParseAge(v)
		case "http":
			c.HTTP = v
		case "http-auth":
			c.HTTPAuth = v
		case "publish-domain":
			c.Publish.Domains = append(c.Publish.Domains, v)
		case "publish-server":
			c.Publish.Server = v
		case "publish-name":
			c.Publish.Name = v
		case "publish-ttl":
			c.Publish.TTL, err = ParseAge(v)
		case "publish-priority", "publish-weight":
			n, err = parseInt(v, 0, 65535)
			if o.Long == "publish-priority" {
				c.Publish.Priority = uint16(n)
			} else {
				c.Publish.Weight = uint16(n)
			}
		case "publish-tsig":
			c.Publish.TSIG = v
		case "publish-tsig-file":
			c.Publish.TSIGFile = v
		case "hwid":
			var e EPIDOverride
			hex := strings.TrimPrefix(strings.TrimPrefix(v, "0x"), "0X")
			e, err = parseEPIDValue("x/" + hex)
			c.HWID = &e.HWID
		case "client-count":
			n, err = parseInt(v, 1, 1<<31-1)
			c.ClientCount = uint32(n)
		case "max-per-address":
			n, err = parseInt(v, 0, 1<<20)
			c.MaxPerAddress = int(n)
		}
	}
	return err
}

// normalizeListen turns addr[:port] into host:port, using port when none
// is given. IPv6 addresses need brackets when a port follows.
func normalizeListen(v, port string) (string, error) {
	if v == "" {
		return "", fmt.Errorf("empty address")
	}
	if strings.HasPrefix(v, "[") {
		end := strings.Index(v, "]")
		if end < 0 {
			return "", fmt.Errorf("missing ]")
		}
		host, rest := v[1:end], v[end+1:]
		if rest == "" {
			return net.JoinHostPort(host, port), nil
		}
		if !strings.HasPrefix(rest, ":") {
			return "", fmt.Errorf("unexpected %q after ]", rest)
		}
		if _, err := parseInt(rest[1:], 1, 65535); err != nil {
			return "", fmt.Errorf("port: %v", err)
		}
		return net.JoinHostPort(host, rest[1:]), nil
	}
	if strings.Count(v, ":") > 1 { // bare IPv6 address
		return net.JoinHostPort(v, port), nil
	}
	host, p, found := strings.Cut(v, ":")
	if !found {
		return net.JoinHostPort(host, port), nil
	}
	if _, err := parseInt(p, 1, 65535); err != nil {
		return "", fmt.Errorf("port: %v", err)
	}
	return net.JoinHostPort(host, p), nil
}

// AllCSVLKs is the CSVLK name of an override that applies to every CSVLK
// not named in another one (-a EPID without a name, like py-kms -e).
const AllCSVLKs = "*"

// ParseEPIDOverride parses CSVLK=ePID[/HWID] (kms-data.md §3.2); without
// "CSVLK=" the ePID applies to every CSVLK.
func ParseEPIDOverride(v string) (EPIDOverride, error) {
	name, rest, ok := strings.Cut(v, "=")
	name = strings.TrimSpace(name)
	if !ok {
		name, rest = AllCSVLKs, v
	}
	if name == "" {
		return EPIDOverride{}, fmt.Errorf("expected CSVLK=EPID[/HWID]")
	}
	e, err := parseEPIDValue(rest)
	e.CSVLK = name
	return e, err
}

func parseEPIDValue(rest string) (EPIDOverride, error) {
	var e EPIDOverride
	rest = strings.TrimLeft(rest, " \t")
	end := strings.IndexFunc(rest, func(r rune) bool { return r <= ' ' || r == '/' })
	if end < 0 {
		end = len(rest)
	}
	e.EPID = rest[:end]
	if e.EPID == "" || len(e.EPID) > 63 {
		return e, fmt.Errorf("ePID must have 1 to 63 characters without spaces or '/'")
	}
	tail := strings.TrimSpace(rest[end:])
	if tail == "" {
		return e, nil
	}
	if tail[0] != '/' {
		return e, fmt.Errorf("unexpected %q after the ePID", tail)
	}
	var digits []byte
	for _, ch := range []byte(tail[1:]) {
		if _, ok := wire.HexDigit(ch); ok {
			digits = append(digits, ch)
		}
	}
	if len(digits) != 16 {
		return e, fmt.Errorf("HWID needs 16 hex digits, got %d", len(digits))
	}
	for i := 0; i < 8; i++ {
		hi, _ := wire.HexDigit(digits[2*i])
		lo, _ := wire.HexDigit(digits[2*i+1])
		e.HWID[i] = hi<<4 | lo
	}
	e.HasHWID = true
	return e, nil
}

// ListenAddrs returns the listen addresses, or the defaults: every IPv4
// and IPv6 address on the configured port.
func (c *Server) ListenAddrs() (addrs []string, defaults bool) {
	if len(c.Listen) > 0 {
		return c.Listen, false
	}
	return []string{net.JoinHostPort("0.0.0.0", c.Port), net.JoinHostPort("::", c.Port)}, true
}

// ParseAge parses a duration with an optional d (days) or w (weeks) unit
// besides Go's h, m and s: "90d", "2w", "36h".
func ParseAge(v string) (time.Duration, error) {
	mult := time.Duration(0)
	switch {
	case strings.HasSuffix(v, "d"):
		mult = 24 * time.Hour
	case strings.HasSuffix(v, "w"):
		mult = 7 * 24 * time.Hour
	}
	if mult != 0 {
		n, err := parseInt(v[:len(v)-1], 1, 100000)
		if err != nil {
			return 0, err
		}
		return time.Duration(n) * mult, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%q is not a positive age (e.g. 90d, 2w, 36h)", v)
	}
	return d, nil
}

// DefaultMaxPerAddress is the default cap on simultaneous connections
// from one client address.
const DefaultMaxPerAddress = 256

// ParsePrefix parses a CIDR, or a single address as a /32 or /128.
func ParsePrefix(v string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(strings.TrimSpace(v)); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(strings.TrimSpace(v))
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an address or CIDR network", v)
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}
