package web

import (
	"fmt"

	"kmsd/internal/wire"
)

// Result is an activation result as the pages show it.
type Result struct {
	HResult uint32 `json:"hresult"`
	Code    string `json:"code"`    // "activated" or "0xC004F042"
	Message string `json:"message"` // Microsoft's meaning
}

// hresultMessages are the meanings Microsoft gives the HRESULTs a KMS
// host answers or a client reports (kms-server.md §10).
var hresultMessages = map[uint32]string{
	0xC004F042: "the KMS host declined: KMS ID mismatch",
	0xC004F06C: "the request time stamp is invalid",
	0x8007000D: "the data is invalid (unsupported protocol or N policy)",
	0xC004D104: "the security processor reported invalid data",
	0xC004F038: "the count reported by your KMS is insufficient",
}

// DecodeResult describes an HRESULT.
func DecodeResult(hr uint32) Result {
	if hr == 0 {
		return Result{Code: "activated", Message: "activated"}
	}
	msg, ok := hresultMessages[hr]
	if !ok {
		msg = "refused"
	}
	return Result{HResult: hr, Code: fmt.Sprintf("0x%08X", hr), Message: msg}
}

// licenseStatuses name the license states a client reports
// (SL_LICENSING_STATUS / event 12290).
var licenseStatuses = []string{
	0: "unlicensed",
	1: "licensed",
	2: "initial grace",
	3: "additional grace",
	4: "non-genuine grace",
	5: "notification",
	6: "extended grace",
}

// LicenseStatusName names a license status.
func LicenseStatusName(st uint32) string {
	if int(st) < len(licenseStatuses) {
		return licenseStatuses[st]
	}
	return fmt.Sprintf("status %d", st)
}

// kmsInfo is what the table knows about a KMS ID.
type kmsInfo struct {
	Name    string
	App     string
	NPolicy uint32
	Known   bool
}

func (s *Server) kmsInfo(id string) kmsInfo {
	if s.Table == nil || id == "" {
		return kmsInfo{Name: unknownKMS(id)}
	}
	g, err := wire.ParseGUID(id)
	if err != nil {
		return kmsInfo{Name: unknownKMS(id)}
	}
	i := s.Table.KMSByID(g)
	if i < 0 {
		return kmsInfo{Name: unknownKMS(id)}
	}
	it := &s.Table.KMSItems[i]
	return kmsInfo{Name: it.Name, App: s.Table.Apps[it.App].Name, NPolicy: it.NPolicy, Known: true}
}

func unknownKMS(id string) string {
	if id == "" {
		return "undecodable requests"
	}
	return "unknown KMS ID"
}
