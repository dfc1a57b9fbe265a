package main

import (
	"encoding/base64"
	"strconv"
	"strings"
	"testing"
	"time"

	"kmsd/internal/client"
	"kmsd/internal/config"
	"kmsd/internal/kms"
	"kmsd/internal/products"
	"kmsd/internal/vectors"
	"kmsd/internal/wire"
)

// TestClientArgsMatchVlmcs: for every recording made by the current vlmcs,
// the same command line given to kmsd client builds a request with the
// fields vlmcs sent (kms-client.md §2–§3): version, VM flag, license
// status, binding expiration, application, SKU and KMS IDs, N policy, and
// CMID, previous CMID and workstation name where they were fixed.
func TestClientArgsMatchVlmcs(t *testing.T) {
	table := products.Builtin()
	checked := 0
	for _, f := range vectors.Load(t) {
		if f.ClientBuild != "current" || f.Exchanges[0].Request == nil {
			continue
		}
		args := f.ClientArgs[1 : len(f.ClientArgs)-1] // drop argv[0] and the target
		cfg, err := config.ParseClient(args)
		if err != nil {
			t.Errorf("%s: %v: %v", f.Name, args, err)
			continue
		}
		if cfg.GrabFile != "" {
			continue // checked in TestGrabMatchesVlmcs
		}
		prod := 0
		if cfg.Product != "" {
			var ok bool
			if prod, ok = table.Lookup(cfg.Product); !ok {
				t.Errorf("%s: product %q unknown", f.Name, cfg.Product)
				continue
			}
		}
		want := f.Exchanges[0].Request
		env := kms.Env{Rand: zeroReader{}, Now: func() time.Time { return time.Unix(want.ClientTimeUnix, 0) }}
		c := &client.Client{Opt: clientOptions(&cfg, table, prod, env)}
		b, err := c.BuildBase()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{
			"version": b.Version.String(), "license": itoa(b.LicenseStatus), "expiration": itoa(b.BindingExpiration),
			"app": b.AppID.String(), "sku": b.ActID.String(), "kms": b.KMSID.String(), "n": itoa(b.NPolicy),
			"vm": boolText(b.VMInfo != 0), "time": itoa64(wire.UnixSeconds(b.ClientTime)),
		}
		exp := map[string]string{
			"version": want.ProtocolVersion, "license": itoa(want.LicenseStatus), "expiration": itoa(want.RemainingMinutes),
			"app": want.ApplicationID, "sku": want.SKUID, "kms": want.KMSID, "n": itoa(want.NPolicy),
			"vm": boolText(want.VirtualMachine), "time": itoa64(want.ClientTimeUnix),
		}
		if cfg.CMID != nil {
			got["cmid"], exp["cmid"] = b.CMID.String(), want.CMID
		}
		if cfg.CMIDPrev != nil || want.PreviousCMID != "00000000-0000-0000-0000-000000000000" {
			got["previous"], exp["previous"] = b.CMIDPrev.String(), want.PreviousCMID
		}
		if cfg.Workstation != "" {
			got["workstation"], exp["workstation"] = b.WorkstationName(), want.Workstation
		}
		if cfg.NetBIOS {
			got["netbios"], exp["netbios"] = boolText(isNetBIOS(b.WorkstationName())), boolText(isNetBIOS(want.Workstation))
		}
		for k := range exp {
			if got[k] != exp[k] {
				t.Errorf("%s (%v): %s = %q, vlmcs sent %q", f.Name, args, k, got[k], exp[k])
			}
		}
		checked++
	}
	t.Logf("%d recorded vlmcs command lines rebuilt with identical request fields", checked)
	if checked == 0 {
		t.Fatal("nothing checked")
	}
}

func isNetBIOS(s string) bool {
	if len(s) < 1 || len(s) > 14 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

// TestGrabMatchesVlmcs: -G probes the CSVLKs with the products vlmcs used,
// and the ini lines have vlmcs's format, byte for byte.
func TestGrabMatchesVlmcs(t *testing.T) {
	table := products.Builtin()
	checked := 0
	for _, f := range vectors.Load(t) {
		if !strings.HasPrefix(f.Name, "grab-epids") || f.ClientBuild != "current" {
			continue
		}
		// The i-th request probes the i-th CSVLK with its probe product.
		for i, ex := range f.Exchanges {
			if ex.Request == nil || i >= len(table.CSVLKs) {
				continue
			}
			p := table.ProbeProduct(i)
			if got := table.Products[p].SKU.String(); got != ex.Request.SKUID {
				t.Errorf("%s: CSVLK %d probed with %s, vlmcs used %s", f.Name, i, got, ex.Request.SKUID)
			}
		}
		// Rebuild the file from the responses and compare with vlmcs's.
		var lines []client.GrabLine
		for i, ex := range f.Exchanges {
			if ex.Result != "success" || ex.Response == nil {
				continue
			}
			g := client.GrabLine{CSVLK: table.CSVLKs[i].IniName, EPID: ex.Response.EPID}
			if ex.Response.HWID != "" {
				g.HasHWID = true
				for j := 0; j < 8; j++ {
					g.HWID[j] = hexByte(ex.Response.HWID[2*j:])
				}
			}
			lines = append(lines, g)
		}
		for name, b64 := range f.ClientFilesBase64 {
			want, _ := base64.StdEncoding.DecodeString(b64)
			got := client.MergeGrabFile("", lines, csvlkIniNames(table))
			if got != string(want) {
				t.Errorf("%s: %s differs:\n got %q\nwant %q", f.Name, name, got, want)
			}
			checked++
		}
	}
	if checked == 0 {
		t.Skip("no grab recordings")
	}
	t.Logf("%d grab files identical", checked)
}

func hexByte(s string) byte {
	v := func(c byte) byte {
		switch {
		case c >= '0' && c <= '9':
			return c - '0'
		case c >= 'A' && c <= 'F':
			return c - 'A' + 10
		}
		return c - 'a' + 10
	}
	return v(s[0])<<4 | v(s[1])
}

func itoa(v uint32) string  { return strconv.FormatUint(uint64(v), 10) }
func itoa64(v int64) string { return strconv.FormatInt(v, 10) }

func boolText(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
