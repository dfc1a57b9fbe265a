package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"

	"kmsd/internal/kms"
	"kmsd/internal/products"
	"kmsd/internal/wire"
)

// Exit codes of kmsd client (documented in the README).
const (
	ExitOK           = 0
	ExitUsage        = 2
	ExitUnreachable  = 3
	ExitRefused      = 4
	ExitInvalid      = 5
	ExitTimeout      = 6
	ExitInsufficient = 7
)

// ExitCode classifies the last result of a run.
func ExitCode(results []*Result, nPolicy uint32) int {
	if len(results) == 0 {
		return ExitUnreachable
	}
	r := results[len(results)-1]
	var ne net.Error
	var ve *kms.VerifyError
	switch {
	case r.Err == nil && r.HResult != 0:
		return ExitRefused
	case r.Err == nil:
		if r.Response.Base.Count < nPolicy {
			return ExitInsufficient
		}
		return ExitOK
	case errors.Is(r.Err, os.ErrDeadlineExceeded) || errors.As(r.Err, &ne) && ne.Timeout():
		return ExitTimeout
	case errors.Is(r.Err, ErrConnect):
		return ExitUnreachable
	case errors.As(r.Err, &ve), errors.Is(r.Err, ErrProtocol), errors.Is(r.Err, kms.ErrInvalidResponse):
		return ExitInvalid
	}
	return ExitInvalid
}

// HResultText is Microsoft's description of the HRESULTs a KMS exchange
// produces (kms-server.md §10, kms-client.md §7).
func HResultText(hr uint32) string {
	switch hr {
	case 0x8007000D:
		return "the KMS host cannot handle this product or protocol version (invalid data)"
	case 0xC004F042:
		return "the KMS host declined to activate the product (SL_E_VL_KEY_MANAGEMENT_SERVICE_ID_MISMATCH)"
	case 0xC004F06C:
		return "the request time stamp differs too much from the KMS host's time (SL_E_VL_INVALID_TIMESTAMP)"
	case 0xC004D104:
		return "the security processor reported that invalid data was used"
	case 0xC004F038:
		return "the count reported by your KMS is insufficient (SL_E_VL_NOT_ENOUGH_COUNT)"
	case 0xC004F039:
		return "the KMS host did not answer (SL_E_VL_BINDING_SERVICE_NOT_ENABLED)"
	case 0xC004F074:
		return "no KMS host could be contacted (SL_E_VL_BINDING_SERVICE_UNAVAILABLE)"
	}
	return "unknown error"
}

// LicenseStatusName names a license status value.
func LicenseStatusName(s uint32) string {
	names := []string{"Unlicensed", "Licensed", "OOB grace", "OOT grace", "Non-Genuine", "Notification", "Extended grace"}
	if int(s) < len(names) {
		return names[s]
	}
	return "Unknown"
}

// TextReport prints progress as vlmcs does.
type TextReport struct {
	W       io.Writer
	Err     io.Writer
	Verbose bool
	Table   *products.Table
}

func (t *TextReport) Connected(addr string) {
	fmt.Fprintf(t.W, "Connecting to %s ... successful\n", addr)
}

func (t *TextReport) Bound(trace string) {
	if t.Verbose {
		fmt.Fprintf(t.W, "\nPerforming RPC bind ...\n%s... successful\n", trace)
	}
}

func (t *TextReport) Warning(msg string) { fmt.Fprintf(t.Err, "Warning: %s\n", msg) }

func (t *TextReport) name(kind int, g wire.GUID) string {
	tb := t.Table
	switch kind {
	case 0:
		if i := tb.AppByID(g); i >= 0 {
			return tb.Apps[i].Name
		}
	case 1:
		if i := tb.ProductBySKU(g); i >= 0 {
			return tb.Products[i].Name
		}
	case 2:
		if i := tb.KMSByID(g); i >= 0 {
			return tb.KMSItems[i].Name
		}
	}
	return "Unknown"
}

// Prepared prints the "Request Parameters" block in verbose mode.
func (t *TextReport) Prepared(b *kms.BaseRequest) {
	w := t.W
	if !t.Verbose {
		return
	}
	vm := "No"
	if b.VMInfo != 0 {
		vm = "Yes"
	}
	fmt.Fprintf(w, "\nRequest Parameters\n==================\n\n")
	fmt.Fprintf(w, "Protocol version                : %s\n", b.Version)
	fmt.Fprintf(w, "Client is a virtual machine     : %s\n", vm)
	fmt.Fprintf(w, "Licensing status                : %d (%s)\n", b.LicenseStatus, LicenseStatusName(b.LicenseStatus))
	fmt.Fprintf(w, "Remaining time (0 = forever)    : %d minutes\n", b.BindingExpiration)
	fmt.Fprintf(w, "Application ID                  : %s (%s)\n", b.AppID, t.name(0, b.AppID))
	fmt.Fprintf(w, "SKU ID (aka Activation ID)      : %s (%s)\n", b.ActID, t.name(1, b.ActID))
	fmt.Fprintf(w, "KMS ID (aka KMS counted ID)     : %s (%s)\n", b.KMSID, t.name(2, b.KMSID))
	fmt.Fprintf(w, "Client machine ID               : %s\n", b.CMID)
	fmt.Fprintf(w, "Previous client machine ID      : %s\n", b.CMIDPrev)
	fmt.Fprintf(w, "Client request timestamp (UTC)  : %s\n", wire.Time(b.ClientTime).Format("2006-01-02 15:04:05"))
	fmt.Fprintf(w, "Workstation name                : %s\n", b.WorkstationName())
	fmt.Fprintf(w, "N count policy (minimum clients): %d\n\n", b.NPolicy)
}

func (t *TextReport) Request(r *Result, total int) {
	w := t.W
	major := r.Base.Version.Major
	switch {
	case r.Err != nil && errors.Is(r.Err, ErrConnect):
		fmt.Fprintf(t.Err, "\aError: %v\n", r.Err)
	case r.Err != nil:
		fmt.Fprintf(w, "Sending activation request (KMS V%d) %d of %d \n", major, r.Index, total)
		fmt.Fprintf(t.Err, "\aError: %v\n", r.Err)
	case r.HResult != 0:
		fmt.Fprintf(w, "Sending activation request (KMS V%d) %d of %d \n", major, r.Index, total)
		fmt.Fprintf(t.Err, "\aError 0x%08X while sending request %d of %d: %s\n", r.HResult, r.Index, total, HResultText(r.HResult))
	case t.Verbose:
		fmt.Fprintf(w, "Sending activation request (KMS V%d) %d of %d \n", major, r.Index, total)
		t.responseBlock(r.Response)
	default:
		v := r.Response
		line := fmt.Sprintf("Sending activation request (KMS V%d) %d of %d  -> %s", major, r.Index, total, v.Base.EPID)
		if v.HasHWID {
			line += fmt.Sprintf(" (%X)", v.HWID[:])
		}
		fmt.Fprintln(w, line)
	}
	for _, m := range r.Warnings {
		t.Warning(m)
	}
}

func (t *TextReport) responseBlock(v *kms.Verified) {
	w := t.W
	fmt.Fprintf(w, "\nResponse from KMS server\n========================\n\n")
	fmt.Fprintf(w, "Size of KMS Response            : %d (0x%x)\n", v.Size, v.Size)
	fmt.Fprintf(w, "Protocol version                : %s\n", v.Base.Version)
	fmt.Fprintf(w, "KMS host extended PID           : %s\n", v.Base.EPID)
	if v.HasHWID {
		fmt.Fprintf(w, "KMS host Hardware ID            : %X\n", v.HWID[:])
	}
	fmt.Fprintf(w, "Client machine ID               : %s\n", v.Base.CMID)
	fmt.Fprintf(w, "Client request timestamp (UTC)  : %s\n", wire.Time(v.Base.ClientTime).Format("2006-01-02 15:04:05"))
	fmt.Fprintf(w, "KMS host current active clients : %d\n", v.Base.Count)
	fmt.Fprintf(w, "Renewal interval policy         : %d\n", v.Base.RenewalInterval)
	fmt.Fprintf(w, "Activation interval policy      : %d\n\n", v.Base.ActivationInterval)
}

// JSONReport prints one JSON object per request.
type JSONReport struct {
	W     io.Writer
	Table *products.Table
	Addr  string
	warns []string
}

func (j *JSONReport) Connected(addr string)     { j.Addr = addr }
func (j *JSONReport) Bound(string)              {}
func (j *JSONReport) Prepared(*kms.BaseRequest) {}
func (j *JSONReport) Warning(msg string)        { j.warns = append(j.warns, msg) }

type jsonRequest struct {
	Protocol          string `json:"protocol"`
	VM                bool   `json:"virtual_machine"`
	LicenseStatus     uint32 `json:"license_status"`
	BindingExpiration uint32 `json:"binding_expiration"`
	AppID             string `json:"application_id"`
	SKUID             string `json:"sku_id"`
	KMSID             string `json:"kms_id"`
	CMID              string `json:"cmid"`
	PreviousCMID      string `json:"previous_cmid"`
	ClientTime        string `json:"client_time_utc"`
	Workstation       string `json:"workstation"`
	NPolicy           uint32 `json:"n_policy"`
}

type jsonResponse struct {
	Size               int    `json:"size"`
	Protocol           string `json:"protocol"`
	EPID               string `json:"epid"`
	HWID               string `json:"hwid,omitempty"`
	ActiveClients      uint32 `json:"active_clients"`
	RenewalInterval    uint32 `json:"renewal_interval_minutes"`
	ActivationInterval uint32 `json:"activation_interval_minutes"`
}

type jsonResult struct {
	Request  int           `json:"request"`
	Host     string        `json:"host"`
	Syntax   string        `json:"rpc_syntax,omitempty"`
	Sent     jsonRequest   `json:"request_fields"`
	Response *jsonResponse `json:"response_fields,omitempty"`
	Result   string        `json:"result"`
	HResult  string        `json:"hresult,omitempty"`
	Message  string        `json:"message,omitempty"`
	Verified bool          `json:"verified"`
	Warnings []string      `json:"warnings,omitempty"`
}

func (j *JSONReport) Request(r *Result, total int) {
	b := &r.Base
	out := jsonResult{Request: r.Index, Host: j.Addr, Syntax: r.Syntax.String(), Sent: jsonRequest{
		Protocol: b.Version.String(), VM: b.VMInfo != 0, LicenseStatus: b.LicenseStatus,
		BindingExpiration: b.BindingExpiration, AppID: b.AppID.String(), SKUID: b.ActID.String(),
		KMSID: b.KMSID.String(), CMID: b.CMID.String(), PreviousCMID: b.CMIDPrev.String(),
		ClientTime: wire.Time(b.ClientTime).Format("2006-01-02T15:04:05Z"), Workstation: b.WorkstationName(), NPolicy: b.NPolicy}}
	switch {
	case r.Err != nil:
		out.Result, out.Message = "error", r.Err.Error()
	case r.HResult != 0:
		out.Result, out.HResult, out.Message = "refused", fmt.Sprintf("0x%08X", r.HResult), HResultText(r.HResult)
	default:
		v := r.Response
		out.Result, out.Verified = "activated", true
		if v.Base.Count < b.NPolicy {
			out.Result, out.HResult, out.Message = "insufficient-count", "0xC004F038", HResultText(0xC004F038)
		}
		out.Response = &jsonResponse{Size: v.Size, Protocol: v.Base.Version.String(), EPID: v.Base.EPID,
			ActiveClients: v.Base.Count, RenewalInterval: v.Base.RenewalInterval, ActivationInterval: v.Base.ActivationInterval}
		if v.HasHWID {
			out.Response.HWID = strings.ToUpper(fmt.Sprintf("%x", v.HWID[:]))
		}
	}
	out.Warnings = append(j.warns, r.Warnings...)
	j.warns = nil
	buf, _ := json.Marshal(out)
	j.W.Write(append(buf, '\n'))
}
