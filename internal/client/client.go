// Package client is the KMS client emulator: it builds requests as vlmcs
// does for a product (shared/spec/kms-client.md), talks DCE/RPC to a host,
// verifies every answer and reports the results.
package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"syscall"
	"time"

	"kmsd/internal/kms"
	"kmsd/internal/products"
	"kmsd/internal/rpc"
	"kmsd/internal/wire"
)

// Options select what to send (vlmcs's options, kms-client.md §9).
type Options struct {
	Table   *products.Table
	Product int // 0-based index into Table.Products
	// Overrides; nil keeps the product's value.
	AppID, SKUID, KMSID *wire.GUID
	NPolicy             *uint32
	Version             *kms.Version // -4/-5/-6/-K
	VM                  bool         // -m
	LicenseStatus       uint32       // -t, default 2
	BindingExpiration   uint32       // -g, default 0
	CMID, CMIDPrev      *wire.GUID   // -c, -o
	Workstation         string       // -w
	NetBIOS             bool         // -d
	Requests            int          // -n; 0 = charge until the count suffices
	NewConnPerRequest   bool         // -T
	NDR64, BTFN         bool         // -N, -B (offer)
	Multiplex           bool         // not -p
	Timeout             time.Duration
	Network             string // "tcp4" or "tcp6" restricts name resolution (-i); "" = any
	Env                 kms.Env
}

// DefaultOptions returns vlmcs's defaults for table.
func DefaultOptions(t *products.Table, env kms.Env) Options {
	return Options{Table: t, LicenseStatus: 2, NDR64: true, BTFN: true, Multiplex: true,
		Timeout: 10 * time.Second, Env: env}
}

// Result is the outcome of one request.
type Result struct {
	Index    int
	Base     kms.BaseRequest
	Syntax   rpc.Syntax
	Sent     []byte
	HResult  uint32
	Response *kms.Verified
	Err      error
	Warnings []string
}

// Report receives progress as the client works; any method may be a no-op.
type Report interface {
	Prepared(b *kms.BaseRequest)
	Connected(addr string)
	Bound(trace string)
	Request(r *Result, total int)
	Warning(msg string)
}

// Client runs activation requests against one host address.
type Client struct {
	Addr   string
	Opt    Options
	Report Report
	callID uint32
	conn   *rpcConn
	trace  string
}

// BuildBase fills the base request for the selected product and options.
func (c *Client) BuildBase() (kms.BaseRequest, error) {
	o := &c.Opt
	t := o.Table
	if o.Product < 0 || o.Product >= len(t.Products) {
		return kms.BaseRequest{}, fmt.Errorf("client: no product %d", o.Product+1)
	}
	p := &t.Products[o.Product]
	it := &t.KMSItems[p.KMS]
	b := kms.BaseRequest{
		Version:           kms.Version{Major: it.Protocol},
		LicenseStatus:     o.LicenseStatus,
		BindingExpiration: o.BindingExpiration,
		AppID:             t.Apps[it.App].ID,
		ActID:             p.SKU,
		KMSID:             it.ID,
		NPolicy:           it.NPolicy,
		ClientTime:        wire.FileTimeSeconds(o.Env.Now().Unix()),
	}
	if o.VM {
		b.VMInfo = 1
	}
	if o.Version != nil {
		b.Version = *o.Version
	}
	setGUID(&b.AppID, o.AppID)
	setGUID(&b.ActID, o.SKUID)
	setGUID(&b.KMSID, o.KMSID)
	setGUID(&b.CMIDPrev, o.CMIDPrev)
	if o.NPolicy != nil {
		b.NPolicy = *o.NPolicy
	}
	if o.CMID != nil {
		b.CMID = *o.CMID
	} else {
		b.CMID = RandomUUID(o.Env.Rand)
	}
	name := o.Workstation
	if name == "" {
		if o.NetBIOS {
			name = RandomNetBIOSName(o.Env.Rand)
		} else {
			name = RandomDNSName(o.Env.Rand)
		}
	}
	if b.SetWorkstationName(name) && c.Report != nil {
		c.Report.Warning("workstation name truncated to 63 characters")
	}
	return b, nil
}

func setGUID(dst *wire.GUID, v *wire.GUID) {
	if v != nil {
		*dst = *v
	}
}

// RandomUUID returns a version-4 UUID in wire order.
func RandomUUID(r io.Reader) wire.GUID {
	var g wire.GUID
	io.ReadFull(r, g[:])
	g[7] = g[7]&0x0F | 0x40 // version nibble: high nibble of the third group (LE u16 at 6..7)
	g[8] = g[8]&0x3F | 0x80 // variant bits 10
	return g
}

func (c *Client) warn(msg string) {
	if c.Report != nil {
		c.Report.Warning(msg)
	}
}

func (c *Client) connect(ctx context.Context) error {
	nc, err := dial(ctx, c.Opt.Network, c.Addr, c.Opt.Timeout)
	if err != nil {
		return err
	}
	if c.Report != nil {
		c.Report.Connected(c.Addr)
	}
	c.conn = &rpcConn{nc: nc, timeout: c.Opt.Timeout, warn: c.warn}
	trace, err := c.conn.bind(bindOptions{NDR64: c.Opt.NDR64, BTFN: c.Opt.BTFN, Multiplex: c.Opt.Multiplex}, c.callID)
	if err != nil {
		c.Close()
		if errors.Is(err, ErrProtocol) {
			return err
		}
		return fmt.Errorf("%w: bind: %v", ErrConnect, err)
	}
	c.trace = trace
	if c.Report != nil {
		c.Report.Bound(trace)
	}
	return nil
}

// Close ends the connection.
func (c *Client) Close() {
	if c.conn != nil {
		c.conn.nc.Close()
		c.conn = nil
	}
}

// Once sends one request (connecting or reconnecting as needed).
func (c *Client) Once(ctx context.Context, idx int) *Result {
	if c.callID == 0 {
		c.callID = 2
	}
	res := &Result{Index: idx}
	base, err := c.BuildBase()
	if err != nil {
		res.Err = err
		return res
	}
	res.Base = base
	if c.Report != nil {
		c.Report.Prepared(&base)
	}
	if c.conn != nil && (c.Opt.NewConnPerRequest || c.conn.closedByPeer()) {
		if !c.Opt.NewConnPerRequest {
			c.warn("host closed the RPC connection; reconnecting")
		}
		c.Close()
	}
	if c.conn == nil {
		if err := c.connect(ctx); err != nil {
			res.Err = err
			return res
		}
	}
	var iv [16]byte
	io.ReadFull(c.Opt.Env.Rand, iv[:])
	res.Sent = kms.EncodeRequest(nil, &base, iv)
	reused := c.conn.requests > 0
	payload, hr, syn, err := c.conn.call(res.Sent, c.callID)
	c.callID++
	if err != nil && reused && closedErr(err) {
		// The host closed the reused connection while we were sending
		// (hosts that close after every answer): reconnect and resend once.
		c.warn("host closed the RPC connection; reconnecting")
		c.Close()
		if err := c.connect(ctx); err != nil {
			res.Err = err
			return res
		}
		payload, hr, syn, err = c.conn.call(res.Sent, c.callID)
		c.callID++
	}
	res.Syntax = syn
	if err != nil {
		c.Close()
		res.Err = err
		return res
	}
	res.HResult = hr
	if hr != 0 {
		return res
	}
	v, err := kms.VerifyResponse(res.Sent, payload)
	if err != nil {
		res.Err = err
		return res
	}
	res.Response = v
	res.Warnings = v.Warnings
	return res
}

// closedErr reports an error that means the peer closed the connection.
func closedErr(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// Run sends requests as vlmcs does (kms-client.md §5): exactly Requests
// when set, one when a CMID is fixed, otherwise until the host's count
// reaches the N policy. It returns every result.
func (c *Client) Run(ctx context.Context) []*Result {
	defer c.Close()
	base, err := c.BuildBase()
	if err != nil {
		return []*Result{{Err: err}}
	}
	n := base.NPolicy
	var results []*Result
	total := c.Opt.Requests
	fixed := total > 0
	if !fixed && c.Opt.CMID != nil {
		total, fixed = 1, true
	}
	toGo := 1
	if !fixed && n > 1 {
		toGo = int(n) - 1
	}
	for i := 1; ctx.Err() == nil; i++ {
		if fixed && i > total {
			break
		}
		r := c.Once(ctx, i)
		results = append(results, r)
		shown := total
		next := toGo
		if !fixed && r.Err == nil && r.HResult == 0 {
			next = max(0, int(n)-int(r.Response.Base.Count))
		}
		if !fixed {
			shown = i + next
		}
		if c.Report != nil {
			c.Report.Request(r, shown)
		}
		if fixed {
			continue
		}
		if r.Err != nil || r.HResult != 0 {
			break
		}
		if len(results) > 1 && int(n)-int(r.Response.Base.Count) >= toGo {
			c.warn("the host does not increment its active clients")
			break
		}
		toGo = next
		if toGo == 0 {
			break
		}
	}
	return results
}
