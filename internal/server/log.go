package server

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"kmsd/internal/kms"
	"kmsd/internal/rpc"
	"kmsd/internal/wire"
)

func (c *conn) logDecision(d *kms.Decision, syn rpc.Syntax, now time.Time) {
	l := c.srv.Logger
	result := "activated"
	if d.HResult != 0 {
		result = fmt.Sprintf("refused 0x%08X (%s)", d.HResult, d.Reason)
	}
	ctx := context.Background()
	// The record is built here and given to the handler directly: through
	// the Logger, each line would also cost a stack walk for a source
	// position that no configured handler prints.
	h := l.Handler()
	r := slog.NewRecord(now, slog.LevelInfo, "activation", 0)
	peer, protocol := slog.String("peer", c.peerText()), slog.String("protocol", d.Request.Outer.String())
	if !d.Decrypted {
		r.AddAttrs(peer, protocol, slog.String("result", result))
		h.Handle(ctx, r)
		return
	}
	name := "unknown product"
	if c.srv.Names != nil {
		name = c.srv.Names(d)
	}
	b := &d.Request.Base
	ws := b.WorkstationName()
	if c.srv.Privacy {
		ws = "(hidden)"
	}
	// slog.Attr values: not boxed into interfaces, which saved six
	// allocations per activation.
	r.AddAttrs(peer, slog.String("product", name), protocol, slog.String("cmid", b.CMID.String()),
		slog.String("workstation", ws), slog.String("result", result))
	h.Handle(ctx, r)
	if l.Enabled(ctx, slog.LevelDebug) {
		l.Debug("request", "syntax", syn.String(), "version", b.Version.String(), "vm", b.VMInfo,
			"license_status", b.LicenseStatus, "binding_expiration", b.BindingExpiration,
			"app_id", b.AppID.String(), "sku_id", b.ActID.String(), "kms_id", b.KMSID.String(),
			"cmid", b.CMID.String(), "previous_cmid", b.CMIDPrev.String(), "n_policy", b.NPolicy,
			"client_time", wire.Time(b.ClientTime).Format("2006-01-02 15:04:05"), "workstation", ws,
			"mac_ok", d.Request.MACOK, "padding_ok", d.Request.PaddingOK)
		if d.HResult == 0 {
			l.Debug("response", "epid", d.EPID, "hwid", fmt.Sprintf("%X", d.HWID[:]), "count", d.Count,
				"activation_interval", c.srv.CurrentHost().Policy.ActivationInterval,
				"renewal_interval", c.srv.CurrentHost().Policy.RenewalInterval)
		}
	}
}
