package config

import (
	"fmt"
	"net"
	"strings"
	"time"

	"kmsd/internal/wire"
)

// Client is the client emulator's configuration (vlmcs options).
type Client struct {
	Target            string // host, host:port, [v6]:port, .domain, - or empty
	Verbose           bool
	Product           string // -l, "" = product 1
	VersionSet        bool
	Major, Minor      uint16
	IPVersion         int // -i 4|6, 0 = any
	KMDFile           string
	Examples, List    bool
	NetBIOS           bool
	Version           bool
	AppID, SKUID      *wire.GUID
	KMSID             *wire.GUID
	CMID, CMIDPrev    *wire.GUID
	Workstation       string
	NPolicy           *uint32
	Requests          int
	VM                bool
	GrabFile          string
	NewConnPerRequest bool
	NDR64, BTFN       bool
	LicenseStatus     uint32
	BindingExpiration uint32
	IgnoreSRVPriority bool
	NoMultiplex       bool
	JSON              bool
	DNSServers        []string // --dns-server, repeatable
	Timeout           time.Duration
	Help              bool
}

// ClientOptions lists every client option with its vlmcs letter.
var ClientOptions = []Option{
	{Short: 'v', Long: "verbose", Help: "print every request and response field"},
	{Short: 'l', Long: "product", HasArg: true, ArgName: "N|NAME|GUID", Help: "product by number, name or SKU ID (see -x)", Default: "1"},
	{Short: '4', Help: "force protocol 4.0"},
	{Short: '5', Help: "force protocol 5.0"},
	{Short: '6', Help: "force protocol 6.0"},
	{Short: 'K', Long: "protocol", HasArg: true, ArgName: "MAJOR.MINOR", Help: "force any protocol version, valid or not"},
	{Short: 'i', Long: "ip-version", HasArg: true, ArgName: "4|6", Help: "use only IPv4 or IPv6"},
	{Short: 'j', Long: "kmd", HasArg: true, ArgName: "FILE", Help: "load product data from FILE"},
	{Short: 'e', Long: "examples", Help: "print usage examples"},
	{Short: 'x', Long: "list", Help: "list the products with their numbers"},
	{Short: 'd', Long: "netbios", Help: "random NetBIOS-style workstation names"},
	{Short: 'V', Long: "version", Help: "print the version"},
	{Short: 'a', Long: "app-id", HasArg: true, ArgName: "GUID", Help: "application ID"},
	{Short: 's', Long: "sku-id", HasArg: true, ArgName: "GUID", Help: "SKU (activation) ID"},
	{Short: 'k', Long: "kms-id", HasArg: true, ArgName: "GUID", Help: "KMS ID"},
	{Short: 'c', Long: "cmid", HasArg: true, ArgName: "GUID", Help: "fixed client machine ID (one request unless -n)"},
	{Short: 'o', Long: "previous-cmid", HasArg: true, ArgName: "GUID", Help: "previous client machine ID"},
	{Short: 'w', Long: "workstation", HasArg: true, ArgName: "NAME", Help: "workstation name (at most 63 characters)"},
	{Short: 'r', Long: "n-policy", HasArg: true, ArgName: "N", Help: "minimum clients required (N policy)"},
	{Short: 'n', Long: "requests", HasArg: true, ArgName: "N", Help: "send exactly N requests"},
	{Short: 'm', Long: "vm", Help: "claim to be a virtual machine"},
	{Short: 'G', Long: "grab", HasArg: true, ArgName: "FILE", Help: "grab ePIDs and HWIDs into an ini file (- for stdout)"},
	{Short: 'T', Long: "new-connection", Help: "new TCP connection for each request"},
	{Short: 'N', Long: "ndr64", HasArg: true, ArgName: "0|1", Help: "offer NDR64", Default: "1"},
	{Short: 'B', Long: "btfn", HasArg: true, ArgName: "0|1", Help: "offer bind time feature negotiation", Default: "1"},
	{Short: 't', Long: "license-status", HasArg: true, ArgName: "N", Help: "license status (0-6 meaningful)", Default: "2"},
	{Short: 'g', Long: "binding-expiration", HasArg: true, ArgName: "MINUTES", Help: "remaining minutes of the current state", Default: "0"},
	{Short: 'P', Long: "ignore-priority", Help: "ignore SRV priority and weight"},
	{Short: 'p', Long: "no-multiplex", Help: "do not set the multiplex flag in bind and alter_context"},
	{Long: "json", Help: "print one JSON object per request"},
	{Long: "dns-server", HasArg: true, ArgName: "HOST[:PORT]", Help: "DNS server for SRV discovery (repeatable)", Default: "/etc/resolv.conf"},
	{Long: "timeout", HasArg: true, ArgName: "DURATION", Help: "network timeout per exchange", Default: "10s"},
	{Short: 'h', Long: "help", Help: "print this help"},
	{Short: '?', Help: "print this help"},
}

// ParseClient builds a Client from vlmcs-style arguments; options may come
// before or after the target.
func ParseClient(args []string) (Client, error) {
	c := Client{NDR64: true, BTFN: true, LicenseStatus: 2, Timeout: 10 * time.Second}
	opts, pos, err := getopt(args, ClientOptions)
	if err != nil {
		return c, err
	}
	if len(pos) > 1 {
		return c, usagef("more than one target: %q", strings.Join(pos, " "))
	}
	if len(pos) == 1 {
		c.Target = pos[0]
	}
	for _, p := range opts {
		if err := c.apply(p.opt, p.val); err != nil {
			return c, usagef("option %s %q: %v", p.opt.name(), p.val, err)
		}
	}
	return c, nil
}

func parseGUIDArg(v string) (*wire.GUID, error) {
	if len(v) != 36 {
		return nil, fmt.Errorf("a GUID has 36 characters (8-4-4-4-12)")
	}
	g, err := wire.ParseGUID(v)
	if err != nil {
		return nil, fmt.Errorf("not a GUID")
	}
	return &g, nil
}

func (c *Client) apply(o *Option, v string) error {
	var err error
	var n int64
	switch o.Short {
	case 'v':
		c.Verbose = true
	case 'l':
		c.Product = v
	case '4', '5', '6':
		c.VersionSet, c.Major, c.Minor = true, uint16(o.Short-'0'), 0
	case 'K':
		maj, min, ok := strings.Cut(v, ".")
		var a, b int64
		a, err = parseInt(maj, 0, 65535)
		if err == nil && ok {
			b, err = parseInt(min, 0, 65535)
		} else if err == nil {
			err = fmt.Errorf("expected MAJOR.MINOR")
		}
		c.VersionSet, c.Major, c.Minor = true, uint16(a), uint16(b)
	case 'i':
		n, err = parseInt(v, 4, 6)
		if n == 5 {
			err = fmt.Errorf("use 4 or 6")
		}
		c.IPVersion = int(n)
	case 'j':
		c.KMDFile = v
	case 'e':
		c.Examples = true
	case 'x':
		c.List = true
	case 'd':
		c.NetBIOS = true
	case 'V':
		c.Version = true
	case 'a':
		c.AppID, err = parseGUIDArg(v)
	case 's':
		c.SKUID, err = parseGUIDArg(v)
	case 'k':
		c.KMSID, err = parseGUIDArg(v)
	case 'c':
		c.CMID, err = parseGUIDArg(v)
	case 'o':
		c.CMIDPrev, err = parseGUIDArg(v)
	case 'w':
		c.Workstation = v
	case 'r':
		n, err = parseInt(v, 0, 1<<31-1)
		u := uint32(n)
		c.NPolicy = &u
	case 'n':
		n, err = parseInt(v, 1, 1<<31-1)
		c.Requests = int(n)
	case 'm':
		c.VM = true
	case 'G':
		c.GrabFile = v
	case 'T':
		c.NewConnPerRequest = true
	case 'N':
		c.NDR64, err = parseBool(v)
	case 'B':
		c.BTFN, err = parseBool(v)
	case 't':
		n, err = parseInt(v, 0, 1<<31-1)
		c.LicenseStatus = uint32(n)
	case 'g':
		n, err = parseInt(v, 0, 1<<32-1)
		c.BindingExpiration = uint32(n)
	case 'P':
		c.IgnoreSRVPriority = true
	case 'p':
		c.NoMultiplex = true
	case 'h', '?':
		c.Help = true
	case 0:
		switch o.Long {
		case "json":
			c.JSON = true
		case "dns-server":
			if _, _, e := net.SplitHostPort(v); e != nil {
				v = net.JoinHostPort(v, "53")
			}
			c.DNSServers = append(c.DNSServers, v)
		case "timeout":
			c.Timeout, err = time.ParseDuration(v)
			if err == nil && c.Timeout <= 0 {
				err = fmt.Errorf("must be positive")
			}
		}
	}
	return err
}
